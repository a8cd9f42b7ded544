package clock

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

var (
	_ PClock = System{}
	_ PClock = (*Fake)(nil)
	_ PClock = (*RTC)(nil)
)

func TestFake(t *testing.T) {
	var f Fake
	assert.Equal(t, time.Unix(0, 0).UTC(), f.Now(), "zero value reads the epoch")
	t0 := time.Date(2024, 2, 29, 12, 0, 0, 123456789, time.UTC)
	f.Set(t0)
	assert.Equal(t, t0, f.Now())
	assert.Equal(t, t0.Add(1500*time.Millisecond), f.Advance(1500*time.Millisecond))
	assert.Equal(t, t0.Add(1500*time.Millisecond), f.Now())
	assert.Equal(t, t0, NewFake(t0).Now())

	// Concurrent use is safe (meaningful under -race).
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				f.Advance(time.Nanosecond)
				_ = f.Now()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, t0.Add(1500*time.Millisecond+400), f.Now())
}

func TestSystem(t *testing.T) {
	before := time.Now()
	got := System{}.Now()
	assert.False(t, got.Before(before))
}

func TestOpenRTCMissing(t *testing.T) {
	_, err := OpenRTC(filepath.Join(t.TempDir(), "rtc0"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrNoRTC), "got %v", err)
}

func TestOpenRTCNotAnRTC(t *testing.T) {
	// /dev/null exists but answers RTC_RD_TIME with ENOTTY: a clear error,
	// not ErrNoRTC and not a bogus time.
	_, err := OpenRTC("/dev/null")
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrNoRTC))
	assert.True(t, errors.Is(err, unix.ENOTTY), "got %v", err)
	assert.Contains(t, err.Error(), "RTC_RD_TIME")
}

func TestRTCTimeConversion(t *testing.T) {
	// struct rtc_time counts years from 1900 and months from 0.
	got := rtcTime(&unix.RTCTime{Sec: 5, Min: 4, Hour: 3, Mday: 2, Mon: 0, Year: 126})
	assert.Equal(t, time.Date(2026, time.January, 2, 3, 4, 5, 0, time.UTC), got)
	got = rtcTime(&unix.RTCTime{Sec: 59, Min: 59, Hour: 23, Mday: 31, Mon: 11, Year: 99})
	assert.Equal(t, time.Date(1999, time.December, 31, 23, 59, 59, 0, time.UTC), got)
}

func TestRTCAdvancesMonotonically(t *testing.T) {
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &RTC{wall: wall, start: time.Now()}
	a := r.Now()
	time.Sleep(2 * time.Millisecond)
	b := r.Now()
	assert.False(t, a.Before(wall))
	assert.True(t, b.After(a), "the clock advances: %v then %v", a, b)
	assert.Less(t, b.Sub(wall), time.Hour, "it advances from the RTC reading, not from the host clock")
}
