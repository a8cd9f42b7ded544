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
// operation replaces, removes or renames the dictionary that holds them
// (Remove of the root: all of them); then they are dropped with it, so that
// extraction never recreates a path the store says is gone.

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

// dropUnexposed queues the release of the unexposed members below k (all of
// them for the root).
func (t *txn) dropUnexposed(k kv.Key) {
	s := t.s
	var drop []*unexposed
	for _, u := range s.unexposed {
		if k.IsRoot() || (u.named && u.key.HasPrefix(k)) {
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
			t.release(k)
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
