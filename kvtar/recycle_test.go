package kvtar

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/kv"
)

// TestRecycledTxnHoldsNothing runs every kind of write through group
// commit and checks the transaction kept for the next (Store.spare): it
// starts empty, and the memory of its lists holds nothing — no value's
// bytes, member or index closure stays reachable from it. (The image is
// checked when the test ends: newMemStore.)
func TestRecycledTxnHoldsNothing(t *testing.T) {
	s, _ := newMemStore(t, 512, 8<<20)
	k, k2 := kv.MustKey("/a/v"), kv.MustKey("/b/w")
	ops := []func() error{
		func() error { return s.Set(k, []byte("a small value")) },
		func() error { return s.Set(k, make([]byte, 700<<10)) }, // a superseded member
		func() error { return s.SetPartial(k, 3, []byte("patch")) },
		func() error { return s.Allocate(k2, 5000, s.now()) },
		func() error { return s.Rename(k2, kv.MustKey("/c/w")) },
		func() error { return s.Remove(kv.MustKey("/c")) },
		func() error { return s.Remove(k) },
	}
	for i, op := range ops {
		require.NoError(t, op(), "op %d", i)
		s.wmu.Lock()
		tx := s.spare
		s.wmu.Unlock()
		require.NotNil(t, tx, "op %d: no transaction kept", i)
		requireEmptyTxn(t, tx)
	}
}

// requireEmptyTxn checks that t is as begin expects it: every list empty,
// and nothing left in the memory past their lengths.
func requireEmptyTxn(t *testing.T, tx *txn) {
	t.Helper()
	require.Nil(t, tx.s)
	require.False(t, tx.wrote)
	require.Zero(t, tx.placed)
	for _, ws := range [][]write{tx.writes, tx.forced, tx.stageBuf, tx.commitBuf, tx.earlyBuf, tx.lateBuf} {
		require.Empty(t, ws)
		for _, w := range ws[:cap(ws)] {
			require.Nil(t, w.data, "a write's bytes kept")
		}
	}
	require.Empty(t, tx.released)
	for _, m := range tx.released[:cap(tx.released)] {
		require.Nil(t, m, "a member kept")
	}
	require.Empty(t, tx.apply)
	for _, f := range tx.apply[:cap(tx.apply)] {
		require.Nil(t, f, "an index change kept")
	}
	require.Empty(t, tx.lones)
	for _, l := range tx.lones[:cap(tx.lones)] {
		require.Nil(t, l.m, "a lone append kept")
		require.Nil(t, l.hdr, "a lone append's header kept")
	}
	require.Empty(t, tx.touched)
	require.Empty(t, tx.layouts)
	require.Nil(t, tx.invisible)
	require.Nil(t, tx.gates)
	require.Nil(t, tx.hdr)
}
