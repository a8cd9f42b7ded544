package crash

// Stats counts the requests that reached the medium: valid requests made
// before a power loss, including those that failed by an injected fault or
// were interrupted by the power failure.
type Stats struct {
	Reads        int   // Read requests
	Writes       int   // Write, WriteZeroes and Discard requests: the crash points
	Flushes      int   // Flush requests
	BytesRead    int64 // bytes of Read requests
	BytesWritten int64 // bytes of Write requests (WriteZeroes and Discard transfer none)
}

// Stats returns the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Writes returns how many writes (Write, WriteZeroes, Discard) were issued:
// the number of crash points FailAtWrite can choose from so far.
func (d *Device) Writes() int { return d.Stats().Writes }

// Flushes returns how many flushes were issued.
func (d *Device) Flushes() int { return d.Stats().Flushes }

// BytesWritten returns how many bytes Write requests carried.
func (d *Device) BytesWritten() int64 { return d.Stats().BytesWritten }
