#!/bin/bash
# nested_colo_bench: the same Linux guest protected by QEMU COLO and by colo-replicate COLO, side
# by side, in one L1 boot (tests/nested/run-in-l1.sh: kvm_amd on QEMU's TCG; or directly on a
# host whose own KVM is hardware). `scons bench-nested` runs it.
#
#   nested_colo_bench.sh PATH/TO/colo-replicate OUTPUT-DIR
#
# The guest: Debian 12's cloud kernel (vmlinux, tests/nested/fetch-linux.sh) and the example
# busybox initramfs (examples/linux/), MEM MiB, 1 vCPU, the workload rewriting RATE pages every
# 100 ms and timing its own stalls with rdtsc. In L1, bench/nested_colo_l1.sh boots it ROUNDS
# times under each VMM, alternating (QEMU, ours, QEMU, ours, ...), each run a fresh guest
# protected with a checkpoint every 100 ms. This script stages what L1 needs (our binary, the
# kernel, the initramfs, Debian's qemu-system-x86_64 and the firmware it loads), starts the L1,
# and turns the RESULT lines into OUTPUT-DIR/nested-colo.md (also printed). Nothing is asserted.
#
# Environment: ROUNDS (default 2), MEM (MiB, default 256), RATE (default 25), SECS (how long
# each run's workload runs, from boot, default 150), L1_MEM (MiB, default 2560), BENCH_TIMEOUT
# (s, default 1800), ORDER (default "qemu ours": the order within a round; "ours" alone skips QEMU),
# OURS_ARGS (more words for our `protect`, e.g. --compress or --no-realtime-pause), WATCH (seconds:
# print where the tool's threads wait that often), DESTROY_ORDER (see nested_colo_l1.sh). FROM_LOG=FILE: no L1 run, only the table from a log a run left
# (OUTPUT-DIR/nested-colo.log).
set -euo pipefail
bin=$(readlink -f "${1:?usage: nested_colo_bench.sh PATH/TO/colo-replicate OUTPUT-DIR}")
out_dir=${2:?output dir}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
rounds=${ROUNDS:-2} mem=${MEM:-256} rate=${RATE:-25} secs=${SECS:-150}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
die() { echo "nested_colo_bench: $*" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"

status=0
log=$out_dir/nested-colo.log
if [ -n "${FROM_LOG:-}" ]; then
    [ "$(readlink -f "$FROM_LOG")" = "$(readlink -f "$log")" ] || cp "$FROM_LOG" "$log"
else
    work=$(mktemp -d /tmp/nested-colo-bench.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    kdir=$("$top/tests/nested/fetch-linux.sh") || die "no Debian cloud kernel (tests/nested/fetch-linux.sh failed)"
    "$top/examples/linux/build-initramfs.sh" "$work/initramfs.cpio" "$kdir/modules" > /dev/null
    cp "$kdir/vmlinux" "$work/vmlinux"
    # What QEMU reads besides its binary: SeaBIOS, the PVH option ROM that boots an ELF vmlinux
    # (Linux's PVH entry note) and the ROMs a pc machine with KVM loads.
    mkdir -p "$work/firmware"
    for f in bios-256k.bin pvh.bin kvmvapic.bin linuxboot_dma.bin multiboot_dma.bin; do
        src=""
        for d in /usr/share/qemu /usr/share/seabios; do [ -e "$d/$f" ] && { src=$d/$f; break; }; done
        [ -n "$src" ] || die "QEMU firmware $f not found in /usr/share/qemu or /usr/share/seabios"
        cp -L "$src" "$work/firmware/"
    done
    cp "$here/nested_colo_l1.sh" "$work/"

    echo "nested_colo_bench: $(qemu-system-x86_64 --version | head -1); guest $mem MiB, 1 vCPU, $rate pages/100 ms; $rounds round(s)"
    # The L1 (kvm_amd on QEMU's TCG, one CPU) now and then freezes for good: its CPU idle, its
    # console silent, under QEMU's COLO and ours alike (half the boots of 150 s rounds did on
    # 2026-12-06). A console silent for 300 s (a round prints at least every ~170 s) is taken for
    # that: the L1 is stopped and booted again, from the first round not finished by every VMM,
    # at most 3 boots. A round run twice counts once, the last time.
    descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
    : > "$log"
    first=1 boots=0
    while [ "$first" -le "$rounds" ] && [ "$boots" -lt 3 ]; do
        boots=$((boots + 1))
        "$top/tests/nested/run-in-l1.sh" -m "${L1_MEM:-2560}" -t "${BENCH_TIMEOUT:-1800}" -f "$bin" -f "$work" \
            -f "$(command -v qemu-system-x86_64)" -- \
            "FIRST_ROUND=$first ROUNDS=$rounds MEM=$mem RATE=$rate SECS=$secs ORDER='${ORDER:-qemu ours}' OURS_ARGS='${OURS_ARGS:-}' WATCH='${WATCH:-}' DESTROY_ORDER='${DESTROY_ORDER:-b a}' sh $work/nested_colo_l1.sh $bin $work/vmlinux $work/initramfs.cpio $work/firmware /tmp/bench" \
            > >(tee -a "$log" | grep --line-buffered -E 'RESULT|RUNFAIL|PROTECT|WATCH|bench:|run-in-l1') 2>&1 &
        l1=$! size=-1 quiet=0
        while kill -0 "$l1" 2>/dev/null; do
            sleep 10
            now=$(stat -c %s "$log")
            if [ "$now" = "$size" ]; then quiet=$((quiet + 10)); else quiet=0 size=$now; fi
            if [ "$quiet" -ge 300 ]; then
                echo "nested_colo_bench: the L1 froze (no console output for 300 s); booting it again"
                kill $(descendants "$l1") 2>/dev/null || true
                break
            fi
        done
        wait "$l1" || status=$?
        # The first round that some VMM of the order has no RESULT for.
        first=1
        while [ "$first" -le "$rounds" ]; do
            missing=0
            for vmm in ${ORDER:-qemu ours}; do grep -q "^L1| RESULT vmm=$vmm round=$first " "$log" || missing=1; done
            [ "$missing" = 1 ] && break
            first=$((first + 1))
        done
    done
fi
grep -q '^L1| RESULT' "$log" || die "no run finished (log: $log)"

# The table: one row per run, then the medians per VMM and QEMU/ours.
sed -n 's/^L1| RESULT //p' "$log" | awk '{ key = $1 " " $2; line[key] = $0; if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
    END { for (i = 1; i <= n; i++) print line[order[i]] }' | awk -v mem="$mem" -v rate="$rate" -v secs="$secs" -v qv="$(qemu-system-x86_64 --version | head -1)" '
function field(name,   i, kv) { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return substr($i, length(name) + 2) } return "" }
function median(list, n,   a, i, j, t) {
    for (i = 1; i <= n; i++) a[i] = list[i]
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function ms(us) { return sprintf("%.2f", us / 1000) }
BEGIN { split("protect_s cps p50_us p99_us max_us stall_us stall_p50_us unprotected_stall_us", keys, " ") }
{
    v = field("vmm"); n[v]++
    for (k in keys) val[v, keys[k], n[v]] = field(keys[k])
    rows = rows sprintf("| %s | %s | %s | %s | %s | %s / %s / %s | %s / %s | %s / %s | %s |\n", v == "qemu" ? "QEMU COLO" : "colo-replicate COLO",
        field("round"), field("protect_s"), field("cps"), field("checkpoints") " in " field("window_s") " s",
        ms(field("p50_us")), ms(field("p99_us")), ms(field("max_us")), ms(field("stall_us")), ms(field("stall_p50_us")),
        ms(field("unprotected_stall_us")), ms(field("unprotected_stall_p50_us")), field("seq") ", corrupt=" field("corrupt"))
    if (v == "ours" && field("stop_p99_us") != "")
        steps = steps sprintf("| %s | %s / %s / %s / %s | %s |\n", field("round"), ms(field("stop_p99_us")), ms(field("harvest_p99_us")),
            ms(field("copy_p99_us")), ms(field("state_p99_us")), field("overruns"))
}
END {
    print "# QEMU COLO vs colo-replicate COLO, same Linux guest, one L1\n"
    print "Guest: Debian 12 cloud kernel (vmlinux) + examples/linux busybox initramfs, " mem " MiB, 1 vCPU, the workload rewriting " rate " pages every 100 ms (" rate * 10 " pages/s) and checking twice as many, for " secs " s from its start, a fresh guest per run, 5 s unprotected before the protect command; a checkpoint every 100 ms (QEMU: x-checkpoint-delay=100; ours: protect -i 100), primary and secondary on 127.0.0.1 in the same L1. QEMU: " qv ", -accel kvm -cpu host -machine pc, no disk, no NIC (so no colo-compare: periodic checkpoints only), default max-bandwidth.\n"
    print "- **time to protected**: from the command (QEMU: QMP `migrate` with x-colo on; ours: `protect`) until protection holds (QEMU: `query-migrate` says `colo`, polled every ~50 ms; ours: `protect` returned), s, /proc/uptime (10 ms)."
    print "- **ckpt/s**: checkpoints in the window (from protection until 8 s before the workload ends, SECS after it started) / its length. QEMU: STOP/RESUME event pairs of the primary; ours: `checkpoints` of `status --json`."
    print "- **pause p50/p99/max**: how long the primary VM stood still per checkpoint, ms. QEMU: RESUME minus STOP timestamp of the primary'\''s QMP events (QEMU stamps them with gettimeofday when vm_stop_force_state(RUN_STATE_COLO) and vm_start() emit them), over the window; ours: `pause_p50_us/p99_us/max_us` of `status --json` (every checkpoint since protection), nearest rank for both."
    print "- **guest stall max**: the longest gap the guest'\''s own loop saw (rdtsc after every page written or checked and around each sleep, beyond the sleep asked for; TSC rate calibrated against CLOCK_MONOTONIC at boot; QEMU stops kvmclock while paused, the TSC runs on), over seq lines from protection+2 to the end of the window, ms; and the median over those seq intervals of each one'\''s longest gap. Unprotected: the same over seq=5 until the protect command (the guest alone: what the L1 itself costs; the L1 is one TCG CPU on a shared host, and the secondary VM runs on that CPU too).\n"
    print "| VMM | round | time to protected (s) | ckpt/s | checkpoints | pause p50 / p99 / max (ms) | guest stall max / p50 (ms) | unprotected stall max / p50 (ms) | seq window |"
    print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    printf "%s", rows
    if (steps != "") {
        print "\nWhere our pause goes (p99 of each step, ms: stopping the vCPU, harvesting the dirty log, copying the dirty pages, saving vCPU and device state; `status --json`), and the checkpoints that started late (`checkpoint_overruns`):\n"
        print "| round | stop / harvest / copy / state p99 (ms) | overruns |"
        print "| --- | --- | --- |"
        printf "%s", steps
    }
    if (n["qemu"] && n["ours"]) {
        print "\nMedians over the rounds, and QEMU/ours:\n"
        print "| | time to protected (s) | ckpt/s | pause p50 (ms) | pause p99 (ms) | pause max (ms) | guest stall max (ms) | guest stall p50 (ms) | unprotected stall max (ms) |"
        print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        for (vi = 1; vi <= 2; vi++) {
            v = vi == 1 ? "qemu" : "ours"
            line = "| " (v == "qemu" ? "QEMU COLO" : "colo-replicate COLO")
            for (k = 1; k <= 8; k++) {
                delete l; for (i = 1; i <= n[v]; i++) l[i] = val[v, keys[k], i]
                med[v, k] = median(l, n[v])
                line = line " | " (keys[k] ~ /_us$/ ? ms(med[v, k]) : sprintf("%.2f", med[v, k]))
            }
            print line " |"
        }
        line = "| QEMU / ours"
        for (k = 1; k <= 8; k++) line = line " | " (med["ours", k] > 0 ? sprintf("%.1fx", med["qemu", k] / med["ours", k]) : "-")
        print line " |"
    }
}' > "$out_dir/nested-colo.md"
if grep -q '^L1| RUNFAIL' "$log"; then
    { echo; echo "Runs that failed:"; echo; sed -n 's/^L1| RUNFAIL /- /p' "$log"; } >> "$out_dir/nested-colo.md"
fi
cat "$out_dir/nested-colo.md"
echo "nested_colo_bench: wrote $out_dir/nested-colo.md (L1 log: $log)"
exit "$status"
