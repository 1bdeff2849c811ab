#!/bin/bash
# The demo behind `scons demo`: protect the built-in test guest with a primary and a secondary on
# this machine (two run directories stand in for two hosts, the link is loopback TCP), watch the
# checkpoints, kill the primary with SIGKILL, and watch the secondary take over with the guest's
# console sequence going on where the primary's released output stopped.
# As root it also gives the guest a NIC: a bridge and a client network namespace made for the demo
# (removed after it), and a client (examples/udp-client.py) asking the guest's UDP service numbered
# requests through the takeover: every request is answered once, the guest's counter unbroken.
#
#   examples/demo.sh PATH/TO/colo-replicate [SECONDS-PROTECTED]
set -euo pipefail
bin=$(readlink -f "${1:?usage: demo.sh PATH/TO/colo-replicate [seconds]}")
seconds=${2:-6}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/colo-demo.XXXXXX)
hostA=$work/hostA hostB=$work/hostB
mkdir -p "$hostA" "$hostB"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
A() { COLO_RUN_DIR=$hostA COLO_STATE_DIR=$hostA/state "$bin" "$@"; }
B() { COLO_RUN_DIR=$hostB COLO_STATE_DIR=$hostB/state "$bin" "$@"; }
net=0
[ "$(id -u)" = 0 ] && command -v ip >/dev/null && net=1
client_pid=
net_cleanup() {
    ip netns del crdemo 2>/dev/null || true
    ip link del crdemo-v 2>/dev/null || true
    ip link del crdemo-br 2>/dev/null || true
}
cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
    A destroy demo >/dev/null 2>&1 || true
    B destroy demo >/dev/null 2>&1 || true
    pkill -f "$work" 2>/dev/null || true
    if [ $net = 1 ]; then net_cleanup; fi
}
trap cleanup EXIT
field() { sed -n "s/^$2: *//p" <<<"$1"; }
# A host's log holds each byte at its console offset: NULs before the first byte it released.
seqs() { tr -d '\0' <"$1" 2>/dev/null | grep -o '^seq=[0-9]*' | cut -d= -f2; }
last_seq() { seqs "$1" | tail -1; }

if [ ! -w /dev/kvm ]; then echo "demo: /dev/kvm is not available here" >&2; exit 1; fi
echo "== colo-replicate demo: $("$bin" --version | head -1)"
echo "== the link's key, the same file on both hosts: colo-replicate keygen"
A keygen "$work/link.key" | sed 's/^/   /'
echo "== host B (secondary): colo-replicate receive --key link.key -l 127.0.0.1:$port"
B receive --key "$work/link.key" -l "127.0.0.1:$port" --console-log "$hostB/console.log" --heartbeat-timeout 500
config=$here/builtin-guest.cfg
if [ $net = 1 ]; then
    net_cleanup  # leftovers of an interrupted demo
    echo "== network: bridge crdemo-br, client namespace crdemo (10.77.200.1) -- guest 10.77.200.2"
    ip link add crdemo-br type bridge && ip link set crdemo-br up
    ip netns add crdemo
    ip link add crdemo-v type veth peer name crdemo-c
    ip link set crdemo-v master crdemo-br && ip link set crdemo-v up
    ip link set crdemo-c netns crdemo
    ip -n crdemo addr add 10.77.200.1/24 dev crdemo-c && ip -n crdemo link set crdemo-c up
    config=$work/demo.cfg
    cat "$here/builtin-guest.cfg" - >"$config" <<'VIF'
vif = [ 'mac=52:54:00:77:c8:02,bridge=crdemo-br,vifname=crdemo-tap,ip=10.77.200.2/24' ]
VIF
else
    echo "== (not root: no NIC for the guest; run as root to see a client keep its requests going)"
fi
echo "== host A (primary): colo-replicate create $(basename "$config")"
started=$(A create "$config" --console-log "$hostA/console.log")
echo "   $started"
primary_pid=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' <<<"$started")
sleep 1
if [ $net = 1 ]; then
    # Until the guest answers one request (its driver is up).
    ip netns exec crdemo python3 "$here/udp-client.py" 10.77.200.2 --count 1 --resend-ms 200 >/dev/null
    echo "== client (namespace crdemo): udp-client.py 10.77.200.2, one numbered request at a time"
    ip netns exec crdemo python3 "$here/udp-client.py" 10.77.200.2 --progress >"$work/client.out" 2>&1 &
    client_pid=$!
fi
echo "== host A: colo-replicate protect --key link.key demo 127.0.0.1:$port (TLS 1.3)"
A protect --key "$work/link.key" demo "127.0.0.1:$port" --heartbeat-timeout 500 | sed 's/^/   /'

echo "== protected; checkpoints as they happen (${seconds}s):"
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
    s=$(A status demo)
    line=$(printf 'epoch %-5s pause p50 %6s us  p99 %6s us | pages paused %-7s streamed %-7s | released seq=%s' \
        "$(field "$s" epoch)" "$(field "$s" pause_p50_us)" "$(field "$s" pause_p99_us)" \
        "$(field "$s" pages_sent_paused)" "$(field "$s" pages_streamed)" "$(last_seq "$hostA/console.log")")
    if [ -t 1 ]; then printf '\r   %s' "$line"; else echo "   $line"; fi
    sleep 0.5
done
[ -t 1 ] && echo
primary_last=$(last_seq "$hostA/console.log")

echo "== host A dies: kill -9 $primary_pid (the primary's VMM process)"
killed_at=$(date +%s%N)
kill -9 "$primary_pid"
until [ "$(field "$(B status demo 2>/dev/null || true)" state)" = "active" ]; do
    sleep 0.02
    if [ $(( ($(date +%s%N) - killed_at) / 1000000 )) -gt 10000 ]; then echo "demo: no takeover within 10 s" >&2; exit 1; fi
done
takeover_ms=$(( ($(date +%s%N) - killed_at) / 1000000 ))
echo "   host B took over ${takeover_ms} ms after the kill"
B list | sed 's/^/   /'
sleep 2
survivor_first=$(seqs "$hostB/console.log" | head -1)
echo "== released output: primary's log ends at seq=$primary_last, the survivor's starts at seq=${survivor_first:-none}"
net_ok=1
if [ $net = 1 ]; then
    kill -TERM "$client_pid"; wait "$client_pid" || true; client_pid=
    grep '^progress' "$work/client.out" | tail -4 | sed 's/^/   client: /'
    net_summary=$(python3 - "$work/client.out" <<'NET'
import json, sys
result = json.loads([l for l in open(sys.argv[1]) if l.startswith('{')][-1])
counts = [n for _, n, _ in result['replies']]
jumps = sum(1 for a, b in zip(counts, counts[1:]) if b != a + 1)
rtts = sorted(r for _, _, r in result['replies'])
print('%d requests answered, %d answered twice, %d counter jumps, %d re-sent after a loss, RTT p50 %d us, max %d us'
      % (len(counts), len(result['extra']), jumps, result['resends'], rtts[len(rtts) // 2] if rtts else 0,
         rtts[-1] if rtts else 0))
NET
)
    echo "   client: $net_summary"
    grep -q ' 0 answered twice, 0 counter jumps' <<<"$net_summary" || net_ok=0
fi
# Joined by position: a byte both hosts released (the primary released it, then died before its
# report reached the secondary) is at the same offset in both logs and is kept once.
python3 - "$hostA/console.log" "$hostB/console.log" "$work/joined.log" <<'JOIN'
import sys
logs = [open(p, 'rb').read() for p in sys.argv[1:3]]
joined = bytearray(max(map(len, logs)))
for log in logs:
    for i, b in enumerate(log):
        if b and joined[i] and joined[i] != b:
            sys.exit('demo: the logs differ at offset %d' % i)
        joined[i] = joined[i] or b
open(sys.argv[3], 'wb').write(bytes(joined).lstrip(b'\0'))
JOIN
summary=$(awk -F'[= ]' '/^seq=/ { n++; if (n > 1 && $2 != prev + 1) bad++; prev = $2 }
                         /CORRUPT/ { corrupt++ }
                         END { printf "%d lines, seq 0..%d, %d gaps or repeats, %d CORRUPT", n, prev, bad, corrupt }' \
          "$work/joined.log")
echo "   joined: $summary"
if grep -q ' 0 gaps or repeats, 0 CORRUPT' <<<"$summary" && [ $net_ok = 1 ]; then
    echo "== demo passed: the guest survived the loss of its host with nothing lost or repeated"
else
    echo "== demo FAILED: see $work" >&2
    trap - EXIT
    exit 1
fi
