package cli

import (
	"fmt"
	"os"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/loopback"
)

// walk calls fn for every value at or below k in s, in key order.
func walk(s kv.RO, k kv.Key, fn func(k kv.Key) error) error {
	kind, err := s.Exists(k)
	if err != nil {
		return err
	}
	switch kind {
	case kv.None:
		return kv.NotFound("list", k)
	case kv.Value:
		return fn(k)
	}
	entries, err := s.List(k)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Kind == kv.Value {
			err = fn(e.Key)
		} else {
			err = walk(s, e.Key, fn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// copyValue copies the value src in from to dst in to, streaming, and
// returns its size.
func copyValue(from kv.RO, src kv.Key, to kv.RW, dst kv.Key, p *progress) (int64, error) {
	r, err := from.Open(src)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return r.Size(), to.SetFrom(dst, p.reader(kv.NewStreamReader(r)), r.Size())
}

// plan lists the values to copy and their total size.
func plan(s kv.RO, k kv.Key) ([]kv.Key, int64, error) {
	var keys []kv.Key
	var total int64
	err := walk(s, k, func(k kv.Key) error {
		n, err := s.Size(k)
		if err != nil {
			return err
		}
		keys = append(keys, k)
		total += n
		return nil
	})
	return keys, total, err
}

func runImport(c *cmdCtx) (err error) {
	dir := c.a.pos[0]
	prefix := kv.Root
	if len(c.a.pos) > 1 {
		if prefix, err = c.newKey(c.a.pos[1]); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(dir); err != nil {
		return usagef("%v", unwrapPath(err))
	} else if !fi.IsDir() {
		return usagef("%s is not a directory", dir)
	}
	src, err := loopback.New(dir, clock.System{})
	if err != nil {
		return usagef("cannot read %s: %v", dir, err)
	}
	defer src.Close()
	keys, total, err := plan(src, kv.Root)
	if err != nil {
		return err
	}
	// Every destination is checked before anything is copied.
	dsts := make([]kv.Key, len(keys))
	for i, k := range keys {
		if dsts[i], err = prefix.Join(k); err != nil {
			return kv.WithOp(err, "set")
		}
		if err := httpapi.CheckNewKey("set", dsts[i]); err != nil {
			return err
		}
	}
	t, err := c.open(true)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	p := c.progress("import "+dir, total)
	defer p.finish()
	for i, k := range keys {
		if _, err := copyValue(src, k, t, dsts[i], p); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.env.Stdout, "imported %s (%d bytes) from %s into %s\n",
		plural(int64(len(keys)), "value"), total, dir, prefix)
	return nil
}

func runExport(c *cmdCtx) (err error) {
	prefix, err := c.key(c.a.pos[0])
	if err != nil {
		return err
	}
	dir := c.a.pos[1]
	t, err := c.open(false)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	keys, total, err := plan(t, prefix)
	if err != nil {
		return kv.WithOp(err, "get")
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return usagef("%v", unwrapPath(err))
	}
	dst, err := loopback.New(dir, clock.System{})
	if err != nil {
		return usagef("cannot write to %s: %v", dir, err)
	}
	defer closeInto(dst, &err)
	p := c.progress("export "+prefix.String(), total)
	defer p.finish()
	for _, k := range keys {
		rel, _ := k.Rel(prefix)
		if rel.IsRoot() { // PREFIX is a value: DIR/<its base>
			rel, err = kv.Root.Add(k.Base())
			if err != nil {
				return err
			}
		}
		if _, err := copyValue(t, k, dst, rel, p); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.env.Stdout, "exported %s (%d bytes) from %s into %s\n",
		plural(int64(len(keys)), "value"), total, prefix, dir)
	return nil
}
