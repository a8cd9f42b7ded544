package kvtar

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kvtar/tarfmt"
)

// A member is one live member of the archive, as the index knows it (doc
// §7). The bytes [start, end) are the whole member: extended headers,
// header, data and padding.
type member struct {
	start   int64 // first header block
	hdr     int64 // the ustar (or GNU/v7) header block
	dataOff int64 // first byte of the stored data
	end     int64 // end of the padded data
	size    int64 // logical size of the value
	mtime   time.Time
	// sparse is the sparse map of a foreign sparse member; nil when the
	// data is stored contiguously.
	sparse []tarfmt.SparseEntry
	// dataSize is the stored size of the data (size, unless sparse).
	dataSize int64
	// link is the member whose data a foreign hard link shares; nil for
	// members that hold their own data.
	link *member
	// linked counts the hard links sharing this member's data.
	linked int
	// links are the nodes of the hard links to this member (links.go).
	links []*node
	// crc is the CRC-32C of the member's data (its header's tarfmt.Tag,
	// or what the store computed as it wrote the data) when hasCRC is set:
	// whole-value reads verify it (doc §8). Foreign members have none.
	crc    uint32
	hasCRC bool
	// digest is the SHA-256 of the value when known, nil until then
	// (digest.go): set before the member is bound, or by the first
	// Digest that computes it, or by an in-place patch as it applies.
	digest atomic.Pointer[digest]
	// gen counts the in-place patches of the data (set_partial): a
	// reader that pinned the member before one does not verify what it
	// read against the CRC it took then.
	gen atomic.Uint64
	// patching, while a transaction patches the data in place, is closed
	// when the patch is applied (or abandoned): readers wait for it
	// rather than read bytes being rewritten. Guarded by the store's mu.
	patching chan struct{}
	// pin tracks the readers of the member's data.
	pin pin
	// dir marks an explicit directory member.
	dir bool
}

// blocks returns the member's extent.
func (m *member) extent() extent { return extent{m.start, m.end - m.start} }

// A node is a key in the index: a value (val set, no children) or a
// dictionary (children, or an explicit directory member dir, or the root).
type node struct {
	name     string
	parent   *node
	children map[string]*node
	val      *member // the value bound to this key
	dir      *member // an explicit directory member (foreign archives)
}

func (n *node) isValue() bool { return n.val != nil }

// key returns the node's key.
func (n *node) key() kv.Key {
	var segs []string
	for p := n; p.parent != nil; p = p.parent {
		segs = append(segs, p.name)
	}
	slices.Reverse(segs)
	k, _ := kv.ParseKey(strings.Join(segs, "/")) // segments were validated on the way in
	return k
}

// index is the tree of keys. It is not safe for concurrent use; the store
// guards it.
type index struct {
	root  node
	count int // number of values
}

func newIndex() *index {
	return &index{root: node{children: map[string]*node{}}}
}

// walk follows k from the root. It returns the node bound to k, or nil; and
// the deepest value met on the way (a proper prefix of k bound to a value),
// or nil.
func (ix *index) walk(k kv.Key) (n *node, prefixValue *node) {
	n = &ix.root
	for seg := range k.All() {
		if n.isValue() {
			return nil, n
		}
		c := n.children[seg]
		if c == nil {
			return nil, nil
		}
		n = c
	}
	return n, nil
}

// lookup returns the node bound to k, nil when k is unbound (also through a
// prefix value).
func (ix *index) lookup(k kv.Key) *node {
	n, _ := ix.walk(k)
	return n
}

// kind returns what k is bound to.
func (n *node) kind() kv.Kind {
	switch {
	case n == nil:
		return kv.None
	case n.isValue():
		return kv.Value
	}
	return kv.Dictionary
}

// sortedChildren returns n's children sorted by name (= by key, for
// siblings).
func (n *node) sortedChildren() []*node {
	cs := make([]*node, 0, len(n.children))
	for _, c := range n.children {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return cs
}

// ensureDict returns the dictionary node for k, creating implicit
// dictionaries on the way. The caller has checked that no prefix of k (nor
// k) is a value.
func (ix *index) ensureDict(k kv.Key) *node {
	n := &ix.root
	for seg := range k.All() {
		c := n.children[seg]
		if c == nil {
			c = &node{name: seg, parent: n, children: map[string]*node{}}
			n.children[seg] = c
		}
		n = c
	}
	return n
}

// setValue binds k to m, creating parents. The caller has removed whatever
// was at k and checked that no proper prefix of k is a value.
func (ix *index) setValue(k kv.Key, m *member) *node {
	parent := ix.ensureDict(k.Parent())
	n := &node{name: k.Base(), parent: parent, val: m}
	parent.children[n.name] = n
	ix.count++
	return n
}

// detach removes n (and its subtree) from the tree and prunes the implicit
// dictionaries that become empty. It returns the members of the subtree
// (values and explicit directories), in key order.
func (ix *index) detach(n *node) []*member {
	var ms []*member
	var collect func(n *node)
	collect = func(n *node) {
		if n.dir != nil {
			ms = append(ms, n.dir)
		}
		if n.val != nil {
			ms = append(ms, n.val)
			ix.count--
		}
		for _, c := range n.sortedChildren() {
			collect(c)
		}
	}
	collect(n)
	if n == &ix.root {
		ix.root.children = map[string]*node{}
		ix.root.dir = nil
		return ms
	}
	p := n.parent
	delete(p.children, n.name)
	n.parent = nil
	ix.prune(p)
	return ms
}

// prune removes n and its ancestors while they are empty implicit
// dictionaries.
func (ix *index) prune(n *node) {
	for n != &ix.root && len(n.children) == 0 && n.dir == nil && n.val == nil {
		p := n.parent
		delete(p.children, n.name)
		n.parent = nil
		n = p
	}
}

// attach puts the detached subtree n at k (n takes k's base as its name),
// creating parents. The caller has made room at k.
func (ix *index) attach(k kv.Key, n *node) {
	parent := ix.ensureDict(k.Parent())
	n.name = k.Base()
	n.parent = parent
	parent.children[n.name] = n
	ix.countValues(n, +1)
}

// countValues adds sign × the number of values in n's subtree to the count.
func (ix *index) countValues(n *node, sign int) {
	if n.val != nil {
		ix.count += sign
	}
	for _, c := range n.children {
		ix.countValues(c, sign)
	}
}

// each calls fn for every node in n's subtree (n included) in key order,
// with the node's key.
func each(n *node, k kv.Key, fn func(n *node, k kv.Key)) {
	fn(n, k)
	for _, c := range n.sortedChildren() {
		ck, _ := k.Add(c.name)
		each(c, ck, fn)
	}
}
