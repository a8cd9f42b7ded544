// Package hwtest is the conformance suite for hw.Block drivers, in the
// spirit of testing/fstest.TestFS: every driver (hw/mem, hw/crash, hw/file,
// hw/virtio, hw/nvme) runs the same checks of the contract written in
// package hw (SPEC §8).
//
// TestDevice takes a Harness that opens the device under test and runs one
// subtest per part of the contract, each on a freshly opened device:
//
//   - Geometry: SectorSize is a positive multiple of 512, there are at least
//     256 sectors, the device is writable, Info is stable.
//   - RoundTrip, Vectored, Alignment, Large: data written is read back
//     exactly, whatever the vectoring of the write and of the read, the memory
//     alignment of the buffers (also buffers from hw.AllocBuffer, released
//     with hw.ReleaseBuffer and allocated again) and the
//     size of the transfer (1 MiB and more, and sizes that are not a power of
//     two); neighbouring sectors and bytes outside the buffers are untouched.
//   - Misaligned, OutOfRange: invalid requests fail with an *hw.Error of the
//     right Kind, Op and LBA, and a failed write changes nothing.
//   - Flush, WriteZeroes, Discard: flush succeeds; the optional Zeroer and
//     Discarder, when the driver has them, check their ranges, WriteZeroes
//     reads back as zeroes, and the hw.WriteZeroes fallback works. A driver
//     may implement them for a device that lacks the operation: valid
//     requests then fail with hw.ErrUnsupported and change nothing.
//   - Concurrent: several goroutines write, read and flush disjoint regions at
//     once and verify every byte; run it with -race.
//   - Close: Close is idempotent and every request after it fails with
//     hw.ErrClosed.
//   - Persistence (when Harness.Reopen is set): flushed data survives Close
//     and a new open.
//
// Every error the suite provokes must be an *hw.Error (errors.As) whose Kind
// matches with errors.Is, whose Op is the request's ("read", "write",
// "flush", "write-zeroes", "discard") and whose LBA is the request's first
// sector. TestReadOnly checks the read-only side of the contract.
//
// The data written is a pseudo-random function of a tag and of each sector's
// own LBA, so a sector landing at the wrong place, or coming from the wrong
// request, is caught. The suite moves a few MiB at most and assumes nothing
// about the initial contents of the device.
package hwtest

import (
	"testing"

	"github.com/tarstore/tarstore/hw"
)

// Harness describes how to obtain the device under test.
type Harness struct {
	// Open returns a fresh writable device of at least 256 sectors;
	// contents arbitrary. The suite closes it.
	Open func(t *testing.T) hw.Block
	// Reopen, if non-nil, opens the same storage again after the suite has
	// flushed and closed dev (persistence check). The suite closes the
	// device it returns.
	Reopen func(t *testing.T, dev hw.Block) hw.Block
}

// The smallest devices TestDevice and TestReadOnly accept.
const (
	minSectors         = 256
	minReadOnlySectors = 8
)

// TestDevice runs the conformance suite on the devices h opens, as subtests
// of t.
func TestDevice(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("hwtest: Harness.Open is nil")
	}
	cases := []struct {
		name string
		run  func(t *testing.T, dev hw.Block, info hw.Info)
	}{
		{"Geometry", testGeometry},
		{"RoundTrip", testRoundTrip},
		{"Vectored", testVectored},
		{"Alignment", testAlignment},
		{"Large", testLarge},
		{"Misaligned", testMisaligned},
		{"OutOfRange", testOutOfRange},
		{"Flush", testFlush},
		{"WriteZeroes", testWriteZeroes},
		{"Discard", testDiscard},
		{"Concurrent", testConcurrent},
		{"Close", testClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dev, info := openDevice(t, h.Open, minSectors)
			if info.ReadOnly {
				t.Fatalf("Harness.Open returned a read-only device: %+v", info)
			}
			c.run(t, dev, info)
		})
	}
	if h.Reopen != nil {
		t.Run("Persistence", func(t *testing.T) { testPersistence(t, h) })
	}
}

// TestReadOnly checks a read-only device (open returns one of at least 8
// sectors): Info says read-only, reads work and agree with each other, and
// writes, write-zeroes and discards fail with hw.ErrReadOnly and change
// nothing. The suite closes the devices open returns.
func TestReadOnly(t *testing.T, open func(t *testing.T) hw.Block) {
	t.Helper()
	if open == nil {
		t.Fatal("hwtest: open is nil")
	}
	cases := []struct {
		name string
		run  func(t *testing.T, dev hw.Block, info hw.Info)
	}{
		{"Geometry", testReadOnlyGeometry},
		{"Read", testReadOnlyRead},
		{"Write", testReadOnlyWrite},
		{"Close", testReadOnlyClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dev, info := openDevice(t, open, minReadOnlySectors)
			c.run(t, dev, info)
		})
	}
}
