package clock

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultRTC is the device OpenRTC reads when given "".
const DefaultRTC = "/dev/rtc0"

// ErrNoRTC is returned (wrapped) by OpenRTC when the machine has no
// real-time clock device.
var ErrNoRTC = errors.New("no real-time clock")

// RTC is the hardware real-time clock. It reads the RTC once, when opened
// (the RTC has a resolution of one second and reading it is a slow ioctl),
// and from then on advances that reading with Go's monotonic clock, so it
// never goes backwards even if someone sets the system clock.
type RTC struct {
	wall  time.Time // the RTC reading, UTC
	start time.Time // time.Now when wall was read: carries the monotonic reading
}

// OpenRTC reads the RTC at path (DefaultRTC when empty) with RTC_RD_TIME. The
// Linux RTC class keeps the hardware clock in UTC. It fails with an error
// wrapping ErrNoRTC when the device does not exist, and with the ioctl's
// error when the clock cannot be read.
func OpenRTC(path string) (*RTC, error) {
	if path == "" {
		path = DefaultRTC
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("clock: open %s: %w", path, ErrNoRTC)
		}
		return nil, fmt.Errorf("clock: open %s: %w", path, err)
	}
	defer f.Close()
	start := time.Now()
	tm, err := unix.IoctlGetRTCTime(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("clock: RTC_RD_TIME on %s: %w", path, err)
	}
	return &RTC{wall: rtcTime(tm), start: start}, nil
}

// rtcTime converts an RTC reading (struct rtc_time: years since 1900,
// months from 0) to a time.
func rtcTime(tm *unix.RTCTime) time.Time {
	return time.Date(int(tm.Year)+1900, time.Month(tm.Mon+1), int(tm.Mday),
		int(tm.Hour), int(tm.Min), int(tm.Sec), 0, time.UTC)
}

// Now returns the RTC reading taken at open plus the monotonic time elapsed
// since.
func (r *RTC) Now() time.Time {
	return r.wall.Add(time.Since(r.start))
}
