#!/bin/sh
# Runs inside L1 (busybox sh; see run-in-l1.sh): a Linux guest through the colo-replicate CLI, as
# an operator would drive it, with every step in a new process.
#
#   linux_lifecycle.sh COLO_REPLICATE CONFIG WORKDIR [ROUNDS]
#
#   linux-save-restore-3x  `create` (background, control socket in $COLO_RUN_DIR), then ROUNDS
#                          (default 3) times `save NAME FILE` (the guest process must end) and
#                          `restore FILE` (a new process), each restored guest printing two more
#                          seq lines before the next save.
#   linux-migrate          the same guest then live-migrates (`migrate NAME 127.0.0.1:PORT`) to a
#                          `receive` in a second run dir (a second "host"); the source process
#                          must end and the destination go on printing.
#   linux-failover         host B (where the guest arrived) protects it (Remus, -i 300) to a
#                          `receive` on host C; after a few checkpoints B's process is killed with
#                          SIGKILL, and C must take over and go on printing.
# The tests check the console logs (--console-log: host A's across create and every restore,
# then host B's, then C's, joined by position: each holds byte k of the guest's console stream at
# position k, NULs before the first byte that host released): every seq line whole, seq=1.. each
# exactly once and in order, no CORRUPT, no position where two logs differ.
# Prints `PASS name: ...` or `FAIL name: why` per test (numbers in the PASS lines), then the logs'
# tails on a failure. Exit status 0 when both passed.
set -u
bin=${1:?usage: linux_lifecycle.sh COLO_REPLICATE CONFIG WORKDIR [ROUNDS]}
cfg=${2:?config}
work=${3:?workdir}
rounds=${4:-3}
name=$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$cfg")
vcpus=$(sed -n 's/^vcpus *= *\([0-9]*\).*/\1/p' "$cfg")
run_a=$work/hostA run_b=$work/hostB run_c=$work/hostC
log_a=$work/a.console log_b=$work/b.console log_c=$work/c.console image=$work/guest.img
mkdir -p "$run_a" "$run_b" "$run_c"
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

now() { cut -d' ' -f1 /proc/uptime; }                 # seconds, 10 ms resolution
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# cli_in DIR ARG...: the CLI with DIR as its host's run dir. No save, restore, migrate or protect
# takes two minutes here: one that hangs is killed and fails with a line that says so (not a
# silent L1 until its timeout). Quick commands run without the watchdog process, which would
# hold their output open up to a second after they end.
cli_in() {
    local dir=$1 st limit=""
    shift
    case "$1" in save|restore|migrate|protect) limit="timeout 120" ;; esac
    COLO_RUN_DIR=$dir COLO_STATE_DIR=$dir/state $limit "$bin" "$@"
    st=$?
    if [ "$st" = 124 ] || [ "$st" = 143 ]; then echo "colo-replicate $1: no answer within 120 s (killed)" >&2; fi
    return "$st"
}
on_a() { cli_in "$run_a" "$@"; }
on_b() { cli_in "$run_b" "$@"; }
on_c() { cli_in "$run_c" "$@"; }
state_on() { "on_$1" status "$name" 2>/dev/null | sed -n 's/^state: *//p'; }  # state_on b|c
# The highest seq number whose line is complete in the given logs (0 if none).
last_seq() { cat "$@" 2>/dev/null | tr -d '\r\000' | sed -n 's/^seq=\([0-9]*\) .*/\1/p' | tail -1 | grep . || echo 0; }
# wait_seq N SECONDS LOG...: until seq=N is in the logs; 1 on timeout.
wait_seq() {
    local want=$1 limit=$2 t0
    shift 2
    t0=$(now)
    while [ "$(last_seq "$@")" -lt "$want" ]; do
        [ "$(awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { print (b - a > l) }')" = 0 ] || return 1
        sleep 0.2
    done
}
# gone PID: the process has ended (a zombie counts as ended: PID 1 here may not reap it at once).
gone() { [ ! -e "/proc/$1/stat" ] || [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
wait_gone() {
    local i=0
    while ! gone "$1"; do i=$((i + 1)); [ $i -lt 50 ] || return 1; sleep 0.1; done
}
pid_of() { sed -n 's/.*(pid \([0-9]*\)[;)].*/\1/p'; }
listed() { on_a list | awk 'NR > 1 {print $1 ":" $2}' | tr '\n' ' '; }
listed_b() { on_b list | awk 'NR > 1 {print $1 ":" $2}' | tr '\n' ' '; }
# first_seq LOG: the first seq line that host released.
first_seq() { tr -d '\r\000' < "$1" | sed -n 's/^seq=\([0-9]*\) .*/\1/p' | head -1; }
# check_order LOG...: the logs joined must hold seq=1..N, every line whole and each N once, in
# order, and no CORRUPT (the guest's tty ends lines with \r\n). Prints the problem, or "seq=1..N" when there is none.
# The logs are given in the order the guest ran on the hosts; each goes on at or before the end of
# the one before, so laid over each other they are the first, then each one's bytes beyond the
# end so far. Where two logs both hold a position they must agree (a byte released twice).
check_order() {
    : > "$work/joined"
    local prev="" f differ
    for f in "$@"; do
        if [ -n "$prev" ]; then
            differ=$(cmp -l "$prev" "$f" 2>/dev/null | awk '$2 != 0 && $3 != 0' | wc -l)
            [ "$differ" = 0 ] || { echo "$differ positions differ between $(basename "$prev") and $(basename "$f")"; return; }
        fi
        tail -c +$(($(wc -c < "$work/joined") + 1)) "$f" >> "$work/joined"
        prev=$f
    done
    tr -d '\r' < "$work/joined" > "$work/joined.txt" && mv "$work/joined.txt" "$work/joined"
    # A guest still running may be in the middle of a line: only whole lines are judged.
    [ -z "$(tail -c1 "$work/joined")" ] || sed -i '$d' "$work/joined"
    awk '
        /CORRUPT/ { print "CORRUPT line: " substr($0, 1, 100); bad = 1; exit }
        /seq=/ {
            if ($0 !~ /^seq=[0-9]+ written=[0-9]+ verified=[0-9]+ check=[0-9a-f]+$/) {
                print "damaged seq line: " substr($0, 1, 100); bad = 1; exit
            }
            n = substr($1, 5) + 0
            if (n != last + 1) { print "seq=" n " follows seq=" last; bad = 1; exit }
            last = n
        }
        END { if (!bad) print (last ? "seq=1.." last : "no seq lines") }' "$work/joined"
}
fail_dump() {
    echo "  | --- host A: $(ls "$run_a" | tr '\n' ' ')"
    for f in "$run_a"/*.log "$run_b"/*.log; do [ -f "$f" ] && tail -5 "$f" | sed "s#^#  | $(basename "$f"): #"; done
    tail -15 "$log_a" 2>/dev/null | sed 's/^/  | a.console: /'
    tail -8 "$log_b" 2>/dev/null | sed 's/^/  | b.console: /'
    for f in "$run_c"/*.log; do [ -f "$f" ] && tail -5 "$f" | sed "s#^#  | $(basename "$f"): #"; done
    tail -8 "$log_c" 2>/dev/null | sed 's/^/  | c.console: /'
}
cleanup() {
    on_a destroy "$name" >/dev/null 2>&1
    on_b destroy "$name" >/dev/null 2>&1
    on_c destroy "$name" >/dev/null 2>&1
    [ -z "${receiver:-}" ] || kill "$receiver" 2>/dev/null
    [ -z "${receiver_c:-}" ] || kill "$receiver_c" 2>/dev/null
}
receiver=""
status=0
fail() { echo "FAIL $1: $2"; fail_dump; status=1; }

# --- linux-save-restore-3x
sr_ok=""
run_save_restore() {
    local t0 out pid times="" size seq_before
    t0=$(now)
    out=$(on_a create "$cfg" --console-log "$log_a" 2>&1) || { fail linux-save-restore-3x "create: $out"; return; }
    pid=$(echo "$out" | pid_of)
    wait_seq 3 120 "$log_a" || { fail linux-save-restore-3x "no seq=3 within 120 s of create"; return; }
    echo "boot to seq=3: $(since "$t0") s (guest pid $pid)"
    cpus=$(tr -d '\r' < "$log_a" | sed -n 's/.*colo-workload: start .* cpus=\([0-9]*\).*/\1/p' | tail -1)
    [ "$cpus" = "$vcpus" ] || { fail linux-save-restore-3x "Linux saw ${cpus:-no} CPUs, the config asks for $vcpus"; return; }
    local r=1 ts tr
    while [ $r -le "$rounds" ]; do
        seq_before=$(last_seq "$log_a")
        t0=$(now)
        out=$(on_a save "$name" "$image" 2>&1) || { fail linux-save-restore-3x "round $r: save: $out"; return; }
        ts=$(since "$t0")
        wait_gone "$pid" || { fail linux-save-restore-3x "round $r: the saved guest's process $pid still runs"; return; }
        [ -z "$(listed)" ] || { fail linux-save-restore-3x "round $r: after save, list shows $(listed)"; return; }
        size=$(($(wc -c < "$image") / 1024))
        t0=$(now)
        out=$(on_a restore "$image" --console-log "$log_a" 2>&1) || { fail linux-save-restore-3x "round $r: restore: $out"; return; }
        tr=$(since "$t0")
        pid=$(echo "$out" | pid_of)
        [ "$(listed)" = "$name:running " ] || { fail linux-save-restore-3x "round $r: after restore, list shows '$(listed)'"; return; }
        wait_seq $((seq_before + 2)) 60 "$log_a" ||
            { fail linux-save-restore-3x "round $r: the restored guest did not print 2 more lines after seq=$seq_before within 60 s"; return; }
        echo "round $r: saved after seq=$seq_before in $ts s ($size KiB), restored in $tr s"
        times="$times${times:+, }#$r save ${ts}s/${size}KiB restore ${tr}s"
        r=$((r + 1))
    done
    local order
    order=$(check_order "$log_a")
    case "$order" in
        seq=1..*) echo "PASS linux-save-restore-3x: $vcpus-vCPU Linux, $rounds save/restore cycles through the CLI, each into a new process: $times; console $order each once, in order, no CORRUPT"
                  sr_ok=$pid ;;
        *) fail linux-save-restore-3x "console log: $order" ;;
    esac
}
run_save_restore

# --- linux-migrate
run_migrate() {
    local out address seq_before t0 tm report seq_end_a order
    if [ -z "$sr_ok" ]; then
        echo "FAIL linux-migrate: not run: linux-save-restore-3x failed, so there is no guest in a known state to migrate"
        return
    fi
    out=$(on_b receive -l 127.0.0.1:0 --console-log "$log_b" 2>&1) || { fail linux-migrate "receive: $out"; return; }
    address=$(echo "$out" | sed -n 's/^Listening on \([^ ]*\) .*/\1/p')
    receiver=$(echo "$out" | pid_of)
    seq_before=$(last_seq "$log_a")
    t0=$(now)
    out=$(on_a migrate "$name" "$address" 2>&1) || { fail linux-migrate "migrate: $out"; return; }
    tm=$(since "$t0")
    report=$(echo "$out" | sed -n 's/^Migrated .*: \(downtime_us=.*\)/\1/p' | tail -1)
    echo "$out"
    case "$report" in *downtime_us=*passes=*bytes=*) ;; *) fail linux-migrate "migrate printed no report: $out"; return ;; esac
    wait_gone "$sr_ok" || { fail linux-migrate "the source guest's process $sr_ok still runs after migrate"; return; }
    [ -z "$(listed)" ] || { fail linux-migrate "after migrate, host A lists $(listed)"; return; }
    [ "$(listed_b)" = "$name:running " ] || { fail linux-migrate "after migrate, host B lists '$(listed_b)'"; return; }
    seq_end_a=$(last_seq "$log_a")
    wait_seq $((seq_end_a + 5)) 60 "$log_a" "$log_b" ||
        { fail linux-migrate "the migrated guest did not print 5 lines after seq=$seq_end_a within 60 s"; return; }
    order=$(check_order "$log_a" "$log_b")
    case "$order" in
        seq=1..*) echo "PASS linux-migrate: live migration to a receive on 127.0.0.1 in ${tm} s ($report);" \
                       "host A's log ends at seq=$seq_end_a, host B's starts at seq=$(first_seq "$log_b");" \
                       "source process gone; joined console $order each once, in order, no CORRUPT"
                  migrated=$receiver ;;
        *) fail linux-migrate "joined console logs: $order" ;;
    esac
}
migrated=""
run_migrate

# --- linux-failover
receiver_c=""
run_failover() {
    local out address t0 tp seq_b checkpoints killed took order
    if [ -z "$migrated" ]; then
        echo "FAIL linux-failover: not run: linux-migrate failed, so no guest runs on host B"
        return
    fi
    out=$(on_c receive -l 127.0.0.1:0 --console-log "$log_c" --heartbeat-timeout 3000 2>&1) ||
        { fail linux-failover "receive on C: $out"; return; }
    address=$(echo "$out" | sed -n 's/^Listening on \([^ ]*\) .*/\1/p')
    receiver_c=$(echo "$out" | pid_of)
    t0=$(now)
    out=$(on_b protect --remus -i 300 --heartbeat-timeout 3000 "$name" "$address" 2>&1) ||
        { fail linux-failover "protect on B (the guest that arrived by migration): $out"; return; }
    tp=$(since "$t0")
    [ "$(state_on c)" = protecting ] || { fail linux-failover "after protect, C is '$(state_on c)', not protecting"; return; }
    # At least 5 acknowledged checkpoints, so the survivor continues from one the protection made.
    checkpoints=0
    while [ "${checkpoints:-0}" -lt 5 ]; do
        [ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print (b - a > 120) }')" = 0 ] ||
            { fail linux-failover "only ${checkpoints:-0} checkpoints within 120 s of protect"; return; }
        sleep 0.3
        checkpoints=$(on_b status "$name" 2>/dev/null | sed -n 's/^checkpoints: *//p')
    done
    seq_b=$(last_seq "$log_a" "$log_b")
    wait_seq $((seq_b + 1)) 60 "$log_a" "$log_b" ||
        { fail linux-failover "the protected guest released nothing after seq=$seq_b within 60 s"; return; }
    kill -9 "$migrated"
    killed=$(now)
    wait_gone "$migrated" || { fail linux-failover "B's process $migrated survived SIGKILL"; return; }
    while [ "$(state_on c)" != active ]; do
        [ "$(awk -v a="$killed" -v b="$(now)" 'BEGIN { print (b - a > 30) }')" = 0 ] ||
            { fail linux-failover "C did not take over within 30 s of the kill (state '$(state_on c)')"; return; }
        sleep 0.2
    done
    took=$(since "$killed")
    seq_b=$(last_seq "$log_a" "$log_b" "$log_c")
    wait_seq $((seq_b + 5)) 60 "$log_a" "$log_b" "$log_c" ||
        { fail linux-failover "the survivor did not print 5 lines after seq=$seq_b within 60 s"; return; }
    on_c destroy "$name" >/dev/null 2>&1
    wait_gone "$receiver_c" || { fail linux-failover "C's process $receiver_c still runs after destroy"; return; }
    receiver_c=""
    order=$(check_order "$log_a" "$log_b" "$log_c")
    case "$order" in
        seq=1..*) echo "PASS linux-failover: the migrated guest protected from B to C (Remus, -i 300) in ${tp} s," \
                       "$checkpoints checkpoints, then B killed (SIGKILL): C active ${took} s later;" \
                       "B's log ends at seq=$(last_seq "$log_b"), C's starts at seq=$(first_seq "$log_c");" \
                       "joined console A+B+C $order each once, in order, no CORRUPT" ;;
        *) fail linux-failover "joined console logs A+B+C: $order" ;;
    esac
}
run_failover
cleanup
exit $status
