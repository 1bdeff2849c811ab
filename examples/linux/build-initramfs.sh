#!/bin/bash
# Builds the Linux example guest's initramfs: busybox (static) for a tiny /init, and
# examples/linux/workload.c compiled with gcc -static, which writes, checks and numbers its memory
# on the console (`seq=N ...`; `CORRUPT ...` when a check fails).
#
#   build-initramfs.sh [OUTPUT]      default: ${COLO_CACHE:-$HOME/.cache/colo-replicate}/linux/initramfs.cpio
#
# The archive is an uncompressed cpio (newc): a guest that runs slowly (nested, emulated paging)
# would otherwise spend seconds decompressing it. Workload parameters come from the kernel command
# line (workload.mib=, workload.ms=, workload.rate=, workload.count=; see workload.c).
# Needs the Debian packages busybox-static, cpio, gcc, libc6-dev.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${COLO_CACHE:-$HOME/.cache/colo-replicate}
out=${1:-$CACHE/linux/initramfs.cpio}

busybox=/bin/busybox
# The initramfs has no shared libraries: busybox must be the static build (ldd refuses it).
[ -x "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 ||
    { echo "build-initramfs.sh: $busybox is missing or not static (apt-get install busybox-static)" >&2; exit 1; }
command -v cpio >/dev/null || { echo "build-initramfs.sh: cpio is missing (apt-get install cpio)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp "$busybox" "$root/bin/busybox"
gcc -static -O2 -Wall -Wextra -Werror -o "$root/bin/workload" "$here/workload.c"

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
# PID 1 of the example guest: mount what the workload reads, then become the workload.
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo "colo-guest: init up ($(/bin/busybox nproc) cpus, $(/bin/busybox uname -r))"
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
