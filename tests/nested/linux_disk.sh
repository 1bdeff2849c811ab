#!/bin/sh
# Runs inside L1 (busybox sh): a Linux guest with ext4 on its replicated disk keeps every file it
# reported as fsynced through the SIGKILL of its primary, in COLO and in Remus.
#
#   linux_disk.sh COLO_REPLICATE CONFIG WORKDIR WRITER MKE2FS E2FSCK DEBUGFS [SEED [RUNS_PER_MODE]]
#
# CONFIG is a Linux guest (examples/linux initramfs) with `disk = [ 'IMAGE,raw,xvda,rw' ]` and
# disk.fs=/dev/vda in `extra`, so /init mounts the disk's ext4 on /mnt and runs WRITER
# (examples/linux/fsync_writer.c) there: numbered files, each fsynced (file and directory) before
# `fsynced N` goes to the console. The console is replicated and released only when it is safe,
# so a released `fsynced N` is the guest's promise that files 1..N are on the disk its survivor
# runs on. This script makes IMAGE an empty ext4 (MKE2FS), creates the guest in run dir host1,
# then RUNS_PER_MODE times (default 1) per mode, COLO then Remus (`--remus -i 100`) alternating:
#   - `receive --disk-dir` in the next run dir (the next "host": its own copy of the image),
#     `protect` there, SIGKILL of the primary a random 0.5-3 s later (seed SEED);
#   - the receiver must become active and its guest go on writing (10 more files released);
#   - the survivor is paused, its copy of the image copied (what a crash of that host would leave,
#     as the guest had written it) and resumed; the copy is checked (check_image below).
#   The survivor is the next run's primary: the guest boots once and moves host to host.
# Then the baseline without replication (linux-disk-unprotected-sigkill): the last survivor, now
# running alone, is SIGKILLed and its own image checked the same way; and the checker must refuse
# that image when asked for 50 files more than were reported (it sees a missing file), so a PASS
# above is not a checker that accepts anything.
# check_image: E2FSCK replays the journal (-E journal_only, as a mount would, fixing nothing
# else), then `e2fsck -fn` must find the file system clean, and every file 1..N the released
# consoles reported fsynced must be there and intact (DEBUGFS rdump, WRITER --check).
# Prints `PASS linux-disk-colo-sigkill: ...` / `FAIL ...: why`, the same for remus, then for
# linux-disk-unprotected-sigkill (`SKIP` when a protected run failed: the guest may be gone).
set -u
bin=${1:?usage: linux_disk.sh COLO_REPLICATE CONFIG WORKDIR WRITER MKE2FS E2FSCK DEBUGFS [SEED [RUNS_PER_MODE]]}
cfg=${2:?config}
work=${3:?workdir}
writer=${4:?writer}
mke2fs=${5:?mke2fs}
e2fsck=${6:?e2fsck}
debugfs=${7:?debugfs}
seed=${8:-1}
runs=${9:-1}
name=$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$cfg")
image=$(sed -n "s/^disk *= *\[ *'\([^,]*\),.*/\1/p" "$cfg")
mkdir -p "$work"
[ -n "$name" ] && [ -n "$image" ] || { echo "FAIL linux-disk: $cfg needs a name and one disk"; exit 1; }

now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
older() { [ "$(awk -v a="$1" -v b="$(now)" -v l="$2" 'BEGIN { print (b - a > l) }')" = 1 ]; }
host() { local h=$1; shift; COLO_RUN_DIR=$work/host$h COLO_STATE_DIR=$work/host$h/state "$bin" "$@"; }
state_on() { host "$1" status "$name" 2>/dev/null | sed -n 's/^state: *//p'; }
pid_of() { sed -n 's/.*(pid \([0-9]*\)[;)].*/\1/p'; }
gone() { [ ! -e "/proc/$1/stat" ] || [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
# The highest N of a released `fsynced N` line in FILE... (a console log holds NULs where that host
# released nothing).
fsynced() { cat "$@" 2>/dev/null | tr -d '\000\r' | sed -n 's/^fsynced \([0-9]*\)$/\1/p' | sort -n | tail -1 | grep . || echo 0; }
dump() {
    for f in "$work"/host*/*.log; do [ -f "$f" ] && tail -4 "$f" | sed "s#^#  | $f: #"; done
    for f in "$work"/console*; do
        [ -f "$f" ] && tr -d '\r\000' < "$f" | grep -v '^seq=\|^fsynced' | tail -5 | sed "s#^#  | $(basename "$f"): #"
    done
}

ip link set lo up  # the replication link runs on loopback
"$mke2fs" -q -F -t ext4 "$image" 64M > "$work/mkfs.log" 2>&1 || { echo "FAIL linux-disk: mke2fs: $(tail -1 "$work/mkfs.log")"; exit 1; }
at=1
t0=$(now)
out=$(host 1 create "$cfg" --console-log "$work/console1" 2>&1) || { echo "FAIL linux-disk: create: $out"; exit 1; }
primary=$(echo "$out" | pid_of)
while [ "$(fsynced "$work/console1")" -lt 3 ]; do
    if older "$t0" 180 || gone "$primary"; then
        echo "FAIL linux-disk: the guest reported no fsynced file within 180 s of create"
        dump
        exit 1
    fi
    sleep 0.5
done
echo "guest up, writing its disk after $(since "$t0") s: $(tr -d '\r\000' < "$work/console1" | grep 'colo-guest: /dev' | head -1)"

# check_image IMAGE N TAG: IMAGE (changed: its journal is replayed) must be a clean ext4 holding
# files 1..N intact; on failure sets $problem and returns 1, else sets $checked (the checker's
# line) and returns 0. TAG names the work files.
check_image() {
    local image=$1 count=$2 tag=$3 rc dir out
    # Replay the journal only (as mounting it would), fixing nothing: then e2fsck -n must find no fault.
    "$e2fsck" -p -E journal_only "$image" > "$work/replay$tag.log" 2>&1 ||
        { problem="e2fsck -E journal_only: $(tail -2 "$work/replay$tag.log" | tr '\n' ' ')"; return 1; }
    "$e2fsck" -fn "$image" > "$work/fsck$tag.log" 2>&1
    rc=$?
    [ $rc = 0 ] || { problem="e2fsck -fn exit $rc: $(grep -v '^e2fsck\|^Pass' "$work/fsck$tag.log" | head -6 | tr '\n' ' '); journal replay said: $(tr '\n' ' ' < "$work/replay$tag.log")"; return 1; }
    rm -rf "$work/out$tag" && mkdir -p "$work/out$tag"
    "$debugfs" -R "rdump / $work/out$tag" "$image" > "$work/debugfs$tag.log" 2>&1
    dir=$(dirname "$(find "$work/out$tag" -name f000001 | head -1)")
    [ -n "$dir" ] && [ -f "$dir/f000001" ] || { problem="no f000001 on the disk: $(tail -2 "$work/debugfs$tag.log" | tr '\n' ' ')"; return 1; }
    out=$("$writer" --check "$dir" "$count" 2>&1) || { problem="files the guest reported fsynced: $(echo "$out" | head -3 | tr '\n' ' ')"; return 1; }
    checked=$out
    checked_dir=$dir
}

# one_run N MODE: on failure sets $problem; on success sets $summary; the survivor becomes the
# next run's primary.
one_run() {
    local n=$1 mode=$2 next=$(($1 + 1)) out address receiver t_kill took delay extra="" before copy files rc
    problem=""
    [ "$mode" = remus ] && extra="--remus -i 100"
    mkdir -p "$work/disks$next"
    out=$(host $next receive -l 127.0.0.1:0 --disk-dir "$work/disks$next" --console-log "$work/console$next" \
          --heartbeat-timeout 3000 2>&1) || { problem="receive on host$next: $out"; return; }
    address=$(echo "$out" | sed -n 's/^Listening on \([^ ]*\) .*/\1/p')
    receiver=$(echo "$out" | pid_of)
    out=$(host $at protect $extra --heartbeat-timeout 3000 "$name" "$address" 2>&1) ||
        { problem="protect from host$at to host$next: $out"; return; }
    sync_line=$(echo "$out" | grep '^Protected' | sed 's/.*; disks: //')
    delay=$(awk -v s="$seed" -v n="$n" 'BEGIN { srand(s * 1000 + n); printf "%.2f", 0.5 + 2.5 * rand() }')
    sleep "$delay"  # the random moment of the death, not a wait for a condition
    before=$(fsynced "$work"/console*)
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
    while [ "$(fsynced "$work"/console*)" -lt $((before + 10)) ]; do
        older "$t_kill" 90 && { problem="the survivor's guest wrote no 10 more files within 90 s (fsynced $(fsynced "$work"/console*), $before at the kill)"; return; }
        sleep 0.2
    done
    # What a crash of the survivor's host would leave: its copy, the guest paused.
    copy="$work/disks$next/$name-xvda.img"
    host $next pause "$name" > /dev/null 2>&1 || { problem="pause on host$next failed"; return; }
    files=$(fsynced "$work"/console*)
    cp "$copy" "$work/snap$n.img" || { problem="copying $copy failed"; return; }
    host $next unpause "$name" > /dev/null 2>&1 || { problem="unpause on host$next failed"; return; }
    check_image "$work/snap$n.img" "$files" "$n" || return
    rm -f "$work/snap$n.img"
    summary="protect ($sync_line), SIGKILL $delay s after protect, takeover ${took} s; $before files fsynced at the kill; survivor's disk at $files: journal replayed, e2fsck -fn clean, $checked"
    primary=$receiver
    at=$next
}

n=1
i=0
problem="" failed_mode=""
: > "$work/results"
while [ $i -lt "$runs" ] && [ -z "$problem" ]; do
    for mode in colo remus; do
        one_run $n $mode
        if [ -n "$problem" ]; then
            echo "FAIL linux-disk-$mode-sigkill: run $n (host$at -> host$((n + 1))): $problem"
            dump
            failed_mode=$mode
            break
        fi
        echo "$mode: $summary" >> "$work/results"
        n=$((n + 1))
    done
    i=$((i + 1))
done
for mode in colo remus; do
    k=$(grep -c "^$mode: " "$work/results")
    [ "$mode" = "$failed_mode" ] && continue  # its FAIL line is out
    if [ "$k" = 0 ]; then
        echo "SKIP linux-disk-$mode-sigkill: not run (linux-disk-$failed_mode-sigkill failed first)"
    else
        echo "PASS linux-disk-$mode-sigkill: $k of $runs run(s): $(sed -n "s/^$mode: //p" "$work/results" | awk '{ printf "%s%s", (NR > 1 ? " | " : ""), $0 }')"
    fi
done
if [ -n "$problem" ]; then
    echo "SKIP linux-disk-unprotected-sigkill: not run (a protected run failed; the guest may be gone)"
    host $at destroy "$name" > /dev/null 2>&1
    exit 0
fi

# The baseline without replication: the last survivor runs alone; a SIGKILL of it leaves its own
# image (copy or original), which must hold every file a console showed as fsynced.
image_now=$image
[ $at -gt 1 ] && image_now="$work/disks$at/$name-xvda.img"
kill -9 "$primary"
t_kill=$(now)
while ! gone "$primary"; do
    older "$t_kill" 5 && { echo "FAIL linux-disk-unprotected-sigkill: host$at's process $primary survived SIGKILL"; exit 0; }
    sleep 0.05
done
files=$(fsynced "$work"/console*)
if ! check_image "$image_now" "$files" base; then
    echo "FAIL linux-disk-unprotected-sigkill: host$at's own image after SIGKILL: $problem"
    dump
elif out=$("$writer" --check "$checked_dir" $((files + 50)) 2>&1); then
    echo "FAIL linux-disk-unprotected-sigkill: the checker accepted $((files + 50)) files where the guest had reported $files: $out"
else
    echo "PASS linux-disk-unprotected-sigkill: host$at's own image after SIGKILL at $files files fsynced: journal replayed, e2fsck -fn clean, $checked; asked for $((files + 50)) the checker refuses ($(echo "$out" | grep -c '^BAD') missing)"
fi
rm -rf "$work"/out*
host $at destroy "$name" > /dev/null 2>&1
exit 0
