#!/bin/bash
# Builds the Linux example guest's initramfs: busybox (static) for a tiny /init, and
# examples/linux/workload.c compiled with gcc -static, which writes, checks and numbers its memory
# on the console (`seq=N ...`; `CORRUPT ...` when a check fails); and for a guest with a vif,
# the kernel's NIC modules and examples/linux/tcp_seq_server.c (a TCP service on port 7000 whose
# acks show a lost or repeated byte of the stream).
#
#   build-initramfs.sh [OUTPUT [MODULES]]
#       OUTPUT   default: ${COLO_CACHE:-$HOME/.cache/colo-replicate}/linux/initramfs.cpio
#       MODULES  the folder tests/nested/fetch-linux.sh fills next to the kernel (modules/, with
#                `order` listing them in load order); default: .../linux/current/modules when it
#                exists. The modules must be the booted kernel's own (insmod checks the version).
#
# The archive is an uncompressed cpio (newc): a guest that runs slowly (nested, emulated paging)
# would otherwise spend seconds decompressing it. Parameters come from the kernel command line
# (the config's `extra`): workload.mib=, workload.ms=, workload.rate=, workload.count=,
# workload.secs=, workload.hold= (see workload.c; with .count or .secs the workload prints its own
# longest stall per seq interval in one line at the end), net.ip=ADDR/PREFIX: /init gives eth0 that address (the vif's `ip=`; the loader
# does not pass it on) and starts tcp_seq_server before the workload, and disk.fs=DEVICE: /init
# mounts that ext4 file system (the config's disk: /dev/vda) on /mnt and starts
# examples/linux/fsync_writer.c there (numbered files, each fsynced before `fsynced N` is printed).
# Needs the Debian packages busybox-static, cpio, gcc, libc6-dev.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${COLO_CACHE:-$HOME/.cache/colo-replicate}
out=${1:-$CACHE/linux/initramfs.cpio}
modules=${2:-$CACHE/linux/current/modules}
if [ -n "${2:-}" ] && [ ! -f "$modules/order" ]; then
    echo "build-initramfs.sh: $modules/order is missing (run tests/nested/fetch-linux.sh)" >&2
    exit 1
fi

busybox=/bin/busybox
# The initramfs has no shared libraries: busybox must be the static build (ldd refuses it).
[ -x "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 ||
    { echo "build-initramfs.sh: $busybox is missing or not static (apt-get install busybox-static)" >&2; exit 1; }
command -v cpio >/dev/null || { echo "build-initramfs.sh: cpio is missing (apt-get install cpio)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,mnt}
cp "$busybox" "$root/bin/busybox"
gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/workload" "$here/workload.c"
gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/tcp_seq_server" "$here/tcp_seq_server.c"
gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/fsync_writer" "$here/fsync_writer.c"
if [ -f "$modules/order" ]; then
    mkdir -p "$root/modules"
    while read -r m; do cp "$modules/$m.ko" "$root/modules/"; done < "$modules/order"
    cp "$modules/order" "$root/modules/order"
fi

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
# PID 1 of the example guest: mount what the workload reads, then become the workload.
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo "colo-guest: init up ($(/bin/busybox nproc) cpus, $(/bin/busybox uname -r))"
# The NIC drivers (virtio-mmio devices come from the ACPI DSDT; nothing else probes them).
if [ -f /modules/order ]; then
    while read -r m; do
        /bin/busybox insmod "/modules/$m.ko" || echo "colo-guest: insmod $m failed"
    done < /modules/order
fi
address=""
fs=""
for word in $(/bin/busybox cat /proc/cmdline); do
    case "$word" in
        net.ip=*) address=${word#net.ip=} ;;
        disk.fs=*) fs=${word#disk.fs=} ;;
    esac
done
if [ -n "$fs" ]; then
    if /bin/busybox mount -t ext4 "$fs" /mnt; then
        echo "colo-guest: $fs mounted on /mnt"
        /bin/fsync_writer /mnt &
    else
        echo "colo-guest: cannot mount $fs (no disk, or no virtio-blk device in the DSDT?)"
    fi
fi
if [ -n "$address" ]; then
    /bin/busybox ip link set lo up
    if /bin/busybox ip addr add "$address" dev eth0 && /bin/busybox ip link set eth0 up; then
        echo "colo-guest: eth0 $address ($(/bin/busybox cat /sys/class/net/eth0/address))"
        /bin/tcp_seq_server 7000 &
    else
        echo "colo-guest: no eth0 for net.ip=$address (no vif, or no virtio-mmio device in the DSDT?)"
    fi
fi
exec /bin/workload
INIT
chmod +x "$root/init"
# The kernel opens /dev/console for /init before anything is mounted; make the node when we can
# (root), otherwise /init's own redirect above takes over once devtmpfs is mounted.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true

mkdir -p "$(dirname "$out")"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
