# Shared by scripts/qemu/run and stop: messages, installing what is
# missing, the state directory, the kernel, the accelerator.

say() { echo "tarstore-qemu: $*" >&2; }
die() { say "error: $*"; exit 1; }

# state_dir PORT: where run keeps the binary, image, token, monitor socket
# and pid of the appliance on PORT.
state_dir() {
	local base=${TARSTORE_QEMU_STATE:-${XDG_RUNTIME_DIR:-/tmp}/tarstore-qemu-$(id -u)}
	echo "$base/$1"
}

# need_tools installs QEMU and Debian's kernel when missing, and checks Go.
need_tools() {
	local pkgs=()
	command -v qemu-system-x86_64 >/dev/null 2>&1 || pkgs+=(qemu-system-x86)
	command -v qemu-img >/dev/null 2>&1 || pkgs+=(qemu-utils)
	compgen -G '/boot/vmlinuz-*' >/dev/null || pkgs+=(linux-image-amd64)
	if [ ${#pkgs[@]} -gt 0 ]; then
		say "installing ${pkgs[*]}"
		local sudo=()
		[ "$(id -u)" -eq 0 ] || sudo=(sudo)
		"${sudo[@]}" apt-get update -qq
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >/dev/null
	fi
	if ! command -v go >/dev/null 2>&1; then
		[ -x /usr/local/go/bin/go ] || die "Go is required to build the appliance (https://go.dev/dl/)"
		export PATH="/usr/local/go/bin:$PATH"
	fi
}

# kernel_version: $TARSTORE_KERNEL, or the newest kernel in /boot that has
# its modules installed.
kernel_version() {
	if [ -n "${TARSTORE_KERNEL:-}" ]; then
		[ -e "/boot/vmlinuz-$TARSTORE_KERNEL" ] || die "no /boot/vmlinuz-$TARSTORE_KERNEL"
		echo "$TARSTORE_KERNEL"
		return
	fi
	local v best=""
	for f in /boot/vmlinuz-*; do
		v=${f#/boot/vmlinuz-}
		[ -e "/lib/modules/$v/modules.dep" ] || continue
		best=$(printf '%s\n%s\n' "$best" "$v" | sed '/^$/d' | sort -V | tail -1)
	done
	[ -n "$best" ] || die "no kernel with modules in /boot and /lib/modules: apt-get install linux-image-amd64"
	echo "$best"
}

# boot_kernel VERSION: the kernel file to boot. Debian's vmlinuz is
# compressed with xz, which the kernel undoes itself before it starts:
# under TCG that alone takes seconds. Its uncompressed vmlinux has a PVH
# entry point (CONFIG_PVH), which QEMU boots directly; it is extracted
# once into the cache. Where that fails, vmlinuz.
boot_kernel() {
	local vmlinuz=/boot/vmlinuz-$1
	local cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tarstore
	local out=$cache/vmlinux-$1
	if [ ! -s "$out" ]; then
		mkdir -p "$cache"
		python3 - "$vmlinuz" "$out.new" <<'PY' && mv "$out.new" "$out" || { rm -f "$out.new"; echo "$vmlinuz"; return; }
import lzma, struct, sys
data = open(sys.argv[1], "rb").read()
i = data.find(b"\xfd7zXZ\x00")
if i < 0:
    sys.exit(1)
elf = lzma.LZMADecompressor().decompress(data[i:])
# An ELF64 program with a PT_NOTE holding Xen's PHYS32_ENTRY (18): PVH.
if elf[:4] != b"\x7fELF" or elf[4] != 2:
    sys.exit(1)
phoff, = struct.unpack_from("<Q", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
pvh = False
for k in range(phnum):
    ptype, = struct.unpack_from("<I", elf, phoff + k * phentsize)
    if ptype != 4:
        continue
    off, = struct.unpack_from("<Q", elf, phoff + k * phentsize + 8)
    size, = struct.unpack_from("<Q", elf, phoff + k * phentsize + 32)
    j = off
    while j + 12 <= off + size:
        namesz, descsz, ntype = struct.unpack_from("<III", elf, j)
        name = elf[j + 12:j + 12 + namesz].rstrip(b"\0")
        pvh = pvh or (name == b"Xen" and ntype == 18)
        j += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
if not pvh:
    sys.exit(1)
open(sys.argv[2], "wb").write(elf)
PY
	fi
	echo "$out"
}

# pick_accel KERNEL INITRD: kvm when a probe boot with KVM powers off
# cleanly (cached per QEMU and kernel version), else tcg.
# TARSTORE_QEMU_ACCEL=kvm|tcg skips the probe.
pick_accel() {
	if [ -n "${TARSTORE_QEMU_ACCEL:-}" ]; then
		echo "$TARSTORE_QEMU_ACCEL"
		return
	fi
	if [ ! -w /dev/kvm ]; then
		echo tcg
		return
	fi
	local cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tarstore
	local key
	key=$(qemu-system-x86_64 --version | head -1 | tr -c 'a-zA-Z0-9.\n' _)-$(basename "$1")
	if [ -s "$cache/accel-$key" ]; then
		cat "$cache/accel-$key"
		return
	fi
	say "probing KVM with a test boot (once; cached in $cache)"
	local out accel=tcg
	out=$(timeout 30 qemu-system-x86_64 -M q35 -accel kvm -m 128M -no-reboot -display none -serial stdio \
		-kernel "$1" -initrd "$2" -append "console=ttyS0 quiet panic=-1 tarstore.probe" </dev/null 2>&1) || true
	if grep -q "tarstore: probe boot ok" <<<"$out"; then
		accel=kvm
	fi
	mkdir -p "$cache"
	echo "$accel" >"$cache/accel-$key"
	echo "$accel"
}

# monitor STATE CMD: sends one command to the QEMU monitor of STATE and
# waits until it ran (the next prompt).
monitor() {
	python3 - "$1/monitor.sock" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
def until(text):
    out = b""
    while text not in out:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("the QEMU monitor closed the connection")
        out += chunk
until(b"(qemu) ")
s.sendall(sys.argv[2].encode() + b"\n")
until(b"(qemu) ")
PY
}
