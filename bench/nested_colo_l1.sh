#!/bin/sh
# Runs inside L1 (busybox sh; bench/nested_colo_bench.sh starts it through tests/nested/run-in-l1.sh):
# the same Linux guest protected by QEMU COLO and by colo-replicate COLO, interleaved, one
# `RESULT` line per run for the host side to tabulate.
#
#   nested_colo_l1.sh COLO_REPLICATE KERNEL INITRAMFS QEMU_FIRMWARE_DIR WORKDIR
#
# Each run boots a fresh guest (memory MEM MiB, 1 vCPU, KERNEL = the Debian cloud vmlinux, the
# example initramfs, the same command line for both), waits for its seq=50 (booted, TSC
# calibrated, 5 s unprotected for a baseline of its stalls), protects it with a checkpoint every 100 ms and keeps it protected until 8 s before
# the workload ends (SECS after it started, by the guest's cycle counter: a guest QEMU pauses
# most of the time still ends on time), then reads the guest's stall line and ends both VMs.
#   qemu: Debian's qemu-system-x86_64 with -accel kvm, primary and secondary on 127.0.0.1 as
#         docs/system/qemu-colo.rst sets them up, minus disk and NIC (none is needed: without a
#         NIC there is no colo-compare, so checkpoints are periodic, x-checkpoint-delay=100);
#         QMP over a pipe chardev (QEMU holds both FIFOs open read-write, so a shell can write one
#         command per `echo`). Pauses: the primary's STOP and RESUME QMP events (emitted by
#         vm_stop_force_state(RUN_STATE_COLO) and vm_start() around every checkpoint), with the
#         microsecond timestamps QEMU puts on them.
#   ours: `create`, `receive -l 127.0.0.1:0`, `protect -i 100` (COLO); pauses and checkpoints
#         from the primary's `status --json`.
# Environment: ROUNDS (runs per VMM, default 2), MEM (MiB, default 256), RATE (pages the workload
# rewrites per 100 ms, default 25), SECS (how long the workload runs, default 150),
# ORDER (default "qemu ours": the order within a round), OURS_ARGS (more words for our `protect`),
# FIRST_ROUND (default 1: a boot after a frozen one goes on where that one stopped).
set -u
bin=${1:?usage: nested_colo_l1.sh COLO_REPLICATE KERNEL INITRAMFS QEMU_FIRMWARE_DIR WORKDIR}
kernel=${2:?kernel} initramfs=${3:?initramfs} firmware=${4:?firmware dir} work=${5:?workdir}
rounds=${ROUNDS:-2} mem=${MEM:-256} rate=${RATE:-25} secs=${SECS:-150} order=${ORDER:-qemu ours}
# QEMU_ACCEL=tcg (with -cpu max) tries the QEMU side on a machine without a usable KVM.
accel=${QEMU_ACCEL:-kvm} cpu=host
[ "$accel" = kvm ] || cpu=max
mkdir -p "$work"
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
# The guest's command line: our loader's default (kvm/linux/linux_loader.hpp) and the workload's
# words; QEMU gets exactly the same string, so both kernels boot alike. `quiet`: fewer kernel
# messages inside the workload's lines.
extra="quiet workload.mib=8 workload.ms=100 workload.rate=$rate workload.secs=$secs workload.hold=1"
cmdline="console=ttyS0 reboot=t panic=-1 pci=off i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd initcall_blacklist=cmos_init $extra"

now() { cut -d' ' -f1 /proc/uptime; }                 # seconds, 10 ms resolution
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
over() { awk -v a="$1" -v b="$(now)" -v l="$2" 'BEGIN { exit !(b - a > l) }'; }  # over T0 SECONDS
last_seq() { tr -d '\r\000' < "$1" 2>/dev/null | sed -n 's/^seq=\([0-9]*\) .*/\1/p' | tail -1 | grep . || echo 0; }
wait_seq() {  # wait_seq N SECONDS LOG
    local t0
    t0=$(now)
    while [ "$(last_seq "$3")" -lt "$1" ]; do over "$t0" "$2" && return 1; sleep 0.1; done
}
# wait_window T0: until 8 s before the workload ends (it started about when seq=3 was seen at T0);
# 1 when that moment has passed already (protection took too long for a window of 5 s).
wait_window() {
    local end
    end=$(awk -v a="$1" -v s="$secs" 'BEGIN { print a + s - 8 }')
    over "$end" -5 && return 1
    while ! over "$end" 0; do sleep 0.2; done
}
# stall_line LOG: the numbers of the workload's stall line. It is several KiB, and a kernel message
# may land inside it on the console ("[  12.345678] text" up to its newline): those are cut out.
stall_line() {
    tr -d '\r\000' < "$1" | awk '/^colo-workload: stall_us=/ { on = 1; text = "" } /^colo-workload: done/ { on = 0 }
        on { sub(/\[ *[0-9]+\.[0-9]+\].*$/, ""); text = text $0 } END { print text }' |
        sed 's/^colo-workload: stall_us=//'
}
# wait_stall LOG SECONDS: until the stall line is there whole (the `done` line follows it; the
# stall line is several KiB, which a nested guest's UART takes a while to write).
wait_stall() {
    local t0
    t0=$(now)
    while ! grep -aq 'colo-workload: done' "$1"; do over "$t0" "$2" && return 1; sleep 0.2; done
}
# stall_max LOG FROM TO: the guest's longest stall (us) over seq FROM..TO, and the median of the
# per-interval longest stalls there.
stall_max() {
    stall_line "$1" | tr ',' '\n' | awk -v a="$2" -v b="$3" 'NR >= a && NR <= b { print }' > "$work/stalls"
    echo "$(percentiles "$work/stalls" | awk '{ print $3 " " $1 }')"
}
# percentiles FILE: "p50 p99 max" of the numbers in FILE (nearest rank, as our status computes them).
percentiles() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "0 0 0"; exit }
        r50 = int(NR * 0.50); if (r50 < NR * 0.50) r50++; r99 = int(NR * 0.99); if (r99 < NR * 0.99) r99++
        print v[r50], v[r99], v[NR] }'
}
json() { sed -n "s/.*\"$1\": *\"\{0,1\}\([0-9]*\).*/\1/p"; }   # json KEY < status --json
fail() { echo "RUNFAIL $*"; }

# --- QEMU COLO ---------------------------------------------------------------------------------
# qmp p|s JSON (only to a QEMU that runs: opening the FIFO of one that has gone would block)
qmp() { kill -0 "$(cat "$work/$1.pid")" 2>/dev/null && echo "$2" > "$work/$1.in"; }
# qmp_ask SIDE ID JSON: send, wait for the answer carrying that id, print it.
qmp_ask() {
    local i=0
    qmp "$1" "$3"
    while ! grep -q "\"id\": \"$2\"" "$work/$1.qmp"; do i=$((i + 1)); [ $i -lt 300 ] || return 1; sleep 0.05; done
    grep "\"id\": \"$2\"" "$work/$1.qmp" | tail -1
}
qemu_start() {  # qemu_start p|s [-incoming URI]
    local side=$1
    shift
    rm -f "$work/$side.in" "$work/$side.out"
    mkfifo "$work/$side.in" "$work/$side.out"
    qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -machine pc -m "$mem" -smp 1 -nodefaults -display none \
        -no-reboot -L "$firmware" -kernel "$kernel" -initrd "$initramfs" -append "$cmdline" \
        -serial "file:$work/$side.console" -chardev "pipe,id=qmp,path=$work/$side" -mon chardev=qmp,mode=control \
        "$@" > "$work/$side.stderr" 2>&1 &
    echo $! > "$work/$side.pid"
    cat "$work/$side.out" > "$work/$side.qmp" &
    echo $! > "$work/$side.reader"
    qmp "$side" '{"execute": "qmp_capabilities"}'
}
# SIGTERM, then SIGKILL if it is still there after 3 s; not QMP `quit`: a write into the FIFO of
# a QEMU that has gone would block forever.
qemu_stop() {
    local side pid
    for side in p s; do
        [ -f "$work/$side.pid" ] || continue
        pid=$(cat "$work/$side.pid")
        kill "$pid" 2>/dev/null
        local i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 30 ]; do i=$((i + 1)); sleep 0.1; done
        kill -9 "$pid" 2>/dev/null  # a COLO primary may not get through its shutdown
        echo "bench: QEMU $side ended after $i tenths of a second$(kill -0 "$pid" 2>/dev/null && echo ", still there after SIGKILL")"
        kill "$(cat "$work/$side.reader")" 2>/dev/null
        rm -f "$work/$side.pid" "$work/$side.in" "$work/$side.out"
    done
}
qemu_run() {
    local r=$1 t0 ts tp sb base state s0 s1 tw0 window pauses p50 p99 max stall cps
    rm -f "$work"/p.* "$work"/s.*
    qemu_start s -incoming tcp:127.0.0.1:9998
    qemu_start p
    qmp_ask s caps '{"execute": "migrate-set-capabilities", "id": "caps", "arguments": {"capabilities": [{"capability": "x-colo", "state": true}]}}' > /dev/null ||
        { fail "qemu $r: the secondary did not answer QMP: $(tail -3 "$work/s.stderr")"; qemu_stop; return; }
    wait_seq 3 240 "$work/p.console" || { fail "qemu $r: the guest did not reach seq=3: $(tail -3 "$work/p.stderr")"; qemu_stop; return; }
    ts=$(now)
    qmp_ask p caps '{"execute": "migrate-set-capabilities", "id": "caps", "arguments": {"capabilities": [{"capability": "x-colo", "state": true}]}}' > /dev/null
    qmp_ask p delay '{"execute": "migrate-set-parameters", "id": "delay", "arguments": {"x-checkpoint-delay": 100}}' > /dev/null
    wait_seq 50 60 "$work/p.console"  # 5 s unprotected: the guest's stalls without replication
    sb=$(last_seq "$work/p.console")
    t0=$(now)
    qmp_ask p go '{"execute": "migrate", "id": "go", "arguments": {"uri": "tcp:127.0.0.1:9998"}}' > /dev/null
    local n=0
    while :; do
        n=$((n + 1))
        state=$(qmp_ask p "m$n" "{\"execute\": \"query-migrate\", \"id\": \"m$n\"}" | sed -n 's/.*"status": "\([a-z-]*\)".*/\1/p')
        [ "$state" = colo ] && break
        case "$state" in failed|cancelled|completed|"")
            fail "qemu $r: migration state '$state' instead of colo: $(qmp_ask p e "{\"execute\": \"query-migrate\", \"id\": \"e$n\"}") $(tail -2 "$work/p.stderr") $(tail -2 "$work/s.stderr")"
            qemu_stop; return ;;
        esac
        over "$t0" 300 && { fail "qemu $r: not in COLO 300 s after migrate (state $state)"; qemu_stop; return; }
    done
    tp=$(since "$t0")
    colo=$(qmp_ask p cs '{"execute": "query-colo-status", "id": "cs"}' | sed -n 's/.*"return": \(.*\), "id".*/\1/p')
    s0=$(last_seq "$work/p.console")
    tw0=$(now)
    qmp_ask p win0 '{"execute": "query-status", "id": "win0"}' > /dev/null
    wait_window "$ts" || { fail "qemu $r: protected too late for a window (after $tp s)"; qemu_stop; return; }
    qmp_ask p win1 '{"execute": "query-status", "id": "win1"}' > /dev/null
    window=$(since "$tw0")
    s1=$(last_seq "$work/p.console")
    # STOP/RESUME pairs between the two markers: each checkpoint's pause in microseconds.
    awk '/"id": "win0"/ { on = 1 } /"id": "win1"/ { on = 0 }
         on && /"event": "(STOP|RESUME)"/ {
             match($0, /"seconds": [0-9]+/); s = substr($0, RSTART + 11, RLENGTH - 11)
             match($0, /"microseconds": [0-9]+/); u = substr($0, RSTART + 16, RLENGTH - 16)
             t = s * 1000000 + u
             if ($0 ~ /"STOP"/) stop = t; else if (stop) { print t - stop; stop = 0 } }' "$work/p.qmp" > "$work/pauses"
    pauses=$(wc -l < "$work/pauses")
    read -r p50 p99 max <<EOF
$(percentiles "$work/pauses")
EOF
    wait_stall "$work/p.console" 120 || { fail "qemu $r: no stall line from the guest"; qemu_stop; return; }
    stall=$(stall_max "$work/p.console" $((s0 + 2)) "$s1")
    base=$(stall_max "$work/p.console" 5 "$sb")
    echo "STALLS vmm=qemu round=$r values=$(stall_line "$work/p.console" | tr "," "\n" | wc -l) $(stall_line "$work/p.console" | cut -c1-300)"
    cps=$(awk -v n="$pauses" -v w="$window" 'BEGIN { printf "%.2f", n / w }')
    echo "RESULT vmm=qemu round=$r protect_s=$tp checkpoints=$pauses window_s=$window cps=$cps p50_us=$p50 p99_us=$p99 max_us=$max stall_us=${stall%% *} stall_p50_us=${stall#* } unprotected_stall_us=${base%% *} unprotected_stall_p50_us=${base#* } seq=$((s0 + 2))..$s1 corrupt=$(grep -c CORRUPT "$work/p.console") colo=$colo"
    qemu_stop
}

# --- colo-replicate COLO ---------------------------------------------------------------------
on_a() { COLO_RUN_DIR=$work/hostA COLO_STATE_DIR=$work/hostA/state "$bin" "$@"; }
on_b() { COLO_RUN_DIR=$work/hostB COLO_STATE_DIR=$work/hostB/state "$bin" "$@"; }
# ours_destroy a|b: destroy that host's guest. One that has not ended within 60 s is a bug: the
# run says where each thread of the tool waits (RUNFAIL HANG lines), and the processes are killed
# so the next run starts clean.
ours_destroy() {
    local dir rc p t
    dir=$work/host$(echo "$1" | tr ab AB)
    COLO_RUN_DIR=$dir COLO_STATE_DIR=$dir/state timeout 60 "$bin" destroy bench >/dev/null 2>&1
    rc=$?
    [ "$rc" -eq 124 ] || [ "$rc" -eq 143 ] || return 0
    fail "ours: destroy on host $1 did not end within 60 s"
    for p in $(pidof "$(basename "$bin")"); do
        for t in /proc/"$p"/task/*; do
            echo "RUNFAIL HANG pid=$p tid=${t##*/} comm=$(cat "$t/comm") state=$(cut -d' ' -f3 "$t/stat") wchan=$(cat "$t/wchan")" \
                 "stack=$(tr '\n' '|' < "$t/stack" 2>/dev/null | cut -c1-300)"
        done
    done
    kill -9 $(pidof "$(basename "$bin")") 2>/dev/null
}
# The secondary first: destroying a protected primary first makes the secondary take over, and in
# this L1 the kernel then froze (0% CPU, no more console output) more than once when the
# survivor was destroyed; a bench has no use for that takeover. DESTROY_ORDER="a b" does it anyway.
ours_stop() {
    local side
    for side in ${DESTROY_ORDER:-b a}; do
        echo "bench: destroying the guest on host $side"
        ours_destroy "$side"
    done
    echo "bench: both destroyed"
    sleep 0.3
}
ours_run() {
    local r=$1 out address t0 ts tp sb base st0 st1 s0 s1 tw0 window c0 c1 stall cps
    rm -rf "$work/hostA" "$work/hostB" "$work"/a.console "$work"/b.console
    mkdir -p "$work/hostA" "$work/hostB"
    cat > "$work/bench.cfg" <<EOF
name = "bench"
backend = "kvm"
memory = $mem
vcpus = 1
guest = "linux"
kernel = "$kernel"
ramdisk = "$initramfs"
extra = "$extra"
EOF
    out=$(on_a create "$work/bench.cfg" --console-log "$work/a.console" 2>&1) || { fail "ours $r: create: $out"; return; }
    wait_seq 3 240 "$work/a.console" || { fail "ours $r: the guest did not reach seq=3"; ours_stop; return; }
    ts=$(now)
    out=$(on_b receive -l 127.0.0.1:0 --console-log "$work/b.console" 2>&1) || { fail "ours $r: receive: $out"; ours_stop; return; }
    address=$(echo "$out" | sed -n 's/^Listening on \([^ ]*\) .*/\1/p')
    wait_seq 50 60 "$work/a.console"
    sb=$(last_seq "$work/a.console")
    t0=$(now)
    # shellcheck disable=SC2086  # OURS_ARGS: words for protect, split on purpose
    out=$(on_a protect -i 100 ${OURS_ARGS:-} bench "$address" 2>&1) || { fail "ours $r: protect: $out"; ours_stop; return; }
    tp=$(since "$t0")
    echo "$out" | sed "s/^/PROTECT ours round=$r: /"
    st0=$(on_a status --json bench)
    s0=$(last_seq "$work/a.console")
    tw0=$(now)
    wait_window "$ts" || { fail "ours $r: protected too late for a window (after $tp s)"; ours_stop; return; }
    st1=$(on_a status --json bench)
    window=$(since "$tw0")
    s1=$(last_seq "$work/a.console")
    c0=$(echo "$st0" | json checkpoints) c1=$(echo "$st1" | json checkpoints)
    wait_stall "$work/a.console" 120 || { fail "ours $r: no stall line from the guest"; ours_stop; return; }
    stall=$(stall_max "$work/a.console" $((s0 + 2)) "$s1")
    base=$(stall_max "$work/a.console" 5 "$sb")
    echo "STALLS vmm=ours round=$r values=$(stall_line "$work/a.console" | tr "," "\n" | wc -l) $(stall_line "$work/a.console" | cut -c1-300)"
    cps=$(awk -v n="$((c1 - c0))" -v w="$window" 'BEGIN { printf "%.2f", n / w }')
    echo "RESULT vmm=ours round=$r protect_s=$tp checkpoints=$((c1 - c0)) window_s=$window cps=$cps" \
         "p50_us=$(echo "$st1" | json pause_p50_us) p99_us=$(echo "$st1" | json pause_p99_us) max_us=$(echo "$st1" | json pause_max_us)" \
         "stall_us=${stall%% *} stall_p50_us=${stall#* } unprotected_stall_us=${base%% *} unprotected_stall_p50_us=${base#* } seq=$((s0 + 2))..$s1 corrupt=$(grep -c CORRUPT "$work/a.console")" \
         "state=$(echo "$st1" | sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p') overruns=$(echo "$st1" | json checkpoint_overruns)" \
         "divergence=$(echo "$st1" | json divergence_checkpoints)" \
         "stop_p99_us=$(echo "$st1" | json pause_stop_p99_us) harvest_p99_us=$(echo "$st1" | json pause_harvest_p99_us)" \
         "copy_p99_us=$(echo "$st1" | json pause_copy_p99_us) state_p99_us=$(echo "$st1" | json pause_state_p99_us)"
    ours_stop
}

# WATCH=SECONDS: every that many seconds, where each thread of the tool waits (for a run that
# stands still: the L1's serial console is all one sees of it).
if [ -n "${WATCH:-}" ]; then
    (while sleep "$WATCH"; do
        for p in $(pidof "$(basename "$bin")"); do
            for t in /proc/"$p"/task/*; do
                echo "WATCH $(now) pid=$p tid=${t##*/} comm=$(cat "$t/comm") state=$(cut -d' ' -f3 "$t/stat") wchan=$(cat "$t/wchan")"
            done
        done
    done) &
fi
echo "bench: guest ${mem} MiB, 1 vCPU, $rate pages per 100 ms, workload runs $secs s; $rounds round(s) of: $order"
r=${FIRST_ROUND:-1}
while [ "$r" -le "$rounds" ]; do
    for vmm in $order; do
        t=$(now)
        "${vmm}_run" "$r"
        echo "bench: $vmm round $r took $(since "$t") s"
    done
    r=$((r + 1))
done
