package tarfmt

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseNumeric(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  error
	}{
		{"0000644\x00", 0o644, nil},
		{"     644 ", 0o644, nil},
		{"644\x00\x00\x00\x00", 0o644, nil},
		{"\x00\x00\x00\x00\x00\x00\x00\x00", 0, nil},
		{"77777777777\x00", maxOctal11, nil},
		{"0000648\x00", 0, ErrNumber},
		{"abc", 0, ErrNumber},
		// GNU tar's from_header (see TestOddNumericFields for the
		// archives): one leading NUL is skipped, then white space; a
		// second NUL ends the field; only the byte after the digits is
		// checked; a blank field is an error.
		{"\x00\x00\x00\x00\x00\x00\x000016\x00", 0, nil},
		{"\x000000000016\x00", 0o16, nil},
		{"\x00  \t12\x00", 0o12, nil},
		{"\t\n\v\f\r 3\t\x00\x00\x00\x00", 3, nil},
		{"12 34\x00", 0o12, nil},
		{"3\x00zzzzzzzzzz", 3, nil},
		{"00000000003 x", 3, nil},
		{"        ", 0, ErrNumber},
		{"\x00       ", 0, ErrNumber},
		{"", 0, ErrNumber},
		{"12x", 0, ErrNumber},
		{"-12", 0, ErrNumber},                                        // GNU tar's obsolete base-64
		{"\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05", 5, nil}, // base-256 after the skipped NUL
		{"\x80\x00\x00\x00\x00\x00\x00\x02\x40\x00\x00\x00", 9 << 30, nil},
		{"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe", -2, nil},
		{"\xff\xff\xff\xff\xff\xff\xff\xff", -1, nil},
		{"\x80\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xff", math.MaxInt64, nil},
		{"\xff\xff\xff\xff\x80\x00\x00\x00\x00\x00\x00\x00", math.MinInt64, nil},
		{"\x80\x00\x00\x00\x80\x00\x00\x00\x00\x00\x00\x00", 0, ErrRange},
		{"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00", 0, ErrRange},
		{"\xff\xff\xff\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 0, ErrRange},
		{"\x80\x01", 1, nil},
		{"\xff\xc0", -64, nil},
		// Base-256 starts with 0x80 or 0xff only (GNU tar and Python).
		{"\xc0", 0, ErrNumber},
		{"\x81\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 0, ErrNumber},
	} {
		got, err := parseNumeric([]byte(c.in))
		if !errors.Is(err, c.err) || (err == nil && got != c.want) {
			t.Errorf("parseNumeric(%q) = %d, %v; want %d, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestPAXTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"1600000000", time.Unix(1600000000, 0)},
		{"1600000000.5", time.Unix(1600000000, 5e8)},
		{"1600000000.123456789123", time.Unix(1600000000, 123456789)},
		{"-1.5", time.Unix(-2, 5e8)},
		{"-0.5", time.Unix(-1, 5e8)},
		{"-86400", time.Unix(-86400, 0)},
		{"0.000000001", time.Unix(0, 1)},
	} {
		got, err := parsePAXTime(c.in)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("parsePAXTime(%q) = %v, %v", c.in, got, err)
		}
		if back := formatPAXTime(c.want); strings.TrimRight(c.in, "0123") != strings.TrimRight(back, "0123") && c.in != "1600000000.123456789123" {
			t.Errorf("formatPAXTime(%v) = %q, want %q", c.want, back, c.in)
		}
	}
	for _, in := range []string{"", "-", "+1", " 1", "x12", ".5", "-.5", "99999999999999999999", "4611686018427387905"} {
		if _, err := parsePAXTime(in); err == nil {
			t.Errorf("parsePAXTime(%q) succeeded", in)
		}
	}
	// GNU tar reads up to the first byte that does not belong to the
	// number (TestOddPAXMtime), and rounds a negative time down when it
	// drops nonzero digits.
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"12a4", time.Unix(12, 0)},
		{"1.x", time.Unix(1, 0)},
		{"1e5", time.Unix(1, 0)},
		{"12.", time.Unix(12, 0)},
		{"1234.5x9", time.Unix(1234, 5e8)},
		{"-1.5 ", time.Unix(-2, 5e8)},
		{"-1.0000000001", time.Unix(-2, 999999999)},
		{"-1.0000000010", time.Unix(-2, 999999999)},
		{"-1.0000000000", time.Unix(-1, 0)},
		{"-0.9999999999", time.Unix(-1, 0)},
		{"1.9999999999", time.Unix(1, 999999999)},
	} {
		got, err := parsePAXTime(c.in)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("parsePAXTime(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestParseRecords(t *testing.T) {
	recs, err := ParseRecords([]byte("30 mtime=1600000000.123456789\n19 comment=a=b\nc\x00d\n12 comment=\n"))
	if err != nil || len(recs) != 3 || recs[1].Value != "a=b\nc\x00d" || recs[2].Value != "" {
		t.Errorf("%q %v", recs, err)
	}
	for _, in := range []string{
		"5 a=\n",          // too short for its digits? (length 5 is exact: "5 a=\n")
		"6 a=b\n\x00",     // trailing NUL
		"7 a=b\n",         // length past the data
		"6 a=bc",          // no newline
		"6 =bc\n",         // empty keyword
		"6 abc\n",         // no '='
		"x a=b\n",         // no length
		"06a=bc\n",        // no space
		"11 pa\x00h=ab\n", // NUL in a keyword
		"99999999999999999999999 a=b\n",
	} {
		if _, err := ParseRecords([]byte(in)); err == nil && in != "5 a=\n" {
			t.Errorf("ParseRecords(%q) succeeded", in)
		} else if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrPAXRecord) {
				t.Errorf("ParseRecords(%q): %v", in, err)
			}
		}
	}
	// appendRecord solves the self-referential length at digit boundaries.
	for n := 0; n < 2000; n++ {
		rec := appendRecord(nil, "k", strings.Repeat("v", n))
		got, err := ParseRecords(rec)
		if err != nil || len(got) != 1 || len(got[0].Value) != n {
			t.Fatalf("value of %d bytes: %q %v", n, rec, err)
		}
	}
}

func TestChecksum(t *testing.T) {
	hdr, err := EncodeHeader(Header{Name: "é", Typeflag: TypeReg, ModTime: t0})
	if err != nil {
		t.Fatal(err)
	}
	b := (*Block)(hdr)
	if !b.ChecksumOK() {
		t.Fatal("fresh header fails its checksum")
	}
	_, signed := b.Checksum()
	formatOctal(b.chksum()[:7], signed) // the historic signed form
	if !b.ChecksumOK() {
		t.Error("signed checksum refused")
	}
	b[0] ^= 1
	if b.ChecksumOK() {
		t.Error("corrupt header passes")
	}
	_, err = decodeArchive(hdr, int64(len(hdr)))
	if !errors.Is(err, ErrChecksum) {
		t.Errorf("decode corrupt header: %v", err)
	}
}

// TestDecodeErrors: malformed archives give typed errors with offsets.
func TestDecodeErrors(t *testing.T) {
	member := func(h Header, data string) []byte {
		b, err := EncodeHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, data...)
		return append(b, Padding(int64(len(data)))...)
	}
	ok := member(Header{Name: "a", Typeflag: TypeReg, Size: 3, ModTime: t0}, "abc")
	long := member(Header{Name: strings.Repeat("x", 200), Typeflag: TypeReg, ModTime: t0}, "")
	xOnly := long[:len(long)-BlockSize]
	hole, _ := EncodeHole(2, 0)
	raw := func(tf byte, size int64, data string) []byte {
		var b Block
		copy(b.name(), "meta")
		formatOctal(b.mode(), 0o644)
		formatOctal(b.size(), size)
		formatOctal(b.mtime(), 0)
		b.typeflag()[0] = tf
		copy(b.magic(), magicUSTAR)
		copy(b.version(), versionUSTAR)
		b.SetChecksum()
		out := append(b[:], data...)
		return append(out, Padding(int64(len(data)))...)
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, c := range []struct {
		name string
		in   []byte
		err  error
		off  int64
	}{
		{"truncated data", ok[:1000], ErrTruncated, 0},
		{"truncated header", ok[:100], ErrTruncated, 0},
		{"x x", cat(xOnly, long), ErrMisplaced, int64(len(xOnly))},
		{"x g", cat(xOnly, hole, ok), ErrMisplaced, int64(len(xOnly))},
		{"x zero", cat(xOnly, EndOfArchive()), ErrMisplaced, int64(len(xOnly))},
		{"L L", cat(raw('L', 2, "a\x00"), raw('L', 2, "b\x00"), ok), nil, 0}, // the second wins: TestOddTwoLongNames
		{"bad record", cat(raw('x', 5, "5 a=b"), ok), ErrPAXRecord, 512 + 4},
		{"x too big", raw('x', MaxExtendedSize+1, ""), ErrFieldTooLong, 0},
		{"bad size record", cat(raw('x', 11, "11 size=-1\n"), ok), ErrNumber, 1024},
		{"symlink with data", member(Header{Name: "s", Typeflag: TypeReg, Size: 1, ModTime: t0}, "x"), nil, 0},
		{"g bad", cat(raw('g', 7, "7 a=bc\n"[:6]+"x"), ok), ErrPAXRecord, 512 + 6},
		{"hole without newline", cat(func() []byte { h, _ := EncodeHole(3, 0); h[len(h)-1] = 'x'; return h }(), ok), ErrPAXRecord, 3*512 - 1},
	} {
		_, err := decodeArchive(c.in, int64(len(c.in)))
		if c.err == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var fe *FormatError
		if !errors.Is(err, c.err) || !errors.As(err, &fe) || fe.Offset != c.off {
			t.Errorf("%s: %v (offset %v), want %v at %d", c.name, err, fe, c.err, c.off)
		}
	}
	// A symlink with a size: readers disagree.
	var b Block
	copy(b.name(), "s")
	formatOctal(b.size(), 1)
	b.typeflag()[0] = TypeSymlink
	copy(b.magic(), magicUSTAR)
	b.SetChecksum()
	if _, err := decodeArchive(append(b[:], make([]byte, 512)...), 1024); !errors.Is(err, ErrHeader) {
		t.Errorf("symlink with size: %v", err)
	}
}

// TestDecoderUsage: out-of-order calls are ErrUsage and the decoder stays
// failed.
func TestDecoderUsage(t *testing.T) {
	d := NewDecoder(1 << 20)
	if _, err := d.Data([]byte("x")); !errors.Is(err, ErrUsage) {
		t.Errorf("Data first: %v", err)
	}
	if _, err := d.Block(0, &Block{}); !errors.Is(err, ErrUsage) {
		t.Errorf("after failure: %v", err)
	}
	d = NewDecoder(1 << 20)
	if st, err := d.Block(0, &Block{}); err != nil || st.Kind != StepZero || st.Next != 512 {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := d.Block(1024, &Block{}); !errors.Is(err, ErrUsage) {
		t.Errorf("wrong offset: %v", err)
	}
}

// TestGlobalRecordsApply: POSIX g records apply to later members until an
// x header overrides them; an empty value cancels.
func TestGlobalRecordsApply(t *testing.T) {
	g := func(recs ...string) []byte {
		var data []byte
		for i := 0; i+1 < len(recs); i += 2 {
			data = appendRecord(data, recs[i], recs[i+1])
		}
		var b Block
		copy(b.name(), "global")
		formatOctal(b.size(), int64(len(data)))
		b.typeflag()[0] = TypeXGlobalHeader
		copy(b.magic(), magicUSTAR)
		b.SetChecksum()
		return append(append(b[:], data...), Padding(int64(len(data)))...)
	}
	m := func(name string) []byte {
		b, _ := EncodeHeader(Header{Name: name, Typeflag: TypeReg, ModTime: t0, Uname: "own"})
		return b
	}
	var in []byte
	in = append(in, g("uname", "glob", "comment", "x")...)
	in = append(in, m("a")...)
	in = append(in, m(strings.Repeat("b", 120))...) // x header, no uname: global applies
	in = append(in, g("uname", "")...)
	in = append(in, m("c")...)
	res, err := decodeArchive(in, int64(len(in)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.members) != 3 || res.members[0].Uname != "glob" || res.members[1].Uname != "glob" || res.members[2].Uname != "own" {
		t.Errorf("%q", res.events)
	}
	if res.globals[0].Hole || len(res.globals[0].Records) != 2 {
		t.Errorf("global %+v", res.globals[0])
	}
}

func TestExtents(t *testing.T) {
	m := &Member{Header: Header{Size: 100}, DataOffset: 1000, DataSize: 30,
		Sparse: []SparseEntry{{10, 10}, {50, 20}, {100, 0}}}
	got := m.Extents(0, 1000)
	want := "[[0,+10) hole [10,+10) at 1000 [20,+30) hole [50,+20) at 1010 [70,+30) hole]"
	if s := strings.ReplaceAll(strings.Trim(strings.Join(strings.Fields(fmtExt(got)), " "), " "), "  ", " "); s != want {
		t.Errorf("%s", s)
	}
	if s := fmtExt(m.Extents(15, 40)); s != "[[15,+5) at 1005 [20,+30) hole [50,+5) at 1010]" {
		t.Errorf("%s", s)
	}
	if e := m.Extents(100, 5); e != nil {
		t.Errorf("%v", e)
	}
	dense := &Member{Header: Header{Size: 10}, DataOffset: 512, DataSize: 10}
	if s := fmtExt(dense.Extents(-5, 8)); s != "[[0,+3) at 512]" {
		t.Errorf("%s", s)
	}
}

func fmtExt(es []Extent) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, e.String())
	}
	return "[" + strings.Join(parts, " ") + "]"
}
