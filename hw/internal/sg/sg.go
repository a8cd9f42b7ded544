// Package sg moves bytes between a vectored request — the list of buffers
// an hw.Block Read or Write takes, laid out back to back on the device —
// and the contiguous pieces a driver hands to its hardware, and splits a
// request into pieces that respect the hardware's transfer limit.
package sg

import "sync"

// Len returns the total length of bufs.
func Len(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// Gather copies into dst the bytes of bufs' concatenation that start at
// offset off, as many as fit in dst or remain; it returns how many.
func Gather(dst []byte, bufs [][]byte, off int) int {
	n := 0
	for _, b := range bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		c := copy(dst[n:], b[off:])
		n += c
		off = 0
		if n == len(dst) {
			break
		}
	}
	return n
}

// Scatter copies src into bufs' concatenation starting at offset off, as
// far as bufs reach; it returns how many bytes it copied.
func Scatter(bufs [][]byte, off int, src []byte) int {
	n := 0
	for _, b := range bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		c := copy(b[off:], src[n:])
		n += c
		off = 0
		if n == len(src) {
			break
		}
	}
	return n
}

// Piece is a part of a request: Len bytes at byte offset Off.
type Piece struct{ Off, Len int }

// Split cuts total bytes into pieces of at most max bytes (max > 0), in
// order; the last may be shorter. A max that is a multiple of the sector
// size keeps every piece whole sectors.
func Split(total, max int) []Piece {
	if total <= 0 || max <= 0 {
		return nil
	}
	ps := make([]Piece, 0, (total+max-1)/max)
	for off := 0; off < total; off += max {
		ps = append(ps, Piece{Off: off, Len: min(max, total-off)})
	}
	return ps
}

// Run cuts total bytes into pieces of at most max bytes (Split) and calls
// do for each: inline for a single piece, else each on its own goroutine,
// all at once (a driver's own slots bound what reaches the device). It
// waits for all of them and returns the error of the lowest piece that
// failed, or nil.
func Run(total, max int, do func(Piece) error) error {
	pieces := Split(total, max)
	if len(pieces) == 1 {
		return do(pieces[0])
	}
	errs := make([]error, len(pieces))
	var wg sync.WaitGroup
	for i, p := range pieces {
		wg.Go(func() { errs[i] = do(p) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
