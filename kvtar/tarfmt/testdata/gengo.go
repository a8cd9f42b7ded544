//go:build ignore

// Command gengo writes the go-*.tar golden archives with Go's archive/tar
// (see gen.sh): go run gengo.go SRC-TREE OUT-DIR
//
//	go-pax.tar, go-gnu.tar, go-ustar.tar  the tree of gen.sh in each format
//	                                      (members USTAR cannot hold are left out)
//	go-base256.tar  GNU members whose size, uid and mtime fields were rewritten
//	                in base-256 (checksum recomputed): base-256 decoding on small,
//	                fully readable values
//	go-huge-gnu.tar, go-huge-pax.tar  one 9 GiB member, header only (the data is
//	                not stored: the archive ends after the header block(s))
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"time"
)

func main() {
	src, out := os.Args[1], os.Args[2]
	for _, f := range []struct {
		name   string
		format tar.Format
	}{{"go-pax.tar", tar.FormatPAX}, {"go-gnu.tar", tar.FormatGNU}, {"go-ustar.tar", tar.FormatUSTAR}} {
		if err := os.WriteFile(filepath.Join(out, f.name), tree(src, f.format), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	write(out, "go-base256.tar", base256())
	write(out, "go-huge-gnu.tar", huge(tar.FormatGNU))
	write(out, "go-huge-pax.tar", huge(tar.FormatPAX))
}

func write(dir, name string, b []byte) {
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		log.Fatal(err)
	}
}

func tree(src string, format tar.Format) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = rel
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 1000, 100, "alice", "staff"
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.Format = format
		if format != tar.FormatPAX {
			h.ModTime = h.ModTime.Truncate(time.Second)
		}
		if rel == "hardlink" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, "hello.txt", 0
		}
		if err := tw.WriteHeader(h); err != nil {
			if format == tar.FormatUSTAR {
				return nil // USTAR cannot hold this member
			}
			return fmt.Errorf("%s: %w", rel, err)
		}
		if h.Typeflag == tar.TypeReg {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

// base256 writes two GNU members and rewrites their numeric fields in
// base-256, the GNU binary encoding (first byte 0x80, big-endian value).
func base256() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var offs []int
	for i, data := range []string{"base-256 size\n", "another one\n"} {
		offs = append(offs, buf.Len())
		h := &tar.Header{Name: fmt.Sprintf("b256-%d.txt", i), Mode: 0o644, Size: int64(len(data)),
			Uid: 1000 + i, Gid: 100, Uname: "alice", Gname: "staff",
			ModTime: time.Unix(1600000000, 0), Format: tar.FormatGNU}
		if err := tw.WriteHeader(h); err != nil {
			log.Fatal(err)
		}
		tw.Write([]byte(data))
		tw.Flush()
	}
	tw.Close()
	b := buf.Bytes()
	for _, o := range offs {
		blk := b[o : o+512]
		put := func(field []byte, v int64) {
			for i := range field {
				field[i] = 0
			}
			for i := len(field) - 1; i > 0; i, v = i-1, v>>8 {
				field[i] = byte(v)
			}
			field[0] = 0x80
		}
		var size int64
		fmt.Sscanf(string(bytes.TrimRight(blk[124:136], "\x00")), "%o", &size)
		put(blk[124:136], size)
		put(blk[108:116], 1000)
		put(blk[136:148], 1600000000)
		copy(blk[148:156], "        ")
		sum := 0
		for _, c := range blk {
			sum += int(c)
		}
		copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	}
	return b
}

func huge(format tar.Format) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	h := &tar.Header{Name: "huge.bin", Mode: 0o644, Size: 9 << 30, Uid: 1000, Gid: 100,
		Uname: "alice", Gname: "staff", ModTime: time.Unix(1600000000, 0), Format: format}
	if err := tw.WriteHeader(h); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes() // no data, no end of archive
}
