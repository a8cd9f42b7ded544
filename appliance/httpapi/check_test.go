package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/httpapi"
	"github.com/tarstore/tarstore/hw/mem"
)

// checkEnv serves a kvtar store on a memory device of size bytes with its
// check (appliance.CheckFunc), and returns the device too, to damage it
// underneath the store.
func checkEnv(t *testing.T, size int64, opts httpapi.Options) (*env, *mem.Device) {
	t.Helper()
	dev, clk, st := memKvtar(t, size)
	opts.Check = appliance.CheckFunc(st)
	opts.Status = appliance.StatusFunc(st)
	return serveStore(t, clk, st, opts), dev
}

// check sends POST /v1/check and decodes a 200 answer.
func (e *env) check(hdr ...string) (result, httpapi.CheckReport) {
	e.t.Helper()
	r := e.do("POST", "/v1/check", nil, hdr...)
	var rep httpapi.CheckReport
	if r.code == http.StatusOK {
		require.Equal(e.t, "application/json", r.hdr.Get("Content-Type"))
		require.NoError(e.t, json.Unmarshal([]byte(r.body), &rep), r.body)
	}
	return r, rep
}

// afterPause waits out the pause after a check that took rep.Seconds.
func afterPause(rep httpapi.CheckReport) {
	time.Sleep(time.Duration(rep.Seconds*float64(httpapi.CheckPauseFactor+1)*float64(time.Second)) + 20*time.Millisecond)
}

// flipByte flips one byte of the device at off, underneath the store.
func flipByte(t *testing.T, dev *mem.Device, off int64) {
	t.Helper()
	buf := make([]byte, 512)
	lba := uint64(off / 512)
	require.NoError(t, dev.Read(lba, buf))
	buf[off%512] ^= 0x20
	require.NoError(t, dev.Write(lba, buf))
}

// TestCheckRoute: POST /v1/check over a kvtar store on memory answers the
// store's check with its counts; a byte of a value's data flipped on the
// device underneath the store is a fatal problem naming the value.
func TestCheckRoute(t *testing.T) {
	e, dev := checkEnv(t, 1<<20, httpapi.Options{})
	require.Equal(t, http.StatusCreated, e.put("/v1/kv/a", "hello").code)
	require.Equal(t, http.StatusCreated, e.put("/v1/kv/d/needle", "the needle in the haystack").code)

	before := time.Now()
	r, rep := e.check()
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Contains(t, r.body, `"problems":[]`)
	assert.True(t, rep.OK)
	assert.Zero(t, rep.Fatal)
	assert.Equal(t, 2, rep.Values)
	assert.Positive(t, rep.End)
	assert.Positive(t, rep.Capacity)
	assert.Positive(t, rep.Free)
	assert.WithinDuration(t, before, rep.Started, time.Minute)
	assert.GreaterOrEqual(t, rep.Seconds, 0.0)
	assert.Equal(t, "no-store", r.hdr.Get("Cache-Control"))

	// Only POST: a check is not a safe request (it blocks writes, and a
	// writable store finishes a held-up compaction first).
	r = e.get("/v1/check")
	r.wantError(t, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "")
	assert.Equal(t, "POST", r.hdr.Get("Allow"))

	i := bytes.Index(dev.Bytes(), []byte("the needle"))
	require.Positive(t, i)
	flipByte(t, dev, int64(i)+4)
	afterPause(rep)
	r, rep = e.check()
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.False(t, rep.OK)
	assert.Equal(t, 1, rep.Fatal)
	require.Len(t, rep.Problems, 1, r.body)
	p := rep.Problems[0]
	assert.True(t, p.Fatal)
	assert.Equal(t, "/d/needle", p.Key)
	assert.Empty(t, p.KeyPct)
	assert.Contains(t, p.What, "CRC-32C")
	assert.Less(t, p.Offset, int64(i))
	assert.Greater(t, p.Offset, int64(i)-4096)

	m := e.h.Metrics()
	assert.Equal(t, uint64(2), m.Requests[httpapi.RequestLabel{Op: "check", Code: "200"}])
	assert.Equal(t, uint64(1), m.Requests[httpapi.RequestLabel{Op: "check", Code: "405"}])
}

// TestCheckNotImplemented: a store without a check (the handler has no
// Options.Check) answers 501.
func TestCheckNotImplemented(t *testing.T) {
	e := newEnv(t, httpapi.Options{})
	r, _ := e.check()
	r.wantError(t, http.StatusNotImplemented, httpapi.CodeNotImplemented, "")
}

// slowCheck is an Options.Check that counts its runs and the most that
// ran at once, and holds each until release is closed (if set) or for
// hold.
type slowCheck struct {
	release      chan struct{}
	hold         time.Duration
	runs, active atomic.Int32
	most         atomic.Int32
}

func (s *slowCheck) check() (httpapi.CheckReport, error) {
	s.runs.Add(1)
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	if s.release != nil {
		<-s.release
	}
	time.Sleep(s.hold)
	return httpapi.CheckReport{Values: 7}, nil
}

// TestCheckOneAtATime: of concurrent checks one runs and the others are
// refused at once with 429 and Retry-After; after a check, the next waits
// CheckPauseFactor times its duration (or Options.CheckPause).
func TestCheckOneAtATime(t *testing.T) {
	sc := &slowCheck{release: make(chan struct{})}
	e := newEnv(t, httpapi.Options{Check: sc.check})
	const n = 8
	results := make(chan result, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _ := e.check()
			results <- r
		}()
	}
	var refused []result
	for len(refused) < n-1 {
		r := <-results
		require.Equal(t, http.StatusTooManyRequests, r.code, "only one runs; the others do not wait: %s", r.body)
		refused = append(refused, r)
	}
	close(sc.release)
	wg.Wait()
	r := <-results
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.EqualValues(t, 1, sc.runs.Load())
	assert.EqualValues(t, 1, sc.most.Load())
	for _, r := range refused {
		d := r.wantError(t, http.StatusTooManyRequests, httpapi.CodeRateLimited, "")
		assert.Contains(t, d.Message, "A check is running")
		s, err := strconv.Atoi(r.hdr.Get("Retry-After"))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, s, 1)
	}

	// The pause: a check that took D lets the next start D×4 after it.
	sc = &slowCheck{hold: 100 * time.Millisecond}
	e = newEnv(t, httpapi.Options{Check: sc.check})
	r, rep := e.check()
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, 7, rep.Values)
	assert.True(t, rep.OK)
	assert.GreaterOrEqual(t, rep.Seconds, 0.1)
	r, _ = e.check()
	d := r.wantError(t, http.StatusTooManyRequests, httpapi.CodeRateLimited, "")
	assert.Contains(t, d.Message, "The last check took")
	assert.Equal(t, "1", r.hdr.Get("Retry-After"), "ceil of about 0.4 s")
	afterPause(rep)
	r, _ = e.check()
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.EqualValues(t, 2, sc.runs.Load())

	// Options.CheckPause, when longer.
	sc = &slowCheck{}
	e = newEnv(t, httpapi.Options{Check: sc.check, CheckPause: time.Hour})
	r, _ = e.check()
	require.Equal(t, http.StatusOK, r.code, r.body)
	r, _ = e.check()
	r.wantError(t, http.StatusTooManyRequests, httpapi.CodeRateLimited, "")
	s, err := strconv.Atoi(r.hdr.Get("Retry-After"))
	require.NoError(t, err)
	assert.InDelta(t, 3600, s, 5)
	assert.EqualValues(t, 1, sc.runs.Load())
}

// TestCheckAuth: with a token, a check needs it (and runs nothing
// without); a read-only server checks too.
func TestCheckAuth(t *testing.T) {
	sc := &slowCheck{}
	e := newEnv(t, httpapi.Options{Token: "s3cret", ReadOnly: true, Check: sc.check})
	for _, auth := range []string{"", "Bearer wrong", "Basic s3cret"} {
		r, _ := e.check("Authorization", auth+" ")
		r.wantError(t, http.StatusUnauthorized, httpapi.CodeUnauthorized, "")
	}
	assert.Zero(t, sc.runs.Load())
	r, rep := e.check()
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.True(t, rep.OK)
	assert.EqualValues(t, 1, sc.runs.Load())
}
