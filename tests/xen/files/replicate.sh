#!/bin/busybox sh
# The nested tier's replication check, run in dom0 by dom0-init after xen_smoke as
#   sh /domu/replicate.sh NAME COLO_CONFIG [remus|colo|abort]   (dom0-init: domu-seq /domu/colo-seq.cfg)
# with NAME a running PVH domU whose guest prints seq=N lines, COLO_CONFIG its
# colo-replicate.cfg(5), and the colo-replicate binary in /usr/bin. One host plays both sides over loopback, each with
# its own COLO_RUN_DIR:
#   secondary  colo-replicate receive: builds its own domain NAME--incoming (paused) from the
#              primary's libxl configuration when the primary connects;
#   primary    colo-replicate create COLO_CONFIG attaches to the running domU, then
#              protect [--remus] NAME 127.0.0.1:PORT.
# After a few seconds of checkpoints it checks both sides' status, then simulates the loss of the
# primary's host: SIGSTOP, `xl destroy` of the primary's domain, SIGKILL of its colo-replicate.
# The secondary must take over: its domain runs under NAME, its console goes on printing seq=N
# lines, the guest finds no CORRUPT page, and the released console output of primary then
# survivor is one unbroken sequence.
# Prints "XS PASS name: ..." / "XS FAIL name: why" / "XS info ..." lines.
NAME=${1:-domu-seq}
COLO_CONFIG=${2:-/domu/colo-seq.cfg}
MODE=${3:-remus}  # remus: checks named replicate_*; colo: replicate_colo_*; abort: replicate_abort_*
case "$MODE" in
    remus) TAG=replicate MODE_FLAGS=--remus PORT=8471 ;;
    colo) TAG=replicate_colo MODE_FLAGS= PORT=8472 ;;
    # The primary ends protection instead of being lost: the secondary must destroy its domain.
    abort) TAG=replicate_abort MODE_FLAGS=--remus PORT=8473 ;;
    # A Linux PVH guest (PV drivers): Remus with cooperative checkpoints; after the takeover its
    # kernel must also answer through xenstore (a sysrq request it handles itself).
    linux) TAG=replicate_linux MODE_FLAGS=--remus PORT=8474 ;;
    *) echo "XS FAIL replicate_$MODE: unknown mode '$MODE'"; exit 0 ;;
esac
# Heartbeats under TCG on one shared CPU: the primary gives the secondary 3 s (a TCG dom0 stalls
# longer than the default 800 ms during the initial sync); the secondary waits 5 s, long enough
# for `xl destroy` of the old primary's domain to finish before it takes over the name.
PRIMARY_HEARTBEAT_MS=3000
HEARTBEAT_MS=5000
INTERVAL=${REPLICATE_INTERVAL:-200}
# Each of the Linux guest's checkpoints is a whole suspend and resume of its kernel, emulated.
[ "$MODE" = linux ] && INTERVAL=${REPLICATE_LINUX_INTERVAL:-1000}
PRIMARY_RUN=/run/colo-primary-$MODE
SECONDARY_RUN=/run/colo-secondary-$MODE
PVM_LOG=/tmp/pvm-$MODE.console
SVM_LOG=/tmp/svm-$MODE.console
mkdir -p $PRIMARY_RUN $SECONDARY_RUN
say() { echo "XS $*"; }
pass() { say "PASS $1: $2"; }
fail() { say "FAIL $1: $2"; }
oneline() { tr -d '\000' | tr '\n' ' ' | cut -c1-400; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
primary() { COLO_RUN_DIR=$PRIMARY_RUN COLO_STATE_DIR=$PRIMARY_RUN/state colo-replicate "$@"; }
secondary() { COLO_RUN_DIR=$SECONDARY_RUN COLO_STATE_DIR=$SECONDARY_RUN/state colo-replicate "$@"; }
field() { sed -n "s/^$1: *//p" | head -1; }  # one field of `colo-replicate status` text output
xl_state() { xl list "$1" 2>/dev/null | awk 'NR==2 {print $5}'; }
# A console log holds byte k of the guest's console stream at position k: the survivor's starts
# with NULs up to the first byte it released.
seqs() { cat "$@" 2>/dev/null | tr -d '\000' | sed -n 's/^.*seq=\([0-9][0-9]*\).*$/\1/p'; }
# The released output of both hosts joined: laid over each other by position. The primary's log
# is whole from position 0, so that is its bytes, then the survivor's beyond its end; a byte both
# released is at the same position in both and counts once (conflicts() finds two that differ).
joined() { cat $PVM_LOG; tail -c +$(($(wc -c <$PVM_LOG) + 1)) $SVM_LOG; }
conflicts() { cmp -l $PVM_LOG $SVM_LOG 2>/dev/null | awk '$2 != 0 && $3 != 0' | wc -l; }
diagnose() {
    sleep 2  # a receive that stopped destroys its domain on the way out
    xl list 2>&1 | sed 's/^/XS info xl: /'
    tail -8 $SECONDARY_RUN/receive-$PORT.log 2>/dev/null | sed 's/^/XS info receive log: /'
    tail -8 $PRIMARY_RUN/$NAME.log 2>/dev/null | sed 's/^/XS info primary log: /'
    say "info pvm console: $(seqs $PVM_LOG | wc -l) seq lines, last: $(tail -2 $PVM_LOG 2>/dev/null | oneline)"
    say "info svm console: $(seqs $SVM_LOG | wc -l) seq lines, first: $(head -2 $SVM_LOG 2>/dev/null | oneline) last: $(tail -2 $SVM_LOG 2>/dev/null | oneline)"
}
# Ends the run: nothing of the replication may be left to disturb the rest of dom0-init.
cleanup() {
    [ -n "${primary_pid:-}" ] && kill -9 "$primary_pid" 2>/dev/null
    secondary destroy "$NAME" >/dev/null 2>&1
    for d in "$NAME--incoming" "$NAME"; do xl list "$d" >/dev/null 2>&1 && xl destroy "$d" 2>/dev/null; done
}
NAMES="${TAG}_protect ${TAG}_checkpoints ${TAG}_takeover ${TAG}_console ${TAG}_sequence"
[ "$MODE" = abort ] && NAMES="${TAG}_protect ${TAG}_destroyed"
[ "$MODE" = linux ] && NAMES="$NAMES ${TAG}_xenstore ${TAG}_network"
give_up() {  # $1: the check that failed first; the later ones did not run
    diagnose
    skip=0
    for n in $NAMES; do
        [ $skip = 1 ] && fail "$n" "not reached: $1 failed"
        [ "$n" = "$1" ] && skip=1
    done
    cleanup
    exit 0
}

# --- secondary, then primary (over loopback, which dom0-init leaves down)
ifconfig lo 127.0.0.1 up 2>/dev/null || ip link set lo up
if ! secondary receive -l 127.0.0.1:$PORT --console-log $SVM_LOG --heartbeat-timeout $HEARTBEAT_MS >/tmp/receive.out 2>&1; then
    fail ${TAG}_protect "colo-replicate receive: $(oneline </tmp/receive.out)"
    give_up ${TAG}_protect
fi
if ! primary create --console-log $PVM_LOG "$COLO_CONFIG" >/tmp/create.out 2>&1; then
    fail ${TAG}_protect "colo-replicate create: $(oneline </tmp/create.out)"
    give_up ${TAG}_protect
fi
primary_pid=$(sed -n 's/.*(pid \([0-9][0-9]*\)).*/\1/p' /tmp/create.out)
t0=$(uptime_s)
if ! primary protect $MODE_FLAGS -i $INTERVAL --heartbeat-timeout $PRIMARY_HEARTBEAT_MS "$NAME" 127.0.0.1:$PORT >/tmp/protect.out 2>&1; then
    fail ${TAG}_protect "colo-replicate protect: $(grep -v '^syncing: ' /tmp/protect.out | oneline)"
    give_up ${TAG}_protect
fi
t1=$(uptime_s)
incoming_id=$(xl domid "$NAME--incoming" 2>/dev/null)
incoming_state=$(xl_state "$NAME--incoming")
# Remus keeps the SVM paused until a takeover; COLO runs it between checkpoints.
if [ -z "$incoming_state" ]; then
    fail ${TAG}_protect "protect returned but there is no domain $NAME--incoming: the secondary did not build its own"
    give_up ${TAG}_protect
elif grep "warning:" /tmp/protect.out | grep -qv "no --witness"; then
    # The bare guest keeps all its state in memory and registers: nothing to warn about (but that
    # this single-host check runs without a witness).
    fail ${TAG}_protect "protect warned about a guest it can replicate whole: $(oneline </tmp/protect.out)"
elif [ "$MODE" = remus ] && [ "${incoming_state#*p}" = "$incoming_state" ]; then
    fail ${TAG}_protect "the secondary's domain $NAME--incoming runs ($incoming_state) before any takeover"
    give_up ${TAG}_protect
fi
pass ${TAG}_protect "$(oneline </tmp/protect.out)(from dom0 uptime $t0 to $t1); the secondary built $NAME--incoming (domain $incoming_id) itself, state $incoming_state"

# --- abort: the primary's guest is destroyed while protected (it says goodbye); the secondary's
# domain, never taken over, must go with the receive process (IncomingDomain's destructor).
if [ "$MODE" = abort ]; then
    sleep 2
    primary destroy "$NAME" >/tmp/pdestroy.out 2>&1
    primary_pid=
    i=0
    while [ $i -lt 40 ] && xl list "$NAME--incoming" >/dev/null 2>&1; do sleep 0.5; i=$((i+1)); done
    if xl list "$NAME--incoming" >/dev/null 2>&1; then
        fail ${TAG}_destroyed "$NAME--incoming still exists 20 s after the primary ended protection ($(oneline </tmp/pdestroy.out))"
        diagnose
    else
        pass ${TAG}_destroyed "the primary ended protection; the receive process destroyed $NAME--incoming (domain $incoming_id) within $((i / 2)).$((i % 2 * 5)) s: $(grep -m1 'no longer needed' $SECONDARY_RUN/receive-$PORT.log | cut -c1-200)"
    fi
    cleanup
    exit 0
fi

# --- checkpoints: polled until both sides count three (a fixed 6 s wait found `checkpoints: 0`
# on a busy machine, where the first pause alone took 2.1 s), for at most 90 s
i=0
while :; do
    primary status "$NAME" >/tmp/pstatus.out 2>&1
    secondary status "$NAME" >/tmp/sstatus.out 2>&1
    p_state=$(field state </tmp/pstatus.out) p_epoch=$(field epoch </tmp/pstatus.out)
    p_checkpoints=$(field checkpoints </tmp/pstatus.out) p_pause=$(field pause_p50_us </tmp/pstatus.out)
    s_state=$(field state </tmp/sstatus.out) s_applied=$(field checkpoints_applied </tmp/sstatus.out)
    [ "$p_state" = protected ] && [ "${p_epoch:-0}" -gt 0 ] && [ "${p_checkpoints:-0}" -ge 3 ] &&
        [ "${s_applied:-0}" -ge 3 ] && break
    # Protection that ended (the secondary lost) does not come back: no point waiting.
    [ -n "$p_state" ] && [ "$p_state" != protected ] && [ "$p_state" != syncing ] && break
    [ $i -ge 180 ] && break
    sleep 0.5; i=$((i+1))
done
if [ "$p_state" = protected ] && [ "${p_epoch:-0}" -gt 0 ] && [ "${p_checkpoints:-0}" -ge 3 ] &&
   [ "${s_applied:-0}" -ge 3 ]; then
    suspend=
    if [ "$MODE" = linux ]; then
        p_style=$(field checkpoint_style </tmp/pstatus.out)
        case "$p_style" in
            cooperative*) ;;
            *) fail ${TAG}_checkpoints "the Linux guest's checkpoint_style is '$p_style', not cooperative"
               give_up ${TAG}_checkpoints ;;
        esac
        suspend="; suspend per checkpoint p50 $(field suspend_p50_us </tmp/pstatus.out)us p99 $(field suspend_p99_us </tmp/pstatus.out)us max $(field suspend_max_us </tmp/pstatus.out)us over $(field suspends </tmp/pstatus.out) suspends, $(field suspend_timeouts </tmp/pstatus.out) timed out"
        say "MEASURE linux_suspend_us p50=$(field suspend_p50_us </tmp/pstatus.out) p99=$(field suspend_p99_us </tmp/pstatus.out) max=$(field suspend_max_us </tmp/pstatus.out) suspends=$(field suspends </tmp/pstatus.out) pause_p50_us=$p_pause"
    fi
    pass ${TAG}_checkpoints "primary $p_state, epoch $p_epoch, $p_checkpoints checkpoints (pause p50 ${p_pause}us$suspend) $((i / 2)).$((i % 2 * 5)) s after protect returned; secondary $s_state, $s_applied applied"
else
    fail ${TAG}_checkpoints "primary: $(oneline </tmp/pstatus.out)| secondary: $(oneline </tmp/sstatus.out)"
    give_up ${TAG}_checkpoints
fi
# --- Linux: dom0 pings the guest through its vif, whose output colo-replicate holds until each
# checkpoint is acknowledged (so a reply waits up to an interval).
if [ "$MODE" = linux ]; then
    ping -c 2 -w 30 10.0.0.2 >/tmp/ping-before.out 2>&1
    ping_before=$?
    primary status "$NAME" >/tmp/pstatus.out 2>&1
    net_before="egress $(field net_egress_frames </tmp/pstatus.out), released $(field net_released_frames </tmp/pstatus.out), held $(field net_held_frames </tmp/pstatus.out)"
fi
last_before=$(seqs $PVM_LOG | tail -1)

# --- the primary's host is lost: its colo-replicate and its domain go at once. SIGSTOP first,
# so the primary neither reacts to its domain's end nor closes the link before that end (a lost
# host closes nothing); then the domain goes, then SIGKILL.
kill -STOP "$primary_pid"
t_kill=$(uptime_s)
xl destroy "$NAME" 2>/dev/null
kill -9 "$primary_pid"
primary_pid=
i=0
while [ $i -lt 80 ]; do
    s_state=$(secondary status "$NAME" 2>/dev/null | field state)
    [ -n "$s_state" ] && [ "$s_state" != protecting ] && break
    sleep 0.5; i=$((i+1))
done
t_over=$(uptime_s)
at_takeover=$(seqs $SVM_LOG | tail -1)
svm_name=$NAME
[ -z "$(xl_state "$NAME")" ] && svm_name="$NAME--incoming"
svm_state=$(xl_state "$svm_name")
case "$svm_state" in
    ""|*p*|*s*|*c*|*d*) fail ${TAG}_takeover "secondary state '$s_state' ${i}x0.5 s after the kill; its domain $svm_name is '${svm_state:-gone}'"
       give_up ${TAG}_takeover ;;
    *) if [ "$svm_name" = "$NAME" ]; then
                 pass ${TAG}_takeover "secondary $s_state after the primary's loss at uptime $t_kill (seen at $t_over, heartbeat timeout $HEARTBEAT_MS ms); domain renamed to $NAME, state $svm_state"
             else
                 fail ${TAG}_takeover "the survivor runs ($svm_state) but kept the name $svm_name: $(grep -m1 'keeps the name' $SECONDARY_RUN/receive-$PORT.log)"
             fi ;;
esac

# --- the survivor's console goes on: polled until it printed 5 more lines, for at most 30 s
base=${at_takeover:-${last_before:-0}}
i=0
while :; do
    last_survivor=$(seqs $SVM_LOG | tail -1)
    [ -n "$last_survivor" ] && [ "$last_survivor" -ge $((base + 5)) ] && break
    [ $i -ge 60 ] && break
    sleep 0.5; i=$((i+1))
done
corrupt=$(cat $PVM_LOG $SVM_LOG 2>/dev/null | tr -d '\000' | grep -c CORRUPT)
# Where a CORRUPT line came from and what it says (want= the stamp the guest wrote, got= the two
# copies it found): a lost write shows as one old copy, a stale page as two.
corrupt_where() {
    for f in $PVM_LOG $SVM_LOG /var/log/xen/guest-$NAME.log /var/log/xen/guest-$NAME--incoming.log; do
        line=$(tr -d '\000' <$f 2>/dev/null | grep -n -m1 CORRUPT)
        [ -n "$line" ] && printf '%s line %s (of %s); ' "$(basename $f)" "$line" "$(tr -d '\000' <$f | wc -l)"
    done
}
if [ -n "$last_survivor" ] && [ "$last_survivor" -ge $((base + 5)) ] && [ "$corrupt" = 0 ]; then
    pass ${TAG}_console "the survivor printed seq=$((base + 1))..$last_survivor within $((i / 2)).$((i % 2 * 5)) s after takeover (the primary's last released line before the kill: seq=${last_before:-none}); no CORRUPT page"
else
    fail ${TAG}_console "survivor's last seq '${last_survivor:-none}' 30 s after takeover, '${at_takeover:-none}' at takeover, primary's before the kill '${last_before:-none}', CORRUPT lines: $corrupt $(corrupt_where); survivor console tail: $(tail -3 $SVM_LOG 2>/dev/null | oneline)"
    give_up ${TAG}_console
fi

# --- primary and survivor released output joined by position: one unbroken sequence
joined >/tmp/joined-$MODE.console
gaps=$(seqs /tmp/joined-$MODE.console | awk 'NR > 1 && $1 != prev + 1 {printf "%s->%s ", prev, $1} {prev = $1} END {}')
count=$(seqs /tmp/joined-$MODE.console | wc -l)
first=$(seqs /tmp/joined-$MODE.console | head -1)
differ=$(conflicts)
[ "$differ" = 0 ] || gaps="$gaps; $differ positions hold different bytes in the two logs"
if [ -z "$gaps" ] && [ "$count" -gt 0 ]; then
    pass ${TAG}_sequence "$count lines seq=$first..$last_survivor across the takeover, none lost or repeated (primary's log $(seqs $PVM_LOG | wc -l) lines, survivor's $(seqs $SVM_LOG | wc -l))"
else
    fail ${TAG}_sequence "breaks in the joined sequence: ${gaps:-no lines}"
fi
# --- Linux: the survivor's kernel answers through xenstore. `xl sysrq` writes control/sysrq; the
# kernel's own watch handles it (prints the sysrq help) and clears the node: its xenbus
# connection, event channel and watches were rebuilt by its resume.
if [ "$MODE" = linux ]; then
    say "MEASURE linux_takeover_s kill=$t_kill seen=$t_over"
    xl sysrq "$NAME" h >/tmp/sysrq.out 2>&1
    i=0
    while [ $i -lt 60 ] && ! tr -d '\000' <$SVM_LOG | grep -qi 'sysrq.*help'; do sleep 0.5; i=$((i+1)); done
    if tr -d '\000' <$SVM_LOG | grep -qi 'sysrq.*help'; then
        pass ${TAG}_xenstore "after the takeover, xl sysrq $NAME h (control/sysrq in xenstore) was answered by the guest's kernel within $((i / 2)).$((i % 2 * 5)) s: $(tr -d '\000' <$SVM_LOG | grep -i -m1 'sysrq.*help' | cut -c1-120)"
    else
        fail ${TAG}_xenstore "the survivor's kernel did not answer xl sysrq within 30 s ($(oneline </tmp/sysrq.out)); console tail: $(tail -3 $SVM_LOG | oneline)"
    fi
    # The survivor's netfront reconnects to its own domain's vif; colo-replicate's NIC there opens
    # its TAP into xenbr0 at the takeover: dom0 reaches the guest again, polled for at most 60 s.
    i=0
    while [ $i -lt 30 ] && ! ping -c 1 -w 2 10.0.0.2 >/tmp/ping-after.out 2>&1; do i=$((i+1)); done
    if [ "$ping_before" != 0 ]; then
        fail ${TAG}_network "dom0 could not ping the protected guest before the kill ($net_before): $(oneline </tmp/ping-before.out)"
    elif [ $i -ge 30 ]; then
        fail ${TAG}_network "the guest answered pings before the kill ($(grep -o 'round-trip.*' /tmp/ping-before.out)) but not the survivor within 60 s: $(oneline </tmp/ping-after.out)"
    else
        pass ${TAG}_network "pings answered through the held vif before the kill ($(grep -o 'round-trip.*' /tmp/ping-before.out); primary's NIC: $net_before) and by the survivor after $((i * 2)) s or less ($(grep -o 'time=[0-9.]* ms' /tmp/ping-after.out | head -1))"
    fi
fi
diagnose
cleanup
