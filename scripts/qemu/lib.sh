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

# monitor STATE CMD: sends one command to the QEMU monitor of STATE.
monitor() {
	python3 - "$1/monitor.sock" "$2" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
time.sleep(0.2)
s.recv(65536)
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.2)
PY
}
