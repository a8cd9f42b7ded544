package httpapi

import (
	"slices"
	"sync"

	"github.com/tarstore/tarstore/kv"
)

// coord coordinates the handler's writes and caches digests (doc: "Writes,
// locks and ETags").
//
// Locks: every write holds a lock on the keys it changes (Rename: source and
// destination) from its precondition check to the store's acknowledgement.
// Two locks conflict when a key of one is a segment-wise prefix of a key of
// the other (the same key included), because a write to /a changes what /a/b
// is and the other way round. Writes on unrelated keys run concurrently, so
// the store can still share a flush between them.
//
// Digest cache: computing an ETag reads the whole value (or subtree), so the
// digests the handler computes are kept, by key, until a write to a related
// key ends; while it is in progress they are not used. A computation may store its result only if no related write
// was in progress at any time while it ran: begin registers it, every write
// that starts or ends while it is registered and is related to its key
// poisons it, and finish stores its result only if it is unpoisoned and no
// related write is still in progress. A cached digest is used on the same
// terms, so it always describes the state the caller is looking at. The
// handler must be the store's only writer for the cache to be right.
type coord struct {
	mu       sync.Mutex
	cond     sync.Cond
	held     []*writeLock
	pending  map[*digestComp]struct{}
	cache    map[kv.Key][]byte
	maxCache int
}

// writeLock is a write in progress.
type writeLock struct{ keys []kv.Key }

// digestComp is a digest computation in progress.
type digestComp struct {
	key      kv.Key
	poisoned bool
}

// defaultCacheEntries bounds the digest cache.
const defaultCacheEntries = 4096

func newCoord(maxCache int) *coord {
	c := &coord{pending: map[*digestComp]struct{}{}, cache: map[kv.Key][]byte{}, maxCache: maxCache}
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
	c.poisonLocked(keys)
	return w
}

// unlock ends the write w. When the write bound k to a value whose digest
// is known (a PUT hashes what it stores), digest is cached for k.
func (c *coord) unlock(w *writeLock, k kv.Key, digest []byte) {
	c.mu.Lock()
	c.held = slices.DeleteFunc(c.held, func(o *writeLock) bool { return o == w })
	c.invalidateLocked(w.keys)
	if digest != nil && !c.heldRelatedLocked(k) {
		c.putLocked(k, digest)
	}
	c.mu.Unlock()
	c.cond.Broadcast()
}

// poisonLocked marks the computations a write of keys may disturb. The
// caller holds c.mu.
func (c *coord) poisonLocked(keys []kv.Key) {
	for comp := range c.pending {
		if relatedAny(comp.key, keys) {
			comp.poisoned = true
		}
	}
}

// invalidateLocked forgets the digests a finished write of keys may have
// changed and poisons the computations it may have disturbed. (While a write
// is in progress its keys' entries stay, unused: see cached.) The caller
// holds c.mu.
func (c *coord) invalidateLocked(keys []kv.Key) {
	c.poisonLocked(keys)
	if len(c.cache) == 0 {
		return
	}
	for k := range c.cache {
		if relatedAny(k, keys) {
			delete(c.cache, k)
		}
	}
}

func (c *coord) putLocked(k kv.Key, digest []byte) {
	if c.maxCache <= 0 {
		return
	}
	if len(c.cache) >= c.maxCache {
		for old := range c.cache { // evict an arbitrary entry
			delete(c.cache, old)
			break
		}
	}
	c.cache[k] = digest
}

// begin registers a digest computation for k. The caller reads the store
// after begin and must call finish.
func (c *coord) begin(k kv.Key) *digestComp {
	c.mu.Lock()
	defer c.mu.Unlock()
	comp := &digestComp{key: k, poisoned: c.heldRelatedLocked(k)}
	c.pending[comp] = struct{}{}
	return comp
}

// cached returns the cached digest of comp's key if it describes what the
// caller read since begin.
func (c *coord) cached(comp *digestComp) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if comp.poisoned || c.heldRelatedLocked(comp.key) {
		return nil, false
	}
	d, ok := c.cache[comp.key]
	return d, ok
}

// cachedUnder returns the cached digest of k for the holder of the write
// lock w, before its write changes anything: the entry is good if no other
// related write is in progress.
func (c *coord) cachedUnder(w *writeLock, k kv.Key) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.held {
		if o != w && relatedAny(k, o.keys) {
			return nil, false
		}
	}
	d, ok := c.cache[k]
	return d, ok
}

// finish ends comp; digest, if not nil, is what it computed.
func (c *coord) finish(comp *digestComp, digest []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, comp)
	if digest != nil && !comp.poisoned && !c.heldRelatedLocked(comp.key) {
		c.putLocked(comp.key, digest)
	}
}
