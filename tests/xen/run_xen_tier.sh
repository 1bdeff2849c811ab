#!/bin/bash
# The nested Xen tier: Debian 12's Xen 4.17 booted under QEMU TCG with a PV dom0, a PVH domU
# running a page dirtier, and xen_smoke in dom0 driving the real XenBackend against it.
# Prints one line per check for the test runner: "PASS name: ...", "FAIL name: why",
# "SKIP name: why"; other lines are information (timings, where the log is).
#
#   run_xen_tier.sh <xen_smoke> <domu_dirtier> <pvh_seq_guest> <colo-replicate> <work-dir>
# Env: COLO_CACHE (package cache, default ~/.cache/colo-replicate), XEN_TIER_TIMEOUT (seconds for
#      the whole boot, default 600), COLO_XEN_REPLICATE_HOOK (a script run in dom0 after the
#      smoke test as `sh replicate.sh domu-pvh` instead of the tier's own files/replicate.sh).
#
# Why TCG: the hosts' /dev/kvm cannot run Xen (see tests/xen/README.md). Why -smap off: QEMU 7.2
# TCG checks a PV dom0's ring-3 iretq stack pops as supervisor accesses under SMAP and dom0
# faults at once.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SMOKE=$1 DIRTIER=$2 SEQ_GUEST=$3 CLI=$4 WORK=$5
TIMEOUT=${XEN_TIER_TIMEOUT:-600}
EXPECTED="domu_boot attach logdirty_rounds read_through_map_cache pause hvm_context resume console pv_refused cli_save caveat xen_restore
          replicate_protect replicate_checkpoints replicate_takeover replicate_console replicate_sequence
          replicate_colo_protect replicate_colo_checkpoints replicate_colo_takeover replicate_colo_console
          replicate_colo_sequence replicate_abort_protect replicate_abort_destroyed
          replicate_linux_protect replicate_linux_checkpoints replicate_linux_takeover replicate_linux_console
          replicate_linux_sequence replicate_linux_xenstore replicate_linux_network"
mkdir -p "$WORK/logs"

started=$(date +%s)
if ! root=$("$HERE/fetch_packages.sh" 2>"$WORK/logs/fetch.err"); then
    echo "SKIP xen: cannot fetch Debian's Xen packages: $(tail -1 "$WORK/logs/fetch.err")"
    exit 0
fi
if ! "$HERE/build_images.sh" "$root" "$WORK/images" "$SMOKE" "$DIRTIER" "$SEQ_GUEST" "$CLI" "${COLO_XEN_REPLICATE_HOOK:-}" \
        2>"$WORK/logs/build.err"; then
    echo "FAIL images: building the dom0/domU images failed: $(tail -1 "$WORK/logs/build.err")"
    exit 1
fi
echo "xen tier: images ready in $(( $(date +%s) - started ))s"

I=$WORK/images
# dom0 holds the secondary's RAM cache (a copy of the domU's 128 MiB) next to both colo-replicate
# processes and an initramfs root of ~150 MiB: 384 MiB ran out of memory; 640 MiB leaves room.
XEN_ARGS="console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=640M,max:640M dom0_max_vcpus=1"
DOM0_ARGS="console=hvc0 earlyprintk=xen"
# boot: one QEMU run of the whole tier into a new serial log ($LOG).
boot() {
    LOG=$WORK/logs/run-$(date +%Y%m%d-%H%M%S).log
    boot_start=$(date +%s)
    # Multiboot modules: "-initrd 'file args,file'"; a comma inside args would need doubling.
    # -fsgsbase, -xsave: see README.md (dom0 processes that died with garbage in their registers).
    timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max,-smap,-fsgsbase,-xsave -m 1280 -smp 1 \
        -kernel "$I/xen" -append "$XEN_ARGS" -initrd "$I/vmlinuz-dom0 $DOM0_ARGS,$I/dom0.cpio.gz" \
        -display none -serial stdio -monitor none -no-reboot -nodefaults </dev/null >"$LOG" 2>&1
    qemu_rc=$?
    boot_s=$(( $(date +%s) - boot_start ))
    echo "xen tier: QEMU ran ${boot_s}s (exit $qemu_rc), serial log $LOG"
}
boot
# The emulated PV dom0 corrupts a process now and then (a dom0 program that segfaults on a garbage
# pointer, the dynamic loader's "Inconsistency detected", bytes that change between a sender's
# checksum and its receiver on loopback), more often on a loaded host: README.md. A run that
# failed with one of those signs is booted once more, said as an info line; the second run's
# results count. A failure of our own repeats.
platform_sign() {
    tr -d '\r' < "$LOG" | grep -m1 -E '^\[ *[0-9.]+\] [^ ]+\[[0-9]+\]: segfault at|Inconsistency detected by ld.so|checksum mismatch'
}
if tr -d '\r' < "$LOG" | grep -q 'XS FAIL' && sign=$(platform_sign); then
    echo "info: the first boot failed with a sign of the emulated dom0's corruption ($(echo "$sign" | cut -c1-160)); booting once more"
    tr -d '\r' < "$LOG" | sed -n 's/^.*XS FAIL /info: first boot: FAIL /p'
    boot
fi
tr -d '\r' < "$LOG" | sed -n 's/^.*XS MEASURE /measure: /p'
tr -d "\r" < "$LOG" | sed -n "s/^.*XS regions /guest RAM: /p"
tr -d '\r' < "$LOG" | sed -n 's/^.*XS info /info: /p'

results=$(tr -d '\r' < "$LOG" | sed -n 's/^.*XS \(PASS\|FAIL\|SKIP\) /\1 /p')
[ -n "$results" ] && echo "$results"
if [ "$qemu_rc" = 124 ]; then
    echo "FAIL boot: no power-off within ${TIMEOUT}s; last lines: $(tr -d '\r' < "$LOG" | tail -3 | tr '\n' '|')"
elif ! grep -q 'XS done_dom0' "$LOG"; then
    why=$(grep -m1 -E 'Panic on CPU|Kernel panic|Hardware Dom0 crashed' "$LOG" | tr -d '\r')
    echo "FAIL boot: dom0 did not finish (${why:-no panic line}); last lines: $(tr -d '\r' < "$LOG" | tail -3 | tr '\n' '|')"
fi
for name in $EXPECTED; do
    echo "$results" | grep -q "^\(PASS\|FAIL\|SKIP\) $name:" || echo "FAIL $name: did not run (see $LOG)"
done
exit 0
