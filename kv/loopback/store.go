package loopback

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// stagingName is the reserved directory at the root that holds the store's
// work in progress. Keys whose first segment is this name are invalid.
const stagingName = ".tarstore-staging"

// ErrInUse is the cause of New's error when another store holds the
// directory.
var ErrInUse = errors.New("directory is in use by another store")

// Store is the loopback store over one host directory. It implements kv.RW.
type Store struct {
	root *os.Root
	dir  *os.File // the root directory itself: holds the flock, answers fstatfs
	clk  clock.PClock
	seq  atomic.Uint64 // names of staging entries

	mu     sync.RWMutex // shared by reads, exclusive for the renames of writes
	closed bool
	broken error // a multi-rename write that could not be finished; writes refused until reopened

	// trace, when set (by tests), is told of every file-system mutation and
	// fsync just before it happens: "create p", "mkdir p", "rename p q",
	// "remove p", "removeall p", "fsync p" (paths relative to the root). An
	// error it returns is the operation's failure. It may be called from
	// several goroutines at once.
	trace func(event string) error
}

var _ kv.RW = (*Store)(nil)

// New opens the store over the directory root, stamping modification times
// with clk. root must exist and be a directory; New takes an exclusive lock
// on it, finishes or discards the work a crashed store left in the staging
// directory (see the package doc). It fails with a *kv.Error of operation
// "open" wrapping kv.ErrStorage and the cause (a *fs.PathError, ErrInUse,
// ...) when it cannot, and with kv.ErrInvalidArgument for a nil clock.
func New(root string, clk clock.PClock) (*Store, error) {
	const op = "open"
	if clk == nil {
		return nil, kv.InvalidArgument(op, kv.Root, "nil clock")
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, kv.Storage(op, kv.Root, err)
	}
	dir, err := r.Open(".")
	if err != nil {
		r.Close()
		return nil, kv.Storage(op, kv.Root, err)
	}
	if err := lockDir(dir); err != nil {
		dir.Close()
		r.Close()
		return nil, kv.Storage(op, kv.Root, fmt.Errorf("%s: %w", root, err))
	}
	s := &Store{root: r, dir: dir, clk: clk}
	if err := s.prepareStaging(); err != nil {
		dir.Close()
		r.Close()
		return nil, kv.Storage(op, kv.Root, err)
	}
	return s, nil
}

// prepareStaging creates the staging directory, or rolls forward the write
// recorded in it and empties it.
func (s *Store) prepareStaging() error {
	fi, err := s.root.Lstat(stagingName)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := s.mkdir(stagingName); err != nil {
			return err
		}
		return s.syncDir(".")
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s: reserved name is not a directory", stagingName)
	}
	if err := s.recoverIntent(); err != nil {
		return err
	}
	d, err := s.root.Open(stagingName)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := s.removeAll(stagingName + "/" + n); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the directory: it removes the staging directory when
// nothing is left in it and drops the lock. Later calls fail with
// kv.ErrClosed; Close itself is idempotent. Open readers stay usable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	// A staging directory still in use (an interrupted write, a stream
	// being staged) stays for the next New to clean.
	if err := s.remove(stagingName); err == nil {
		errs = append(errs, s.syncDir("."))
	}
	errs = append(errs, s.dir.Close(), s.root.Close())
	if err := errors.Join(errs...); err != nil {
		return kv.Storage("close", kv.Root, err)
	}
	return nil
}

// checkKey rejects keys in the reserved staging directory.
func checkKey(op string, k kv.Key) error {
	if first, _, _ := strings.Cut(k.Path(), "/"); first == stagingName {
		return &kv.Error{Op: op, Key: k, Err: kv.ErrInvalidKey, Detail: stagingName + " is reserved"}
	}
	return nil
}

// beginRead takes the shared lock for a read of k; on success the caller
// must call s.mu.RUnlock.
func (s *Store) beginRead(op string, k kv.Key) error {
	if err := checkKey(op, k); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return kv.Closed(op, k)
	}
	return nil
}

// beginWrite takes the exclusive lock for a write of k; on success the
// caller must call s.mu.Unlock.
func (s *Store) beginWrite(op string, k kv.Key) error {
	if err := checkKey(op, k); err != nil {
		return err
	}
	s.mu.Lock()
	if err := s.writable(op, k); err != nil {
		s.mu.Unlock()
		return err
	}
	return nil
}

// writable reports why writes are refused, with the lock held.
func (s *Store) writable(op string, k kv.Key) error {
	if s.closed {
		return kv.Closed(op, k)
	}
	if s.broken != nil {
		return kv.Storage(op, k, fmt.Errorf("an earlier write could not be finished; reopen the store to complete it: %w", s.broken))
	}
	return nil
}

// fsErr turns a file-system failure of op on k into the store's error.
func fsErr(op string, k kv.Key, err error) error {
	var e *kv.Error
	switch {
	case errors.As(err, &e):
		return kv.WithOp(err, op)
	case isNoSpace(err):
		return kv.NoSpace(op, k)
	}
	return kv.Storage(op, k, err)
}

// keyPath is the path of k relative to the root.
func keyPath(k kv.Key) string {
	if k.IsRoot() {
		return "."
	}
	return k.Path()
}

// prefix returns the first n segments of k.
func prefix(k kv.Key, n int) kv.Key {
	for d := k.Depth(); d > n; d-- {
		k = k.Parent()
	}
	return k
}

// node is what a key resolves to.
type node struct {
	kind kv.Kind
	info fs.FileInfo // lstat of the key's file or directory (kind Value or Dictionary)
	// dirs is how many leading segments of the key are directories: all of
	// them for a dictionary, all but the last for a value.
	dirs int
	// For kind None, the entry at segment dirs (counting from 0), if any:
	// a value the key goes on below (blocked), or an entry the store does
	// not expose (hidden).
	blocked, hidden bool
}

// parentOK reports whether every proper prefix of k is a directory.
func (n node) parentOK(k kv.Key) bool { return n.dirs >= k.Depth()-1 }

// lookup resolves k component by component with lstat, so that no symbolic
// link is followed and special files are not exposed.
func (s *Store) lookup(k kv.Key) (node, error) {
	if k.IsRoot() {
		fi, err := s.root.Lstat(".")
		if err != nil {
			return node{}, err
		}
		return node{kind: kv.Dictionary, info: fi}, nil
	}
	segs := k.Segments()
	var p strings.Builder
	for i, seg := range segs {
		if i > 0 {
			p.WriteByte('/')
		}
		p.WriteString(seg)
		fi, err := s.root.Lstat(p.String())
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return node{dirs: i}, nil
		}
		if err != nil {
			return node{}, err
		}
		last := i == len(segs)-1
		switch {
		case fi.IsDir():
			if last {
				return node{kind: kv.Dictionary, info: fi, dirs: i + 1}, nil
			}
		case fi.Mode().IsRegular():
			if last {
				return node{kind: kv.Value, info: fi, dirs: i}, nil
			}
			return node{dirs: i, blocked: true}, nil
		default:
			return node{dirs: i, hidden: true}, nil
		}
	}
	panic("unreachable")
}

// child is an exposed entry of a directory.
type child struct {
	name string
	kind kv.Kind
	key  kv.Key
	de   fs.DirEntry
}

// children lists the exposed entries of the dictionary k, sorted by name
// (which is List's order: the keys share the prefix k).
func (s *Store) children(k kv.Key) ([]child, error) {
	d, err := s.root.Open(keyPath(k))
	if err != nil {
		return nil, err
	}
	des, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	out := make([]child, 0, len(des))
	for _, de := range des {
		var kind kv.Kind
		switch t := de.Type(); {
		case t.IsDir():
			kind = kv.Dictionary
		case t.IsRegular():
			kind = kv.Value
		default:
			continue
		}
		if k.IsRoot() && de.Name() == stagingName {
			continue
		}
		ck, err := k.Add(de.Name())
		if err != nil {
			continue // not representable as a key: not exposed
		}
		out = append(out, child{name: de.Name(), kind: kind, key: ck, de: de})
	}
	sortChildren(out)
	return out, nil
}

// stagingPath returns a fresh name in the staging directory.
func (s *Store) stagingPath(kind string) string {
	return fmt.Sprintf("%s/%s-%d", stagingName, kind, s.seq.Add(1))
}

// exists reports whether something (anything) is at p.
func (s *Store) exists(p string) (bool, error) {
	_, err := s.root.Lstat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist) || isNotDir(err):
		return false, nil
	}
	return false, err
}

// isDir reports whether p is a directory (not a symlink to one).
func (s *Store) isDir(p string) (bool, error) {
	fi, err := s.root.Lstat(p)
	switch {
	case err == nil:
		return fi.IsDir(), nil
	case errors.Is(err, fs.ErrNotExist) || isNotDir(err):
		return false, nil
	}
	return false, err
}

// The changes to the tree (create, mkdir, rename, remove) and the fsyncs
// below are the only ones the store makes (besides writing file contents
// and mtimes); each reports itself to the trace seam first, which may fail
// it.

func (s *Store) note(event string) error {
	if s.trace != nil {
		return s.trace(event)
	}
	return nil
}

func (s *Store) create(p string) (*os.File, error) {
	if err := s.note("create " + p); err != nil {
		return nil, err
	}
	return s.root.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
}

func (s *Store) mkdir(p string) error {
	if err := s.note("mkdir " + p); err != nil {
		return err
	}
	return s.root.Mkdir(p, 0o777)
}

func (s *Store) rename(from, to string) error {
	if err := s.note("rename " + from + " " + to); err != nil {
		return err
	}
	return s.root.Rename(from, to)
}

func (s *Store) remove(p string) error {
	if err := s.note("remove " + p); err != nil {
		return err
	}
	return s.root.Remove(p)
}

func (s *Store) removeAll(p string) error {
	if err := s.note("removeall " + p); err != nil {
		return err
	}
	return s.root.RemoveAll(p)
}

func (s *Store) syncFile(f *os.File, p string) error {
	if err := s.note("fsync " + p); err != nil {
		return err
	}
	return f.Sync()
}

func (s *Store) syncDir(p string) error {
	if err := s.note("fsync " + p); err != nil {
		return err
	}
	d, err := s.root.Open(p)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDirs fsyncs each distinct directory of ps that exists.
func (s *Store) syncDirs(ps ...string) error {
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if seen[p] {
			continue
		}
		seen[p] = true
		ok, err := s.isDir(p)
		if err != nil {
			return err
		}
		if ok {
			if err := s.syncDir(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// parentPath is the directory holding p ("." at the top).
func parentPath(p string) string { return path.Dir(p) }
