package tarfmt

import (
	"archive/tar"
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzDecode drives the Decoder over arbitrary archives: it must never
// panic, errors are *FormatError with a sentinel, and no member's data
// (or sparse extent) lies outside the input.
func FuzzDecode(f *testing.F) {
	for _, name := range goldenFiles(f) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	hole, _ := EncodeHole(3, 0)
	f.Add(hole)
	for _, c := range oddCases() {
		if !strings.HasSuffix(c.file, ".gz") { // the big maps are slow seeds
			f.Add(c.build())
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := decodeArchive(data, int64(len(data)))
		if err != nil {
			checkFormatError(t, err)
		}
		for _, m := range res.members {
			if m.Start > m.HeaderOffset || m.HeaderOffset >= m.DataOffset || m.DataSize < 0 ||
				m.DataOffset+m.DataSize > int64(len(data)) || m.End > int64(len(data)) || m.End < m.DataOffset+m.DataSize {
				t.Fatalf("member %q layout outside the input (%d bytes): %+v", m.Name, len(data), m)
			}
			if m.Sparse == nil && m.Size != m.DataSize && m.Typeflag != TypeDir {
				t.Fatalf("dense member %q: size %d, data %d", m.Name, m.Size, m.DataSize)
			}
			pos := int64(0)
			for _, e := range m.Extents(0, m.Size) {
				if e.Logical != pos || e.Length <= 0 ||
					e.Physical >= 0 && (e.Physical < m.DataOffset || e.Physical+e.Length > m.DataOffset+m.DataSize) {
					t.Fatalf("member %q: extent %v (pos %d) outside its data [%d,+%d)", m.Name, e, pos, m.DataOffset, m.DataSize)
				}
				pos += e.Length
			}
			if pos != m.Size && m.Typeflag != TypeDir {
				t.Fatalf("member %q: extents cover %d of %d bytes", m.Name, pos, m.Size)
			}
		}
		for _, g := range res.globals {
			if g.End > int64(len(data)) || g.DataSize > MaxExtendedSize {
				t.Fatalf("global %+v outside the input", g)
			}
		}
	})
}

// FuzzParseRecords: PAX record parsing never panics, errors are typed with
// an offset inside the data, and parsed records re-encode to records that
// parse the same.
func FuzzParseRecords(f *testing.F) {
	for _, s := range []string{"30 mtime=1600000000.123456789\n", "12 comment=\n", "9 path=\n",
		"19 comment=a=b\nc\x00d\n", "5 a=\n", "1000 a=b\n", "9999999999999999999999 a=b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := ParseRecords(data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrPAXRecord) || fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Fatalf("error %v", err)
			}
			return
		}
		var again []byte
		for _, r := range recs {
			again = appendRecord(again, r.Key, r.Value)
		}
		recs2, err := ParseRecords(again)
		if err != nil || len(recs2) != len(recs) {
			t.Fatalf("re-encoded %q: %v", again, err)
		}
		for i := range recs {
			if recs[i] != recs2[i] {
				t.Fatalf("record %d: %q became %q", i, recs[i], recs2[i])
			}
		}
	})
}

// formatBase256 writes v into dst in GNU base-256 and reports whether it
// fits: the first byte is 0x80 or 0xff, the value is in the others (GNU
// tar and Python read no other first byte).
func formatBase256(dst []byte, v int64) bool {
	if len(dst) < 2 {
		return false
	}
	if bits := 8 * (len(dst) - 1); bits < 64 && (v >= int64(1)<<bits || v < -(int64(1)<<bits)) {
		return false
	}
	x := v
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte(x)
		x >>= 8
	}
	dst[0] = 0x80
	if v < 0 {
		dst[0] = 0xff
	}
	return true
}

// FuzzNumeric: numeric fields parse without panicking, errors are typed,
// and a parsed value written back in octal (when it fits) and in base-256
// parses to the same value.
func FuzzNumeric(f *testing.F) {
	for _, s := range []string{"0000644\x00", "   12 \x00", "77777777777\x00", "\x80\x00\x00\x00\x00\x00\x00\x02\x40\x00\x00\x00",
		"\xff\xff\xff\xff\xff\xff\xff\xfe", "\x80\x01", "9", "1 2", "\x00\x00\x000016\x00", "\x00016\x00", "        "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, field []byte) {
		v, err := parseNumeric(field)
		if err != nil {
			if !errors.Is(err, ErrNumber) && !errors.Is(err, ErrRange) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		buf := make([]byte, len(field))
		if fitsOctal(v, len(buf)) && len(buf) > 1 {
			formatOctal(buf, v)
			if w, err := parseNumeric(buf); err != nil || w != v {
				t.Fatalf("octal %q of %d parsed as %d, %v", buf, v, w, err)
			}
		}
		if formatBase256(buf, v) {
			if w, err := parseNumeric(buf); err != nil || w != v {
				t.Fatalf("base-256 %x of %d parsed as %d, %v", buf, v, w, err)
			}
		}
	})
}

// decodeHeaderOnly decodes the member whose header blocks are hdr.
func decodeHeaderOnly(hdr []byte) (*Member, error) {
	d := NewDecoder(math.MaxInt64)
	st, err := d.Block(0, block(hdr, 0))
	for err == nil && st.Kind != StepMember {
		switch st.Kind {
		case StepNeedData:
			st, err = d.Data(bytesAt(hdr, st.Offset, st.Len))
		case StepNeedBlock:
			st, err = d.Block(st.Next, block(hdr, st.Next))
		default:
			return nil, errors.New("unexpected step")
		}
	}
	return st.Member, err
}

// FuzzRoundTrip: a fuzzed Header either fails to encode with a typed
// error, or encodes to blocks that the Decoder and archive/tar both read
// back as the same Header.
func FuzzRoundTrip(f *testing.F) {
	f.Add("dir/file.txt", "", "alice", "staff", byte('0'), int64(13), int64(0o644), int64(1000), int64(100),
		int64(1600000000), int64(0), int64(0), int64(0))
	f.Add(strings.Repeat("x/", 300), strings.Repeat("l", 200), strings.Repeat("u", 40), "", byte('2'), int64(0),
		int64(0o777), int64(3000000), int64(0), int64(-2), int64(500000000), int64(0), int64(0))
	f.Add("héllo", "", "", "", byte(0), int64(9<<30), int64(0), int64(0), int64(0), int64(1e11), int64(1), int64(3), int64(4))
	f.Fuzz(func(t *testing.T, name, link, uname, gname string, tf byte, size, mode, uid, gid, sec, nsec, major, minor int64) {
		if nsec < 0 {
			nsec = -(nsec + 1)
		}
		h := Header{Name: name, Linkname: link, Uname: uname, Gname: gname, Typeflag: tf, Size: size, Mode: mode,
			Uid: uid, Gid: gid, ModTime: time.Unix(sec%(1<<62), nsec%1e9), Devmajor: major, Devminor: minor}
		hdr, err := EncodeHeader(h)
		if err != nil {
			var he *HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		m, err := decodeHeaderOnly(hdr)
		if err != nil {
			t.Fatalf("decode %+v: %v", h, err)
		}
		want := h
		want.Name = strings.TrimLeft(h.Name, "/")
		if want.Typeflag == TypeRegA {
			want.Typeflag = TypeReg
		}
		want.Format = m.Format
		got := m.Header
		if !got.ModTime.Equal(want.ModTime) {
			t.Fatalf("mtime %v, want %v", got.ModTime, want.ModTime)
		}
		got.ModTime = want.ModTime
		if got != want {
			t.Fatalf("round trip:\n got %s\nwant %s", fmtHeader(got), fmtHeader(want))
		}
		if m.End != int64(len(hdr))+size+padLen(size) || m.Start != 0 {
			t.Fatalf("layout %+v for %d header bytes", m, len(hdr))
		}
		g, err := tar.NewReader(bytes.NewReader(hdr)).Next()
		if err != nil {
			t.Fatalf("archive/tar: %v", err)
		}
		sameHeader(t, "archive/tar", m.Header, g)
	})
}
