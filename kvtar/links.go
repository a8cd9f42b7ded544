package kvtar

import (
	"slices"

	"github.com/tarstore/tarstore/kv"
)

// Members of foreign archives that need care when they are written over
// (SPEC §4 Invariant C).
//
// Hard links: a link member holds no data; its value is its target's bytes.
// A target replaced by a later member of the same name stays in the
// archive (shadowed, "kept") while links use it, and goes with the last.
// Tar resolves a link by the target's name at extraction, so when a
// transaction releases or renames a target that links still use, each link
// is first materialized: its key gets a regular member holding the bytes,
// and the link member is released. Links are never created by the store.
//
// Unexposed members (symbolic links, devices, FIFOs, members with unsafe
// names, PAX global headers with records) are kept as they are until an
// operation changes the binding of their key or of a dictionary above it —
// a set, a remove, a rename from or to it (Remove of the root: all of
// them); then they are dropped, so that extraction never recreates a path
// the store says is gone, nor one that would replace a value the store
// wrote before it in the archive. A kept shadowed member goes the same
// way, its links materialized first: left in place, extraction would
// recreate its key with its old bytes after a remove or rename, or over a
// new value placed before it.

// touch records that the transaction changes the binding of k (or of the
// dictionary k): finishKeys drops the unexposed and kept members under it.
func (t *txn) touch(k kv.Key) { t.touched = append(t.touched, k) }

// under reports whether k is one of the touched keys or below one.
func (t *txn) under(k kv.Key) bool {
	for _, tk := range t.touched {
		if tk.IsRoot() || k.HasPrefix(tk) {
			return true
		}
	}
	return false
}

// An unexposed member: kept in the archive, invisible to the store.
type unexposed struct {
	m     *member
	key   kv.Key // the key its name maps to, when named
	named bool
}

// indexLinks records, on each link target, the nodes of its links.
func indexLinks(root *node) {
	each(root, kv.Root, func(n *node, _ kv.Key) {
		if n.val != nil && n.val.link != nil {
			t := n.val.owner()
			t.links = append(t.links, n)
		}
	})
}

// dropTouched queues the release of the unexposed members under the
// touched keys (all of them when the root is touched) and of the kept
// shadowed members under them (their links are materialized next).
func (t *txn) dropTouched() {
	s := t.s
	if len(t.touched) == 0 {
		return
	}
	t.dropDead()
	for m, k := range s.kept {
		if t.under(k) {
			t.release(m)
		}
	}
	var drop []*unexposed
	for _, u := range s.unexposed {
		if t.under(u.key) && (u.named || t.under(kv.Root)) {
			drop = append(drop, u)
			t.release(u.m)
		}
	}
	if len(drop) == 0 {
		return
	}
	t.apply = append(t.apply, func() {
		s.unexposed = slices.DeleteFunc(s.unexposed, func(u *unexposed) bool { return slices.Contains(drop, u) })
	})
}

// materializeLinks gives every link to a released member, that is not
// released itself, a regular member of its own with the bytes. It runs at
// the end of planning, before the released members are turned into holes.
func (t *txn) materializeLinks() error {
	t.dropTouched()
	released := map[*member]bool{}
	for _, m := range t.released {
		released[m] = true
	}
	for i := 0; i < len(t.released); i++ {
		target := t.released[i]
		for _, ln := range target.links {
			lm := ln.val
			if lm == nil || lm.owner() != target || released[lm] {
				continue
			}
			k := ln.key()
			nm, err := t.place("materialize", k, lm.size, lm.mtime)
			if err != nil {
				return err
			}
			if err := t.copyPatched("materialize", k, lm, nm, 0, nil); err != nil {
				return err
			}
			released[lm] = true
			t.release(lm)
			ln := ln
			t.apply = append(t.apply, func() { ln.val = nm })
		}
	}
	t.releaseKept(released)
	return nil
}

// releaseKept releases the kept shadowed members (see Store.kept) whose
// last link this transaction releases: nothing uses their bytes any more,
// and left in place they would be stray duplicates.
func (t *txn) releaseKept(released map[*member]bool) {
	s := t.s
	var done []*member
	for k := range s.kept {
		inUse := false
		for _, ln := range k.links {
			if lm := ln.val; lm != nil && lm.owner() == k && !released[lm] {
				inUse = true
				break
			}
		}
		if !inUse {
			if !released[k] { // not already by dropTouched
				t.release(k)
			}
			done = append(done, k)
		}
	}
	if len(done) > 0 {
		t.apply = append(t.apply, func() {
			for _, k := range done {
				delete(s.kept, k)
			}
		})
	}
}
