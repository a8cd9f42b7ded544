package tarfmt

import (
	"archive/tar"
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// longName returns a name of segs segments of segLen bytes each.
func longName(c byte, segs, segLen int) string {
	parts := make([]string, segs)
	for i := range parts {
		parts[i] = strings.Repeat(string(c+byte(i%20)), segLen)
	}
	return strings.Join(parts, "/")
}

var t0 = time.Unix(1600000000, 0)

// writeCases are headers covering every reason EncodeHeader has to use an
// x header, and the edges of the ustar fields.
func writeCases() []want {
	reg := func(name string, size int, seed uint64) want {
		return want{Header: Header{Name: name, Typeflag: TypeReg, Size: int64(size), Mode: 0o644,
			Uid: 1000, Gid: 100, Uname: "alice", Gname: "staff", ModTime: t0}, Data: pattern(seed, size)}
	}
	ws := []want{
		reg("short.txt", 13, 1),
		reg("empty", 0, 2),
		reg(strings.Repeat("n", 100), 511, 3), // fills the name field
		reg(strings.Repeat("p", 150)+"/"+strings.Repeat("q", 100), 512, 4),         // ustar prefix split
		reg(strings.Repeat("p", 156)+"/"+strings.Repeat("q", 50), 513, 5),          // prefix too long: PAX
		reg(longName('a', 2, 150), 1, 6),                                           // 301 bytes: PAX path
		reg(longName('A', 16, 255), 1000, 7),                                       // 4095 bytes, 255-byte segments
		reg("/absolute/leading-slash.txt", 5, 8),                                   // written without '/'
		reg("héllo-wörld-日本語.txt", 17, 9),                                          // non-ASCII in ustar
		reg("ünïcødé/"+strings.Repeat("ß", 80)+"/"+strings.Repeat("€", 40), 3, 10), // non-ASCII PAX path
		reg("large.bin", 100000, 11),
		// Non-ASCII PAX paths carry hdrcharset=BINARY: bsdtar reads a
		// name that is not NFC as it is (not UTF-8: TestOddNonNFCKeys).
		reg(strings.Repeat("nfd-cafe\u0301/", 12)+"e\u0301", 4, 21),
	}
	sub := reg("subsecond.txt", 7, 12)
	sub.ModTime = time.Unix(1600000000, 123456789)
	nano := reg("one-nanosecond.txt", 7, 13)
	nano.ModTime = time.Unix(1600000000, 1)
	old := reg("before-1970.txt", 7, 14)
	old.ModTime = time.Unix(-86400, 0)
	oldFrac := reg("before-1970-fraction.txt", 7, 15)
	oldFrac.ModTime = time.Unix(-2, 500000000) // -1.5 s
	future := reg("far-future.txt", 7, 16)
	future.ModTime = time.Unix(9000000000, 0) // beyond 11 octal digits (year 2255; ext4 stops at 2446)
	epoch := reg("epoch.txt", 7, 17)
	epoch.ModTime = time.Unix(0, 0)
	bigID := reg("big-ids.txt", 7, 18)
	bigID.Uid, bigID.Gid = 3000000, maxID
	maxID := reg("max-octal-ids.txt", 7, 19)
	maxID.Uid, maxID.Gid = maxOctal7, maxOctal7
	longOwner := reg("long-owner.txt", 7, 20)
	longOwner.Uname, longOwner.Gname = strings.Repeat("u", 32), strings.Repeat("g", 31)
	dir := want{Header: Header{Name: "some/dir/", Typeflag: TypeDir, Mode: 0o755, Uid: 1000, Gid: 100,
		Uname: "alice", Gname: "staff", ModTime: t0}}
	sym := want{Header: Header{Name: "link", Linkname: longName('t', 4, 50), Typeflag: TypeSymlink, Mode: 0o777,
		Uid: 1000, Gid: 100, Uname: "alice", Gname: "staff", ModTime: t0}}
	hard := want{Header: Header{Name: "hard", Linkname: "short.txt", Typeflag: TypeLink, Mode: 0o644,
		Uid: 1000, Gid: 100, Uname: "alice", Gname: "staff", ModTime: t0}}
	return append(ws, sub, nano, old, oldFrac, future, epoch, bigID, maxID, longOwner, dir, sym, hard)
}

// TestEncodeReaders writes every case into one archive and reads it back
// with archive/tar, the Decoder, GNU tar (listing and extracting), bsdtar
// (listing and copying) and Python.
func TestEncodeReaders(t *testing.T) {
	ws := writeCases()
	var pieces []piece
	for i := range ws {
		pieces = append(pieces, piece{member: &ws[i]})
	}
	checkAllReaders(t, writeArchive(t, pieces), ws, true)
}

// TestEncodeHuge: sizes of 8 GiB and more need a PAX size record. The
// archive file is sparse on disk; the readers list it (they seek over the
// data).
func TestEncodeHuge(t *testing.T) {
	ws := []want{
		{Header: Header{Name: "before", Typeflag: TypeReg, Size: 3, Mode: 0o600, ModTime: t0}, Data: []byte("abc")},
		{Header: Header{Name: "eight-gib-minus-one", Typeflag: TypeReg, Size: maxOctal11, Mode: 0o600, ModTime: t0}},
		{Header: Header{Name: "eight-gib", Typeflag: TypeReg, Size: maxOctal11 + 1, Mode: 0o600, ModTime: t0}},
		{Header: Header{Name: "after", Typeflag: TypeReg, Size: 3, Mode: 0o600, ModTime: t0}, Data: []byte("xyz")},
	}
	var pieces []piece
	for i := range ws {
		pieces = append(pieces, piece{member: &ws[i]})
	}
	checkAllReaders(t, writeArchive(t, pieces), ws, false)
}

// TestEncodeDeterministic: the same Header gives the same bytes, and the
// x header sits directly before its member.
func TestEncodeDeterministic(t *testing.T) {
	for _, w := range writeCases() {
		a, err1 := EncodeHeader(w.Header)
		b, err2 := EncodeHeader(w.Header)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) || len(a)%BlockSize != 0 {
			t.Fatalf("%.60q: %v %v", w.Name, err1, err2)
		}
		if len(a) > BlockSize {
			x := (*Block)(a[:BlockSize])
			if x.typeflag()[0] != TypeXHeader || !x.ChecksumOK() || !strings.HasPrefix(string(cString(x.name())), "PaxHeaders/") {
				t.Errorf("%.60q: first block is not an x header", w.Name)
			}
		}
	}
	// Nothing that fits ustar gets an x header.
	h, _ := EncodeHeader(writeCases()[3].Header)
	if len(h) != BlockSize {
		t.Errorf("a splittable 251-byte name got an x header")
	}
}

func TestEncodeErrors(t *testing.T) {
	ok := Header{Name: "a", Typeflag: TypeReg, Mode: 0o644, ModTime: t0}
	for _, c := range []struct {
		mod  func(h *Header)
		want error
	}{
		{func(h *Header) { h.Name = "" }, ErrUnencodable},
		{func(h *Header) { h.Name = "///" }, ErrUnencodable},
		{func(h *Header) { h.Name = "a\x00b" }, ErrUnencodable},
		{func(h *Header) { h.Linkname = "a\x00b" }, ErrUnencodable},
		{func(h *Header) { h.Uname = "a\x00b" }, ErrUnencodable},
		{func(h *Header) { h.Size = -1 }, ErrUnencodable},
		{func(h *Header) { h.Mode = 1 << 21 }, ErrUnencodable},
		{func(h *Header) { h.Uid = -1 }, ErrUnencodable},
		{func(h *Header) { h.Gid = 1 << 32 }, ErrUnencodable},
		{func(h *Header) { h.Devmajor = 1 << 21 }, ErrUnencodable},
		{func(h *Header) { h.Typeflag = TypeXHeader }, ErrUnencodable},
		{func(h *Header) { h.Typeflag = TypeDir; h.Size = 1 }, ErrUnencodable},
		{func(h *Header) { h.ModTime = time.Unix(1<<62+1, 0) }, ErrRange},
		{func(h *Header) { h.Name = strings.Repeat("a", MaxExtendedSize) }, ErrFieldTooLong},
	} {
		h := ok
		c.mod(&h)
		_, err := EncodeHeader(h)
		var he *HeaderError
		if !errors.Is(err, c.want) || !errors.As(err, &he) {
			t.Errorf("%.40q: %v, want %v", h.Name, err, c.want)
		}
	}
	// A non-UTF-8 name that fits ustar is fine: ustar is byte-transparent.
	h := ok
	h.Name = "raw-\xff-name"
	if _, err := EncodeHeader(h); err != nil {
		t.Error(err)
	}
}

// TestEncodeGoOracle: Go reads every case identically (headers only,
// without data, for speed: a separate check of what TestEncodeReaders does
// with data).
func TestEncodeGoOracle(t *testing.T) {
	for _, w := range writeCases() {
		hdr, err := EncodeHeader(w.Header)
		if err != nil {
			t.Fatal(err)
		}
		g, err := tar.NewReader(bytes.NewReader(hdr)).Next()
		if err != nil {
			t.Fatalf("%.60q: %v", w.Name, err)
		}
		sameAsWant(t, "archive/tar", g, w)
	}
}

// TestEncodeHeaderBlocks: a header padded to a number of blocks takes
// exactly that many, and Go's reader sees the same member as without the
// padding (the comment record is ignored); sizes it cannot reach fail.
func TestEncodeHeaderBlocks(t *testing.T) {
	mtime := time.Unix(1.7e9, 0)
	for _, name := range []string{"a/b", longName('p', 3, 60), longName('q', 30, 60)} {
		h := Header{Name: name, Typeflag: TypeReg, Size: 5, Mode: 0o644, ModTime: mtime}
		natural, err := EncodeHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		nb := int64(len(natural)) / BlockSize
		for blocks := int64(1); blocks <= nb+5; blocks++ {
			got, err := EncodeHeaderBlocks(h, blocks)
			if blocks < nb || blocks != nb && blocks < 3 {
				if !errors.Is(err, ErrFieldTooLong) {
					t.Errorf("%d-byte name, %d blocks (natural %d): err %v, want ErrFieldTooLong", len(name), blocks, nb, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%d-byte name, %d blocks: %v", len(name), blocks, err)
			}
			if int64(len(got)) != blocks*BlockSize {
				t.Fatalf("%d-byte name, %d blocks: %d bytes", len(name), blocks, len(got))
			}
			arch := append(append(append(got, []byte("hello")...), make([]byte, BlockSize-5)...), EndOfArchive()...)
			tr := tar.NewReader(bytes.NewReader(arch))
			hdr, err := tr.Next()
			if err != nil {
				t.Fatalf("%d blocks: archive/tar: %v", blocks, err)
			}
			if hdr.Name != name || hdr.Size != 5 || !hdr.ModTime.Equal(mtime) {
				t.Errorf("%d blocks: archive/tar reads %q size %d mtime %v", blocks, hdr.Name, hdr.Size, hdr.ModTime)
			}
		}
	}
}

// TestEncodeCharset: an x header starts with hdrcharset=BINARY exactly
// when one of its string records (path, linkpath, uname, gname) is not
// pure ASCII; the decoder and Go read the bytes as they are.
func TestEncodeCharset(t *testing.T) {
	long := strings.Repeat("d/", 130) + "f"
	for _, c := range []struct {
		h      Header
		binary bool
	}{
		{Header{Name: long}, false},
		{Header{Name: long + "é"}, true},
		{Header{Name: long + "e\u0301"}, true},
		{Header{Name: long + "\xff"}, true},
		{Header{Name: "short-é"}, false}, // fits ustar: no x header
		{Header{Name: "l", Typeflag: TypeSymlink, Linkname: strings.Repeat("\xfe", 101)}, true},
		{Header{Name: "u", Uname: strings.Repeat("ü", 20)}, true},
		{Header{Name: "g", Gname: strings.Repeat("g", 40)}, false},
	} {
		h := c.h
		if h.Typeflag == 0 {
			h.Typeflag = TypeReg
		}
		h.ModTime = t0
		hdr, err := EncodeHeader(h)
		if err != nil {
			t.Fatalf("%.40q: %v", h.Name, err)
		}
		recs := ""
		if len(hdr) > BlockSize {
			recs = string(hdr[BlockSize:])
		}
		if got := strings.HasPrefix(recs, "21 hdrcharset=BINARY\n"); got != c.binary {
			t.Errorf("%.40q: hdrcharset record %v, want %v", h.Name, got, c.binary)
		}
		if strings.Count(recs, "hdrcharset") > 1 {
			t.Errorf("%.40q: more than one hdrcharset record", h.Name)
		}
		m, err := decodeHeaderOnly(hdr)
		if err != nil || m.Name != h.Name || m.Linkname != h.Linkname || m.Uname != h.Uname || m.Gname != h.Gname {
			t.Errorf("%.40q: decoded %+v, %v", h.Name, m, err)
		}
		g, err := tar.NewReader(bytes.NewReader(hdr)).Next()
		if err != nil {
			t.Fatalf("%.40q: archive/tar: %v", h.Name, err)
		}
		sameHeader(t, "archive/tar", m.Header, g)
	}
}
