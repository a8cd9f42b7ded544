package kv

import "errors"

// Walk calls fn for each of entries (a listing, as List returns it) and,
// with recursive, after each dictionary among them for everything below
// it, depth first, each level in List's order. A dictionary removed or
// replaced by a value after it was listed is skipped, as a concurrent
// writer may do; any other error of List, or fn's error, ends the walk.
func Walk(s RO, entries []Entry, recursive bool, fn func(Entry) error) error {
	for _, e := range entries {
		if err := fn(e); err != nil {
			return err
		}
		if !recursive || e.Kind != Dictionary {
			continue
		}
		below, err := s.List(e.Key)
		switch {
		case errors.Is(err, ErrNotFound) || errors.Is(err, ErrDictionaryExpected):
			continue
		case err != nil:
			return err
		}
		if err := Walk(s, below, true, fn); err != nil {
			return err
		}
	}
	return nil
}
