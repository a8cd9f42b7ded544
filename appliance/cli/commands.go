package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tarstore/tarstore/appliance"
	"github.com/tarstore/tarstore/appliance/config"
)

// command is one tarstore command.
type command struct {
	name     string
	synopsis string // the arguments, for the usage line
	summary  string // one line for `tarstore help`
	help     string // the long description
	examples []string
	op       string // the store operation reported for keys that do not parse
	flags    []flagDef
	settings []string // the configuration settings it takes as flags
	minArgs  int
	maxArgs  int  // -1: any number
	diskOnly bool // works on a disk only, not through a server
	noTarget bool // needs no configuration at all (help)
	run      func(c *cmdCtx) error
}

var (
	// clientSettings: commands that work on a disk or through a server.
	clientSettings = []string{config.Disk, config.Remote, config.TokenFile, config.CACert, config.ReadOnly,
		config.SectorSize, config.Virtio, config.NVMe}
	// diskSettings: commands that work on a disk only.
	diskSettings = []string{config.Disk, config.SectorSize, config.Virtio, config.NVMe}
	// checkSettings: check works on a disk or through a server, but
	// --read-only means nothing to it.
	checkSettings = []string{config.Disk, config.Remote, config.TokenFile, config.CACert, config.SectorSize, config.Virtio, config.NVMe}
	serveSettings = []string{config.Disk, config.Virtio, config.NVMe, config.Listen, config.TokenFile,
		config.ReadOnly, config.SectorSize, config.MaxConns, config.MaxConnsPerIP,
		config.TLSCert, config.TLSKey, config.AccessLog, config.LogFormat}
)

var helpFlag = flagDef{name: "help", help: "show this help"}
var jsonFlag = flagDef{name: "json", help: "print machine-readable JSON (errors too, on stderr)"}

// jsonErrorsFlag is --json of the commands whose output is not structured:
// every command takes it.
var jsonErrorsFlag = flagDef{name: "json", help: "print errors as JSON on stderr"}

// allFlags are the flags the command accepts: its own, its settings,
// --json, --help.
func (c *command) allFlags() []flagDef {
	defs := append([]flagDef{}, c.flags...)
	if !slices.ContainsFunc(defs, func(d flagDef) bool { return d.name == "json" }) {
		defs = append(defs, jsonErrorsFlag)
	}
	for _, name := range c.settings {
		s, _ := config.Lookup(name)
		arg := s.Arg
		if s.Bool {
			arg = ""
		}
		defs = append(defs, flagDef{name: s.Name, arg: arg, help: s.Help})
	}
	return append(defs, helpFlag)
}

func (c *command) checkArgs(a args) error {
	n := len(a.pos)
	switch {
	case n < c.minArgs:
		return fmt.Errorf("missing argument: usage: tarstore %s %s", c.name, c.synopsis)
	case c.maxArgs >= 0 && n > c.maxArgs:
		return fmt.Errorf("unexpected argument %q: usage: tarstore %s %s", a.pos[c.maxArgs], c.name, c.synopsis)
	}
	return nil
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// commands is the table of every command, in the order `tarstore help`
// lists them. It is filled in init to break the reference cycle through
// runHelp.
var commands []*command

func init() {
	commands = []*command{
		{
			name: "serve", synopsis: "[--disk PATH | --virtio SPEC | --nvme SPEC] [--listen ADDR] [--token-file F] [--tls-cert F --tls-key F] [--access-log [--log-format text|json]] [--read-only]",
			summary:  "serve the store over HTTP",
			settings: serveSettings, maxArgs: 0, diskOnly: true, run: runServe,
			help: `Opens the disk and serves the store over the HTTP API (/v1/kv/...,
/v1/status, /v1/check, /metrics, /healthz) until SIGINT or SIGTERM, then
shuts down gracefully: it stops accepting, lets requests in flight finish,
and closes the store, which flushes the device.

With no disk named anywhere (no --disk, no TARSTORE_DISK, no tarstore.disk=
on the kernel command line) it serves ./tarstore.img and creates it on first
use: a 1 GiB sparse image, formatted empty, which holds 1020 MiB of values
(the journal and the tar headers take the rest: a value of exactly 1 GiB
does not fit; 'tarstore format --size 2G' makes a larger image). A disk
named explicitly must exist (create it with 'tarstore format').

While it runs, the disk is locked: other tarstore commands cannot open it and
must go through the server with --remote (or TARSTORE_URL).

When it is ready it prints one line to stderr:
    tarstore: serving ./tarstore.img on http://127.0.0.1:7070
(with --listen 127.0.0.1:0 the port is picked by the system and shown there).

The web console is at / (browse, download, upload, rename, delete, status).

Listening on anything but loopback requires --token-file: clients must then
send "Authorization: Bearer <token>" (the CLI does, with --token-file).
--tls-cert and --tls-key (PEM files) serve HTTPS, and the banner then reads
https://; a token served over plain HTTP off loopback crosses the network in
clear, and the banner warns of it. Clients trust a private CA with
--ca-cert FILE. --access-log writes one line per request to stderr (method,
key, status, bytes, duration, client), as text or, with --log-format json,
as JSON; server errors are written there in any case.
Loopback is decided on addresses, not names: a host name in --listen must
resolve to loopback addresses only (localhost mapped to another address in
/etc/hosts or DNS needs a token too).

Connections are bounded: at most --max-conns at once, and at most
--max-conns-per-ip of them from one client address (a quarter of
--max-conns by default), so that one client cannot take them all; a few
more are kept for /healthz, /v1/status and /metrics, which stay answerable
when every slot is taken (other requests there get 503 overloaded with
Retry-After). Request bodies must keep coming: one that sends nothing for
30 s, or less than 1 KiB/s on average after that, is cut (408) and changes
nothing. Behind NAT or QEMU's user networking, where clients share an
address, raise --max-conns-per-ip.

--virtio drives a virtio-blk device with tarstore's own driver:
vhost-user:SOCKET is a vhost-user-blk back-end's socket (qemu-storage-daemon
--export type=vhost-user-blk,...); in the VM, pci:BDF is a modern virtio-pci
function (DMA memory from huge pages) and vfio:BDF the same behind an IOMMU.
--nvme drives namespace 1 of an NVMe controller with tarstore's own
driver, in the VM: pci:BDF (DMA memory from huge pages) or vfio:BDF (behind
an IOMMU). Block devices such as /dev/vdb or /dev/nvme0n1 work with --disk
through the kernel's driver.`,
			examples: []string{
				"tarstore serve                                  # ./tarstore.img on 127.0.0.1:7070",
				"tarstore serve --disk /dev/vdb --listen 0.0.0.0:7070 --token-file /etc/tarstore.token",
				"tarstore serve --disk data.img --read-only      # writes get 403 read_only",
				"tarstore serve --virtio vhost-user:/tmp/vu.sock # a qemu-storage-daemon export",
			},
		},
		{
			name: "format", synopsis: "--disk PATH --size SIZE [--force]",
			summary: "create an empty store on an image or device",
			flags: []flagDef{
				{name: "size", arg: "SIZE", help: "size of a new image file (K, M, G, T: powers of 1024)"},
				{name: "force", help: "format even if the device holds data"},
			},
			settings: diskSettings, maxArgs: 0, diskOnly: true, run: runFormat,
			help: `Makes PATH an empty store. When PATH does not exist, it creates a sparse image
file of --size bytes there. When it exists (an image file or a block device),
it formats it in place, and --size, if given, must match its size.

It refuses to overwrite data: if anything in the first 1 MiB of the device is
not zero (a file system, a partition table, a tar archive, a store with
values), it says what it found and stops, unless --force is given.`,
			examples: []string{
				"tarstore format --disk data.img --size 4G",
				"tarstore format --disk /dev/vdb --force",
			},
		},
		{
			name: "put", synopsis: "KEY [FILE|-]", op: "set",
			summary:  "store a value (set)",
			settings: clientSettings, minArgs: 1, maxArgs: 2, run: runPut,
			help: `Binds KEY to the bytes of FILE, or of standard input when FILE is "-" or
missing. Whatever KEY held is replaced (a dictionary is replaced whole), and
missing parent dictionaries are created. The write is durable and atomic:
after a crash KEY holds either the old or the whole new value.

The value is streamed with bounded memory, whatever its size. The store needs
the size up front: it is taken from FILE, or from standard input when that is
a regular file (a redirection). Otherwise (a pipe, a terminal) standard input
is first buffered into a temporary file in $TMPDIR, then sent.`,
			examples: []string{
				"tarstore put /docs/readme.txt README.md",
				"echo hello | tarstore put /greeting",
				"tarstore put /backup/home.tar - < home.tar",
				"tarstore --remote http://127.0.0.1:7070 put /a a.bin",
			},
		},
		{
			name: "get", synopsis: "KEY [--offset N] [--length N]", op: "get",
			summary: "write a value to standard output",
			flags: []flagDef{
				{name: "offset", arg: "N", help: "start at byte N (K, M, G, T suffixes allowed)"},
				{name: "length", arg: "N", help: "write at most N bytes"},
			},
			settings: clientSettings, minArgs: 1, maxArgs: 1, run: runGet,
			help: `Writes the value bound to KEY to standard output, streaming it with bounded
memory. With --offset and --length, writes that part of it (get_partial): an
offset at or past the end writes nothing, and a range that runs past the end
stops there. A negative offset or length is invalid_argument (exit 9).`,
			examples: []string{
				"tarstore get /docs/readme.txt",
				"tarstore get /big.iso --offset 1G --length 4K | xxd | head",
				"tarstore get /a --offset 1        # the same as: tarstore get --offset 1 /a",
			},
		},
		{
			name: "stat", synopsis: "KEY [--json]", op: "stat",
			summary:  "show what a key is: kind, size, digest, last-modified",
			flags:    []flagDef{jsonFlag},
			settings: clientSettings, minArgs: 1, maxArgs: 1, run: runStat,
			help: `Shows what KEY is bound to: its kind (value or dictionary), its size (values
only), its digest in hex (SHA-256 of a value's bytes; for a dictionary a
Merkle digest over its entries, which changes whenever anything below it
changes) and its last-modified time in RFC 3339 (UTC, to the second; for a
dictionary the newest time of anything below it, at any depth, found by
walking it; the epoch for an empty store). A key bound to nothing is
not_found (exit 3).

On a terminal, a key holding control characters or bytes that are not UTF-8
is shown in shell quoting, $'/a\nb' (as for ls); --json and pipes get it
exactly.`,
			examples: []string{
				"tarstore stat /docs/readme.txt",
				"tarstore stat / --json",
			},
		},
		{
			name: "ls", synopsis: "[KEY] [-r] [-l] [--json]", op: "ls",
			summary: "list a dictionary",
			flags: []flagDef{
				{name: "recursive", short: 'r', help: "list everything below KEY, not only its direct children"},
				{name: "long", short: 'l', help: "show kind, size, last-modified and key, in columns"},
				jsonFlag,
			},
			settings: clientSettings, maxArgs: 1, run: runLs,
			help: `Lists the direct children of the dictionary KEY (the root when KEY is
missing), one "<kind>\t<key>" line each, sorted by key, kind being "value"
or "dictionary". Listing a value is dictionary_expected (exit 5).

With -r (--recursive) it lists everything below KEY, depth first: each
dictionary is followed by what is below it, siblings sorted by key. Through
a server that is one streamed request (GET /v1/kv/KEY?list&recursive), so a
store of thousands of keys is listed in one go; the listing is printed as it
comes, in bounded memory.

With -l (--long) each line has four columns: kind, size in bytes ("-" for a
dictionary), last-modified time (RFC 3339, UTC, to the second; for a
dictionary the newest time of its direct entries, as the store's
last_modified says, which stat extends to everything below) and key. The
columns have fixed widths, so that a listing streams.

--json prints {"key": KEY, "entries": [...]}, each entry with key, kind,
size (values) and last_modified, like the HTTP API's ?list&long.

On a terminal, a key holding control characters (newline, escape, ...) or
bytes that are not UTF-8 is printed in bash's ANSI-C quoting, as GNU ls
does: $'/a\nb', $'/caf\xe9'; pasted into bash it is the key again. Other
keys are printed as they are. Pipes, files and --json get every key
exactly.`,
			examples: []string{
				"tarstore ls",
				"tarstore ls /docs -l",
				"tarstore ls / -r | grep -c '^value'",
				"tarstore ls /docs --json",
			},
		},
		{
			name: "du", synopsis: "[KEY] [-s] [--json]", op: "du",
			summary: "count the bytes and values below a key",
			flags: []flagDef{
				{name: "summarize", short: 's', help: "print KEY's total only, not each dictionary below it"},
				jsonFlag,
			},
			settings: clientSettings, maxArgs: 1, run: runDu,
			help: `Counts the bytes (the values' sizes: what get returns, not the space the
archive's headers take) and the values at or below KEY (the root when
missing). It prints one "<bytes>\t<values>\t<key>" line per dictionary
below KEY, each after what is below it (as du does), and KEY's line last;
with -s (--summarize) only KEY's line. A value counts as itself.

--json prints {"key", "bytes", "values"} for KEY, with "dictionaries" (the
same for each dictionary below it) unless -s is given.`,
			examples: []string{
				"tarstore du",
				"tarstore du /backups -s",
				"tarstore du / --json -s | jq .bytes",
			},
		},
		{
			name: "rm", synopsis: "KEY [-r] [--force] [--dry-run]", op: "rm",
			summary: "remove a value, or with -r a whole dictionary",
			flags: []flagDef{
				{name: "recursive", short: 'r', help: "remove a dictionary with everything below it"},
				{name: "force", help: "allow removing the root (rm -r --force / empties the store)"},
				{name: "dry-run", help: "list what would be removed, remove nothing"},
			},
			settings: clientSettings, minArgs: 1, maxArgs: 1, run: runRm,
			help: `Removes KEY. A value is removed; a dictionary only with -r (--recursive),
with everything below it (without -r it is refused, value_expected, exit 4,
and nothing is removed); the root, which empties the store, needs --force
too. Removing a key that is not there succeeds. Dictionaries left empty
disappear. Durable and atomic: after a crash either all of it is gone or
none.

--dry-run prints what would be removed, one "<kind>\t<key>" line each
(KEY first, then everything below it, as ls -r lists it), and removes
nothing. The HTTP API's DELETE removes dictionaries without asking.`,
			examples: []string{
				"tarstore rm /docs/old.txt",
				"tarstore rm -r /docs --dry-run",
				"tarstore rm -r /docs",
				"tarstore rm -r --force /       # empties the store",
			},
		},
		{
			name: "mv", synopsis: "SRC DST", op: "rename",
			summary:  "rename a value or a dictionary",
			settings: clientSettings, minArgs: 2, maxArgs: 2, run: runMv,
			help: `Renames SRC to DST, atomically. A value replaces the value at DST; when DST
is an existing dictionary, SRC moves into it (DST/base(SRC)). A dictionary
moves with everything below it. Moving a key below itself is
rename_source_prefix (exit 8).`,
			examples: []string{
				"tarstore mv /a.txt /b.txt",
				"tarstore mv /a.txt /archive      # /archive/a.txt when /archive is a dictionary",
			},
		},
		{
			name: "alloc", synopsis: "KEY SIZE [--mtime RFC3339]", op: "allocate",
			summary: "create a zero-filled value",
			flags: []flagDef{
				{name: "mtime", arg: "RFC3339", help: "modification time to record (default: now)"},
			},
			settings: clientSettings, minArgs: 2, maxArgs: 2, run: runAlloc,
			help: `Creates KEY as SIZE zero bytes (K, M, G, T suffixes: powers of 1024), for
example to fill it later with patch. KEY must not exist (already_present,
exit 6); no room is no_space (exit 7).`,
			examples: []string{
				"tarstore alloc /disk.raw 10G",
				"tarstore alloc /log 1M --mtime 2024-01-01T00:00:00Z",
			},
		},
		{
			name: "patch", synopsis: "KEY OFFSET [FILE|-]", op: "set_partial",
			summary:  "write bytes into a value at an offset",
			settings: clientSettings, minArgs: 2, maxArgs: 3, run: runPatch,
			help: `Writes the bytes of FILE (or standard input) into the value KEY at byte
OFFSET (set_partial). An offset past the end appends at the end, without a
gap; a missing KEY is created with the bytes. Data is sent in pieces of 1 MiB,
so memory stays bounded; each piece is durable when patch moves on, but a
large patch interrupted midway leaves the pieces before the interruption.`,
			examples: []string{
				"printf 'HELLO' | tarstore patch /greeting 0",
				"tarstore patch /disk.raw 1M sector.bin",
			},
		},
		{
			name: "df", synopsis: "[--json]", op: "status",
			summary:  "show capacity and free space",
			flags:    []flagDef{jsonFlag},
			settings: clientSettings, maxArgs: 0, run: runDf,
			help: `Shows the store's capacity (the archive area of the device, in bytes), the
free bytes (the tail past the archive plus reusable holes), the largest value
that fits now, the number of values, and the device.`,
			examples: []string{
				"tarstore df",
				"tarstore df --json | jq .free",
			},
		},
		{
			name: "check", synopsis: "[--repair] [--json]", op: "check",
			summary: "verify the archive and every value's data, on a disk or through a server",
			flags: []flagDef{
				{name: "repair", help: "repair the disk first: recovery, and damage becomes free space (a disk only)"},
				jsonFlag,
			},
			settings: checkSettings, maxArgs: 0, run: runCheck,
			help: `Opens the disk read-only, scans the archive afresh and compares it with what
the store made of it: members, holes (space of removed data), shadowed
duplicate members, the end-of-archive marker, damage, the data of every
value against the CRC-32C its header carries, the limits of the tar readers
(GNU tar, bsdtar, Python) and members the store does not expose (symbolic
links, devices, unsafe names). Each problem is printed with its offset;
"fatal" ones mean the archive is damaged or the store and the device
disagree.

Through a server (--remote URL or TARSTORE_URL, with --token-file when it
has a token) the server checks the disk it holds (POST /v1/check): in a VM
that is the only way to check it. The output is the same. The check blocks
the server's writes while it runs (about 6 s per GiB of archive on a
virtual disk that reads 1 GB/s; reads go on), so the server runs one at a
time and lets the next start only after four times as long as the last one
took; asked sooner, it answers 429 with Retry-After, and check waits and
asks again, for up to 10 minutes.

Exit status: 0 when there is no problem at all; 10 when a problem is fatal
(or the disk cannot be read); 14 when there are problems and none is fatal
(what a writable open repairs, seen on a disk opened read-only; members the
store does not expose; a store so full that the archive reaches its journal
area); 12 when no server answers at the URL, 13 when it refuses the token.

With --repair it first repairs the disk: recovery replays an interrupted
transaction from the journal, repairs a lone zero block at the end of the
archive, turns shadowed duplicates into holes and gives a hole at the tail
back (a writable open does all that too); and damage before the end of the
archive — a zeroed or garbled header, which makes a store serve read-only —
becomes free space (what lay there is lost, the members after it are kept),
and values whose data fails its CRC-32C are removed. Then it checks. It
prints what it found before, what it repaired, and the check after. A
server repairs what recovery can when it opens its disk, and serves a
damaged one read-only: stop it to repair, so --repair works on a disk only.`,
			examples: []string{
				"tarstore check --disk data.img",
				"tarstore check --disk data.img --repair",
				"tarstore check --remote http://127.0.0.1:7070 --json",
			},
		},
		{
			name: "import", synopsis: "DIR [PREFIX] [--delete] [-v]", op: "import",
			summary: "copy a host directory into the store",
			flags: []flagDef{
				{name: "delete", help: "remove the values below PREFIX that DIR has no file for"},
				{name: "verbose", short: 'v', help: "name each file copied, unchanged, removed or skipped"},
			},
			settings: clientSettings, minArgs: 1, maxArgs: 2, run: runImport,
			help: `Copies every regular file below the host directory DIR into the store, under
PREFIX (the root when missing): DIR/a/b becomes PREFIX/a/b. Values are
streamed with bounded memory. DIR is only read: nothing is written into it,
so a read-only directory imports.

A file whose value is already there with the same size and SHA-256 digest
is not written again: importing an unchanged tree a second time writes
nothing. With --delete, values below PREFIX that DIR has no file for are
removed, so that PREFIX mirrors DIR.

What is kept: each file's bytes, under its path. What is not: modification
times (the store stamps the time of the copy), file modes, owners, empty
directories (the store keeps no empty dictionaries), symbolic links and
special files (devices, FIFOs, sockets). Links and special files are
skipped and counted in the summary line; -v names them.

It ends with one line on standard output: values copied and their bytes,
unchanged, skipped (and removed, with --delete).`,
			examples: []string{
				"tarstore import ./site /www",
				"tarstore import ./site /www --delete -v",
			},
		},
		{
			name: "export", synopsis: "PREFIX DIR", op: "export",
			summary:  "copy values from the store into a host directory",
			settings: clientSettings, minArgs: 2, maxArgs: 2, run: runExport,
			help: `Copies every value below PREFIX into the host directory DIR (created when
missing): PREFIX/a/b becomes DIR/a/b, replacing a file of that name. When
PREFIX is a value, it becomes DIR/<its last segment>. Each file is written
beside its place, fsynced and renamed into place, and its modification time
is set to the value's last-modified. Files are created with mode 0666 less
the umask: the store keeps no modes, links or owners (see import).`,
			examples: []string{
				"tarstore export /www ./site-copy",
				"tarstore export / ./everything",
			},
		},
		{
			name: "bench", synopsis: "[--disk PATH] [--http] [--json]", op: "bench",
			summary: "measure the device's raw speed and the store's",
			flags: []flagDef{
				{name: "size", arg: "SIZE", help: "bytes per sequential round (default 64M)"},
				{name: "ops", arg: "N", help: "operations per random-read and write+flush round (default 256)"},
				{name: "rounds", arg: "N", help: "rounds of each measurement, alternating raw and store (default 5)"},
				{name: "http", help: "measure the store through the HTTP API over loopback instead"},
				jsonFlag,
			},
			settings: diskSettings, maxArgs: 0, diskOnly: true, run: runBench,
			help: `Measures, in one run, the device's own speed and the store's on it, and prints
each figure with the ratio store/raw:

  seq-write   sequential writes of 1 MiB, then a flush     (MiB/s)
              store: set of a new --size value, streamed
  overwrite-seq    the same, the store replacing its --size value
  seq-read    sequential reads of 1 MiB                    (MiB/s)
  rand-read   random reads of 4 KiB                        (IOPS)
  write-flush      a 4 KiB write made durable: raw write+flush,
                   store set of a new 4 KiB value          (IOPS)
  overwrite-flush  the same, the store replacing one of 8 values

With --http, the store side goes through the whole HTTP stack instead: bench
serves the API over loopback (127.0.0.1, a free port) in process and measures
as a client, against the same raw figures:

  http-put-seq    PUT of a new --size value streamed from memory (MiB/s)
                  raw: sequential writes of 1 MiB, then a flush
  http-overwrite-seq
                  the same, replacing the --size value
  http-get-seq    GET of that value, streamed and discarded    (MiB/s)
                  raw: sequential reads of 1 MiB
  http-device-put, http-device-get
                  the same transfers with a handler that writes the body
                  straight to the raw region (then flushes) or answers
                  from it, pipelined as the store streams: the HTTP stack
                  and the device together without the store: the most
                  the store's rows can reach on this machine
  http-loopback-put, http-loopback-get
                  the same transfers with a handler that discards the
                  body or answers from memory: the HTTP stack alone
  http-put-4k-16  durable 4 KiB PUTs of new keys from 16 concurrent
                  clients, --ops in all                        (IOPS)
                  raw: 4 KiB write+flush from one writer
  http-overwrite-4k-16
                  the same, each client replacing one of 8 values
                  of its own
  http-get-4k     GETs of 4 KiB values in random order, each with
                  its ETag, one after the other on one keep-alive
                  connection, --ops in all                     (IOPS)
                  raw: random reads of 4 KiB
  http-loopback-4k
                  the same GETs, answered by a handler that sends
                  4 KiB and an ETag from memory: the HTTP stack's
                  own cost of a GET on this machine (IOPS)
                  raw: random reads of 4 KiB, as for http-get-4k
                  A GET of a value costs at least a raw read plus
                  this, so the best store/raw http-get-4k can reach
                  is raw time/(raw time + loopback time) per GET:
                  r/(1+r), r being this row's store/raw
  http-device-4k  the same GETs, answered by a handler that reads
                  4 KiB at a random place of the raw region (one
                  device read, as a small GET of the store) and sends
                  them with an ETag: the HTTP stack and the device
                  without the store; http-get-4k's store/raw divided
                  by this row's is the store's own share      (IOPS)
                  raw: random reads of 4 KiB, as for http-get-4k
  cli-get-seq     the --size value streamed to /dev/null as 'tarstore
                  get' streams it (32 KiB writes)              (MiB/s)
                  raw: sequential reads of 1 MiB
  cli-put-seq     a new --size value set from a file in the page
                  cache as 'tarstore put KEY FILE' sets it     (MiB/s)
                  raw: sequential writes of 1 MiB, then a flush

Raw and store rounds alternate, so both see the same device conditions; the
ratio printed is the median of the rounds' own ratios (both sides of a round
run back to back), which one slow moment of a shared machine does not sway.
The store's data is never touched by raw I/O: raw reads and writes go only
to the free space at the end of the archive area, past everything the store
holds and will write during the run. The store's test values live under
/.tarstore-bench and are removed at the end. When the free tail is too small
for --size, bench says so and stops (no_space, exit 7): try a smaller --size.`,
			examples: []string{
				"tarstore bench --disk data.img",
				"tarstore bench --disk /dev/vdb --size 256M --json",
				"tarstore bench --disk data.img --http",
			},
		},
		{
			name: "image", synopsis: "[--out FILE] [--kernel VERSION] [--init FILE] [--modules-root DIR]",
			summary: "build the initramfs that boots the appliance in a VM",
			flags: []flagDef{
				{name: "out", arg: "FILE", help: "where to write the image (default tarstore-initramfs.gz)"},
				{name: "kernel", arg: "VERSION", help: "the kernel whose modules go in (default: the newest under --modules-root)"},
				{name: "init", arg: "FILE", help: "the static tarstore binary to boot as /init (default: this program)"},
				{name: "modules-root", arg: "DIR", help: "where the kernels' modules are (default /lib/modules)"},
			},
			maxArgs: 0, noTarget: true, run: runImage,
			help: `Builds the appliance's initramfs: a gzip-compressed cpio (newc) archive holding
this program (or --init) as /init and the kernel modules the appliance needs
(virtio PCI, virtio-blk, virtio-net, NVMe, fw_cfg, and what they depend on, in
the order modules.dep gives), for Debian's kernel (linux-image-amd64). The same
inputs give the same bytes. /init must be linked statically: build it with
CGO_ENABLED=0.

Boot it with that kernel, the disk as virtio-blk or NVMe, and the API port
forwarded; scripts/qemu/run does all of it:

  qemu-system-x86_64 -M q35 -m 256M -display none -serial stdio -no-reboot \
    -kernel /boot/vmlinuz-VERSION -initrd tarstore-initramfs.gz \
    -append "console=ttyS0 quiet panic=-1" \
    -netdev user,id=n0,hostfwd=tcp:127.0.0.1:7070-:7070 -device virtio-net-pci,netdev=n0 \
    -drive file=data.img,format=raw,if=none,id=d0,cache=none -device virtio-blk-pci,drive=d0 \
    -fw_cfg name=opt/tarstore/token,file=token.txt

The appliance reads its settings from the kernel command line (tarstore.*=, as
'tarstore help' lists them), listens on 0.0.0.0:7070 in the VM, and needs a
bearer token there: QEMU passes it as the fw_cfg file opt/tarstore/token.`,
			examples: []string{
				"CGO_ENABLED=0 go build -o tarstore . && ./tarstore image --out initramfs.gz",
				"tarstore image --kernel 6.1.0-28-amd64 --init ./tarstore --out /tmp/tarstore.gz",
			},
		},
		{
			name: "version", synopsis: "[--json]",
			summary: "show the version, the commit and the Go version",
			flags:   []flagDef{jsonFlag},
			maxArgs: 0, noTarget: true, run: runVersion,
			help: `Prints the version of tarstore, the commit it was built from ("unknown"
when the build has no VCS stamp, as with go run; "(modified)" when the tree
had uncommitted changes) and the Go toolchain. 'tarstore --version' is the
same.`,
			examples: []string{"tarstore version", "tarstore --version", "tarstore version --json"},
		},
		{
			name: "completion", synopsis: "bash|zsh|fish",
			summary: "print a shell completion script",
			minArgs: 1, maxArgs: 1, noTarget: true, run: runCompletion,
			help: `Prints the completion script of the shell: command names, then each
command's flags and file names.`,
			examples: []string{
				"source <(tarstore completion bash)",
				"tarstore completion zsh > \"${fpath[1]}/_tarstore\"",
				"tarstore completion fish > ~/.config/fish/completions/tarstore.fish",
			},
		},
		{
			name: "help", synopsis: "[COMMAND]",
			summary: "show help for tarstore or a command",
			maxArgs: 1, noTarget: true, run: runHelp,
			help: `Shows the list of commands, or the help of one: 'tarstore help put' is the
same as 'tarstore put --help'.`,
		},
	}
}

// printHelp prints the command's help: usage, description, flags,
// settings, examples.
func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: tarstore %s %s\n\n%s\n", c.name, c.synopsis, c.summary)
	fmt.Fprintf(w, "\n%s\n", c.help)
	if len(c.flags) > 0 {
		fmt.Fprintf(w, "\nflags:\n")
		printFlags(w, c.flags, nil)
	}
	if len(c.settings) > 0 {
		fmt.Fprintf(w, "\nsettings (flag, environment variable; see 'tarstore help'):\n")
		var defs []flagDef
		var envs []string
		for _, name := range c.settings {
			s, _ := config.Lookup(name)
			arg := s.Arg
			if s.Bool {
				arg = ""
			}
			h := s.Help
			if s.Default != "" && !s.Bool && s.Default != "0" {
				h += " (default " + s.Default + ")"
			}
			defs = append(defs, flagDef{name: s.Name, arg: arg, help: h})
			envs = append(envs, s.Env)
		}
		printFlags(w, defs, envs)
	}
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nexamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if !c.noTarget {
		fmt.Fprintf(w, "\nFlags may come before or after the arguments; -- ends them.\n")
	}
}

func printFlags(w io.Writer, defs []flagDef, envs []string) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for i, d := range defs {
		f := "--" + d.name
		if d.short != 0 {
			f = "-" + string(d.short) + ", " + f
		}
		if d.arg != "" {
			f += " " + d.arg
		}
		if envs != nil {
			f += "\t" + envs[i]
		}
		fmt.Fprintf(tw, "  %s\t%s\n", f, d.help)
	}
	tw.Flush()
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: tarstore <command> [arguments] [flags]

tarstore (version %s) keeps a key-value store on a disk image or block
device as a valid tar archive, and serves it over HTTP. Commands work on the
disk directly (embedded: --disk, default %s) or through a
running server (--remote URL).

commands:
`, appliance.Version, config.DefaultDisk)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, firstArgs(c.synopsis), c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, `
settings: each comes from the first of: the flag, the environment variable,
the kernel command line (key=value, read only when tarstore runs as PID 1),
the default.
`)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  flag\tenvironment\tkernel\tdefault\n")
	for _, s := range config.Settings {
		f := "--" + s.Name
		if !s.Bool {
			f += " " + s.Arg
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f, s.Env, s.Kernel, s.Default)
	}
	tw.Flush()
	fmt.Fprintf(w, `
The disk, virtio, nvme and remote settings name one target together: the
first layer that names any of them decides (--disk beats TARSTORE_URL).

Flags may come before or after the arguments (GNU style); --flag=value and
--flag value are the same; -- ends the flags. Sizes take K, M, G, T suffixes
(powers of 1024). Structured output (ls, du, stat, df, check, bench, version)
has --json; with --json, every command prints its errors as JSON on stderr,
{"error":{"code":...,"key":...,"message":...,"op":...}}.

exit status: 0 ok, 1 internal error, 2 usage, 3 not_found, 4 value_expected,
5 dictionary_expected, 6 already_present, 7 no_space, 8 rename_source_prefix,
9 invalid_key or invalid_argument, 10 storage_error or corrupt, 11 read_only,
12 unreachable (no server at the URL), 13 unauthorized (token missing or
refused), 14 check found problems, none of them fatal.
Errors go to stderr as "tarstore: <command> <key>: <message> (<code>)".
Through a server, 12 says "is 'tarstore serve' running there?" and 13
"give the server's token with --token-file".

Long transfers (put, get, import, export of 8 MiB or more) draw a progress
bar on a terminal, also while a pipe is read; off a terminal, put and get
print one line at the end on stderr ("put /big: 1.0 GiB in 3.2 s, ...").

'tarstore completion bash|zsh|fish' prints a completion script;
'tarstore --version' the version.

Run 'tarstore help <command>' (or 'tarstore <command> --help') for details
and examples.
`)
}

// firstArgs shortens a synopsis for the command list: the positional part.
func firstArgs(s string) string {
	var out []string
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "[--") || strings.HasPrefix(f, "--") || strings.HasPrefix(f, "|") {
			break
		}
		out = append(out, f)
	}
	return strings.Join(out, " ")
}

func runHelp(c *cmdCtx) error {
	if len(c.a.pos) == 0 {
		usage(c.env.Stdout)
		return nil
	}
	cmd := lookup(c.a.pos[0])
	if cmd == nil {
		return usagef("%s", unknownCommand(c.a.pos[0]))
	}
	cmd.printHelp(c.env.Stdout)
	return nil
}
