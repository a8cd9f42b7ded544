package cli

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// copyChunk is the size of the pieces values are copied in.
const copyChunk = 1 << 20

func runPut(c *cmdCtx) (err error) {
	k, err := c.newKey(c.a.pos[0])
	if err != nil {
		return err
	}
	src := "-"
	if len(c.a.pos) > 1 {
		src = c.a.pos[1]
	}
	t, err := c.open(true)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	in, err := c.openInput(src)
	if err != nil {
		return err
	}
	defer in.close()
	p := c.progress("put "+k.String(), in.size)
	err = t.SetFrom(k, p.reader(in.r), in.size)
	p.finish()
	return t.withRoom(err, in.size)
}

func runGet(c *cmdCtx) (err error) {
	k, err := c.key(c.a.pos[0])
	if err != nil {
		return err
	}
	var off, length int64 = 0, -1
	if c.a.has("offset") {
		if off, err = parseSize("--offset", c.a.get("offset")); err != nil {
			return err
		}
	}
	if c.a.has("length") {
		if length, err = parseSize("--length", c.a.get("length")); err != nil {
			return err
		}
	}
	t, err := c.open(false)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	if off < 0 || (c.a.has("length") && length < 0) {
		// Refused here, in the store's words, the same on a disk and
		// through a server.
		return kv.InvalidArgument("get_partial", k, "negative offset or length")
	}
	r, err := t.Open(k)
	if err != nil {
		return err
	}
	defer r.Close()
	size := r.Size()
	if off >= size {
		return nil
	}
	end := size
	if length >= 0 && length < size-off { // no off+length: it could overflow
		end = off + length
	}
	if off >= end {
		return nil
	}
	p := c.progress("get "+k.String(), end-off)
	w := p.writer(c.env.Stdout)
	_, err = io.CopyBuffer(w, io.NewSectionReader(r, off, end-off), make([]byte, copyChunk))
	p.finish()
	if err != nil {
		if kv.Code(err) == "internal" {
			// A failure writing standard output (a closed pipe).
			return fmt.Errorf("writing the value: %w", err)
		}
		return err
	}
	return nil
}

// statInfo is what stat prints.
type statInfo struct {
	Key          string `json:"key"`
	Kind         string `json:"kind"`
	Size         *int64 `json:"size,omitempty"`
	Digest       string `json:"digest"`
	LastModified string `json:"last_modified"`
}

func runStat(c *cmdCtx) (err error) {
	k, err := c.key(c.a.pos[0])
	if err != nil {
		return err
	}
	t, err := c.open(false)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	kind, err := t.Exists(k)
	if err != nil {
		return err
	}
	if kind == kv.None {
		return kv.NotFound("stat", k)
	}
	info := statInfo{Key: k.String(), Kind: kind.String()}
	if kind == kv.Value {
		n, err := t.Size(k)
		if err != nil {
			return err
		}
		info.Size = &n
	}
	d, err := t.Digest(k)
	if err != nil {
		return err
	}
	info.Digest = hex.EncodeToString(d)
	mt, err := t.LastModified(k)
	if err != nil {
		return err
	}
	if kind == kv.Dictionary {
		// The newest time of anything below, not kv's one level.
		err := t.walk(k, true, func(e entry) error {
			if e.LastModified.After(mt) {
				mt = e.LastModified
			}
			return nil
		})
		if err != nil {
			return kv.WithOp(err, "stat")
		}
	}
	info.LastModified = rfc3339(mt)
	if c.a.on("json") {
		return writeJSON(c.env.Stdout, info)
	}
	w := bufio.NewWriter(c.env.Stdout)
	fmt.Fprintf(w, "key: %s\nkind: %s\n", c.keyPrinter(c.env.Stdout)(info.Key), info.Kind)
	if info.Size != nil {
		fmt.Fprintf(w, "size: %d\n", *info.Size)
	}
	fmt.Fprintf(w, "digest: %s\nlast-modified: %s\n", info.Digest, info.LastModified)
	return w.Flush()
}

func runRm(c *cmdCtx) (err error) {
	k, err := c.key(c.a.pos[0])
	if err != nil {
		return err
	}
	dry := c.a.on("dry-run")
	t, err := c.open(!dry)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	kind, err := t.Exists(k)
	if err != nil {
		return err
	}
	if kind == kv.Dictionary {
		switch {
		case !c.a.on("recursive") && k.IsRoot():
			return &kv.Error{Op: "remove", Key: k, Err: kv.ErrValueExpected,
				Detail: "rm -r --force / removes everything in the store"}
		case !c.a.on("recursive"):
			return &kv.Error{Op: "remove", Key: k, Err: kv.ErrValueExpected,
				Detail: "rm -r removes a dictionary with everything below it"}
		case k.IsRoot() && !c.a.on("force"):
			return &kv.Error{Op: "remove", Key: k, Err: kv.ErrValueExpected,
				Detail: "removing / empties the store: add --force"}
		}
	}
	if !dry {
		return t.Remove(k)
	}
	if kind == kv.None {
		return nil
	}
	w := bufio.NewWriter(c.env.Stdout)
	show := c.keyPrinter(c.env.Stdout)
	line := func(e entry) error {
		_, err := fmt.Fprintf(w, "%s\t%s\n", e.Kind, show(e.Key.String()))
		return err
	}
	line(entry{Key: k, Kind: kind})
	if kind == kv.Dictionary {
		if err := t.walk(k, true, line); err != nil {
			return err
		}
	}
	return w.Flush()
}

func runMv(c *cmdCtx) (err error) {
	src, err := c.key(c.a.pos[0])
	if err != nil {
		return err
	}
	dst, err := c.newKey(c.a.pos[1])
	if err != nil {
		return err
	}
	t, err := c.open(true)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	return t.Rename(src, dst)
}

func runAlloc(c *cmdCtx) (err error) {
	k, err := c.newKey(c.a.pos[0])
	if err != nil {
		return err
	}
	size, err := parseSize("SIZE", c.a.pos[1])
	if err != nil {
		return err
	}
	var mtime time.Time
	if c.a.has("mtime") {
		if mtime, err = parseTime("--mtime", c.a.get("mtime")); err != nil {
			return err
		}
	}
	t, err := c.open(true)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	// A size larger than the device can ever hold is no_space before the
	// store sees it, as the server does.
	if size > httpapi.MaxValueSize {
		return t.withRoom(httpapi.RoomError(t, "allocate", k), size)
	}
	if size > 0 {
		if st, err := t.status(); err == nil && size > st.Capacity {
			return t.withRoom(httpapi.RoomError(t, "allocate", k), size)
		}
	}
	return t.withRoom(t.Allocate(k, size, mtime), size)
}

func runPatch(c *cmdCtx) (err error) {
	k, err := c.newKey(c.a.pos[0])
	if err != nil {
		return err
	}
	off, err := parseSize("OFFSET", c.a.pos[1])
	if err != nil {
		return err
	}
	src := "-"
	if len(c.a.pos) > 2 {
		src = c.a.pos[2]
	}
	t, err := c.open(true)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	if off < 0 {
		return kv.InvalidArgument("set_partial", k, "negative offset")
	}
	// Past MaxValueSize is past the end of every value: the same append,
	// and off + n cannot overflow.
	off = min(off, httpapi.MaxValueSize)
	var r io.Reader = c.env.Stdin
	if src != "-" {
		in, err := c.openInput(src)
		if err != nil {
			return err
		}
		defer in.close()
		r = in.r
	}
	// Piece by piece: an offset past the end appends at the end, so each
	// piece lands right after the previous one whatever the value's size.
	buf := make([]byte, copyChunk)
	for first := true; ; first = false {
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return fmt.Errorf("reading %s: %w", src, rerr)
		}
		if n > 0 || first {
			if err := t.SetPartial(k, off, buf[:n]); err != nil {
				return t.withRoom(err, int64(n))
			}
			off = min(off+int64(n), httpapi.MaxValueSize)
		}
		if rerr != nil {
			return nil
		}
	}
}

func runDf(c *cmdCtx) (err error) {
	t, err := c.open(false)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	st, err := t.status()
	if err != nil {
		return err
	}
	if c.a.on("json") {
		return writeJSON(c.env.Stdout, st)
	}
	w := bufio.NewWriter(c.env.Stdout)
	fmt.Fprintf(w, "capacity: %d (%s)\n", st.Capacity, human(st.Capacity))
	fmt.Fprintf(w, "free: %d (%s)\n", st.Free, human(st.Free))
	fmt.Fprintf(w, "largest: %d (%s)\n", st.Largest, human(st.Largest))
	fmt.Fprintf(w, "entries: %d\n", st.Entries)
	d := st.Device
	fmt.Fprintf(w, "device: %s %s, %d sectors of %d bytes\n", d.Driver, d.Model, d.Sectors, d.SectorSize)
	return w.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
