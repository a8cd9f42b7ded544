package cli

import (
	"github.com/tarstore/tarstore/appliance/client"
	"github.com/tarstore/tarstore/kv"
)

// entry is one entry of a listing: key, kind, a value's size, and its
// last-modified time (kv's last_modified).
type entry = client.Entry

// walkFunc lists the dictionary k — its direct children, or with recursive
// everything below it depth first, each dictionary followed by what is
// below it, siblings sorted by key — calling fn for each entry as it comes.
// Through a server that is one streamed request (client.Walk); on a disk
// storeWalk does the same with the store's own calls.
type walkFunc func(k kv.Key, recursive bool, fn func(entry) error) error

// storeWalk is the walkFunc of a store.
func storeWalk(s kv.RO) walkFunc {
	return func(k kv.Key, recursive bool, fn func(entry) error) error {
		entries, err := s.List(k)
		if err != nil {
			return err
		}
		return walkLevel(s, entries, recursive, fn)
	}
}

// walkLevel is storeWalk below its first level: each entry with its size
// and last-modified time.
func walkLevel(s kv.RO, entries []kv.Entry, recursive bool, fn func(entry) error) error {
	return kv.Walk(s, entries, recursive, func(e kv.Entry) error {
		en := entry{Key: e.Key, Kind: e.Kind}
		if e.Kind == kv.Value {
			if n, err := s.Size(e.Key); err == nil {
				en.Size = n
			}
		}
		if t, err := s.LastModified(e.Key); err == nil {
			en.LastModified = t
		}
		return fn(en)
	})
}

// walkValues calls fn for k when it is a value, or for each value below
// it when it is a dictionary, in walk order; k bound to nothing is
// not_found (of op).
func (t *target) walkValues(op string, k kv.Key, fn func(entry) error) error {
	kind, err := t.Exists(k)
	if err != nil {
		return kv.WithOp(err, op)
	}
	switch kind {
	case kv.None:
		return kv.NotFound(op, k)
	case kv.Value:
		en := entry{Key: k, Kind: kv.Value}
		if en.Size, err = t.Size(k); err != nil {
			return kv.WithOp(err, op)
		}
		if en.LastModified, err = t.LastModified(k); err != nil {
			return kv.WithOp(err, op)
		}
		return fn(en)
	}
	return t.walk(k, true, func(e entry) error {
		if e.Kind != kv.Value {
			return nil
		}
		return fn(e)
	})
}
