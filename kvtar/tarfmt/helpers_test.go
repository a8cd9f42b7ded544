package tarfmt

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// decoded is what decodeArchive found, in archive order.
type decoded struct {
	members []*Member
	globals []*Global
	events  []string // "member NAME", "global", "hole", "zero"
	end     int64    // offset of the end-of-archive marker (or of the end of the input)
}

// decodeArchive drives a Decoder over data the way the store drives it over
// a device: header blocks one at a time, extended data when asked. The
// archive ends at two zero blocks, a zero block followed by the end of the
// input, or the end of the input at a block boundary.
func decodeArchive(data []byte, end int64) (*decoded, error) {
	return decodeReaderAt(bytes.NewReader(data), int64(len(data)), end)
}

// decodeReaderAt is decodeArchive over size bytes of r.
func decodeReaderAt(r io.ReaderAt, size, end int64) (*decoded, error) {
	readBlock := func(off int64) *Block {
		var b Block
		r.ReadAt(b[:], off) // a short read leaves zeroes, as past the end of a device
		return &b
	}
	readBytes := func(off int64, n int) []byte {
		if off < 0 || off >= size {
			return nil
		}
		buf := make([]byte, min(int64(n), size-off))
		r.ReadAt(buf, off)
		return buf
	}
	d := NewDecoder(end)
	res := &decoded{}
	next := int64(0)
	for {
		if next >= size {
			res.end = next
			return res, nil
		}
		st, err := d.Block(next, readBlock(next))
		for err == nil && st.Kind == StepNeedData {
			st, err = d.Data(readBytes(st.Offset, st.Len))
		}
		if err != nil {
			return res, err
		}
		switch st.Kind {
		case StepMember:
			res.members = append(res.members, st.Member)
			res.events = append(res.events, "member "+st.Member.Name)
		case StepGlobal:
			res.globals = append(res.globals, st.Global)
			if st.Global.Hole {
				res.events = append(res.events, "hole")
			} else {
				res.events = append(res.events, "global")
			}
		case StepZero:
			res.events = append(res.events, "zero")
			if st.Next >= size || readBlock(st.Next).IsZero() {
				res.end = st.Offset
				return res, nil
			}
		case StepNeedBlock:
		default:
			return res, fmt.Errorf("unexpected step %+v", st)
		}
		next = st.Next
	}
}

// block returns the block at off, zero-padded if the input ends inside it.
func block(data []byte, off int64) *Block {
	var b Block
	if off >= 0 && off < int64(len(data)) {
		copy(b[:], data[off:])
	}
	return &b
}

// bytesAt returns up to n bytes at off (fewer at the end of data).
func bytesAt(data []byte, off int64, n int) []byte {
	if off < 0 || off >= int64(len(data)) {
		return nil
	}
	return data[off:min(int64(len(data)), off+int64(n))]
}

// readExpected fills buf with the member's logical content at off.
func readExpected(data []byte, m *Member, off int64, buf []byte) {
	clear(buf)
	for _, e := range m.Extents(off, int64(len(buf))) {
		if e.Physical >= 0 {
			copy(buf[e.Logical-off:e.Logical-off+e.Length], data[e.Physical:e.Physical+e.Length])
		}
	}
}

// content returns a small member's whole content.
func content(data []byte, m *Member) []byte {
	buf := make([]byte, m.Size)
	readExpected(data, m, 0, buf)
	return buf
}

// sameHeader compares a decoded header with Go's.
func sameHeader(t *testing.T, what string, h Header, g *tar.Header) {
	t.Helper()
	if h.Name != g.Name || h.Linkname != g.Linkname || h.Typeflag != g.Typeflag || h.Size != g.Size ||
		h.Mode != g.Mode || h.Uid != int64(g.Uid) || h.Gid != int64(g.Gid) || h.Uname != g.Uname ||
		h.Gname != g.Gname || !h.ModTime.Equal(g.ModTime) || h.Devmajor != g.Devmajor || h.Devminor != g.Devminor {
		t.Errorf("%s: header differs from archive/tar:\n ours %s\n  go  %s", what, fmtHeader(h), fmtGo(g))
	}
}

func fmtHeader(h Header) string {
	return fmt.Sprintf("%q link=%q type=%q size=%d mode=%o ids=%d/%d names=%q/%q mtime=%s dev=%d,%d",
		h.Name, h.Linkname, h.Typeflag, h.Size, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname,
		h.ModTime.UTC().Format(time.RFC3339Nano), h.Devmajor, h.Devminor)
}

func fmtGo(g *tar.Header) string {
	return fmtHeader(Header{Name: g.Name, Linkname: g.Linkname, Typeflag: g.Typeflag, Size: g.Size,
		Mode: g.Mode, Uid: int64(g.Uid), Gid: int64(g.Gid), Uname: g.Uname, Gname: g.Gname,
		ModTime: g.ModTime, Devmajor: g.Devmajor, Devminor: g.Devminor})
}

// maxCompared is the largest member whose content compareWithGo streams.
const maxCompared = 64 << 20

// compareWithGo decodes data with the Decoder and with archive/tar and
// compares every member, header and content (streamed in chunks, so that a
// 9 GiB sparse member costs no memory). Go's g entries are skipped.
func compareWithGo(t *testing.T, data []byte) *decoded {
	t.Helper()
	res, err := decodeArchive(data, int64(len(data)))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	i := 0
	const chunk = 16 << 20
	goBuf, ourBuf := make([]byte, chunk), make([]byte, chunk)
	for {
		g, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("archive/tar: member %d: %v", i, err)
		}
		if g.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if i >= len(res.members) {
			t.Fatalf("archive/tar found member %d %q, the decoder only %d", i, g.Name, len(res.members))
		}
		m := res.members[i]
		i++
		sameHeader(t, fmt.Sprintf("member %d", i-1), m.Header, g)
		if m.Size > maxCompared {
			// archive/tar would produce gigabytes of zeroes; the sparse map
			// of such members is checked against Python in
			// TestGoldenSparseMaps.
			continue
		}
		for off := int64(0); ; off += chunk {
			n, err := io.ReadFull(tr, goBuf)
			if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Fatalf("archive/tar: %s: %v", g.Name, err)
			}
			readExpected(data, m, off, ourBuf[:n])
			if !bytes.Equal(goBuf[:n], ourBuf[:n]) {
				t.Errorf("%s: content differs in [%d, %d)", m.Name, off, off+int64(n))
				break
			}
			if n < chunk {
				if off+int64(n) != m.Size {
					t.Errorf("%s: archive/tar read %d bytes, size %d", m.Name, off+int64(n), m.Size)
				}
				break
			}
		}
	}
	if i != len(res.members) {
		t.Errorf("the decoder found %d members, archive/tar %d", len(res.members), i)
	}
	return res
}

// checkFormatError fails unless err is a *FormatError wrapping one of the
// sentinels.
func checkFormatError(t testing.TB, err error) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FormatError", err, err)
	}
	for _, s := range []error{ErrChecksum, ErrTruncated, ErrFieldTooLong, ErrNumber, ErrRange,
		ErrPAXRecord, ErrSparse, ErrHeader, ErrMisplaced} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}
