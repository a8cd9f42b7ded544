package kvtar

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tarstore/tarstore/clock"
	"github.com/tarstore/tarstore/hw/crash"
	"github.com/tarstore/tarstore/hw/mem"
	"github.com/tarstore/tarstore/kv"
	"github.com/tarstore/tarstore/kv/kvtest"
)

// stressSize is the device of the stress tests for each sector size. At 4
// MiB, 8 writers of values up to 256 KiB fill it: holes are reused all the
// time and no_space happens. At 12 MiB the free tail lasts longer and runs
// of adjacent holes grow between the members.
var stressSize = map[int]uint64{512: 4 << 20, 4096: 12 << 20}

// A stressDevice is one device of the stress tests. The large one takes
// values up to 1.5 MiB on 24 MiB, 30% of the operations new versions of
// existing values: overwrites of values that one hole chunk
// cannot hold supersede them, and later ones go into their space
// (dead.go), streamed into it outside the lock while the other writers go
// on.
type stressDevice struct {
	name     string
	ss       int
	size     uint64
	maxValue int // 0: kvtest's default (256 KiB)
	rewrites int // 0: kvtest's default
}

var stressDevices = []stressDevice{
	{"512", 512, stressSize[512], 0, 0},
	{"4096", 4096, stressSize[4096], 0, 0},
	{"512-large", 512, 24 << 20, 3 << 19, 30},
}

// stressClock is the clock of a stress run: the system clock, whose
// sub-second mtimes give every member a PAX header, for odd seeds; whole
// seconds, plain ustar members, for even ones.
func stressClock(seed uint64) clock.PClock {
	if seed%2 == 1 {
		return clock.System{}
	}
	return secondClock{}
}

type secondClock struct{}

func (secondClock) Now() time.Time { return time.Now().Truncate(time.Second) }

// TestStress runs the model-based concurrent stress test (kvtest.Stress:
// 8 writers, every write operation, values up to 256 KiB) on memory
// devices of 512- and 4096-byte sectors, for a few seeds
// ($TARSTORE_STRESS_SEED runs one, $TARSTORE_STRESS_SOAK=10m runs seeds
// for that long; kvtest.StressSeeds). When the writers are done and again after the reopen,
// Check must find no problem, and GNU tar, bsdtar, Python and archive/tar
// must read the image as the store's contents, GNU tar's extraction
// included.
func TestStress(t *testing.T) {
	needTools(t)
	kvtest.StressSeeds(t, 2, func(t *testing.T, seed uint64) {
		for _, sd := range stressDevices {
			t.Run(sd.name, func(t *testing.T) {
				var dev *mem.Device
				open := func(t testing.TB, d *mem.Device) kv.RW {
					s, err := New(stressClock(seed), d)
					require.NoError(t, err)
					return s
				}
				kvtest.Stress(t, kvtest.StressConfig{
					Open: func(t testing.TB) kv.RW {
						var err error
						dev, err = mem.New(sd.ss, sd.size/uint64(sd.ss))
						require.NoError(t, err)
						require.NoError(t, Format(dev))
						return open(t, dev)
					},
					Reopen: func(t testing.TB, s kv.RW) kv.RW {
						checkStress(t, s.(*Store), dev) // the image as the writers left it
						require.NoError(t, s.Close())
						s2 := open(t, dev.Reopen())
						checkWhenDone(t, s2.(*Store), dev)
						return s2
					},
					AfterReopen: func(t testing.TB, s kv.RW) { checkStress(t, s.(*Store), dev) },
					MaxValue:    sd.maxValue,
					Rewrites:    sd.rewrites,
					Seed:        seed,
				})
			})
		}
	})
}

// checkStress checks the store after a stress run: Check, and the four tar
// readers on its device.
func checkStress(t testing.TB, s *Store, dev *mem.Device) {
	t.Helper()
	want, members := checkStoreInvariants(t, s, dev)
	checkReaders(t, imageFile(t, dev, archiveEnd(s)), members, want, baseline{})
}

// TestStressCrash runs the stress test on a device that loses power at a
// random write (chosen by the seed, as is the crash image: unflushed
// writes kept, dropped or torn). The store is then opened on the crash
// image: every operation acknowledged before the cut must be there, and
// each writer's operation in flight must be there whole or not at all; the
// image must pass Check and the tar readers.
func TestStressCrash(t *testing.T) {
	needTools(t)
	kvtest.StressSeeds(t, 2, func(t *testing.T, seed uint64) {
		for _, sd := range []stressDevice{stressDevices[0], stressDevices[2]} {
			t.Run(sd.name, func(t *testing.T) { stressCrash(t, seed, sd) })
		}
	})
}

// stressCrash is one run of TestStressCrash on device sd.
func stressCrash(t *testing.T, seed uint64, sd stressDevice) {
	rng := rand.New(rand.NewPCG(seed, 0))
	cut := 1 + rng.IntN(4000) // a whole run issues about 4000 device writes
	mode := []crash.Mode{crash.KeepAll, crash.DropAll, crash.Tear}[rng.IntN(3)]
	var dev *crash.Device
	var img *mem.Device
	kvtest.Stress(t, kvtest.StressConfig{
		Open: func(t testing.TB) kv.RW {
			base, err := mem.New(sd.ss, sd.size/uint64(sd.ss))
			require.NoError(t, err)
			require.NoError(t, Format(base))
			dev = crash.New(base)
			dev.FailAtWrite(cut)
			s, err := New(stressClock(seed), dev)
			require.NoError(t, err)
			return s
		},
		Reopen: func(t testing.TB, s kv.RW) kv.RW {
			s.Close() // fails when the power is gone
			t.Logf("power cut at write %d: %v (%d writes issued); crash image %s", cut, dev.PowerLost(), dev.Writes(), mode)
			img = dev.Crash(mode, int64(seed))
			s2, err := New(stressClock(seed), img)
			require.NoError(t, err, "open after the crash")
			// The crash image as the reopened store leaves it; the device
			// that lost its power is not checked.
			checkWhenDone(t, s2, img)
			return s2
		},
		AfterReopen: func(t testing.TB, s kv.RW) { checkStress(t, s.(*Store), img) },
		InDoubt:     func(err error) bool { return errors.Is(err, kv.ErrStorage) },
		MaxValue:    sd.maxValue,
		Rewrites:    sd.rewrites,
		Seed:        seed,
	})
}
