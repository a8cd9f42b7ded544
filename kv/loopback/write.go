package loopback

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/tarstore/tarstore/kv"
)

// copyBufSize bounds the memory of SetFrom.
const copyBufSize = 1 << 20

// The mtimes a file can be given: those whose nanoseconds since the epoch
// fit in an int64 (utimensat's range as Go passes it).
var (
	minMtime = time.Unix(0, math.MinInt64)
	maxMtime = time.Unix(0, math.MaxInt64)
)

// Set binds k to v, replacing whatever k was.
func (s *Store) Set(k kv.Key, v []byte) error {
	return s.put("set", k, time.Time{}, false, func(f *os.File) error {
		_, err := f.Write(v)
		return err
	})
}

// SetFrom binds k to the next size bytes of r, copied through a bounded
// buffer into a staging file before anything changes.
func (s *Store) SetFrom(k kv.Key, r io.Reader, size int64) error {
	const op = "set"
	if size < 0 {
		return kv.InvalidArgument(op, k, "negative size")
	}
	return s.put(op, k, time.Time{}, false, func(f *os.File) error {
		buf := make([]byte, min(size, copyBufSize))
		for done := int64(0); done < size; {
			chunk := buf[:min(int64(len(buf)), size-done)]
			n, err := io.ReadFull(r, chunk)
			if n > 0 {
				if _, werr := f.Write(chunk[:n]); werr != nil {
					return werr
				}
				done += int64(n)
			}
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				return kv.InvalidArgument(op, k, fmt.Sprintf("the stream ended after %d of %d bytes", done, size))
			case err != nil:
				return kv.Storage(op, k, err)
			}
		}
		return nil
	})
}

// Allocate binds the absent k to size zero bytes, with mtime (now when
// zero).
func (s *Store) Allocate(k kv.Key, size int64, mtime time.Time) error {
	const op = "allocate"
	if size < 0 {
		return kv.InvalidArgument(op, k, "negative size")
	}
	return s.put(op, k, mtime, true, func(f *os.File) error { return reserve(f, size) })
}

// put binds k to a new file that fill writes, stamped with mtime (the
// clock's time when zero). With excl, k must not exist. The file is staged
// without the lock; only the final renames hold it.
func (s *Store) put(op string, k kv.Key, mtime time.Time, excl bool, fill func(*os.File) error) error {
	if err := checkKey(op, k); err != nil {
		return err
	}
	// Refuse early what would fail anyway, before staging a long stream.
	s.mu.RLock()
	_, err := s.checkPut(op, k, excl)
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	tmp, err := s.stage(op, k, mtime, fill)
	if err != nil {
		if s.isClosed() {
			return kv.Closed(op, k)
		}
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.checkPut(op, k, excl)
	if err != nil {
		if !s.closed {
			s.remove(tmp)
		}
		return err
	}
	return s.place(op, k, n, tmp)
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// checkPut checks, with the lock held, that k can be bound to a new value.
func (s *Store) checkPut(op string, k kv.Key, excl bool) (node, error) {
	if err := s.writable(op, k); err != nil {
		return node{}, err
	}
	if k.IsRoot() {
		if excl {
			return node{}, kv.AlreadyPresent(op, k)
		}
		return node{}, kv.ValueExpected(op, k)
	}
	n, err := s.lookup(k)
	switch {
	case err != nil:
		return node{}, kv.Storage(op, k, err)
	case n.blocked:
		return node{}, kv.DictionaryExpected(op, prefix(k, n.dirs+1))
	case excl && n.kind != kv.None:
		return node{}, kv.AlreadyPresent(op, k)
	}
	return n, nil
}

// stage writes a new file in the staging directory with fill, gives it its
// mtime, fsyncs it and returns its path.
func (s *Store) stage(op string, k kv.Key, mtime time.Time, fill func(*os.File) error) (string, error) {
	if mtime.IsZero() {
		mtime = s.clk.Now()
	}
	if mtime.Before(minMtime) || mtime.After(maxMtime) {
		return "", kv.InvalidArgument(op, k, fmt.Sprintf("mtime %v out of range", mtime))
	}
	p := s.stagingPath("tmp")
	f, err := s.create(p)
	if err != nil {
		return "", fsErr(op, k, err)
	}
	err = fill(f)
	if err == nil {
		err = s.root.Chtimes(p, time.Time{}, mtime)
	}
	if err == nil {
		err = s.syncFile(f, p)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.remove(p) // what is left is deleted by the next New
		return "", fsErr(op, k, err)
	}
	return p, nil
}

// place renames the staged file tmp to k, which lookup resolved to n, with
// the lock held. It consumes tmp, even when it fails.
func (s *Store) place(op string, k kv.Key, n node, tmp string) error {
	kp := k.Path()
	if n.hidden && !n.parentOK(k) {
		// An entry the store does not expose is where a parent directory
		// must go: it is replaced (one at k itself is replaced by the
		// rename).
		if err := s.remove(prefix(k, n.dirs+1).Path()); err != nil {
			s.remove(tmp)
			return fsErr(op, k, err)
		}
	}
	switch {
	case n.kind == kv.Dictionary:
		// Replacing a directory takes several renames: journaled.
		return s.journal(op, k, &intent{kind: intentReplace, mid: tmp, inner: tmp, top: kp, trash: s.stagingPath("trash")})
	case n.parentOK(k):
		// rename(2) puts the value in place, replacing a value, atomically.
		if err := s.rename(tmp, kp); err != nil {
			s.remove(tmp)
			return fsErr(op, k, err)
		}
		if err := s.syncDir(parentPath(kp)); err != nil {
			return fsErr(op, k, err)
		}
		return nil
	}
	// Missing parents: build them around the value inside the staging
	// directory, make them durable, and move them into place with one
	// rename.
	top := prefix(k, n.dirs+1)
	chain, inner, dirs, err := s.buildChain(k, top)
	if err == nil {
		err = s.rename(tmp, inner)
	}
	for i := len(dirs) - 1; i >= 0 && err == nil; i-- {
		err = s.syncDir(dirs[i])
	}
	if err == nil {
		err = s.rename(chain, top.Path())
	}
	if err != nil {
		s.remove(tmp)
		if chain != "" {
			s.removeAll(chain)
		}
		return fsErr(op, k, err)
	}
	if err := s.syncDir(parentPath(top.Path())); err != nil {
		return fsErr(op, k, err)
	}
	return nil
}

// buildChain makes, in the staging directory, the directory that will
// become top (a missing proper prefix of k) and those between it and k. It
// returns that directory, the path k will have inside it, and the
// directories it made, outermost first.
func (s *Store) buildChain(k, top kv.Key) (chain, inner string, dirs []string, err error) {
	chain = s.stagingPath("chain")
	if err := s.mkdir(chain); err != nil {
		return "", "", nil, err
	}
	rel, _ := k.Rel(top)
	segs := rel.Segments()
	p := chain
	dirs = []string{chain}
	for _, seg := range segs[:len(segs)-1] {
		p += "/" + seg
		if err := s.mkdir(p); err != nil {
			return chain, "", nil, err
		}
		dirs = append(dirs, p)
	}
	return chain, p + "/" + segs[len(segs)-1], dirs, nil
}

// SetPartial writes v into the value k at off (at its end when off is past
// it), or creates k holding v when it is missing.
func (s *Store) SetPartial(k kv.Key, off int64, v []byte) error {
	const op = "set_partial"
	if err := s.beginWrite(op, k); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if off < 0 {
		return kv.InvalidArgument(op, k, "negative offset")
	}
	n, err := s.checkPut(op, k, false)
	if err != nil {
		return err
	}
	switch n.kind {
	case kv.Dictionary:
		return kv.ValueExpected(op, k)
	case kv.Value:
		return s.patch(op, k, off, v)
	}
	tmp, err := s.stage(op, k, time.Time{}, func(f *os.File) error {
		_, err := f.Write(v)
		return err
	})
	if err != nil {
		return err
	}
	return s.place(op, k, n, tmp)
}

// patch writes v in place into the value k, stamps its mtime and fsyncs it.
func (s *Store) patch(op string, k kv.Key, off int64, v []byte) error {
	mtime := s.clk.Now()
	if mtime.Before(minMtime) || mtime.After(maxMtime) {
		return kv.InvalidArgument(op, k, fmt.Sprintf("mtime %v out of range", mtime))
	}
	p := k.Path()
	f, err := s.root.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fsErr(op, k, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotRegular
	}
	if err != nil {
		return fsErr(op, k, err)
	}
	size := fi.Size()
	at := min(off, size)
	if _, err := f.WriteAt(v, at); err != nil {
		if at+int64(len(v)) > size {
			f.Truncate(size) // keep the size it had; the error below is what matters
		}
		return fsErr(op, k, err)
	}
	if err := s.root.Chtimes(p, time.Time{}, mtime); err != nil {
		return fsErr(op, k, err)
	}
	if err := s.syncFile(f, p); err != nil {
		return fsErr(op, k, err)
	}
	return nil
}

// Remove unbinds k: its file or directory, with the parents that become
// empty, leaves in one rename into the staging directory and is deleted
// there. The root is emptied of everything exposed.
func (s *Store) Remove(k kv.Key) error {
	const op = "remove"
	if err := s.beginWrite(op, k); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if k.IsRoot() {
		return s.clear(op)
	}
	n, err := s.lookup(k)
	if err != nil {
		return kv.Storage(op, k, err)
	}
	if n.kind == kv.None {
		return nil
	}
	top := k
	for p := k.Parent(); !p.IsRoot(); p = p.Parent() {
		only, err := s.holdsOnly(p.Path(), top.Base())
		if err != nil {
			return kv.Storage(op, k, err)
		}
		if !only {
			break
		}
		top = p
	}
	trash := s.stagingPath("trash")
	if err := s.rename(top.Path(), trash); err != nil {
		return fsErr(op, k, err)
	}
	if err := s.syncDir(parentPath(top.Path())); err != nil {
		return fsErr(op, k, err)
	}
	// The removal is durable. Should deleting the bytes fail, the tree
	// stays in the staging directory, invisible, until the next New.
	s.removeAll(trash)
	return nil
}

// clear removes every exposed entry of the root, journaled.
func (s *Store) clear(op string) error {
	cs, err := s.children(kv.Root)
	if err != nil {
		return kv.Storage(op, kv.Root, err)
	}
	if len(cs) == 0 {
		return nil
	}
	return s.journal(op, kv.Root, &intent{kind: intentClear, trash: s.stagingPath("trash")})
}

// holdsOnly reports whether the directory dir holds exactly one entry,
// name.
func (s *Store) holdsOnly(dir, name string) (bool, error) {
	d, err := s.root.Open(dir)
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(2)
	if err != nil && err != io.EOF {
		return false, err
	}
	return len(names) == 1 && names[0] == name, nil
}

// Rename moves the binding of src to dst, per the table in package kv.
func (s *Store) Rename(src, dst kv.Key) error {
	const op = "rename"
	if err := checkKey(op, dst); err != nil {
		return err
	}
	if err := s.beginWrite(op, src); err != nil {
		return err
	}
	defer s.mu.Unlock()
	sn, err := s.lookup(src)
	if err != nil {
		return kv.Storage(op, src, err)
	}
	if sn.kind == kv.None {
		return kv.NotFound(op, src)
	}
	if src.IsRoot() || dst.HasPrefix(src) {
		if src == dst && sn.kind == kv.Value {
			return nil
		}
		return kv.RenameSourcePrefix(src, dst)
	}
	dn, err := s.lookup(dst)
	if err != nil {
		return kv.Storage(op, dst, err)
	}
	if dn.blocked {
		return kv.DictionaryExpected(op, prefix(dst, dn.dirs+1))
	}
	target, tn := dst, dn
	switch dn.kind {
	case kv.Value:
		if sn.kind == kv.Dictionary {
			return kv.ValueExpected(op, src)
		}
	case kv.Dictionary:
		if target, err = dst.Add(src.Base()); err != nil {
			return kv.WithOp(err, op)
		}
		if target == src {
			return nil
		}
		if tn, err = s.lookup(target); err != nil {
			return kv.Storage(op, target, err)
		}
	}
	return s.move(op, src, sn, target, tn)
}

// move renames src (resolved to sn) to target (resolved to tn), replacing
// what target is, with the lock held.
func (s *Store) move(op string, src kv.Key, sn node, target kv.Key, tn node) error {
	sp, tp := src.Path(), target.Path()
	if tn.hidden && (!tn.parentOK(target) || sn.kind == kv.Dictionary) {
		// An entry the store does not expose is in the way (rename(2)
		// would replace one at target by a value, not by a directory).
		if err := s.remove(prefix(target, tn.dirs+1).Path()); err != nil {
			return fsErr(op, src, err)
		}
	}
	emptied := false
	if pp := src.Parent(); !pp.IsRoot() {
		var err error
		if emptied, err = s.holdsOnly(pp.Path(), src.Base()); err != nil {
			return kv.Storage(op, src, err)
		}
	}
	if tn.parentOK(target) && !emptied && (tn.kind == kv.None || tn.kind == kv.Value && sn.kind == kv.Value) {
		// One rename(2): atomic.
		if err := s.rename(sp, tp); err != nil {
			return fsErr(op, src, err)
		}
		if err := s.syncDirs(parentPath(tp), parentPath(sp)); err != nil {
			return fsErr(op, src, err)
		}
		return nil
	}
	in := &intent{kind: intentReplace, src: sp, trash: s.stagingPath("trash")}
	if tn.parentOK(target) {
		in.mid = s.stagingPath("mid")
		in.inner, in.top = in.mid, tp
	} else {
		top := prefix(target, tn.dirs+1)
		chain, inner, _, err := s.buildChain(target, top)
		if err != nil {
			if chain != "" {
				s.removeAll(chain)
			}
			return fsErr(op, src, err)
		}
		in.mid, in.inner, in.top = chain, inner, top.Path()
	}
	// The parents src empties go too, unless they are inside target (then
	// they went to the trash with what target was).
	if pp := src.Parent(); !pp.IsRoot() && !pp.HasPrefix(target) {
		in.prune = pp.Path()
	}
	return s.journal(op, src, in)
}

// journal runs the multi-rename write in: it makes its intent record
// durable, applies it, and drops the record. With the lock held.
func (s *Store) journal(op string, k kv.Key, in *intent) error {
	if err := s.writeIntent(in); err != nil {
		if derr := s.dropIntent(); derr != nil {
			s.broken = derr
		}
		if in.mid != "" {
			s.removeAll(in.mid)
		}
		return fsErr(op, k, err)
	}
	if err := s.apply(in); err != nil {
		// Each step is recognised from the file system: try once more
		// from wherever the first attempt stopped, else leave it to the
		// next New.
		if err2 := s.apply(in); err2 != nil {
			s.broken = err
			return kv.Storage(op, k, err)
		}
	}
	if err := s.finish(in); err != nil {
		s.broken = err
		return kv.Storage(op, k, err)
	}
	return nil
}

// isEmptyErr reports whether err is rmdir's "directory not empty".
func isEmptyErr(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// prune removes the directory p and then its parents while they are empty
// directories, up to (not including) the root. Missing ones are passed
// over (an earlier attempt removed them). It returns the directory where it
// stopped, whose entries changed.
func (s *Store) prune(p string) (string, error) {
	for ; p != "." && !strings.HasPrefix(p, stagingName); p = parentPath(p) {
		fi, err := s.root.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			return p, nil
		}
		d, err := s.root.Open(p)
		if err != nil {
			return "", err
		}
		names, err := d.Readdirnames(1)
		d.Close()
		if err != nil && err != io.EOF {
			return "", err
		}
		if len(names) > 0 {
			return p, nil
		}
		if err := s.remove(p); err != nil {
			if isEmptyErr(err) {
				return p, nil
			}
			return "", err
		}
	}
	return ".", nil
}
