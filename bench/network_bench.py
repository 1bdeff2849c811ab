#!/usr/bin/python3
"""network_bench: what protecting a networked guest costs its clients, measured from a client.

The built-in guest with a NIC on a bridge made for the run (tests/e2e/test_network.py: a client
network namespace, a veth, a bridge, the guest's TAP), its UDP request/response service on port
7777, and examples/udp-client.py in the client namespace asking one request at a time. Each case
runs the same guest unprotected, then protected (Remus at two checkpoint intervals, COLO), with
the primary and the secondary as two processes on this machine (as replication_bench.py does).
Reported: request/response round trip p50/p99/max and requests per second. Nothing is asserted.

The built-in guest has no TCP: TCP throughput through a protected NIC needs a Linux guest, which
only the nested tier can run here; this table says so instead of inventing a number.

    network_bench.py PATH/TO/colo-replicate OUTPUT-DIR

Environment: BENCH_NET_REQUESTS (requests per case, default 500; Remus cases ask a fifth of
that: each answer waits for a checkpoint). Needs root (bridge, TAP, namespace).
Writes OUTPUT-DIR/network.md and prints it.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'e2e'))

from replication_bench import Host, free_port, load_line, percentile  # noqa: E402
from test_network import TestNetwork, wait_answering  # noqa: E402

GUEST_NAME = 'bench'
HEARTBEAT_TIMEOUT_MS = 10000


def write_config(path, network):
    with open(path, 'w') as f:
        f.write('name = "%s"\nmemory = 64\nvcpus = 1\nguest = "builtin"\nworking_set = 16\n'
                'dirty_rate = 1000\nprint_interval = 100\nvif = [ \'%s\' ]\n' % (GUEST_NAME, network.vif()[0]))


def ask(network, requests, output):
    client = network.start_client(output, '--count', requests, '--resend-ms', 5000)
    try:
        _, err = client.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        client.kill()
        raise
    with open(output) as f:
        lines = [line for line in f if line.startswith('{')]
    if not lines:
        raise RuntimeError('the client printed nothing: %s' % (err or '').strip()[-200:])
    result = json.loads(lines[-1])
    rtts = [rtt for _, _, rtt in result['replies']]
    return dict(requests=len(rtts), p50=percentile(rtts, 50), p99=percentile(rtts, 99), max=max(rtts),
                rate=len(rtts) / result['seconds'], resends=result['resends'], extra=len(result['extra']))


def run_case(binary, work, network, mode, interval_ms, requests):
    host_a = Host(binary, os.path.join(work, '%s-%d' % (mode, interval_ms), 'hostA'))
    host_b = Host(binary, os.path.join(work, '%s-%d' % (mode, interval_ms), 'hostB'))
    config = os.path.join(host_a.run_dir, 'guest.cfg')
    write_config(config, network)
    try:
        host_a.run('create', config)
        wait_answering(network, 30, 'the guest to answer')
        if mode != 'unprotected':
            port = free_port()
            host_b.run('receive', '-l', '127.0.0.1:%d' % port, '--heartbeat-timeout', str(HEARTBEAT_TIMEOUT_MS))
            options = ['--remus'] if mode == 'remus' else []
            host_a.run('protect', GUEST_NAME, '127.0.0.1:%d' % port, '-i', str(interval_ms),
                       '--heartbeat-timeout', str(HEARTBEAT_TIMEOUT_MS), *options, timeout=120)
        result = ask(network, requests, os.path.join(host_a.run_dir, 'client.out'))
        if mode != 'unprotected':
            status = host_a.status()
            if status.get('state') != 'protected':
                raise RuntimeError('the primary is %s (%s)' % (status.get('state'), status.get('protection_lost', '')))
            result['compare_checkpoints'] = status.get('net_compare_checkpoints', 0)
            result['checkpoints'] = status.get('checkpoints', 0)
        return result
    finally:
        host_a.clean_up()
        host_b.clean_up()


def main(argv):
    if len(argv) != 3:
        print('usage: network_bench.py PATH/TO/colo-replicate OUTPUT-DIR', file=sys.stderr)
        return 2
    binary, out_dir = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    if os.geteuid() != 0:
        print('network_bench: needs root (a bridge, a TAP and a network namespace); skipped', file=sys.stderr)
        return 0
    requests = int(os.environ.get('BENCH_NET_REQUESTS', '500'))
    os.makedirs(out_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('network_bench: terminated'))
    work = tempfile.mkdtemp(prefix='colo-netbench.')
    network = TestNetwork(9)
    load_before = load_line()
    cases = [('unprotected', 0, requests), ('colo', 100, requests), ('remus', 100, max(20, requests // 5)),
             ('remus', 20, max(20, requests // 5))]
    rows = []
    try:
        for mode, interval, count in cases:
            name = mode if mode == 'unprotected' else '%s, checkpoint every %d ms' % (mode, interval)
            print('network_bench: %s ...' % name, flush=True)
            try:
                r = run_case(binary, work, network, mode, interval, count)
                rows.append('| %s | %d | %.0f | %.0f | %.0f | %.1f | %s |' % (
                    name, r['requests'], r['p50'], r['p99'], r['max'], r['rate'],
                    '-' if mode == 'unprotected' else '%d (%d by the compare)' % (r['checkpoints'],
                                                                                 r['compare_checkpoints'])))
                if r['resends'] or r['extra']:
                    rows[-1] += ' %d re-sends, %d extra replies' % (r['resends'], r['extra'])
            except Exception as e:  # a failed case is a row too
                rows.append('| %s | failed: %s | | | | | |' % (name, str(e).splitlines()[0] if str(e) else type(e).__name__))
                print('network_bench: %s failed: %s' % (name, e), file=sys.stderr)
    finally:
        network.close()
        subprocess.run(['rm', '-rf', work])
    report = '\n'.join([
        '# Network benchmark',
        '',
        'Built-in guest (64 MiB, dirtying 1000 pages/s) with one virtio-net NIC on a bridge; the client in '
        'its own network namespace asks one UDP request at a time (examples/udp-client.py); primary and '
        'secondary as two processes on this machine. Machine: %s before, %s after.' % (load_before, load_line()),
        '',
        '| case | requests | RTT p50 (us) | RTT p99 (us) | RTT max (us) | requests/s | checkpoints |',
        '|---|---|---|---|---|---|---|',
    ] + rows + [
        '',
        'TCP throughput: not measured here (the built-in guest has no TCP stack); a Linux guest, which only '
        'the nested tier can run on this machine, is needed for it.',
        ''])
    with open(os.path.join(out_dir, 'network.md'), 'w') as f:
        f.write(report)
    print(report)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
