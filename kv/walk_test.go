package kv_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// removing is a store whose List of one dictionary finds it gone, as
// when a writer removes it between two levels of a walk.
type removing struct {
	kv.RW
	gone kv.Key
}

func (r removing) List(k kv.Key) ([]kv.Entry, error) {
	if k == r.gone {
		return nil, kv.NotFound("list", k)
	}
	return r.RW.List(k)
}

func TestWalk(t *testing.T) {
	s := kvtest.NewModel(clock.NewFake(time.Unix(0, 0)))
	for _, k := range []string{"/a/x", "/a/y/z", "/b", "/c/d"} {
		if err := s.Set(kv.MustKey(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	walk := func(s kv.RO, recursive bool) ([]string, error) {
		top, err := s.List(kv.Root)
		if err != nil {
			return nil, err
		}
		var got []string
		err = kv.Walk(s, top, recursive, func(e kv.Entry) error {
			got = append(got, e.Key.String())
			return nil
		})
		return got, err
	}
	for _, tc := range []struct {
		name      string
		s         kv.RO
		recursive bool
		want      []string
	}{
		{"one level", s, false, []string{"/a", "/b", "/c"}},
		{"recursive, depth first", s, true, []string{"/a", "/a/x", "/a/y", "/a/y/z", "/b", "/c", "/c/d"}},
		{"a dictionary gone meanwhile is skipped", removing{s, kv.MustKey("/a/y")}, true,
			[]string{"/a", "/a/x", "/a/y", "/b", "/c", "/c/d"}},
	} {
		got, err := walk(tc.s, tc.recursive)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}

	stop := errors.New("stop")
	top, _ := s.List(kv.Root)
	n := 0
	if err := kv.Walk(s, top, true, func(kv.Entry) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("fn's error: walk returned %v after %d calls, want it after 1", err, n)
	}
}
