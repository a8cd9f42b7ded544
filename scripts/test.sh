#!/usr/bin/env bash
# Runs every test of tarstore: formatting, vet, staticcheck, and all packages under the race
# detector, including the driver tests on real loop devices and the appliance
# booted in QEMU, then a bounded fuzzing run of the HTTP handler.
#
# On a fresh Debian 12 machine it first installs what the tests need (as root,
# with apt-get). Usage: scripts/test.sh [go test flags...], e.g.
#   scripts/test.sh                 # everything
#   scripts/test.sh -run TestDevice # a subset (flags go to `go test`)
set -euo pipefail
cd "$(dirname "$0")/.."

# Commands the tests use, and the Debian package that provides each.
declare -A need=(
	[losetup]=util-linux   # loop devices for hw/file (512- and 4096-byte sectors)
	[blockdev]=util-linux
	[tar]=tar              # GNU tar, bsdtar and Python's tarfile read every archive the store writes
	[bsdtar]=libarchive-tools
	[python3]=python3
	[curl]=curl            # the HTTP API is also tested with real curl
	[chromium]=chromium    # the web console is tested in headless Chromium (chromedp)
	[qemu-system-x86_64]=qemu-system-x86 # the appliance is booted in QEMU (boot's VM tests)
	[qemu-storage-daemon]=qemu-system-common # vhost-user-blk back-end of hw/virtio; NBD server for a VM
	[qemu-img]=qemu-utils
)

install_missing() {
	local pkgs=() cmd
	for cmd in "${!need[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || pkgs+=("${need[$cmd]}")
	done
	# Debian's kernel and its modules, which the VM tests boot.
	compgen -G '/lib/modules/*/modules.dep' >/dev/null && compgen -G '/boot/vmlinuz-*' >/dev/null || pkgs+=(linux-image-amd64)
	[ ${#pkgs[@]} -eq 0 ] && return 0
	mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
	echo "test.sh: installing ${pkgs[*]}" >&2
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	else
		echo "test.sh: Go $(sed -n 's/^go //p' go.mod) or newer is required (https://go.dev/dl/)" >&2
		exit 1
	fi
fi
install_missing
# Loop devices need the loop driver; load it if it is a module and not loaded.
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
# The DMA memory test maps 2 MiB huge pages (physical addresses from
# /proc/self/pagemap, root only): make sure four are free.
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
	hp_free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
	if [ "${hp_free:-0}" -lt 4 ]; then
		echo $(($(cat /proc/sys/vm/nr_hugepages) + 4 - ${hp_free:-0})) >/proc/sys/vm/nr_hugepages || true
	fi
fi

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "== go vet"
go vet ./...
# staticcheck, pinned: fetched from the module proxy on first use.
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "== go test -race"
go test -race -count=1 -timeout 60m "$@" ./...
# The fuzz targets' seeds ran above as ordinary tests; the HTTP handler is
# also fuzzed for a bounded time (a full run only: not with a subset).
if [ $# -eq 0 ]; then
	echo "== go test -fuzz FuzzHandler (20s)"
	go test -run '^$' -fuzz '^FuzzHandler$' -fuzztime 20s ./appliance/httpapi
fi
