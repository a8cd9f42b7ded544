package mem_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/tarstore/tarstore/hw"
	"github.com/tarstore/tarstore/hw/mem"
)

// TestSparse makes a 64 GiB device, writes at both ends and in the middle,
// and checks that only the chunks written hold memory and that discarding
// the whole device frees them all.
func TestSparse(t *testing.T) {
	const ss = 512
	sectors := uint64(64<<30) / ss
	d := newDevice(t, ss, sectors)
	for _, lba := range []uint64{0, sectors / 2, sectors - 1} {
		if err := d.Write(lba, filled(ss, 0xee)); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.Allocated(); got != 3*64<<10 {
		t.Errorf("Allocated() = %d after three one-sector writes, want three chunks", got)
	}
	if err := d.Write(1000, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	if got := d.Allocated(); got != 3*64<<10 {
		t.Errorf("writing zeroes to unallocated space allocated memory: %d", got)
	}
	buf := make([]byte, 2*ss)
	if err := d.Read(sectors-2, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:ss], make([]byte, ss)) || !bytes.Equal(buf[ss:], filled(ss, 0xee)) {
		t.Errorf("last two sectors read back wrong")
	}
	if err := d.Discard(0, sectors); err != nil {
		t.Fatal(err)
	}
	if got := d.Allocated(); got != 0 {
		t.Errorf("Allocated() = %d after discarding everything", got)
	}
	if err := d.Read(sectors-2, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, 2*ss)) {
		t.Errorf("discarded sectors do not read as zeroes")
	}
}

// TestZeroChunkEdges zeroes ranges that start, end or lie inside 64 KiB
// chunks, at a sector size that does not divide the chunk, and compares with
// a plain byte slice.
func TestZeroChunkEdges(t *testing.T) {
	const ss, sectors = 1536, 300 // 450 KiB: eight chunks, sectors straddle them
	cases := []struct {
		name   string
		lba, n uint64
	}{
		{"inside one chunk", 3, 4},
		{"straddling a chunk boundary", 40, 5},
		{"covering whole chunks", 20, 150},
		{"to the end", 250, 50},
		{"everything", 0, sectors},
		{"nothing", 17, 0},
	}
	for _, c := range cases {
		for _, op := range []string{"write-zeroes", "discard"} {
			t.Run(c.name+"/"+op, func(t *testing.T) {
				model := make([]byte, ss*sectors)
				for i := range model {
					model[i] = byte(i%251) + 1
				}
				d, err := mem.FromBytes(ss, model)
				if err != nil {
					t.Fatal(err)
				}
				if op == "discard" {
					err = d.Discard(c.lba, c.n)
				} else {
					err = d.WriteZeroes(c.lba, c.n)
				}
				if err != nil {
					t.Fatal(err)
				}
				clear(model[c.lba*ss : (c.lba+c.n)*ss])
				if !bytes.Equal(d.Bytes(), model) {
					t.Errorf("image differs from the model")
				}
				whole := (c.lba*ss+64<<10-1)/(64<<10) < (c.lba+c.n)*ss/(64<<10)
				if full := d.Allocated() < 8*64<<10; full != whole {
					t.Errorf("Allocated() = %d: chunks freed %v, want %v", d.Allocated(), full, whole)
				}
			})
		}
	}
}

func TestCloneIsIndependent(t *testing.T) {
	d := newDevice(t, 512, 8)
	if err := d.Write(0, filled(512, 1)); err != nil {
		t.Fatal(err)
	}
	c := d.Clone()
	if err := d.Write(0, filled(512, 2)); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(1, filled(512, 3)); err != nil {
		t.Fatal(err)
	}
	if got := c.Bytes(); got[0] != 1 || got[512] != 3 {
		t.Errorf("clone holds %d %d, want 1 3", got[0], got[512])
	}
	if got := d.Bytes(); got[0] != 2 || got[512] != 0 {
		t.Errorf("original holds %d %d, want 2 0", got[0], got[512])
	}
	ro := d.ReadOnlyView()
	if c := ro.Clone(); c.Info().ReadOnly {
		t.Errorf("clone of a read-only view is read-only")
	}
}

// TestHandles checks that Reopen and ReadOnlyView share the medium but not
// the closed state.
func TestHandles(t *testing.T) {
	d := newDevice(t, 512, 8)
	ro := d.ReadOnlyView()
	again := d.Reopen()
	if err := d.Write(2, filled(512, 9)); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	for name, h := range map[string]*mem.Device{"read-only view": ro, "reopened": again} {
		if err := h.Read(2, buf); err != nil {
			t.Fatalf("%s: Read after the original closed: %v", name, err)
		}
		if buf[0] != 9 {
			t.Errorf("%s: does not see the original's write", name)
		}
	}
	if err := ro.Write(2, buf); !errors.Is(err, hw.ErrReadOnly) {
		t.Errorf("Write through the read-only view: %v", err)
	}
	if !ro.Info().ReadOnly || again.Info().ReadOnly {
		t.Errorf("ReadOnly flags: view %v, reopened %v", ro.Info().ReadOnly, again.Info().ReadOnly)
	}
	if got := d.Bytes(); got[2*512] != 9 {
		t.Errorf("Bytes after Close: %d, want 9", got[2*512])
	}
}

// TestReaderAt reads a tar archive written to the device through
// ReaderAt, without copying the image.
func TestReaderAt(t *testing.T) {
	var img bytes.Buffer
	tw := tar.NewWriter(&img)
	files := map[string]string{"a": "hello", "b/c": "world"}
	for _, name := range []string{"a", "b/c"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	const ss = 4096
	d := newDevice(t, ss, 1<<18) // 1 GiB
	data := img.Bytes()
	data = append(data, make([]byte, (ss-len(data)%ss)%ss)...)
	if err := d.Write(0, data); err != nil {
		t.Fatal(err)
	}
	r := d.ReaderAt()
	if r.Size() != 1<<30 {
		t.Errorf("Size() = %d", r.Size())
	}
	tr := tar.NewReader(r)
	for range files {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != files[h.Name] {
			t.Errorf("%s: %q, want %q", h.Name, got, files[h.Name])
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("after the last member: %v, want io.EOF", err)
	}
	// Reads at and across the end.
	buf := make([]byte, 10)
	if n, err := r.ReadAt(buf, r.Size()-4); n != 4 || err != io.EOF {
		t.Errorf("ReadAt across the end: %d, %v", n, err)
	}
	if n, err := r.ReadAt(buf, r.Size()); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end: %d, %v", n, err)
	}
}
