#!/bin/bash
# Builds what the nested Xen tier boots, from the extracted Debian packages and the project's
# own test programs, into <out>:
#   xen            the hypervisor (multiboot ELF, gunzipped)
#   vmlinuz-dom0   Debian's generic amd64 kernel (the domU gets the cloud flavour)
#   dom0.cpio.gz   dom0 initramfs: busybox, the Xen tools and their libraries, xen_smoke,
#                  colo-replicate, the domU kernel + initramfs (with domu_dirtier), xl configs and
#                  the replication check (files/replicate.sh; a replicate-hook.sh overrides it)
#
#   build_images.sh <extracted-root> <out> <xen_smoke> <domu_dirtier> <pvh_seq_guest> <colo-replicate|->
#                   [replicate-hook.sh]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$1 OUT=$2 SMOKE=$3 DIRTIER=$4 SEQ_GUEST=$5 CLI=$6 HOOK=${7:-}
XENVER=4.17
mkdir -p "$OUT"
KERNEL=$(ls "$ROOT"/boot/vmlinuz-*-amd64 | grep -v cloud | head -1)
KREL=$(basename "$KERNEL" | sed 's/^vmlinuz-//')
DOMU_KERNEL=$(ls "$ROOT"/boot/vmlinuz-*-cloud-amd64 2>/dev/null | head -1)
DOMU_KERNEL=${DOMU_KERNEL:-$KERNEL}
grep -q '^CONFIG_XEN_DOM0=y' "$ROOT/boot/config-$KREL" || { echo "build_images: $KREL lacks XEN_DOM0" >&2; exit 1; }
grep -q '^CONFIG_XEN_PVH=y' "$ROOT/boot/config-$KREL" || { echo "build_images: $KREL lacks XEN_PVH" >&2; exit 1; }
zcat "$ROOT/boot/xen-$XENVER-amd64.gz" > "$OUT/xen"
cp "$KERNEL" "$OUT/vmlinuz-dom0"

STAGE=$(mktemp -d "$OUT/stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# module_into DIR KREL MODULE...: copies (uncompressed) kernel modules, by path under kernel/.
module_into() {
    local dir=$1 krel=$2; shift 2
    for m in "$@"; do
        f=$(ls "$ROOT/lib/modules/$krel/kernel/$m.ko"* 2>/dev/null | head -1)
        [ -n "$f" ] || { echo "build_images: no module $m in $krel" >&2; exit 1; }
        case "$f" in
            *.xz) xz -dc "$f" > "$dir/$(basename "$m").ko" ;;
            *) cp "$f" "$dir/$(basename "$m").ko" ;;
        esac
    done
}

# --- domU: busybox + the dirtier, and netfront for the Linux guest's vif
U=$STAGE/domu
mkdir -p "$U"/{bin,proc,dev,sys,lib/modules}
cp /bin/busybox "$DIRTIER" "$U/bin/"
DOMU_KREL=$(basename "$DOMU_KERNEL" | sed 's/^vmlinuz-//')
module_into "$U/lib/modules" "$DOMU_KREL" drivers/net/xen-netfront
install -m755 "$HERE/files/domu-init" "$U/init"
(cd "$U" && find . | cpio -o -H newc --quiet | gzip -1) > "$STAGE/domu.cpio.gz"

# --- dom0
D=$STAGE/dom0
mkdir -p "$D"/{bin,sbin,proc,sys,dev,run,tmp,etc/xen,var/log,var/lib,lib/modules,lib64,domu,extra}
mkdir -p "$D/usr/lib/x86_64-linux-gnu" "$D/usr/lib/xen-$XENVER/bin" "$D/usr/bin"
cp /bin/busybox "$D/bin/"
install -m755 "$HERE/files/dom0-init" "$D/init"
module_into "$D/lib/modules" "$KREL" drivers/xen/xen-evtchn drivers/xen/xen-privcmd drivers/xen/xenfs/xenfs \
    drivers/xen/xen-gntdev drivers/xen/xen-gntalloc \
    net/llc/llc net/802/stp net/bridge/bridge drivers/net/tun drivers/net/xen-netback/xen-netback
for b in xl xenstored xenconsoled xen-init-dom0 libxl-save-helper; do
    cp "$ROOT/usr/lib/xen-$XENVER/bin/$b" "$D/usr/lib/xen-$XENVER/bin/"
done
cp "$ROOT/usr/bin/xenstore" "$D/usr/bin/"
for l in read write ls rm exists watch chmod; do ln -sf xenstore "$D/usr/bin/xenstore-$l"; done
cp "$SMOKE" "$D/usr/bin/xen_smoke"
[ "$CLI" != - ] && cp "$CLI" "$D/usr/bin/colo-replicate"
[ -n "$HOOK" ] && cp "$HOOK" "$D/extra/replicate.sh"
cp -a "$ROOT/etc/xen/xl.conf" "$D/etc/xen/" 2>/dev/null || true
# Shared libraries: the Xen ones from the extracted packages, the rest (libc, libstdc++) from
# this host, which is Debian 12 like the dom0 they run in.
export LD_LIBRARY_PATH=$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/usr/lib/xen-$XENVER/lib
for b in "$D"/usr/lib/xen-$XENVER/bin/* "$D"/usr/bin/*; do
    [ -L "$b" ] && continue
    ldd "$b" | awk '/=>/ {print $3} /ld-linux/ {print $1}'
done | sort -u | while read -r lib; do
    [ -f "$lib" ] || continue
    case "$lib" in
        */ld-linux*) cp -L "$lib" "$D/lib64/" ;;
        *) cp -L "$lib" "$D/usr/lib/x86_64-linux-gnu/" ;;
    esac
done
# glibc dlopen()s libgcc_s for thread cancellation; xl aborts without it.
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$D/usr/lib/x86_64-linux-gnu/"
echo /usr/lib/x86_64-linux-gnu > "$D/etc/ld.so.conf"
cp "$DOMU_KERNEL" "$D/domu/vmlinuz"
cp "$STAGE/domu.cpio.gz" "$D/domu/initrd.gz"
cp "$HERE/files/pvh.cfg" "$HERE/files/pv.cfg" "$HERE/files/colo-domu.cfg" "$HERE/files/replicate.sh" \
   "$HERE/files/seq.cfg" "$HERE/files/colo-seq.cfg" "$D/domu/"
mkdir -p "$D/etc/xen/scripts"
install -m755 "$HERE/files/vif-bridge" "$D/etc/xen/scripts/vif-bridge"
cp "$SEQ_GUEST" "$D/domu/pvh_seq_guest"
(cd "$D" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/dom0.cpio.gz.tmp"
mv "$OUT/dom0.cpio.gz.tmp" "$OUT/dom0.cpio.gz"
echo "build_images: $OUT (kernel $KREL)" >&2
