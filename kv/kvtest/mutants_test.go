package kvtest

import (
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// The suite is only worth something if it fails on wrong stores. Each
// mutant below is the model with one realistic bug; TestSuiteCatchesMutants
// runs the whole suite on each, in a child process (TestSuiteRunner, which
// does nothing unless mutantEnv names a mutant), and checks that the suite
// fails and that a subtest about that bug is among the failures.

const mutantEnv = "KVTEST_MUTANT"

type mutant struct {
	name  string
	catch string // a subtest, below TestSuiteRunner, that must fail; "" for the control
	// wrap puts the bug around a model; nil means the model itself.
	wrap func(m *model) kv.RW
	// res is the resolution the mutant really keeps mtimes at; the harness
	// always claims nanoseconds.
	res time.Duration
	// reopened, if set, is applied to the model when it is reopened.
	reopened func(m *model, clk clock.PClock)
}

var mutants = []mutant{
	{name: "none"}, // the control: the model passes
	{name: "exists_root_missing_when_empty", catch: "exists/root_empty", wrap: func(m *model) kv.RW { return &emptyRootMissing{m} }},
	{name: "exists_through_prefix_value_fails", catch: "exists/table", wrap: func(m *model) kv.RW { return &existsPrefixFails{m} }},
	{name: "get_partial_past_end_fails", catch: "get_partial/ranges", wrap: func(m *model) kv.RW { return &getPartialPastEnd{m} }},
	{name: "get_partial_length_overflows", catch: "get_partial/ranges", wrap: func(m *model) kv.RW { return &getPartialOverflow{m} }},
	{name: "get_partial_errors_report_get", catch: "get_partial/errors", wrap: func(m *model) kv.RW { return &getPartialOp{m} }},
	{name: "size_of_dictionary_is_zero", catch: "size/errors", wrap: func(m *model) kv.RW { return &sizeOfDictionary{m} }},
	{name: "list_unsorted", catch: "list/sorted", wrap: func(m *model) kv.RW { return &listUnsorted{m} }},
	{name: "list_relative_keys", catch: "list/nested", wrap: func(m *model) kv.RW { return &listRelative{m} }},
	{name: "list_descendants", catch: "list/nested", wrap: func(m *model) kv.RW { return &listDescendants{m} }},
	{name: "mtime_drops_subseconds", catch: "last_modified/value", res: time.Second},
	{name: "last_modified_recursive", catch: "last_modified/dictionary", wrap: func(m *model) kv.RW { return &lastModifiedRecursive{m} }},
	{name: "digest_ignores_contents", catch: "digest/dictionary", wrap: func(m *model) kv.RW { return &digestNamesOnly{m} }},
	{name: "set_keeps_children", catch: "set/replaces_dictionary", wrap: func(m *model) kv.RW { return &setKeepsChildren{m} }},
	{name: "set_aliases_caller_buffer", catch: "set/caller_buffer", wrap: func(m *model) kv.RW { return &setAliases{m} }},
	{name: "set_prefix_error_reports_key", catch: "set/errors", wrap: func(m *model) kv.RW { return &setPrefixErrorKey{m} }},
	{name: "set_from_keeps_short_data", catch: "set_from/short_reader", wrap: func(m *model) kv.RW { return &setFromShort{m} }},
	{name: "set_partial_leaves_gap", catch: "set_partial/past_end", wrap: func(m *model) kv.RW { return &setPartialGap{m} }},
	{name: "allocate_ignores_mtime", catch: "allocate/mtime", wrap: func(m *model) kv.RW { return &allocateNow{m} }},
	{name: "remove_keeps_parents", catch: "remove/emptied_parents", wrap: func(m *model) kv.RW { return &removeKeepsParents{model: m} }},
	{name: "remove_missing_fails", catch: "remove/missing", wrap: func(m *model) kv.RW { return &removeMissingFails{m} }},
	{name: "remove_root_does_nothing", catch: "remove/root", wrap: func(m *model) kv.RW { return &removeRootNoop{m} }},
	{name: "rename_into_dictionary_replaces_it", catch: "rename/value_into_dictionary", wrap: func(m *model) kv.RW { return &renameReplacesDictionary{m} }},
	{name: "rename_merges_dictionaries", catch: "rename/dictionary_into_dictionary_replacing", wrap: func(m *model) kv.RW { return &renameMerges{m} }},
	{name: "rename_onto_value_not_atomic", catch: "rename/dictionary_to_value", wrap: func(m *model) kv.RW { return &renameNotAtomic{m} }},
	{name: "reader_sees_replacement", catch: "open/snapshot_set", wrap: func(m *model) kv.RW { return &liveReaders{m} }},
	{name: "read_at_hides_eof", catch: "open/read_at", wrap: func(m *model) kv.RW { return &readAtNoEOF{m} }},
	{name: "reopen_loses_last_write", catch: "persistence/reopen", wrap: func(m *model) kv.RW { return &losesLastWrite{model: m} }},
	{name: "reopen_restamps_mtimes", catch: "persistence/reopen", reopened: restamp},
	{name: "close_does_not_close", catch: "close/later_calls", wrap: func(m *model) kv.RW { return &closeNoop{m} }},
}

// base gives the harness the model inside any mutant.
func (m *model) base() *model { return m }

type based interface{ base() *model }

// crasher is a mutant that loses writes when reopened.
type crasher interface{ crash() }

func (mu mutant) harness() Harness {
	res := mu.res
	if res == 0 {
		res = time.Nanosecond
	}
	wrap := func(m *model) kv.RW {
		if mu.wrap == nil {
			return m
		}
		return mu.wrap(m)
	}
	return Harness{
		New: func(t *testing.T, clk clock.PClock) kv.RW { return wrap(newModel(clk, res)) },
		Reopen: func(t *testing.T, s kv.RW, clk clock.PClock) kv.RW {
			require.NoError(t, s.Close())
			if c, ok := s.(crasher); ok {
				c.crash()
			}
			m := s.(based).base().reopen(clk)
			if mu.reopened != nil {
				mu.reopened(m, clk)
			}
			return wrap(m)
		},
		MtimeResolution: time.Nanosecond,
		LargeSize:       MinLargeSize,
		Check:           func(t *testing.T, s kv.RW) { s.(based).base().check(t) },
	}
}

// TestSuiteRunner runs the suite on the mutant named by $KVTEST_MUTANT, for
// TestSuiteCatchesMutants. Without it, it does nothing.
func TestSuiteRunner(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		return
	}
	i := slices.IndexFunc(mutants, func(mu mutant) bool { return mu.name == name })
	if i < 0 {
		t.Fatalf("no mutant %q", name)
	}
	TestRW(t, mutants[i].harness())
}

// TestSuiteCatchesMutants checks that the suite fails on every mutant, in
// the subtest about its bug, and passes on the control.
func TestSuiteCatchesMutants(t *testing.T) {
	for _, mu := range mutants {
		t.Run(mu.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteRunner$", "-test.count=1", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), mutantEnv+"="+mu.name)
			out, err := cmd.CombinedOutput()
			if mu.catch == "" {
				assert.NoError(t, err, "the suite fails on the model:\n%s", out)
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passes on mutant %s (err %v); want a failure in %s\n%s", mu.name, err, mu.catch, out)
			}
			if want := "--- FAIL: TestSuiteRunner/" + mu.catch + " ("; !strings.Contains(string(out), want) {
				t.Errorf("on mutant %s the suite fails, but not in %s; failures:\n%s", mu.name, mu.catch, failures(out))
			}
		})
	}
}

// failures extracts the "--- FAIL" lines of a test output.
func failures(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "--- FAIL") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// The mutants. Each embeds the model and overrides what its bug is about.

// emptyRootMissing forgets that the root always exists.
type emptyRootMissing struct{ *model }

func (w *emptyRootMissing) Exists(k kv.Key) (kv.Kind, error) {
	kind, err := w.model.Exists(k)
	if k.IsRoot() && err == nil {
		if entries, _ := w.model.List(k); len(entries) == 0 {
			return kv.None, nil
		}
	}
	return kind, err
}

// existsPrefixFails reports an error (ENOTDIR, say) through a prefix value.
type existsPrefixFails struct{ *model }

func (w *existsPrefixFails) Exists(k kv.Key) (kv.Kind, error) {
	for p := k.Parent(); !p.IsRoot(); p = p.Parent() {
		if kind, _ := w.model.Exists(p); kind == kv.Value {
			return kv.None, kv.DictionaryExpected("exists", p)
		}
	}
	return w.model.Exists(k)
}

// getPartialPastEnd treats an offset at or past the end as an error.
type getPartialPastEnd struct{ *model }

func (w *getPartialPastEnd) GetPartial(k kv.Key, off, length int64) ([]byte, error) {
	if size, err := w.model.Size(k); err == nil && off >= size {
		return nil, kv.InvalidArgument("get_partial", k, "offset past the end")
	}
	return w.model.GetPartial(k, off, length)
}

// getPartialOverflow computes the end as off+length, which overflows.
type getPartialOverflow struct{ *model }

func (w *getPartialOverflow) GetPartial(k kv.Key, off, length int64) ([]byte, error) {
	v, err := w.model.GetPartial(k, 0, 1<<62)
	if err != nil || off < 0 || length < 0 {
		return w.model.GetPartial(k, off, length)
	}
	end := min(off+length, int64(len(v)))
	if off >= end {
		return []byte{}, nil
	}
	return v[off:end], nil
}

// getPartialOp reports its lookup errors under the operation "get".
type getPartialOp struct{ *model }

func (w *getPartialOp) GetPartial(k kv.Key, off, length int64) ([]byte, error) {
	b, err := w.model.GetPartial(k, off, length)
	return b, kv.WithOp(err, "get")
}

// sizeOfDictionary returns 0 for a dictionary.
type sizeOfDictionary struct{ *model }

func (w *sizeOfDictionary) Size(k kv.Key) (int64, error) {
	if kind, _ := w.model.Exists(k); kind == kv.Dictionary {
		return 0, nil
	}
	return w.model.Size(k)
}

// listUnsorted returns the entries in reverse order.
type listUnsorted struct{ *model }

func (w *listUnsorted) List(k kv.Key) ([]kv.Entry, error) {
	entries, err := w.model.List(k)
	slices.Reverse(entries)
	return entries, err
}

// listRelative returns keys relative to the listed dictionary.
type listRelative struct{ *model }

func (w *listRelative) List(k kv.Key) ([]kv.Entry, error) {
	entries, err := w.model.List(k)
	for i, e := range entries {
		entries[i].Key = kv.MustKey(e.Key.Base())
	}
	return entries, err
}

// listDescendants returns every key below the dictionary, not only its
// children.
type listDescendants struct{ *model }

func (w *listDescendants) List(k kv.Key) ([]kv.Entry, error) {
	entries, err := w.model.List(k)
	if err != nil {
		return nil, err
	}
	var all []kv.Entry
	for _, e := range entries {
		all = append(all, e)
		if e.Kind == kv.Dictionary {
			sub, _ := w.List(e.Key)
			all = append(all, sub...)
		}
	}
	slices.SortFunc(all, func(a, b kv.Entry) int { return a.Key.Compare(b.Key) })
	return all, nil
}

// lastModifiedRecursive looks into sub-dictionaries.
type lastModifiedRecursive struct{ *model }

func (w *lastModifiedRecursive) LastModified(k kv.Key) (time.Time, error) {
	latest, err := w.model.LastModified(k)
	if err != nil {
		return latest, err
	}
	entries, _ := w.model.List(k)
	for _, e := range entries {
		if m, _ := w.LastModified(e.Key); m.After(latest) {
			latest = m
		}
	}
	return latest, nil
}

// digestNamesOnly digests a dictionary's names and kinds, not its contents.
type digestNamesOnly struct{ *model }

func (w *digestNamesOnly) Digest(k kv.Key) ([]byte, error) {
	if kind, _ := w.model.Exists(k); kind != kv.Dictionary {
		return w.model.Digest(k)
	}
	entries, err := w.model.List(k)
	if err != nil {
		return nil, err
	}
	var des []kv.DigestEntry
	for _, e := range entries {
		des = append(des, kv.DigestEntry{Name: e.Key.Base(), Kind: e.Kind})
	}
	return kv.DictDigest(des), nil
}

// setKeepsChildren replaces a dictionary by a value but leaves what was in
// it.
type setKeepsChildren struct{ *model }

func (w *setKeepsChildren) Set(k kv.Key, v []byte) error {
	below := map[kv.Key]modelValue{}
	for key, mv := range w.snapshot() {
		if key != k && key.HasPrefix(k) {
			below[key] = mv
		}
	}
	if err := w.model.Set(k, v); err != nil {
		return err
	}
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	for key, mv := range below {
		w.st.vals[key] = mv
	}
	return nil
}

// setAliases keeps the caller's slice instead of a copy.
type setAliases struct{ *model }

func (w *setAliases) Set(k kv.Key, v []byte) error {
	if err := w.model.Set(k, v); err != nil {
		return err
	}
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	mv := w.st.vals[k]
	mv.data = v
	w.st.vals[k] = mv
	return nil
}

// setPrefixErrorKey reports dictionary_expected about the key set, not the
// prefix value in the way.
type setPrefixErrorKey struct{ *model }

func (w *setPrefixErrorKey) Set(k kv.Key, v []byte) error {
	err := w.model.Set(k, v)
	if errors.Is(err, kv.ErrDictionaryExpected) {
		return kv.DictionaryExpected("set", k)
	}
	return err
}

// setFromShort stores what a short reader gave before reporting the error.
type setFromShort struct{ *model }

func (w *setFromShort) SetFrom(k kv.Key, r io.Reader, size int64) error {
	if size < 0 {
		return w.model.SetFrom(k, r, size)
	}
	data, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return kv.Storage("set", k, err)
	}
	if err := w.model.Set(k, data); err != nil {
		return err
	}
	if int64(len(data)) < size {
		return kv.InvalidArgument("set", k, "short reader")
	}
	return nil
}

// setPartialGap writes past the end as pwrite does, leaving a zero-filled
// gap.
type setPartialGap struct{ *model }

func (w *setPartialGap) SetPartial(k kv.Key, off int64, v []byte) error {
	if size, err := w.model.Size(k); err == nil && off > size && off-size < 1<<20 {
		return w.model.SetPartial(k, size, append(make([]byte, off-size), v...))
	}
	return w.model.SetPartial(k, off, v)
}

// allocateNow stamps allocated values with the clock, ignoring the mtime
// asked for.
type allocateNow struct{ *model }

func (w *allocateNow) Allocate(k kv.Key, size int64, mtime time.Time) error {
	return w.model.Allocate(k, size, time.Time{})
}

// removeKeepsParents leaves the dictionaries a removal empties behind, as
// directories.
type removeKeepsParents struct {
	*model
	mu     sync.Mutex
	ghosts map[kv.Key]bool
}

func (w *removeKeepsParents) Remove(k kv.Key) error {
	if err := w.model.Remove(k); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := k.Parent(); !p.IsRoot(); p = p.Parent() {
		if kind, _ := w.model.Exists(p); kind == kv.None {
			if w.ghosts == nil {
				w.ghosts = map[kv.Key]bool{}
			}
			w.ghosts[p] = true
		}
	}
	return nil
}

func (w *removeKeepsParents) Exists(k kv.Key) (kv.Kind, error) {
	kind, err := w.model.Exists(k)
	w.mu.Lock()
	defer w.mu.Unlock()
	if kind == kv.None && w.ghosts[k] {
		return kv.Dictionary, err
	}
	return kind, err
}

// removeMissingFails reports not_found for a missing key.
type removeMissingFails struct{ *model }

func (w *removeMissingFails) Remove(k kv.Key) error {
	if kind, _ := w.model.Exists(k); kind == kv.None {
		return kv.NotFound("remove", k)
	}
	return w.model.Remove(k)
}

// removeRootNoop refuses to remove the root, silently.
type removeRootNoop struct{ *model }

func (w *removeRootNoop) Remove(k kv.Key) error {
	if k.IsRoot() {
		return nil
	}
	return w.model.Remove(k)
}

// renameReplacesDictionary replaces an existing dictionary dst instead of
// moving src into it.
type renameReplacesDictionary struct{ *model }

func (w *renameReplacesDictionary) Rename(src, dst kv.Key) error {
	if kind, _ := w.model.Exists(dst); kind == kv.Dictionary && !dst.IsRoot() && !dst.HasPrefix(src) {
		if err := w.model.Remove(dst); err != nil {
			return err
		}
	}
	return w.model.Rename(src, dst)
}

// renameMerges moves a dictionary into dst/base(src) without first removing
// what is there.
type renameMerges struct{ *model }

func (w *renameMerges) Rename(src, dst kv.Key) error {
	ks, _ := w.model.Exists(src)
	kd, _ := w.model.Exists(dst)
	target, _ := dst.Add(src.Base())
	kt, _ := w.model.Exists(target)
	if ks != kv.Dictionary || kd != kv.Dictionary || kt != kv.Dictionary || dst.HasPrefix(src) {
		return w.model.Rename(src, dst)
	}
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	for k, mv := range maps.Clone(w.st.vals) {
		if rel, ok := k.Rel(src); ok {
			nk, _ := target.Join(rel)
			delete(w.st.vals, k)
			w.st.vals[nk] = mv
		}
	}
	return nil
}

// renameNotAtomic removes the destination before finding that it cannot be
// replaced.
type renameNotAtomic struct{ *model }

func (w *renameNotAtomic) Rename(src, dst kv.Key) error {
	ks, _ := w.model.Exists(src)
	if kd, _ := w.model.Exists(dst); ks == kv.Dictionary && kd == kv.Value {
		if err := w.model.Remove(dst); err != nil {
			return err
		}
	}
	return w.model.Rename(src, dst)
}

// liveReaders opens readers that read the key's current value.
type liveReaders struct{ *model }

type liveReader struct {
	s    kv.RO
	k    kv.Key
	size int64
}

func (r *liveReader) ReadAt(p []byte, off int64) (int, error) {
	b, err := r.s.GetPartial(r.k, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	n := copy(p, b)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *liveReader) Size() int64  { return r.size }
func (r *liveReader) Close() error { return nil }

func (w *liveReaders) Open(k kv.Key) (kv.Reader, error) {
	size, err := w.model.Size(k)
	if err != nil {
		return nil, kv.WithOp(err, "get")
	}
	return &liveReader{s: w.model, k: k, size: size}, nil
}

// readAtNoEOF returns short reads at the end without io.EOF.
type readAtNoEOF struct{ *model }

type noEOFReader struct{ kv.Reader }

func (r noEOFReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.Reader.ReadAt(p, off)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (w *readAtNoEOF) Open(k kv.Key) (kv.Reader, error) {
	r, err := w.model.Open(k)
	if err != nil {
		return nil, err
	}
	return noEOFReader{r}, nil
}

// losesLastWrite forgets its last write when it is reopened, as a store
// that does not flush on Close would.
type losesLastWrite struct {
	*model
	mu   sync.Mutex
	prev map[kv.Key]modelValue
}

func (w *losesLastWrite) before() {
	w.mu.Lock()
	w.prev = w.snapshot()
	w.mu.Unlock()
}

func (w *losesLastWrite) crash() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.prev != nil {
		w.restore(w.prev)
	}
}

func (w *losesLastWrite) Set(k kv.Key, v []byte) error { w.before(); return w.model.Set(k, v) }
func (w *losesLastWrite) SetFrom(k kv.Key, r io.Reader, size int64) error {
	w.before()
	return w.model.SetFrom(k, r, size)
}
func (w *losesLastWrite) SetPartial(k kv.Key, off int64, v []byte) error {
	w.before()
	return w.model.SetPartial(k, off, v)
}
func (w *losesLastWrite) Allocate(k kv.Key, size int64, mtime time.Time) error {
	w.before()
	return w.model.Allocate(k, size, mtime)
}
func (w *losesLastWrite) Remove(k kv.Key) error        { w.before(); return w.model.Remove(k) }
func (w *losesLastWrite) Rename(src, dst kv.Key) error { w.before(); return w.model.Rename(src, dst) }

// restamp sets every mtime to the clock, as a store that stamps the values
// it finds when it opens would.
func restamp(m *model, clk clock.PClock) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	for k, mv := range m.st.vals {
		mv.mtime = clk.Now()
		m.st.vals[k] = mv
	}
}

// closeNoop does not close.
type closeNoop struct{ *model }

func (w *closeNoop) Close() error { return nil }
