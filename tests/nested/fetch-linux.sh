#!/bin/bash
# Fetches Debian 12's cloud-amd64 kernel for Linux guest tests and prints the folder that holds it.
#
#   fetch-linux.sh            -> prints e.g. ~/.cache/colo-replicate/linux/6.1.0-56-cloud-amd64
#
# That folder holds `bzImage` (the kernel exactly as Debian ships it) and `vmlinux` (its
# uncompressed ELF image). Both are booted by our loader (kvm/linux/): on ordinary hardware KVM the
# bzImage, inside the nested L1 the vmlinux, because the bzImage's decompressor alone takes minutes
# under QEMU's TCG. `modules/` holds, from the same package, what the kernel needs for a NIC and a
# disk on our VMM (virtio-net and virtio-blk over virtio-mmio, ext4 on the disk): the cloud kernel
# builds every virtio piece as a module (CONFIG_VIRTIO=m, VIRTIO_MMIO=m, VIRTIO_NET=m,
# NET_FAILOVER=m, VIRTIO_BLK=m), and `modules/order` lists them
# in the order insmod must load them, none that the kernel has built in (examples/linux/
# build-initramfs.sh puts them in the guest).
#
# The package is downloaded with `apt-get download` and unpacked with `dpkg -x`; nothing is
# installed. The result is cached under ${COLO_CACHE:-$HOME/.cache/colo-replicate}; a second run
# costs nothing; `$CACHE/linux/current` is a symlink to the newest folder (what
# examples/linux-guest.cfg names). Needs apt (with a current package list), xz-utils, zstd, gzip, binutils.
set -euo pipefail

CACHE=${COLO_CACHE:-$HOME/.cache/colo-replicate}
META=linux-image-cloud-amd64

die() { echo "fetch-linux.sh: $*" >&2; exit 1; }

# The metapackage depends on exactly one versioned image package: that one holds the kernel.
pkg=$(apt-cache depends "$META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || pkg=""
[ -n "$pkg" ] || die "cannot resolve $META (run apt-get update first)"
kver=${pkg#linux-image-}
out="$CACHE/linux/$kver"
# Each after the ones it depends on (their .modinfo `depends=`): virtio_net needs virtio,
# virtio_ring and net_failover, which needs failover; virtio_mmio and virtio_blk need virtio and
# virtio_ring; ext4 (for a file system on the disk) needs jbd2, mbcache, crc16 and crc32c (Debian
# 12's cloud kernel builds the ext4 ones in, so only the virtio ones land in modules/order).
modules="drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_mmio.ko
         net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko
         drivers/block/virtio_blk.ko
         lib/crc16.ko crypto/crc32c_generic.ko fs/mbcache.ko fs/jbd2/jbd2.ko fs/ext4/ext4.ko"
wanted=$(echo $modules)  # one line: a cache made for another list is made again
if [ -s "$out/vmlinux" ] && [ -s "$out/bzImage" ] && [ -e "$out/modules/order" ] &&
    [ "$(cat "$out/modules/wanted" 2>/dev/null)" = "$wanted" ]; then
    ln -sfn "$kver" "$CACHE/linux/current"
    echo "$out"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "$pkg" >/dev/null 2>"$work/apt.log") ||
    die "apt-get download $pkg failed: $(tail -1 "$work/apt.log")"
dpkg -x "$work"/*.deb "$work/root"
bz="$work/root/boot/vmlinuz-$kver"
[ -f "$bz" ] || die "$pkg has no /boot/vmlinuz-$kver"

is_elf() { [ "$(head -c4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }

# The bzImage carries its kernel as one compressed stream after the real-mode setup code. Which
# compressor Debian chose is not written down anywhere we can rely on, so every known magic is
# tried at every place it occurs; the first candidate that decompresses to an ELF file wins.
# Decompressors may complain about the bytes that follow the stream (exit status ignored); the ELF
# check and readelf below are the real test.
try_magic() {  # $1 = magic as \x escapes for grep, $2.. = decompress command reading stdin
    local magic=$1; shift
    local off
    for off in $(LC_ALL=C grep -obUaP "$magic" "$bz" 2>/dev/null | cut -d: -f1); do
        tail -c +$((off + 1)) "$bz" | "$@" > "$work/vmlinux" 2>/dev/null || true
        if [ -s "$work/vmlinux" ] && is_elf "$work/vmlinux"; then
            echo "fetch-linux.sh: payload at offset $off, decompressed with $1" >&2
            return 0
        fi
    done
    return 1
}
try_magic '\xfd\x37\x7a\x58\x5a\x00' xz -dc --single-stream ||
    try_magic '\x28\xb5\x2f\xfd' zstd -dcq ||
    try_magic '\x1f\x8b\x08' gzip -dc ||
    try_magic '\x5d\x00\x00' xz -dc --format=lzma ||
    try_magic '\x02\x21\x4c\x18' lz4 -dc ||
    try_magic 'BZh' bzip2 -dc ||
    die "no compressed ELF kernel found inside $bz"

readelf -h "$work/vmlinux" 2>/dev/null | grep -q 'Advanced Micro Devices X86-64' ||
    die "the decompressed payload of $bz is not an x86-64 ELF kernel"

# The NIC and disk modules, uncompressed as Debian 12 ships them (busybox insmod in the guest reads them).
mkdir -p "$work/modules"
for m in $modules; do
    src="$work/root/lib/modules/$kver/kernel/$m"
    if [ -f "$src" ]; then
        cp "$src" "$work/modules/" && basename "$m" .ko >> "$work/modules/order"
    elif ! grep -qx "kernel/$m" "$work/root/lib/modules/$kver/modules.builtin"; then
        die "$pkg has neither $m nor that driver built in"
    fi
done
touch "$work/modules/order"  # all built in: an empty list
echo "$wanted" > "$work/modules/wanted"

mkdir -p "$out"
rm -rf "$out/modules" && mv "$work/modules" "$out/modules"
cp "$bz" "$out/bzImage.tmp" && mv "$out/bzImage.tmp" "$out/bzImage"
mv "$work/vmlinux" "$out/vmlinux.tmp" && mv "$out/vmlinux.tmp" "$out/vmlinux"
ln -sfn "$kver" "$CACHE/linux/current"
echo "$out"
