#!/usr/bin/env bash
# Regenerates the golden archives in this directory with real tools:
# GNU tar 1.34, bsdtar 3.6.2 (Debian package libarchive-tools), Python 3.11
# tarfile and Go archive/tar (genpy.py and gengo.go next to this script).
# The tests read the committed files; they never run this script.
#
#   cd kvtar/tarfmt/testdata && ./gen.sh
#
# Every archive is built from the same small tree (see mktree) with fixed
# mtimes, owners and contents, so the output differs between runs only where
# a tool stores something it reads from the host (device/inode numbers in
# bsdtar's SCHILY.* records).
set -euo pipefail
export TZ=UTC LC_ALL=C.UTF-8
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

T=1600000000 # 2020-09-13T12:26:40Z

# mktree DIR: the source tree.
#   hello.txt, empty, dir/file.txt, emptydir/    plain members
#   héllo-ü.txt                                  non-ASCII name (fits ustar)
#   L100/…/file-with-a-long-name.txt             path of 150 bytes (> 100, splittable for ustar)
#   L256/…/deep.txt                              path of ~300 bytes (> 256: needs L or PAX path)
#   symlink -> hello.txt, hardlink => hello.txt
#   longlink -> <130-byte target>                link name > 100
#   subsec.txt                                   mtime with nanoseconds
#   old.txt                                      mtime before 1970
mktree() {
	local d=$1
	mkdir -p "$d"
	cd "$d"
	printf 'hello, world\n' >hello.txt
	: >empty
	mkdir -p dir emptydir
	printf 'inside a directory\n' >dir/file.txt
	printf 'non-ASCII name\n' >héllo-ü.txt
	local p100=L100/$(printf 'd%.0s' {1..60})/$(printf 'e%.0s' {1..40})
	mkdir -p "$p100"
	printf 'long name\n' >"$p100/file-with-a-long-name.txt"
	local p256=L256/$(printf 'f%.0s' {1..90})/$(printf 'g%.0s' {1..90})/$(printf 'h%.0s' {1..90})
	mkdir -p "$p256"
	printf 'very long name\n' >"$p256/deep.txt"
	ln -s hello.txt symlink
	ln hello.txt hardlink
	ln -s "$(printf 'target-%.0s' {1..18})end" longlink
	printf 'sub-second mtime\n' >subsec.txt
	touch -h -d @$T {hello.txt,empty,dir/file.txt,héllo-ü.txt,symlink,longlink} \
		"$p100/file-with-a-long-name.txt" "$p256/deep.txt"
	touch -d @$T.123456789 subsec.txt
	printf 'before 1970\n' >old.txt
	touch -d @-86400 old.txt
	find . -type d -exec touch -d @$T {} +
	cd - >/dev/null
}

# mksparse DIR: sparse.bin (3 MiB, three 4 KiB data extents: real holes on
# disk), frag.bin (40 fragments of 512 bytes with 512-byte zero gaps, then a
# hole to 1 MiB so that tar sees a sparse file: needs old-GNU extension
# blocks; the gaps are found with --hole-detection=raw), huge.bin
# (9 GiB logical size, one data extent at 5 GiB: sizes and offsets beyond the
# 11-digit octal range).
mksparse() {
	local d=$1
	mkdir -p "$d"
	cd "$d"
	truncate -s 3M sparse.bin
	printf 'first fragment' | dd of=sparse.bin conv=notrunc status=none
	printf 'second fragment' | dd of=sparse.bin bs=1 seek=$((1024 * 1024)) conv=notrunc status=none
	printf 'third' | dd of=sparse.bin bs=1 seek=$((2 * 1024 * 1024 + 100)) conv=notrunc status=none
	python3 -c '
import sys
with open("frag.bin", "wb") as f:
    for i in range(40):
        f.write(bytes([65 + i % 26]) * 512 + bytes(512))'
	truncate -s 1M frag.bin
	truncate -s 9G huge.bin
	printf 'far away' | dd of=huge.bin bs=1 seek=$((5 * 1024 * 1024 * 1024)) conv=notrunc status=none
	touch -d @$T sparse.bin frag.bin huge.bin
	cd - >/dev/null
}

mktree "$work/src"
mksparse "$work/sparse"

owner=(--owner=alice:1000 --group=staff:100)
gt() { tar "${owner[@]}" --sort=name "$@"; }

cd "$work/src"
# v7 and ustar cannot hold every member: v7 has no prefix and no owner names,
# ustar has no L/K, no sub-second times and no times before 1970.
gt --format=v7 -cf "$here/gnutar-v7.tar" hello.txt empty dir emptydir symlink hardlink héllo-ü.txt
gt --format=ustar -cf "$here/gnutar-ustar.tar" hello.txt empty dir emptydir symlink hardlink héllo-ü.txt L100
gt --format=oldgnu -cf "$here/gnutar-oldgnu.tar" .
gt --format=gnu -cf "$here/gnutar-gnu.tar" .
# a member whose uid/gid need base-256 (oldgnu refuses them)
tar --format=gnu --owner=bob:3000000 --group=big:4000000 -rf "$here/gnutar-gnu.tar" hello.txt
gt --format=posix --pax-option=delete=atime,delete=ctime -cf "$here/gnutar-posix.tar" .
# (-r would guess ustar from the first member and refuse the ids: concatenate)
tar --format=posix --pax-option=delete=atime,delete=ctime --owner=bob:3000000 --group=big:4000000 \
	-cf "$work/big.tar" hello.txt
tar -Af "$here/gnutar-posix.tar" "$work/big.tar"

cd "$work/sparse"
gt --format=gnu -S --hole-detection=raw -cf "$here/gnutar-gnu-sparse.tar" frag.bin sparse.bin huge.bin
gt --format=oldgnu -S --hole-detection=raw -cf "$here/gnutar-oldgnu-sparse.tar" frag.bin sparse.bin
for v in 0.0 0.1 1.0; do
	gt --format=posix --pax-option=delete=atime,delete=ctime -S --sparse-version=$v \
		--hole-detection=raw -cf "$here/gnutar-posix-sparse-$v.tar" frag.bin sparse.bin huge.bin
done

cd "$work/src"
bt=(bsdtar --uid 1000 --gid 100 --uname alice --gname staff)
"${bt[@]}" --format pax -cf "$here/bsdtar-pax.tar" .
"${bt[@]}" --format ustar -cf "$here/bsdtar-ustar.tar" hello.txt empty dir emptydir symlink hardlink héllo-ü.txt L100 subsec.txt
"${bt[@]}" --format gnutar -cf "$here/bsdtar-gnutar.tar" hello.txt empty dir emptydir symlink hardlink héllo-ü.txt L100 L256 longlink subsec.txt
cd "$work/sparse"
"${bt[@]}" --format pax -cf "$here/bsdtar-pax-sparse.tar" sparse.bin

cd "$work/src"
python3 "$here/genpy.py" "$here"
cd "$here"
go run gengo.go "$work/src" "$here"
ls -l "$here"/*.tar
