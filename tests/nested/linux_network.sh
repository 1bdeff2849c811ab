#!/bin/sh
# Runs inside L1 (busybox sh; run-in-l1.sh -n loads tun and bridge): a Linux guest serving TCP
# keeps a client's connection through the SIGKILL of its primary, in COLO and in Remus.
#
#   linux_network.sh COLO_REPLICATE CLIENT CONFIG WORKDIR [RUNS_PER_MODE [SEED]]
#
# CONFIG is a Linux guest (examples/linux initramfs) with one vif naming a bridge, a vifname and
# ip=ADDR/24, and net.ip=ADDR/24 in `extra` (so /init starts tcp_seq_server on port 7000). This
# script makes the bridge with ADDR's .1 (the client's side of the network), creates the guest in
# run dir host1 and waits until CLIENT (tcp_seq_client) is answered. Then, RUNS_PER_MODE times
# per mode, COLO and Remus (`--remus -i 100`) alternating:
#   - a new client connection streams numbered lines (1 KiB each, 256 in flight); 2 s of it
#     unprotected give the unprotected throughput. Remus streams and every second COLO stream
#     ask for nonces (replies the guest computes differently each time, see tcp_seq_server.c):
#     without them a guest given the same input recomputes the same replies, and output
#     released before it was safe would go unnoticed. The other COLO streams are deterministic
#     (COLO's case: replies compare equal and go out at once) and give COLO's throughput;
#   - a `receive` in a new run dir (the next "host") and `protect` from the host that runs the
#     guest; a random 0.5-3 s later (seed SEED) that host's process is killed with SIGKILL;
#   - the receiver must become active and make its TAP (same vifname, on the bridge), and the
#     client's acks must go on (at least 50 more lines) within 60 s; then the client stops.
#   The client must end with result=ok: no RST (ECONNRESET), no ack missing, repeated or out of
#   order, the guest's per-connection line count equal to the sequence number throughout.
#   The survivor is the next run's primary: the guest boots once and moves host to host.
# Then, on the last survivor's host H, a live connection through a move unprotected: a new client
# stream, `migrate` to a `receive` on host H+1, then `save` there and `restore` into a new process
# (its TAP gone and made again); after each move at least 50 more acks within 60 s, and the client
# ends with result=ok (linux-net-migrate-save-restore).
# Prints one line per mode: `PASS linux-net-colo-sigkill: ...` / `FAIL ...: why` (PASS lines
# carry the takeover times, the longest stall the client saw, and the throughput of the stream
# unprotected vs protected, from the client's progress lines), then details on a failure; then
# the linux-net-migrate-save-restore line.
set -u
bin=${1:?usage: linux_network.sh COLO_REPLICATE CLIENT CONFIG WORKDIR [RUNS_PER_MODE [SEED]]}
client_bin=${2:?client}
cfg=${3:?config}
work=${4:?workdir}
runs=${5:-2}
seed=${6:-1}
name=$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$cfg")
vif=$(sed -n "s/^vif *= *\[ *'\(.*\)' *\].*/\1/p" "$cfg")
key() { echo "$vif" | tr ',' '\n' | sed -n "s/^$1=//p"; }
bridge=$(key bridge) tap=$(key vifname) guest_ip=$(key ip)
guest_ip=${guest_ip%/*}
client_ip=${guest_ip%.*}.1
port=7000
mkdir -p "$work"
[ -n "$name" ] && [ -n "$bridge" ] && [ -n "$tap" ] && [ -n "$guest_ip" ] ||
    { echo "FAIL linux-net: $cfg needs a name and one vif with bridge=, vifname= and ip="; exit 1; }

now() { cut -d' ' -f1 /proc/uptime; }                 # seconds, 10 ms resolution (the client's clock too)
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
older() { [ "$(awk -v a="$1" -v b="$(now)" -v l="$2" 'BEGIN { print (b - a > l) }')" = 1 ]; }  # older T0 SECONDS
host() { local h=$1; shift; COLO_RUN_DIR=$work/host$h COLO_STATE_DIR=$work/host$h/state "$bin" "$@"; }
state_on() { host "$1" status "$name" 2>/dev/null | sed -n 's/^state: *//p'; }
field_on() { host "$1" status "$name" 2>/dev/null | sed -n "s/^$2: *//p"; }
pid_of() { sed -n 's/.*(pid \([0-9]*\)[;)].*/\1/p'; }
gone() { [ ! -e "/proc/$1/stat" ] || [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
# The client's counters: acked lines and bytes at its last progress line.
acked() { sed -n 's/^progress .* acked=\([0-9]*\) .*/\1/p' "$1" | tail -1 | grep . || echo 0; }
# rate FILE T0 T1: bytes/s between the first progress line at or after T0 and the last at or before T1.
rate() {
    awk -v a="$2" -v b="$3" '/^progress / {
            split($2, u, "="); split($4, n, "="); t = u[2] + 0
            if (t >= a && !have) { t0 = t; b0 = n[2]; have = 1 }
            if (t <= b) { t1 = t; b1 = n[2] }
        }
        END { if (have && t1 - t0 >= 0.5) printf "%.0f %.2f\n", (b1 - b0) / (t1 - t0), t1 - t0; else print "- 0" }' "$1"
}
kib() { awk -v r="$1" 'BEGIN { if (r == "-") print "-"; else printf "%.0f KiB/s", r / 1024 }'; }

status=0
dump() {  # dump RUN: what a failed run leaves for the reader
    local h
    for h in $(ls -d "$work"/host* 2>/dev/null); do
        for f in "$h"/*.log; do [ -f "$f" ] && tail -4 "$f" | sed "s#^#  | $(basename "$h")/$(basename "$f"): #"; done
    done
    tail -6 "$work/client$1.out" 2>/dev/null | sed 's/^/  | client: /'
    for f in $(ls "$work"/console* 2>/dev/null | tail -2); do
        tr -d '\r\000' < "$f" | grep -v '^seq=' | tail -6 | sed "s#^#  | $(basename "$f"): #"
    done
}

if [ ! -c /dev/net/tun ]; then
    for mode in colo remus; do echo "SKIP linux-net-$mode-sigkill: no /dev/net/tun here (run-in-l1.sh -n loads tun)"; done
    exit 0
fi

# --- The client's side of the network: the bridge with the .1 address. The TAP is not ours:
# the guest's colo-replicate makes it and adds it to the bridge, the survivor again at takeover.
ip link set lo up
ip link del "$bridge" 2>/dev/null
ip link add "$bridge" type bridge || { echo "FAIL linux-net: cannot make bridge $bridge"; exit 1; }
ip addr add "$client_ip/24" dev "$bridge" && ip link set "$bridge" up ||
    { echo "FAIL linux-net: cannot give $bridge $client_ip/24"; exit 1; }

# --- The guest, on host 1.
at=1
t0=$(now)
out=$(host 1 create "$cfg" --console-log "$work/console1" 2>&1) || { echo "FAIL linux-net: create: $out"; exit 1; }
primary=$(echo "$out" | pid_of)
"$client_bin" "$guest_ip" $port --seconds 1 --progress-ms 0 --connect-seconds 120 > "$work/client0.out" 2>&1
if ! grep -q '^result=ok' "$work/client0.out"; then
    echo "FAIL linux-net: the guest's TCP server did not answer within 120 s of create: $(tail -1 "$work/client0.out")"
    dump 0
    host 1 destroy "$name" >/dev/null 2>&1
    exit 1
fi
echo "guest up and answering TCP after $(since "$t0") s: $(tr -d '\r\000' < "$work/console1" | grep 'colo-guest: eth0')"

# stop_client FILE: ends the running client ($pid_client), sets $result to its result line; fails
# unless that says ok.
stop_client() {
    kill "$pid_client"
    wait "$pid_client"
    pid_client=""
    result=$(grep '^result=' "$1")
    case "$result" in result=ok*) return 0 ;; *) return 1 ;; esac
}

# one_run N MODE NONCE: on failure sets $problem; on success appends a line to $work/results
# (mode nonce took unprotected_rate secs protected_rate secs max_stall delay protect_s
#  checkpoints compare_checkpoints acked) and makes the survivor the next run's primary.
one_run() {
    local n=$1 mode=$2 nonce=$3 next=$(($1 + 1)) out address receiver t_start t_protect t_protected t_kill took tp
    local delay acked_kill checkpoints compare why extra="" result
    problem=""
    [ "$mode" = remus ] && extra="--remus -i 100"
    "$client_bin" "$guest_ip" $port $nonce --seconds 300 --pad 1024 --window 256 --progress-ms 100 \
        --connect-seconds 10 > "$work/client$n.out" 2>&1 &
    pid_client=$!
    t_start=$(now)
    while [ "$(acked "$work/client$n.out")" = 0 ]; do
        older "$t_start" 15 && { problem="the client got no ack within 15 s: $(tail -1 "$work/client$n.out")"; return; }
        sleep 0.1
    done
    t_start=$(now)
    sleep 2  # the unprotected throughput window (a measurement, not a wait for a condition)
    out=$(host $next receive -l 127.0.0.1:0 --console-log "$work/console$next" --heartbeat-timeout 3000 2>&1) ||
        { problem="receive on host$next: $out"; return; }
    address=$(echo "$out" | sed -n 's/^Listening on \([^ ]*\) .*/\1/p')
    receiver=$(echo "$out" | pid_of)
    t_protect=$(now)
    out=$(host $at protect $extra --heartbeat-timeout 3000 "$name" "$address" 2>&1) ||
        { problem="protect from host$at to host$next: $out"; return; }
    t_protected=$(now)
    tp=$(since "$t_protect")
    delay=$(awk -v s="$seed" -v n="$n" 'BEGIN { srand(s * 1000 + n); printf "%.2f", 0.5 + 2.5 * rand() }')
    sleep "$delay"  # the random moment of the death, not a wait for a condition
    checkpoints=$(field_on $at checkpoints)
    compare=$(field_on $at net_compare_checkpoints)
    why=$(field_on $at net_last_compare_reason)
    acked_kill=$(acked "$work/client$n.out")
    kill -9 "$primary"
    t_kill=$(now)
    while ! gone "$primary"; do
        older "$t_kill" 5 && { problem="host$at's process $primary survived SIGKILL"; return; }
        sleep 0.05
    done
    while [ "$(state_on $next)" != active ]; do
        older "$t_kill" 30 && { problem="host$next did not take over within 30 s of the kill (state '$(state_on $next)')"; return; }
        sleep 0.1
    done
    took=$(since "$t_kill")
    while ! ip link show "$tap" > /dev/null 2>&1; do
        older "$t_kill" 30 && { problem="host$next made no TAP $tap within 30 s of the kill"; return; }
        sleep 0.1
    done
    while [ "$(acked "$work/client$n.out")" -lt $((acked_kill + 50)) ]; do
        gone "$pid_client" && { problem="the client ended: $(tail -1 "$work/client$n.out")"; return; }
        older "$t_kill" 60 &&
            { problem="the client's acks stopped at $(acked "$work/client$n.out") (at the kill: $acked_kill) for 60 s after the kill"; return; }
        sleep 0.1
    done
    stop_client "$work/client$n.out" || { problem="the client: $result"; return; }
    # Throughput windows: 2 s unprotected; protected from protect's return to the kill.
    echo "$mode ${nonce:-plain} $took $(rate "$work/client$n.out" "$t_start" "$t_protect") $(rate "$work/client$n.out" "$t_protected" "$t_kill")" \
         "$(echo "$result" | sed -n 's/.*max_stall_ms=\([0-9]*\).*/\1/p') $delay $tp ${checkpoints:-?} ${compare:-?}" \
         "$(echo "$result" | sed -n 's/.* acked=\([0-9]*\) .*/\1/p')" >> "$work/results"
    [ -z "$why" ] || echo "$mode $why" > "$work/why$n"
    primary=$receiver
    at=$next
}

: > "$work/results"
n=1
problem=""
failed=""
pid_client=""
i=0
while [ $i -lt "$runs" ] && [ -z "$failed" ]; do
    for mode in colo remus; do
        nonce=--nonce
        [ "$mode" = colo ] && [ $((i % 2)) = 0 ] && nonce=""
        one_run $n $mode "$nonce"
        if [ -n "$problem" ]; then
            echo "run $n ($mode${nonce:+, nonces}, host$at -> host$((n + 1))): $problem"
            dump $n
            failed=$mode
            break
        fi
        why=$(sed "s/^[a-z]* //" "$work/why$n" 2>/dev/null)
        tail -1 "$work/results" | {
            read -r _ _ took ur us pr ps stall delay tp cps cmp acked
            echo "run $n ($mode${nonce:+, nonces}): host$((at - 1)) killed ${delay} s after protect returned (protect took ${tp} s," \
                 "$cps checkpoints, $cmp by compare); host$at active after ${took} s; the client's longest stall" \
                 "${stall} ms, $acked lines acked in order, no RST; stream unprotected $(kib "$ur"), protected $(kib "$pr")${why:+" (last compare checkpoint: $why)"}"
        }
        n=$((n + 1))
    done
    i=$((i + 1))
done
# more_acks FILE FROM: the client's acks pass FROM + 50 within 60 s.
more_acks() {
    local t=$(now)
    while [ "$(acked "$1")" -lt $(($2 + 50)) ]; do
        gone "$pid_client" && return 1
        older "$t" 60 && return 1
        sleep 0.1
    done
}

# moves: the unprotected guest (on host $at) keeps a client's connection through migrate, save and
# restore. Sets $moved (the PASS text) or $moved_problem.
moves() {
    local out address receiver t0 tm ts tr from next=$((at + 1)) image="$work/saved.img" result c="$work/clientmoves.out"
    moved="" moved_problem=""
    "$client_bin" "$guest_ip" $port --seconds 300 --pad 1024 --window 256 --progress-ms 100 --connect-seconds 10 > "$c" 2>&1 &
    pid_client=$!
    t0=$(now)
    while [ "$(acked "$c")" = 0 ]; do
        older "$t0" 15 && { moved_problem="the client got no ack within 15 s: $(tail -1 "$c")"; return; }
        sleep 0.1
    done
    # 3 s of silence, as the protect runs allow: inside the emulated L1 a loaded host stalls a
    # side longer than the default 800 ms (a migrate failed so twice on a busy machine).
    out=$(host $next receive -l 127.0.0.1:0 --console-log "$work/console$next" --heartbeat-timeout 3000 2>&1) ||
        { moved_problem="receive on host$next: $out"; return; }
    address=$(echo "$out" | sed -n 's/^Listening on \([^ ]*\) .*/\1/p')
    receiver=$(echo "$out" | pid_of)
    from=$(acked "$c")
    t0=$(now)
    out=$(host $at migrate "$name" "$address" 2>&1) || { moved_problem="migrate from host$at to host$next: $out"; return; }
    tm=$(since "$t0")
    primary=$receiver at=$next
    more_acks "$c" "$from" || { moved_problem="after migrate the client's acks stopped at $(acked "$c") (at the move: $from)"; return; }
    from=$(acked "$c")
    t0=$(now)
    out=$(host $at save "$name" "$image" 2>&1) || { moved_problem="save on host$at: $out"; return; }
    ts=$(since "$t0")
    t0=$(now)
    out=$(host $at restore "$image" --console-log "$work/console$at-restored" 2>&1) || { moved_problem="restore on host$at: $out"; return; }
    tr=$(since "$t0")
    primary=$(echo "$out" | pid_of)
    more_acks "$c" "$from" || { moved_problem="after save and restore the client's acks stopped at $(acked "$c") (at the save: $from)"; return; }
    stop_client "$c" || { moved_problem="the client: $result"; return; }
    moved="a TCP client streaming numbered lines to the unprotected Linux guest kept its connection through migrate (host$((at - 1)) -> host$at, ${tm} s) and save + restore into a new process (${ts} s + ${tr} s, the TAP made again): no RST, every ack in order, $(echo "$result" | sed -n 's/.* acked=\([0-9]*\) .*/\1/p') lines, longest stall $(echo "$result" | sed -n 's/.*max_stall_ms=\([0-9]*\).*/\1/p') ms"
}
if [ -z "$failed" ]; then
    moves
    [ -z "$moved_problem" ] || dump moves
else
    moved="" moved_problem="not run: the guest is in an unknown state after the failed kill run"
fi

# After a failure the client, a receiver or the guest may still run (on a hardware-KVM host this
# runs without an L1 that powers off).
[ -z "$pid_client" ] || kill "$pid_client" 2>/dev/null
for h in $(seq 1 $((at + 1))); do host $h destroy "$name" >/dev/null 2>&1; done
ip link del "$bridge" 2>/dev/null

# One line per mode. Throughput: bytes over seconds summed over the runs' windows.
for mode in colo remus; do
    test_name=linux-net-$mode-sigkill
    label=COLO
    [ "$mode" = remus ] && label="Remus -i 100"
    if [ "$failed" = "$mode" ]; then
        echo "FAIL $test_name: run $n (seed $seed): $problem"
        status=1
        continue
    fi
    done_runs=$(awk -v m="$mode" '$1 == m' "$work/results" | wc -l)
    if [ "$done_runs" -lt "$runs" ]; then
        echo "FAIL $test_name: not run to the end: $failed failed first (run $((n))), with the guest in an unknown state"
        status=1
        continue
    fi
    last_why=""
    for f in $(ls -tr "$work"/why* 2>/dev/null); do
        grep -q "^$mode " "$f" && last_why=$(sed "s/^$mode //" "$f")
    done
    awk -v m="$mode" -v label="$label" -v name="$test_name" -v seed="$seed" -v why="$last_why" '
        function kibs(b, s) { return s > 0 ? sprintf("%.0f KiB/s", b / s / 1024) : "-" }
        function runs(k) { return k + 0 == 1 ? "1 run" : (k + 0) " runs" }
        $1 == m {
            k++; if (k == 1 || $3 < tmin) tmin = $3; if ($3 > tmax) tmax = $3; if ($8 > stall) stall = $8
            if ($4 != "-") { ub += $4 * $5; us += $5 }
            if ($6 != "-") { pb[$2] += $6 * $7; ps[$2] += $7 }
            acked += $13; kinds[$2]++; cps += $11; cmp += $12
        }
        END {
            if (m == "colo") protected = sprintf("COLO %s with deterministic replies (%s), %s with nonces (%s: every reply differs, so each forces a checkpoint)",
                                                 kibs(pb["plain"], ps["plain"]), runs(kinds["plain"]), kibs(pb["--nonce"], ps["--nonce"]), runs(kinds["--nonce"]))
            else protected = sprintf("%s %s (replies with nonces)", label, kibs(pb["--nonce"], ps["--nonce"]))
            printf "PASS %s: %s of the primary (%s, random 0.5-3 s after protect, seed %s), a TCP client streaming numbered lines to the Linux guest: no RST, every ack in order, %d lines; takeover %s-%s s, longest client stall %d ms; %d checkpoints before the kills, %d asked for by the compare%s; TCP throughput unprotected %s, %s\n",
                name, k == 1 ? "1 SIGKILL" : k " SIGKILLs", label, seed, acked, tmin, tmax, stall, cps, cmp, why == "" ? "" : " (last: " why ")", kibs(ub, us), protected
        }' "$work/results"
done
if [ -n "$moved" ]; then
    echo "PASS linux-net-migrate-save-restore: $moved"
else
    echo "FAIL linux-net-migrate-save-restore: $moved_problem"
    status=1
fi
exit $status
