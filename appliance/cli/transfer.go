package cli

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/kv"
)

// import and export copy between a host directory and the store. What they
// keep: each regular file's bytes, under its path as key; export sets each
// file's modification time to the value's last-modified. What they do not
// keep: file modes (exported files are created 0666 less the umask),
// owners, empty directories (the store has no empty dictionaries),
// symbolic links and special files (import skips them and says so). The
// store (kvtar) has no place for modes or links in its values, so a tree
// round-trips by content and export's times, not by mode.
//
// import only reads its source: it walks the tree itself (no staging area
// in it), so a read-only source imports.

// source is one regular file found below an import's directory.
type source struct {
	rel  string // slash-separated path below the directory
	path string // the path to open
	key  kv.Key // where it goes
	size int64
}

// skipped is an entry import does not copy, and why.
type skipped struct{ rel, why string }

// scanSource walks dir and returns its regular files in key order, and what
// it skips. Failures to read the tree are usage errors: the argument is
// wrong, not the store.
func scanSource(dir string, prefix kv.Key) ([]source, []skipped, error) {
	var files []source
	var skips []skipped
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return usagef("%v", unwrapPath(err))
		}
		rel, rerr := filepath.Rel(dir, path)
		if rerr != nil || rel == "." {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		switch t := d.Type(); {
		case d.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			skips = append(skips, skipped{rel, "a symbolic link"})
			return nil
		case !t.IsRegular():
			skips = append(skips, skipped{rel, "not a regular file"})
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return usagef("%v", unwrapPath(err))
		}
		relKey, err := kv.ParseKey(rel)
		if err != nil {
			return kv.WithOp(err, "import")
		}
		k, err := prefix.Join(relKey)
		if err != nil {
			return kv.WithOp(err, "import")
		}
		if err := httpapi.CheckNewKey("import", k); err != nil {
			return err
		}
		files = append(files, source{rel: rel, path: path, key: k, size: fi.Size()})
		return nil
	})
	// WalkDir goes in lexical order of names; the store's order is by key,
	// which differs ("a-b" sorts before "a/b"): copy in the store's order.
	slices.SortFunc(files, func(a, b source) int { return a.key.Compare(b.key) })
	return files, skips, err
}

// fileDigest is the SHA-256 of the file at path.
func fileDigest(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// unchanged reports whether the store already holds f's bytes at f.key:
// a value of the same size and digest.
func unchanged(t *target, f source, have map[string]int64) (bool, error) {
	size, ok := have[f.key.String()]
	if !ok || size != f.size {
		return false, nil
	}
	local, err := fileDigest(f.path)
	if err != nil {
		return false, usagef("%v", unwrapPath(err))
	}
	stored, err := t.Digest(f.key)
	if err != nil {
		return false, kv.WithOp(err, "import")
	}
	return bytes.Equal(local, stored), nil
}

// storedValues returns the values below prefix with their sizes, by key
// (none when prefix is not a dictionary).
func storedValues(t *target, prefix kv.Key) (map[string]int64, error) {
	have := map[string]int64{}
	kind, err := t.Exists(prefix)
	if err != nil || kind != kv.Dictionary {
		return have, kv.WithOp(err, "import")
	}
	err = t.walk(prefix, true, func(e entry) error {
		if e.Kind == kv.Value {
			have[e.Key.String()] = e.Size
		}
		return nil
	})
	return have, kv.WithOp(err, "import")
}

// importCounts is what an import did.
type importCounts struct {
	copied, unchanged, deleted int64
	bytes                      int64
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
	// Every file and destination is checked before anything is copied.
	files, skips, err := scanSource(dir, prefix)
	if err != nil {
		return err
	}
	t, err := c.open(true)
	if err != nil {
		return err
	}
	defer closeInto(t, &err)
	have, err := storedValues(t, prefix)
	if err != nil {
		return err
	}
	verbose := bufio.NewWriter(io.Discard)
	if c.a.on("verbose") {
		verbose = bufio.NewWriter(c.env.Stdout)
	}
	defer verbose.Flush()
	show := c.keyPrinter(c.env.Stdout)
	for _, s := range skips {
		fmt.Fprintf(verbose, "skipped %s: %s\n", show(s.rel), s.why)
	}
	var todo []source
	var total int64
	var n importCounts
	for _, f := range files {
		same, err := unchanged(t, f, have)
		if err != nil {
			return err
		}
		if same {
			n.unchanged++
			fmt.Fprintf(verbose, "unchanged %s\n", show(f.key.String()))
			continue
		}
		todo = append(todo, f)
		total += f.size
	}
	p := c.quietProgress("import "+dir, total)
	for _, f := range todo {
		if err := importFile(t, f, p); err != nil {
			p.finish()
			return err
		}
		n.copied++
		n.bytes += f.size
		fmt.Fprintf(verbose, "put %s\n", show(f.key.String()))
	}
	p.finish()
	if c.a.on("delete") {
		keep := map[string]bool{}
		for _, f := range files {
			keep[f.key.String()] = true
		}
		for k := range have {
			if keep[k] {
				continue
			}
			key, _ := kv.ParseKey(k)
			if err := t.Remove(key); err != nil {
				return kv.WithOp(err, "import")
			}
			n.deleted++
			fmt.Fprintf(verbose, "removed %s\n", show(k))
		}
	}
	verbose.Flush()
	msg := fmt.Sprintf("imported %s (%d bytes) from %s into %s; %d unchanged, %d skipped",
		plural(n.copied, "value"), n.bytes, dir, prefix, n.unchanged, len(skips))
	if c.a.on("delete") {
		msg += fmt.Sprintf(", %d removed", n.deleted)
	}
	if len(skips) > 0 && !c.a.on("verbose") {
		msg += " (-v names them)"
	}
	fmt.Fprintln(c.env.Stdout, msg)
	return nil
}

// importFile copies one file into the store, streaming.
func importFile(t *target, f source, p *progress) error {
	in, err := os.Open(f.path)
	if err != nil {
		return usagef("%v", unwrapPath(err))
	}
	defer in.Close()
	// The size scanned; a file that changes meanwhile fails the set.
	return t.withRoom(kv.WithOp(t.SetFrom(f.key, p.reader(in), f.size), "import"), f.size)
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
	var values []entry
	var total int64
	err = t.walkValues("export", prefix, func(e entry) error {
		values = append(values, e)
		total += e.Size
		return nil
	})
	if err != nil {
		return kv.WithOp(err, "export")
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return usagef("%v", unwrapPath(err))
	}
	p := c.quietProgress("export "+prefix.String(), total)
	defer p.finish()
	for _, e := range values {
		rel, _ := e.Key.Rel(prefix)
		if rel.IsRoot() { // PREFIX is a value: DIR/<its base>
			rel, _ = kv.Root.Add(e.Key.Base())
		}
		if err := exportValue(t, e, filepath.Join(dir, filepath.FromSlash(rel.Path())), p); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.env.Stdout, "exported %s (%d bytes) from %s into %s\n",
		plural(int64(len(values)), "value"), total, prefix, dir)
	return nil
}

// exportValue writes the value e to the file path: into a temporary file
// beside it, fsynced, renamed into place, its modification time set to the
// value's last-modified.
func exportValue(t *target, e entry, path string, p *progress) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return usagef("%v", unwrapPath(err))
	}
	r, err := t.Open(e.Key)
	if err != nil {
		return kv.WithOp(err, "export")
	}
	defer r.Close()
	tmp, err := createBeside(path)
	if err != nil {
		return usagef("%v", unwrapPath(err))
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.CopyBuffer(tmp, p.reader(kv.NewStreamReader(r)), make([]byte, copyChunk)); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return usagef("%v", unwrapPath(err))
		}
		return kv.WithOp(err, "export")
	}
	if err := tmp.Sync(); err != nil {
		return usagef("%v", unwrapPath(err))
	}
	if err := tmp.Close(); err != nil {
		return usagef("%v", unwrapPath(err))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return usagef("%s: %v", path, unwrapLink(err))
	}
	if err := os.Chtimes(path, e.LastModified, e.LastModified); err != nil {
		return usagef("%v", unwrapPath(err))
	}
	return nil
}

// unwrapLink shortens "rename a b: is a directory" errors.
func unwrapLink(err error) error {
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// createBeside creates a new file in path's directory, named after it,
// with mode 0666 less the umask (as a file the user creates).
func createBeside(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(fmt.Sprintf("%s.tarstore-%d", path, rand.Uint64()), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
}
