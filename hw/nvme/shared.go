package nvme

// The command layer a transport that owns no queues shares with this
// driver: hw/nvme/passthru hands its commands to the kernel's nvme driver
// (NVME_IOCTL_ADMIN_CMD, NVME_IOCTL_IO_CMD), which fills in the command
// identifier and the data pointer itself. It builds its commands, decodes
// Identify and reports statuses with what follows, so that both drivers
// send the same commands and fail the same way.

// Command is a command as such a transport sends it: the fields of a
// submission queue entry (Base 2.0 §3.3.3.1) other than the command
// identifier and the data and metadata pointers. CDW2 and CDW3 are zero in
// every command built here.
type Command struct {
	Opcode uint8
	NSID   uint32
	CDW    [6]uint32 // CDW10 ... CDW15
}

func (c *command) shared() Command {
	s := Command{Opcode: c.opcode(), NSID: c.nsid()}
	for i := range s.CDW {
		s.CDW[i] = c.cdw(10 + i)
	}
	return s
}

// MaxBlocks is the most logical blocks one Read, Write or Write Zeroes
// command moves: NLB is a 0's based 16-bit field.
const MaxBlocks = maxBlocks

// IdentifySize is the size of an Identify data structure (Base 2.0 §5.17).
const IdentifySize = len(identifyController{})

// DSMRangeSize is the size of one Dataset Management range (NVM Command Set
// 1.0 §3.2.3).
const DSMRangeSize = dsmRangeSize

// IdentifyControllerCommand asks for the Identify Controller data structure
// (CNS 01h), IdentifySize bytes from the controller.
func IdentifyControllerCommand() Command { return identifyCmd(cnsController, 0).shared() }

// IdentifyNamespaceCommand asks for the Identify Namespace data structure
// of namespace nsid (CNS 00h), IdentifySize bytes from the controller.
func IdentifyNamespaceCommand(nsid uint32) Command {
	return identifyCmd(cnsNamespace, nsid).shared()
}

// ReadCommand reads blocks (1..MaxBlocks) logical blocks at slba (NVM
// Command Set 1.0 §3.2.4).
func ReadCommand(nsid uint32, slba uint64, blocks int) Command {
	return blocksCmd(opRead, nsid, slba, blocks).shared()
}

// WriteCommand writes blocks (1..MaxBlocks) logical blocks at slba (NVM
// §3.2.6).
func WriteCommand(nsid uint32, slba uint64, blocks int) Command {
	return blocksCmd(opWrite, nsid, slba, blocks).shared()
}

// WriteZeroesCommand zeroes blocks (1..MaxBlocks) logical blocks at slba
// (NVM §3.2.8, DEAC clear: they read back as zeroes). It moves no data.
func WriteZeroesCommand(nsid uint32, slba uint64, blocks int) Command {
	return blocksCmd(opWriteZeroes, nsid, slba, blocks).shared()
}

// FlushCommand commits namespace nsid's volatile write cache (Base 2.0
// §7.1). It moves no data.
func FlushCommand(nsid uint32) Command { return flushCmd(nsid).shared() }

// DeallocateCommand is a Dataset Management command with the Deallocate
// attribute (NVM §3.2.3) over ranges (1..256) ranges, whose list (see
// DeallocateRanges) goes to the controller as the command's data.
func DeallocateCommand(nsid uint32, ranges int) Command { return dsmCmd(nsid, ranges).shared() }

// DeallocateRanges lays out the Dataset Management range list of one
// Deallocate command that covers sectors (> 0) blocks of sectorSize bytes
// from lba, or as many of them as maxRanges ranges (at most 256) hold,
// each range at most 1 GiB, as Device.Discard does. It returns the list,
// DSMRangeSize bytes per range, and the number of blocks it covers; the
// caller sends the rest in further commands.
func DeallocateRanges(lba, sectors uint64, sectorSize, maxRanges int) (list []byte, blocks uint64) {
	ranges, blocks := dsmRanges(lba, sectors, sectorSize, maxRanges)
	list = make([]byte, len(ranges)*dsmRangeSize)
	for i, rg := range ranges {
		putRange(list[i*dsmRangeSize:], rg[0], uint32(rg[1]))
	}
	return list, blocks
}

// dsmRanges cuts the first blocks of sectors blocks at lba into at most
// min(maxRanges, 256) ranges (at least one) of at most dsmRangeBytes each,
// and returns them as {first block, blocks} with the number of blocks
// they cover.
func dsmRanges(lba, sectors uint64, sectorSize, maxRanges int) (ranges [][2]uint64, covered uint64) {
	per := uint64(dsmRangeBytes / sectorSize)
	n := max(min(maxRanges, 256), 1)
	for len(ranges) < n && sectors > 0 {
		k := min(per, sectors)
		ranges = append(ranges, [2]uint64{lba, k})
		lba, sectors, covered = lba+k, sectors-k, covered+k
	}
	return ranges, covered
}

// Namespace is what Identify tells about a namespace and its controller.
type Namespace struct {
	// Identity as Device.Identity reports it, except that Version is the
	// Identify Controller VER field, MaxTransfer is the bound given to
	// DecodeIdentify lowered to MDTS and rounded down to whole blocks, and
	// QueueEntries is 0.
	Identity
	BlockSize      int    // 2^LBADS of the LBA format in use
	Blocks         uint64 // NSZE
	WriteProtected bool   // NSATTR bit 0
}

// DecodeIdentify decodes the Identify Controller data ctrl and the Identify
// Namespace data ns of namespace nsid — the answers to
// IdentifyControllerCommand and IdentifyNamespaceCommand, IdentifySize
// bytes each (shorter data reads as zeroes) — and checks the namespace as
// Open does. maxTransfer bounds the data of one command; MDTS lowers it,
// counted in pages of 4 KiB: the smallest memory page size (CAP.MPSMIN 0)
// and the one the Linux driver uses, so for a controller with larger
// pages the bound is lower than it need be, never higher. An inactive
// namespace, a format with metadata, a block size that is not a power of
// two from 512 B to 64 KiB, or a transfer bound below one block fails with
// ErrBadController.
func DecodeIdentify(ctrl, ns []byte, nsid uint32, maxTransfer int) (Namespace, error) {
	var id identifyController
	var nsd identifyNamespace
	copy(id[:], ctrl)
	copy(nsd[:], ns)
	// A bring-up that read CAP 0: MPSMIN 0, the 4 KiB pages the doc
	// comment gives MDTS in.
	g, err := newGeometry(&bringup{}, &id, &nsd, nsid, layout{data: maxTransfer}, &Options{})
	if err != nil {
		return Namespace{}, err
	}
	ident := g.ident
	ident.Version = id.ver()
	return Namespace{Identity: ident, BlockSize: g.sectorSize, Blocks: g.sectors, WriteProtected: g.readOnly}, nil
}

// NewStatusError describes a command of op (as in StatusError) at lba that
// the controller completed with status s, not Successful Completion.
func NewStatusError(op string, lba uint64, s Status) *StatusError {
	return newStatusError(op, lba, s)
}

// Kind is the hw error kind of the failed command: hw.ErrUnsupported for
// Invalid Command Opcode, and for Invalid Field in Command on "flush",
// "write-zeroes" and "discard"; hw.ErrIO for every other status.
func (e *StatusError) Kind() error { return e.kind() }
