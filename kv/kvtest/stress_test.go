package kvtest

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/kv"
)

// stressModel is a StressConfig over the model, wrapped by wrap (nil: the
// model itself); lose, if set, damages the model's state when it is
// reopened.
func stressModel(seed uint64, wrap func(*model) kv.RW, lose func(*model)) StressConfig {
	if wrap == nil {
		wrap = func(m *model) kv.RW { return m }
	}
	return StressConfig{
		Open: func(testing.TB) kv.RW { return wrap(newModel(clock.System{}, time.Nanosecond)) },
		Reopen: func(t testing.TB, s kv.RW) kv.RW {
			m := s.(based).base()
			m.Close()
			if lose != nil {
				lose(m)
			}
			return wrap(m.reopen(clock.System{}))
		},
		Ops:  150,
		Seed: seed,
	}
}

// TestStressModel runs the stress test on the model, which must pass.
func TestStressModel(t *testing.T) {
	StressSeeds(t, 2, func(t *testing.T, seed uint64) {
		st := Stress(t, stressModel(seed, nil, nil))
		if st.Ops != 8*150 {
			t.Errorf("%d operations, want %d", st.Ops, 8*150)
		}
	})
}

// TestStressCatchesBugs plants bugs in the model and checks that the
// stress test fails on each, naming the seed, with the message its
// comparisons give for such a bug.
func TestStressCatchesBugs(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(*model) kv.RW
		lose func(*model)
		want string // in the failure messages
	}{
		{"set_damages_an_older_value", func(m *model) kv.RW { return &damagesOlder{model: m} }, nil, "first difference at offset 0"},
		{"remove_dropped", func(m *model) kv.RW { return &dropsRemove{model: m} }, nil, ", the model says none"},
		{"no_space_after_writing", func(m *model) kv.RW { return &writesOnNoSpace{model: m} }, nil, "set_partial"},
		{"reopen_loses_a_value", nil, func(m *model) {
			for k := range m.st.vals {
				delete(m.st.vals, k)
				return
			}
		}, "comparing the reopened store with the model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seed := uint64(len(tc.name))
			f := runFake(t, func(ft testing.TB) { Stress(ft, stressModel(seed, tc.wrap, tc.lose)) })
			msgs := strings.Join(f.errors, "\n")
			if !f.failed {
				t.Fatalf("the stress test passes on a model with the bug %s", tc.name)
			}
			t.Logf("the first failure reported:\n%s", f.errors[0])
			rerun := fmt.Sprintf("seed=%d; rerun with %s=%d", seed, SeedEnv, seed)
			for _, want := range []string{rerun, tc.want} {
				if !strings.Contains(msgs, want) {
					t.Errorf("the failure messages do not say %q:\n%s", want, msgs)
				}
			}
		})
	}
}

// TestStressCrash checks the InDoubt mode on a model that loses power at
// its 200th write: every later write fails with storage_error. Where the
// write in flight at the cut is applied whole, the run passes; where it is
// a rename that removed its source only, the run fails.
func TestStressCrash(t *testing.T) {
	inDoubt := func(err error) bool { return errors.Is(err, kv.ErrStorage) }
	t.Run("whole", func(t *testing.T) {
		cfg := stressModel(7, func(m *model) kv.RW { return &crashes{model: m} }, nil)
		cfg.InDoubt = inDoubt
		st := Stress(t, cfg)
		if st.Ops >= 8*150 {
			t.Errorf("%d operations: the power was not cut", st.Ops)
		}
	})
	t.Run("torn_rename", func(t *testing.T) {
		cfg := stressModel(7, func(m *model) kv.RW { return &crashes{model: m, tear: true} }, nil)
		cfg.InDoubt = inDoubt
		f := runFake(t, func(ft testing.TB) { Stress(ft, cfg) })
		if msgs := strings.Join(f.errors, "\n"); !f.failed || !strings.Contains(msgs, "is neither absent nor whole") {
			t.Errorf("a rename torn by the crash is not reported:\n%s", msgs)
		}
	})
}

// fakeTB collects the failures of a test run through it; the rest goes to
// the real test.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	errors []string
}

// runFake runs f with a fakeTB on its own goroutine (FailNow ends it) and
// returns what it collected.
func runFake(t *testing.T, f func(testing.TB)) *fakeTB {
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ft)
	}()
	<-done
	return ft
}

func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Logf(string, ...any)       {}
func (f *fakeTB) Log(...any)                {}
func (f *fakeTB) Errorf(s string, a ...any) { f.record(fmt.Sprintf(s, a...)) }
func (f *fakeTB) Error(a ...any)            { f.record(fmt.Sprint(a...)) }
func (f *fakeTB) Fatalf(s string, a ...any) { f.Errorf(s, a...); f.FailNow() }
func (f *fakeTB) Fatal(a ...any)            { f.Error(a...); f.FailNow() }
func (f *fakeTB) Fail()                     { f.record("") }
func (f *fakeTB) FailNow()                  { f.Fail(); runtime.Goexit() }

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *fakeTB) record(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	if msg != "" {
		f.errors = append(f.errors, msg)
	}
}

// damagesOlder is the bug kvtar had: every 50th Set also overwrites the
// start of another value with a hole record ("1234 comment=" and zeroes),
// as a store that reuses space still in use would.
type damagesOlder struct {
	*model
	sets atomic.Int64
}

func (d *damagesOlder) Set(k kv.Key, v []byte) error {
	if err := d.model.Set(k, v); err != nil || d.sets.Add(1)%50 != 0 {
		return err
	}
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	for o, mv := range d.st.vals {
		if o != k && len(mv.data) >= 32 {
			b := append([]byte(nil), mv.data...)
			copy(b, append([]byte("1234 comment="), make([]byte, 19)...))
			d.st.vals[o] = modelValue{data: b, mtime: mv.mtime}
			break
		}
	}
	return nil
}

// dropsRemove acknowledges every 40th Remove without doing it.
type dropsRemove struct {
	*model
	n atomic.Int64
}

func (d *dropsRemove) Remove(k kv.Key) error {
	if kind, _ := d.model.Exists(k); kind != kv.None && d.n.Add(1)%40 == 0 {
		return nil
	}
	return d.model.Remove(k)
}

// writesOnNoSpace fails every 20th SetPartial with no_space, after
// writing.
type writesOnNoSpace struct {
	*model
	n atomic.Int64
}

func (d *writesOnNoSpace) SetPartial(k kv.Key, off int64, v []byte) error {
	err := d.model.SetPartial(k, off, v)
	if err == nil && len(v) > 0 && d.n.Add(1)%20 == 0 {
		return kv.NoSpace("set_partial", k)
	}
	return err
}

// crashes loses power at its 200th write: that write is applied but fails
// with storage_error, and so do all later writes. With tear, the write
// the power is lost in is instead the first later rename of a value, and
// only its source is removed.
type crashes struct {
	*model
	tear   bool
	writes atomic.Int64
	dead   atomic.Bool
}

var errPower = errors.New("power lost")

func (c *crashes) write(op string, k kv.Key, apply func() error) error {
	if c.dead.Load() {
		return kv.Storage(op, k, errPower)
	}
	if c.writes.Add(1) >= 200 && !c.tear && c.dead.CompareAndSwap(false, true) {
		apply()
		return kv.Storage(op, k, errPower)
	}
	return apply()
}

func (c *crashes) Set(k kv.Key, v []byte) error {
	return c.write("set", k, func() error { return c.model.Set(k, v) })
}

func (c *crashes) SetFrom(k kv.Key, r io.Reader, n int64) error {
	return c.write("set", k, func() error { return c.model.SetFrom(k, r, n) })
}

func (c *crashes) SetPartial(k kv.Key, off int64, v []byte) error {
	return c.write("set_partial", k, func() error { return c.model.SetPartial(k, off, v) })
}

func (c *crashes) Allocate(k kv.Key, n int64, mtime time.Time) error {
	return c.write("allocate", k, func() error { return c.model.Allocate(k, n, mtime) })
}

func (c *crashes) Remove(k kv.Key) error {
	return c.write("remove", k, func() error { return c.model.Remove(k) })
}

func (c *crashes) Rename(src, dst kv.Key) error {
	if kind, _ := c.model.Exists(src); c.tear && kind == kv.Value && src != dst && c.writes.Load() >= 200 && c.dead.CompareAndSwap(false, true) {
		c.model.Remove(src)
		return kv.Storage("rename", src, errPower)
	}
	return c.write("rename", src, func() error { return c.model.Rename(src, dst) })
}
