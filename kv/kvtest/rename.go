package kvtest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tarstore/tarstore/kv"
)

// renameCase is one row of the rename table: from the store before, rename
// src to dst; then the store holds exactly after, or the rename fails with
// err about errKey (and, for rename_source_prefix, Dest dst) and nothing
// changes.
type renameCase struct {
	name     string
	before   map[string]string
	src, dst string
	after    map[string]string
	err      error
	errKey   string
}

var renameCases = []renameCase{
	// Errors.
	{name: "src_missing",
		before: map[string]string{"/a": "1"},
		src:    "/nothing", dst: "/b", err: kv.ErrNotFound, errKey: "/nothing"},
	{name: "src_missing_in_dictionary",
		before: map[string]string{"/d/a": "1"},
		src:    "/d/nothing", dst: "/d/a", err: kv.ErrNotFound, errKey: "/d/nothing"},
	{name: "src_through_prefix_value",
		before: map[string]string{"/v": "1"},
		src:    "/v/x", dst: "/b", err: kv.ErrNotFound, errKey: "/v/x"},
	{name: "src_prefix_of_dst",
		before: map[string]string{"/d/x": "1"},
		src:    "/d", dst: "/d/e/f", err: kv.ErrRenameSourcePrefix, errKey: "/d"},
	{name: "src_equals_dst_dictionary",
		before: map[string]string{"/d/x": "1"},
		src:    "/d", dst: "/d", err: kv.ErrRenameSourcePrefix, errKey: "/d"},
	{name: "src_value_prefix_of_dst",
		before: map[string]string{"/v": "1"},
		src:    "/v", dst: "/v/w", err: kv.ErrRenameSourcePrefix, errKey: "/v"},
	{name: "src_root",
		before: map[string]string{"/a": "1"},
		src:    "/", dst: "/x", err: kv.ErrRenameSourcePrefix, errKey: "/"},
	{name: "src_root_to_root",
		before: map[string]string{},
		src:    "/", dst: "/", err: kv.ErrRenameSourcePrefix, errKey: "/"},
	{name: "dictionary_to_value",
		before: map[string]string{"/s/a": "1", "/v": "2"},
		src:    "/s", dst: "/v", err: kv.ErrValueExpected, errKey: "/s"},
	{name: "dst_through_prefix_value",
		before: map[string]string{"/a": "1", "/v": "2"},
		src:    "/a", dst: "/v/x", err: kv.ErrDictionaryExpected, errKey: "/v"},
	{name: "dictionary_dst_through_prefix_value",
		before: map[string]string{"/s/a": "1", "/d/v": "2"},
		src:    "/s", dst: "/d/v/x/y", err: kv.ErrDictionaryExpected, errKey: "/d/v"},

	// Values.
	{name: "same_value",
		before: map[string]string{"/a": "1", "/b": "2"},
		src:    "/a", dst: "/a",
		after: map[string]string{"/a": "1", "/b": "2"}},
	{name: "value_to_missing",
		before: map[string]string{"/a/v": "1", "/a/w": "2"},
		src:    "/a/v", dst: "/b/c/v2",
		after: map[string]string{"/a/w": "2", "/b/c/v2": "1"}},
	{name: "value_to_value",
		before: map[string]string{"/a": "1", "/b": "2", "/c": "3"},
		src:    "/a", dst: "/b",
		after: map[string]string{"/b": "1", "/c": "3"}},
	{name: "value_into_dictionary",
		before: map[string]string{"/v": "1", "/d/x": "2"},
		src:    "/v", dst: "/d",
		after: map[string]string{"/d/v": "1", "/d/x": "2"}},
	{name: "value_into_dictionary_replacing_value",
		before: map[string]string{"/v": "1", "/d/v": "2", "/d/x": "3"},
		src:    "/v", dst: "/d",
		after: map[string]string{"/d/v": "1", "/d/x": "3"}},
	{name: "value_into_dictionary_replacing_dictionary",
		before: map[string]string{"/v": "1", "/d/v/y": "2", "/d/v/z/w": "4", "/d/x": "3"},
		src:    "/v", dst: "/d",
		after: map[string]string{"/d/v": "1", "/d/x": "3"}},
	{name: "value_into_parent",
		before: map[string]string{"/d/v": "1", "/d/x": "2"},
		src:    "/d/v", dst: "/d",
		after: map[string]string{"/d/v": "1", "/d/x": "2"}},
	{name: "value_into_root",
		before: map[string]string{"/a/v": "1"},
		src:    "/a/v", dst: "/",
		after: map[string]string{"/v": "1"}},

	// Dictionaries.
	{name: "dictionary_to_missing",
		before: map[string]string{"/s/a": "1", "/s/b/c": "2", "/t": "3"},
		src:    "/s", dst: "/n/e/w",
		after: map[string]string{"/n/e/w/a": "1", "/n/e/w/b/c": "2", "/t": "3"}},
	{name: "dictionary_into_dictionary",
		before: map[string]string{"/s/a": "1", "/s/b/c": "2", "/d/x": "3"},
		src:    "/s", dst: "/d",
		after: map[string]string{"/d/s/a": "1", "/d/s/b/c": "2", "/d/x": "3"}},
	{name: "dictionary_into_dictionary_replacing",
		before: map[string]string{"/s/a": "1", "/d/s/old": "2", "/d/s/a/deep": "4", "/d/x": "3"},
		src:    "/s", dst: "/d",
		after: map[string]string{"/d/s/a": "1", "/d/x": "3"}},
	{name: "dictionary_into_dictionary_replacing_value",
		before: map[string]string{"/s/a": "1", "/d/s": "2"},
		src:    "/s", dst: "/d",
		after: map[string]string{"/d/s/a": "1"}},
	{name: "dictionary_into_root",
		before: map[string]string{"/a/s/x": "1", "/a/y": "2"},
		src:    "/a/s", dst: "/",
		after: map[string]string{"/s/x": "1", "/a/y": "2"}},
	{name: "dictionary_to_sibling_with_common_string_prefix",
		before: map[string]string{"/a/x": "1", "/a/y/z": "2"},
		src:    "/a", dst: "/ab",
		after: map[string]string{"/ab/x": "1", "/ab/y/z": "2"}},
	{name: "dictionary_up_a_level",
		before: map[string]string{"/a/b/c/x": "1"},
		src:    "/a/b/c", dst: "/a/c",
		after: map[string]string{"/a/c/x": "1"}},

	// Parents left empty by the move disappear.
	{name: "source_parents_disappear",
		before: map[string]string{"/p/q/v": "1", "/r": "2"},
		src:    "/p/q/v", dst: "/z",
		after: map[string]string{"/r": "2", "/z": "1"}},
	{name: "source_parents_of_dictionary_disappear",
		before: map[string]string{"/p/q/s/v": "1", "/p/w/x": "2"},
		src:    "/p/q/s", dst: "/p/w",
		after: map[string]string{"/p/w/s/v": "1", "/p/w/x": "2"}},
}

func (su *suite) testRename(t *testing.T) {
	for _, c := range renameCases {
		t.Run(c.name, func(t *testing.T) {
			e := su.start(t)
			e.fill(c.before)
			src, dst := mk(c.src), mk(c.dst)
			desc := fmt.Sprintf("Rename(%s, %s)", src, dst)
			e.stamp()
			if c.err == nil {
				if err := e.s.Rename(src, dst); err != nil {
					t.Fatalf("%s: %v", desc, err)
				}
				e.wantValues(c.after)
				return
			}
			e.unchanged(desc, func() {
				ke := wantError(t, desc, e.s.Rename(src, dst), c.err, "rename", mk(c.errKey))
				if ke != nil && c.err == kv.ErrRenameSourcePrefix && ke.Dest != dst {
					t.Errorf("%s: error %q has Dest %s, want %s", desc, ke, ke.Dest, dst)
				}
			})
		})
	}
	t.Run("keeps_mtime_and_digest", func(t *testing.T) {
		e := su.start(t)
		ta := e.set("/a", "a")
		tx := e.set("/s/x", "x")
		tz := e.set("/s/y/z", "z")
		e.set("/d/other", "o")
		sDigest := e.digests("/s")["/s"]
		rename := func(src, dst string) {
			t.Helper()
			e.stamp()
			if err := e.s.Rename(mk(src), mk(dst)); err != nil {
				t.Fatalf("Rename(%s, %s): %v", src, dst, err)
			}
		}
		rename("/a", "/b")
		e.wantMtime("/b", ta)
		rename("/b", "/d")
		e.wantMtime("/d/b", ta)
		rename("/d/b", "/d/b")
		e.wantMtime("/d/b", ta)
		rename("/s", "/n/s")
		e.wantMtime("/n/s/x", tx)
		e.wantMtime("/n/s/y/z", tz)
		e.wantMtime("/n/s", tx)
		if got := e.digests("/n/s")["/n/s"]; !bytes.Equal(got, sDigest) {
			t.Errorf("Digest(/n/s) after Rename(/s, /n/s) = %x, want the digest /s had, %x", got, sDigest)
		}
	})
}
