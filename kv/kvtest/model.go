package kvtest

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// NewModel returns the reference implementation: an in-memory kv.RW with
// exactly the SPEC §3 semantics, used to validate the suite and, later, as
// the oracle for randomized model-based tests of real stores.
//
// It is a map from keys to values and nothing else: dictionaries are the
// keys above some value, found by scanning the map. Values are never
// modified in place (every write stores a new slice), so a Reader is a
// snapshot for free. It keeps mtimes to the nanosecond, is safe for
// concurrent use, and is durable trivially (Close only marks it closed).
// Free reports a capacity of 1 TiB less the bytes stored.
func NewModel(clk clock.PClock) kv.RW { return newModel(clk, time.Nanosecond) }

// modelCapacity is the size the model pretends to have, for Free.
const modelCapacity = 1 << 40

// modelValue is one stored value. data is never modified once stored.
type modelValue struct {
	data  []byte
	mtime time.Time
}

// modelState is what a model stores: what survives Close and reopen.
type modelState struct {
	mu   sync.RWMutex
	vals map[kv.Key]modelValue
}

// model is an open handle on a modelState.
type model struct {
	st     *modelState
	clk    clock.PClock
	res    time.Duration // mtimes are truncated to res
	closed atomic.Bool
}

func newModel(clk clock.PClock, res time.Duration) *model {
	return &model{st: &modelState{vals: map[kv.Key]modelValue{}}, clk: clk, res: res}
}

// reopen returns a new handle on m's state, as opening the same storage
// again would.
func (m *model) reopen(clk clock.PClock) *model {
	return &model{st: m.st, clk: clk, res: m.res}
}

func (m *model) now() time.Time { return m.clk.Now().Truncate(m.res) }

// kind says what k is bound to. The caller holds st.mu.
func (st *modelState) kind(k kv.Key) kv.Kind {
	if _, ok := st.vals[k]; ok {
		return kv.Value
	}
	if k.IsRoot() {
		return kv.Dictionary
	}
	for v := range st.vals {
		if v.HasPrefix(k) {
			return kv.Dictionary
		}
	}
	return kv.None
}

// prefixValue returns the proper prefix of k bound to a value, if any. The
// caller holds st.mu.
func (st *modelState) prefixValue(k kv.Key) (kv.Key, bool) {
	for p := k.Parent(); !p.IsRoot(); p = p.Parent() {
		if _, ok := st.vals[p]; ok {
			return p, true
		}
	}
	return kv.Root, false
}

// children returns the direct children of the dictionary k, sorted. The
// caller holds st.mu.
func (st *modelState) children(k kv.Key) []kv.Entry {
	seen := map[kv.Key]kv.Kind{}
	for v := range st.vals {
		rel, ok := v.Rel(k)
		if !ok || rel.IsRoot() {
			continue
		}
		segs := rel.Segments()
		child, err := k.Add(segs[0])
		if err != nil {
			panic(err) // a prefix of a valid key is valid
		}
		if len(segs) == 1 {
			seen[child] = kv.Value
		} else {
			seen[child] = kv.Dictionary
		}
	}
	entries := []kv.Entry{}
	for c, kind := range seen {
		entries = append(entries, kv.Entry{Key: c, Kind: kind})
	}
	slices.SortFunc(entries, func(a, b kv.Entry) int { return a.Key.Compare(b.Key) })
	return entries
}

// removeTree unbinds k and everything below it. The caller holds st.mu.
func (st *modelState) removeTree(k kv.Key) {
	for v := range st.vals {
		if v.HasPrefix(k) {
			delete(st.vals, v)
		}
	}
}

// digest computes the digest of k, of the given kind. The caller holds
// st.mu.
func (st *modelState) digest(k kv.Key, kind kv.Kind) []byte {
	if kind == kv.Value {
		return kv.ValueDigest(st.vals[k].data)
	}
	var des []kv.DigestEntry
	for _, e := range st.children(k) {
		des = append(des, kv.DigestEntry{Name: e.Key.Base(), Kind: e.Kind, Digest: st.digest(e.Key, e.Kind)})
	}
	return kv.DictDigest(des)
}

// read looks up the value k for the read operation op.
func (m *model) read(op string, k kv.Key) (modelValue, error) {
	if m.closed.Load() {
		return modelValue{}, kv.Closed(op, k)
	}
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	switch m.st.kind(k) {
	case kv.Value:
		return m.st.vals[k], nil
	case kv.Dictionary:
		return modelValue{}, kv.ValueExpected(op, k)
	}
	return modelValue{}, kv.NotFound(op, k)
}

func (m *model) Exists(k kv.Key) (kv.Kind, error) {
	if m.closed.Load() {
		return kv.None, kv.Closed("exists", k)
	}
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	return m.st.kind(k), nil
}

func (m *model) Get(k kv.Key) ([]byte, error) {
	v, err := m.read("get", k)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(v.data), nil
}

func (m *model) GetPartial(k kv.Key, off, length int64) ([]byte, error) {
	if m.closed.Load() {
		return nil, kv.Closed("get_partial", k)
	}
	if off < 0 || length < 0 {
		return nil, kv.InvalidArgument("get_partial", k, fmt.Sprintf("offset %d, length %d", off, length))
	}
	v, err := m.read("get_partial", k)
	if err != nil {
		return nil, err
	}
	size := int64(len(v.data))
	if off >= size {
		return []byte{}, nil
	}
	return bytes.Clone(v.data[off : off+min(length, size-off)]), nil
}

// modelReader reads a value that is never modified: a snapshot.
type modelReader struct{ *bytes.Reader }

func (modelReader) Close() error { return nil }

func (m *model) Open(k kv.Key) (kv.Reader, error) {
	v, err := m.read("get", k)
	if err != nil {
		return nil, err
	}
	return modelReader{bytes.NewReader(v.data)}, nil
}

func (m *model) Size(k kv.Key) (int64, error) {
	v, err := m.read("size", k)
	return int64(len(v.data)), err
}

func (m *model) List(k kv.Key) ([]kv.Entry, error) {
	if m.closed.Load() {
		return nil, kv.Closed("list", k)
	}
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	switch m.st.kind(k) {
	case kv.Value:
		return nil, kv.DictionaryExpected("list", k)
	case kv.None:
		return nil, kv.NotFound("list", k)
	}
	return m.st.children(k), nil
}

func (m *model) LastModified(k kv.Key) (time.Time, error) {
	if m.closed.Load() {
		return time.Time{}, kv.Closed("last_modified", k)
	}
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	switch m.st.kind(k) {
	case kv.Value:
		return m.st.vals[k].mtime, nil
	case kv.None:
		return time.Time{}, kv.NotFound("last_modified", k)
	}
	latest := time.Unix(0, 0).UTC()
	for _, e := range m.st.children(k) {
		if e.Kind == kv.Value && m.st.vals[e.Key].mtime.After(latest) {
			latest = m.st.vals[e.Key].mtime
		}
	}
	return latest, nil
}

func (m *model) Digest(k kv.Key) ([]byte, error) {
	if m.closed.Load() {
		return nil, kv.Closed("digest", k)
	}
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	kind := m.st.kind(k)
	if kind == kv.None {
		return nil, kv.NotFound("digest", k)
	}
	return m.st.digest(k, kind), nil
}

func (m *model) Close() error {
	m.closed.Store(true)
	return nil
}

// bind is the common part of Set, SetFrom, SetPartial and Allocate: it
// checks that k can be bound to a value, then binds it to value(old), old
// being the current value (nil when missing). The caller holds st.mu.
func (m *model) bind(op string, k kv.Key, mtime time.Time, value func(old []byte) []byte) error {
	if k.IsRoot() {
		return kv.ValueExpected(op, k)
	}
	if p, ok := m.st.prefixValue(k); ok {
		return kv.DictionaryExpected(op, p)
	}
	old := m.st.vals[k].data
	m.st.removeTree(k)
	m.st.vals[k] = modelValue{data: value(old), mtime: mtime}
	return nil
}

func (m *model) Set(k kv.Key, v []byte) error {
	if m.closed.Load() {
		return kv.Closed("set", k)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	return m.bind("set", k, m.now(), func([]byte) []byte { return bytes.Clone(v) })
}

func (m *model) SetFrom(k kv.Key, r io.Reader, size int64) error {
	if m.closed.Load() {
		return kv.Closed("set", k)
	}
	if size < 0 {
		return kv.InvalidArgument("set", k, fmt.Sprintf("size %d", size))
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(size, 64<<20)+bytes.MinRead))
	switch n, err := io.CopyN(buf, r, size); {
	case err == io.EOF:
		return kv.InvalidArgument("set", k, fmt.Sprintf("the reader ended after %d of %d bytes", n, size))
	case err != nil:
		return kv.Storage("set", k, err)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	return m.bind("set", k, m.now(), func([]byte) []byte { return buf.Bytes() })
}

func (m *model) SetPartial(k kv.Key, off int64, v []byte) error {
	if m.closed.Load() {
		return kv.Closed("set_partial", k)
	}
	if off < 0 {
		return kv.InvalidArgument("set_partial", k, fmt.Sprintf("offset %d", off))
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	if m.st.kind(k) == kv.Dictionary {
		return kv.ValueExpected("set_partial", k)
	}
	return m.bind("set_partial", k, m.now(), func(old []byte) []byte {
		off := min(off, int64(len(old))) // past the end: appended, no gap
		b := make([]byte, max(int64(len(old)), off+int64(len(v))))
		copy(b, old)
		copy(b[off:], v)
		return b
	})
}

func (m *model) Allocate(k kv.Key, size int64, mtime time.Time) error {
	if m.closed.Load() {
		return kv.Closed("allocate", k)
	}
	if size < 0 {
		return kv.InvalidArgument("allocate", k, fmt.Sprintf("size %d", size))
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	if p, ok := m.st.prefixValue(k); ok {
		return kv.DictionaryExpected("allocate", p)
	}
	if m.st.kind(k) != kv.None {
		return kv.AlreadyPresent("allocate", k)
	}
	if mtime.IsZero() {
		mtime = m.clk.Now()
	}
	return m.bind("allocate", k, mtime.Truncate(m.res), func([]byte) []byte { return make([]byte, size) })
}

func (m *model) Remove(k kv.Key) error {
	if m.closed.Load() {
		return kv.Closed("remove", k)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	m.st.removeTree(k)
	return nil
}

func (m *model) Rename(src, dst kv.Key) error {
	if m.closed.Load() {
		return kv.Closed("rename", src)
	}
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	ks := m.st.kind(src)
	switch {
	case src.IsRoot():
		return kv.RenameSourcePrefix(src, dst)
	case ks == kv.None:
		return kv.NotFound("rename", src)
	case src == dst && ks == kv.Value:
		return nil
	case dst.HasPrefix(src):
		return kv.RenameSourcePrefix(src, dst)
	}
	if p, ok := m.st.prefixValue(dst); ok {
		return kv.DictionaryExpected("rename", p)
	}
	kd := m.st.kind(dst)
	if ks == kv.Dictionary && kd == kv.Value {
		return kv.ValueExpected("rename", src)
	}
	target := dst
	if kd == kv.Dictionary {
		t, err := dst.Add(src.Base())
		if err != nil {
			return kv.WithOp(err, "rename")
		}
		target = t
	}
	if target == src {
		return nil // a value moved into the dictionary that holds it
	}
	moved := map[kv.Key]modelValue{}
	for v, mv := range m.st.vals {
		if rel, ok := v.Rel(src); ok {
			nk, err := target.Join(rel)
			if err != nil {
				return kv.WithOp(err, "rename")
			}
			moved[nk] = mv
		}
	}
	m.st.removeTree(src)
	m.st.removeTree(target)
	for k, mv := range moved {
		m.st.vals[k] = mv
	}
	return nil
}

func (m *model) Free() (int64, error) {
	if m.closed.Load() {
		return 0, kv.Closed("free", kv.Root)
	}
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	used := int64(0)
	for _, v := range m.st.vals {
		used += int64(len(v.data))
	}
	return max(modelCapacity-used, 0), nil
}

// check verifies the model's invariant: no value lies below another. It is
// the model's Harness.Check.
func (m *model) check(t *testing.T) {
	t.Helper()
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	for k := range m.st.vals {
		if p, ok := m.st.prefixValue(k); ok {
			t.Errorf("model: the value %s lies below the value %s", k, p)
		}
	}
}

// snapshot returns a copy of the model's bindings; restore puts them back.
// Values are never modified, so sharing them is safe.
func (m *model) snapshot() map[kv.Key]modelValue {
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	return maps.Clone(m.st.vals)
}

func (m *model) restore(vals map[kv.Key]modelValue) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	m.st.vals = vals
}
