package kvtar

import (
	"archive/tar"
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
)

// foreignImage builds an archive with archive/tar and returns it as a
// device with room to spare.
func foreignImage(t *testing.T, ss int, build func(w *tar.Writer)) *mem.Device {
	t.Helper()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	build(w)
	require.NoError(t, w.Close())
	img := make([]byte, 4<<20)
	copy(img, buf.Bytes())
	dev, err := mem.FromBytes(ss, img)
	require.NoError(t, err)
	return dev
}

func addFile(t *testing.T, w *tar.Writer, name string, data []byte) {
	require.NoError(t, w.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644, ModTime: time.Unix(1e9, 0)}))
	_, err := w.Write(data)
	require.NoError(t, err)
}

func TestHardLinksSurviveTheirTarget(t *testing.T) {
	data := pattern(3, 3000)
	dev := foreignImage(t, 512, func(w *tar.Writer) {
		addFile(t, w, "a", data)
		require.NoError(t, w.WriteHeader(&tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "a", ModTime: time.Unix(1e9, 0)}))
		require.NoError(t, w.WriteHeader(&tar.Header{Name: "c/l", Typeflag: tar.TypeLink, Linkname: "a", ModTime: time.Unix(1e9, 0)}))
	})
	s, err := New(clock.NewFake(time.Unix(2e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	for _, k := range []string{"/a", "/b", "/c/l"} {
		v, err := s.Get(kv.MustKey(k))
		require.NoError(t, err, k)
		assert.Equal(t, data, v, k)
	}

	// Overwriting the target materializes the links: they keep the old bytes.
	require.NoError(t, s.Set(kv.MustKey("/a"), []byte("new")))
	checkStore(t, s, dev.ReaderAt())
	for _, k := range []string{"/b", "/c/l"} {
		v, err := s.Get(kv.MustKey(k))
		require.NoError(t, err, k)
		assert.Equal(t, data, v, k)
	}
	// The links are regular members now; removing one leaves the other.
	require.NoError(t, s.Remove(kv.MustKey("/b")))
	checkStore(t, s, dev.ReaderAt())
	require.NoError(t, s.Close())

	s, err = New(clock.NewFake(time.Unix(2e9, 0)), dev.Reopen())
	require.NoError(t, err)
	got := contents(t, s)
	assert.Equal(t, map[string][]byte{"/a": []byte("new"), "/c/l": data}, got)
	require.NoError(t, s.Close())
}

func TestRenameLinkTarget(t *testing.T) {
	data := pattern(5, 700)
	dev := foreignImage(t, 4096, func(w *tar.Writer) {
		addFile(t, w, "d/a", data)
		require.NoError(t, w.WriteHeader(&tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "d/a", ModTime: time.Unix(1e9, 0)}))
	})
	s, err := New(clock.NewFake(time.Unix(2e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	require.NoError(t, s.Rename(kv.MustKey("/d"), kv.MustKey("/e")))
	checkStore(t, s, dev.ReaderAt())
	assert.Equal(t, map[string][]byte{"/e/a": data, "/b": data}, contents(t, s))
	require.NoError(t, s.Close())
}

func TestUnexposedMembersGoWithTheirDictionary(t *testing.T) {
	dev := foreignImage(t, 512, func(w *tar.Writer) {
		require.NoError(t, w.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}))
		addFile(t, w, "d/f", []byte("f"))
		require.NoError(t, w.WriteHeader(&tar.Header{Name: "d/s", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}))
		require.NoError(t, w.WriteHeader(&tar.Header{Name: "top", Typeflag: tar.TypeSymlink, Linkname: "d"}))
		addFile(t, w, "g", []byte("g"))
	})
	s, err := New(clock.NewFake(time.Unix(2e9, 0)), dev)
	require.NoError(t, err)
	checkWhenDone(t, s, dev)
	probs, err := s.Check()
	require.NoError(t, err)
	assert.Len(t, probs, 2, "the two symbolic links are reported: %v", probs)
	k, err := s.Exists(kv.MustKey("/d/s"))
	require.NoError(t, err)
	assert.Equal(t, kv.None, k)

	require.NoError(t, s.Remove(kv.MustKey("/d")))
	probs, err = s.Check()
	require.NoError(t, err)
	assert.Len(t, probs, 1, "the link in /d went with it: %v", probs)

	require.NoError(t, s.Remove(kv.Root))
	probs, err = s.Check()
	require.NoError(t, err)
	assert.Empty(t, probs)
	got := goTarContents(t, dev.ReaderAt())
	assert.Empty(t, got)
	require.NoError(t, s.Close())
}

// TestForeignWritesOverShadowedNames: after a write to a key that a member
// the store does not expose (a symbolic link) or keeps only for a hard
// link (a shadowed earlier file) is also named, tar extraction agrees with
// the store — the old path is not recreated, the old bytes do not come
// back, and a value written or moved before such a member does not lose
// to it. GNU tar, bsdtar and Python list the result, and GNU tar's
// extraction is compared with the store.
func TestForeignWritesOverShadowedNames(t *testing.T) {
	symlink := goMember{hdr: tar.Header{Name: "x", Linkname: "elsewhere", Typeflag: tar.TypeSymlink, Format: tar.FormatUSTAR}}
	k := kv.MustKey
	cases := []struct {
		name string
		raw  []byte
		ops  map[string]func(s *Store) error
	}{
		{"link to a replaced file", goTar(t, regMember("f", []byte("old\n")), linkMember("h", "f"), regMember("f", []byte("new\n")), regMember("z", pattern(1, 3000))),
			map[string]func(s *Store) error{
				"rm f":   func(s *Store) error { return s.Remove(k("/f")) },
				"mv f g": func(s *Store) error { return s.Rename(k("/f"), k("/g")) },
				"set f":  func(s *Store) error { return s.Set(k("/f"), []byte("newer\n")) },
				"rm z, set f in the hole": func(s *Store) error {
					return errors.Join(s.Remove(k("/z")), s.Set(k("/f"), []byte("in the hole\n")))
				},
			}},
		// z first and large, the device nearly full: after rm z, a set
		// takes z's hole, before the symbolic link.
		{"symlink then a file", goTar(t, regMember("z", pattern(1, 900<<10)), symlink, regMember("x", []byte("value\n"))),
			map[string]func(s *Store) error{
				"rm x":   func(s *Store) error { return s.Remove(k("/x")) },
				"mv x y": func(s *Store) error { return s.Rename(k("/x"), k("/y")) },
				"set x":  func(s *Store) error { return s.Set(k("/x"), []byte("again\n")) },
				"rm z, set x in the hole": func(s *Store) error {
					return errors.Join(s.Remove(k("/z")), s.Set(k("/x"), []byte("in the hole\n")))
				},
			}},
	}
	for _, c := range cases {
		base := foreignBaseline(t, c.raw)
		for on, op := range c.ops {
			t.Run(c.name+"/"+on, func(t *testing.T) {
				dev, err := mem.FromBytes(512, padImage(c.raw, 512, 64<<10))
				require.NoError(t, err)
				s, err := New(clock.NewFake(time.Unix(1.7e9, 0)), dev)
				require.NoError(t, err)
				checkWhenDone(t, s, dev)
				require.NoError(t, op(s))
				want, members := checkStoreInvariants(t, s, dev)
				checkReaders(t, imageFile(t, dev, archiveEnd(s)), members, want, base)
				// checkReaders lets symbolic links be (the store keeps
				// them): none named like a key the op wrote may be left.
				tr := tar.NewReader(bytes.NewReader(dev.Bytes()))
				for {
					h, err := tr.Next()
					if err != nil {
						break
					}
					if h.Typeflag == tar.TypeSymlink && slices.Contains(strings.Fields(on), h.Name) {
						t.Errorf("the symbolic link %q is still in the archive", h.Name)
					}
				}
				require.NoError(t, s.Close())
			})
		}
	}
}
