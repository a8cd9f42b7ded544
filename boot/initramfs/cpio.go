package initramfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"strings"
)

// Unix file type bits of a newc header's mode field (stat(2) S_IF*).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeCharDev = 0o020000
)

const (
	newcMagic      = "070701"
	newcHeaderSize = 6 + 13*8 // the magic and 13 fields of 8 hex digits
	trailerName    = "TRAILER!!!"
	// archiveBlock is the size the archive is padded to after the trailer,
	// as cpio(1) does; the kernel skips the zero bytes.
	archiveBlock = 512
)

// ErrWriterClosed is returned by the Writer's methods after Close.
var ErrWriterClosed = errors.New("initramfs: cpio writer closed")

// EntryError reports an entry the Writer refused: a bad name, mode or size,
// or a name already in the archive.
type EntryError struct {
	Name string // the entry's name as given
	Err  error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("initramfs: cpio entry %q: %v", e.Name, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Writer writes a cpio archive in the "new ASCII" (newc) format, the one the
// Linux kernel unpacks as an initramfs (cpio(5); the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst). Each entry is
// a 110-byte header — the magic "070701" and 13 fields of 8 hexadecimal
// digits: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
// rdevmajor, rdevminor, namesize (counting the name's terminating NUL) and
// check — then the NUL-terminated name, padded with zeros to a multiple of 4
// bytes, then the data, padded likewise. The archive ends with an entry named
// "TRAILER!!!".
//
// The output is deterministic: mtime 0, uid and gid 0, nlink 1 (2 for a
// directory), the archive's devmajor and devminor 0, check 0, and inode
// numbers 1, 2, 3, ... in the order entries are written (the trailer has 0).
//
// Names are slash-separated and relative ("init", "dev/console"): no leading
// or trailing "/", no empty, "." or ".." element, no NUL. A name may appear
// once. The kernel needs an entry's parent directory before the entry, so a
// missing parent is written first as a directory with mode 0755, once; to
// give a directory another mode, add it before its contents.
//
// A Writer's methods return the first write error of the underlying writer
// from then on. A Writer is not safe for concurrent use.
type Writer struct {
	w      io.Writer
	ino    uint32
	n      int64           // bytes written so far
	names  map[string]bool // every name written; true for directories
	err    error           // sticky write error
	closed bool
}

// NewWriter returns a Writer that writes a newc cpio archive to w. Close
// must be called to end the archive; it does not close w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, names: make(map[string]bool)}
}

// Dir adds a directory. mode holds the permission bits and optionally
// fs.ModeSetuid, fs.ModeSetgid and fs.ModeSticky (such as 0o755, or
// fs.ModeSticky|0o777 for tmp).
func (w *Writer) Dir(name string, mode fs.FileMode) error {
	return w.add(name, modeDir, mode, nil, 0, 0)
}

// File adds a regular file holding data (at most 4 GiB - 1 bytes, the
// format's limit). mode is as for Dir.
func (w *Writer) File(name string, mode fs.FileMode, data []byte) error {
	if uint64(len(data)) > math.MaxUint32 {
		return &EntryError{Name: name, Err: fmt.Errorf("%d bytes is more than the format's limit of %d", len(data), uint32(math.MaxUint32))}
	}
	return w.add(name, modeRegular, mode, data, 0, 0)
}

// CharDevice adds a character device node with the given device numbers,
// such as CharDevice("dev/console", 0o600, 5, 1). mode is as for Dir.
func (w *Writer) CharDevice(name string, mode fs.FileMode, major, minor uint32) error {
	return w.add(name, modeCharDev, mode, nil, major, minor)
}

// Close writes the trailer entry and pads the archive with zeros to a
// multiple of 512 bytes. It does not close the underlying writer. Calling
// Close again returns nil without writing.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	w.header(0, 0, 1, 0, 0, 0, trailerName)
	w.pad(archiveBlock)
	return w.err
}

func (w *Writer) add(name string, typ uint32, mode fs.FileMode, data []byte, major, minor uint32) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrWriterClosed
	}
	if err := checkName(name); err != nil {
		return &EntryError{Name: name, Err: err}
	}
	perm, err := unixPerm(mode)
	if err != nil {
		return &EntryError{Name: name, Err: err}
	}
	if _, dup := w.names[name]; dup {
		return &EntryError{Name: name, Err: errors.New("already in the archive")}
	}
	if err := w.parents(name); err != nil {
		return err
	}
	nlink := uint32(1)
	if typ == modeDir {
		nlink = 2
	}
	w.ino++
	w.header(w.ino, typ|perm, nlink, uint32(len(data)), major, minor, name)
	w.write(data)
	w.pad(4)
	w.names[name] = typ == modeDir
	return w.err
}

// parents writes the missing parent directories of name, outermost first.
func (w *Writer) parents(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	isDir, ok := w.names[dir]
	if ok {
		if !isDir {
			return &EntryError{Name: name, Err: fmt.Errorf("parent %q is not a directory", dir)}
		}
		return nil
	}
	if err := w.parents(dir); err != nil {
		return err
	}
	w.ino++
	w.header(w.ino, modeDir|0o755, 2, 0, 0, 0, dir)
	w.pad(4)
	w.names[dir] = true
	return w.err
}

// header writes a newc header and the name with its padding.
func (w *Writer) header(ino, mode, nlink, size, rdevMajor, rdevMinor uint32, name string) {
	var b strings.Builder
	b.Grow(newcHeaderSize + len(name) + 4)
	b.WriteString(newcMagic)
	for _, v := range [13]uint32{
		ino, mode, 0 /* uid */, 0 /* gid */, nlink, 0, /* mtime */
		size, 0, 0 /* devmajor, devminor */, rdevMajor, rdevMinor,
		uint32(len(name) + 1), 0, /* check */
	} {
		fmt.Fprintf(&b, "%08x", v)
	}
	b.WriteString(name)
	b.WriteByte(0)
	w.write([]byte(b.String()))
	w.pad(4)
}

func (w *Writer) write(p []byte) {
	if w.err != nil || len(p) == 0 {
		return
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	w.err = err
}

// pad writes zeros up to the next multiple of align bytes.
func (w *Writer) pad(align int64) {
	if r := w.n % align; r != 0 {
		w.write(make([]byte, align-r))
	}
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.IndexByte(name, 0) >= 0:
		return errors.New("name contains NUL")
	case name == trailerName:
		return errors.New("name is the archive's end marker")
	case strings.HasPrefix(name, "/"):
		return errors.New("name must be relative (no leading /)")
	case name == "." || !fs.ValidPath(name):
		return errors.New(`name must be a clean slash-separated path (no "..", ".", empty element or trailing /)`)
	}
	return nil
}

// unixPerm converts the permission and setuid, setgid and sticky bits of
// mode to their stat(2) values.
func unixPerm(mode fs.FileMode) (uint32, error) {
	if extra := mode &^ (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); extra != 0 {
		return 0, fmt.Errorf("mode %v: only permission, setuid, setgid and sticky bits are allowed", mode)
	}
	perm := uint32(mode & fs.ModePerm)
	if mode&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	return perm, nil
}
