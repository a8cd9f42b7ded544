package httpapi

import (
	"slices"
	"sync"

	"github.com/tarstore/tarstore/kv"
)

// coord coordinates the handler's writes (doc: "Writes, locks and ETags").
//
// Every write holds a lock on the keys it changes (Rename: source and
// destination) from its precondition check to the store's acknowledgement.
// Two locks conflict when a key of one is a segment-wise prefix of a key of
// the other (the same key included), because a write to /a changes what /a/b
// is and the other way round. Writes on unrelated keys run concurrently, so
// the store can still share a flush between them.
//
// Digests are the store's business (kv.RO.Digest; the tar store keeps each
// value's in its index), so the handler keeps none.
type coord struct {
	mu   sync.Mutex
	cond sync.Cond
	held []*writeLock
}

// writeLock is a write in progress.
type writeLock struct{ keys []kv.Key }

func newCoord() *coord {
	c := &coord{}
	c.cond.L = &c.mu
	return c
}

// related reports whether a write to one key can change the other.
func related(a, b kv.Key) bool { return a.HasPrefix(b) || b.HasPrefix(a) }

func relatedAny(k kv.Key, keys []kv.Key) bool {
	return slices.ContainsFunc(keys, func(o kv.Key) bool { return related(k, o) })
}

// heldRelatedLocked reports whether a write in progress touches a key
// related to k. The caller holds c.mu.
func (c *coord) heldRelatedLocked(k kv.Key) bool {
	return slices.ContainsFunc(c.held, func(w *writeLock) bool { return relatedAny(k, w.keys) })
}

// lock waits until no write in progress conflicts with keys, then
// registers a write of keys. The caller must unlock it.
func (c *coord) lock(keys ...kv.Key) *writeLock {
	c.mu.Lock()
	defer c.mu.Unlock()
	for slices.ContainsFunc(keys, c.heldRelatedLocked) {
		c.cond.Wait()
	}
	w := &writeLock{keys: keys}
	c.held = append(c.held, w)
	return w
}

// unlock ends the write w.
func (c *coord) unlock(w *writeLock) {
	c.mu.Lock()
	c.held = slices.DeleteFunc(c.held, func(o *writeLock) bool { return o == w })
	c.mu.Unlock()
	c.cond.Broadcast()
}
