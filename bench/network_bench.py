#!/usr/bin/python3
"""network_bench: what protecting a networked guest costs its clients, measured from a client.

The built-in guest with a NIC on a bridge made for the run (tests/e2e/test_network.py: a client
network namespace, a veth, a bridge, the guest's TAP), its UDP request/response service on port
7777, and examples/udp-client.py in the client namespace asking one request at a time. Each case
runs the same guest unprotected, then protected (Remus at two checkpoint intervals, COLO), with
the primary and the secondary as two processes on this machine (as replication_bench.py does).
Reported: request/response round trip p50/p99/max and requests per second. Nothing is asserted.

The built-in guest has no TCP: TCP throughput through a protected NIC is measured on a Linux guest
by the nested tier's network group (tests/nested/nested_tests.sh with NESTED_ONLY=network: an L1
Linux under QEMU's TCG runs our VMM on its kvm_amd, a Linux guest serves TCP, a client in L1 streams
1 KiB lines to it unprotected, protected by COLO and by Remus -i 100, and the primary is killed);
the table takes the throughput from its PASS lines and says where the numbers come from. Under
TCG they are a comparison between modes, not a speed this code reaches on hardware.

    network_bench.py PATH/TO/colo-replicate OUTPUT-DIR

Environment: BENCH_NET_REQUESTS (requests per case, default 500; Remus cases ask a fifth of
that: each answer waits for a checkpoint), BENCH_NET_TCP (0: no nested TCP run; it takes about 5
minutes), NET_RUNS (streams per mode in it, default 2). Needs root (bridge, TAP, namespace).
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


def tcp_throughput(binary):
    """The nested network group's TCP throughput lines, or why there are none."""
    if os.environ.get('BENCH_NET_TCP', '1') == '0':
        return ['TCP throughput: not measured (BENCH_NET_TCP=0).']
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
    env = dict(os.environ, NESTED_ONLY='network', NET_RUNS=os.environ.get('NET_RUNS', '2'))
    print('network_bench: TCP throughput on a Linux guest in the nested tier (a few minutes) ...', flush=True)
    run = subprocess.run(['bash', os.path.join(top, 'tests', 'nested', 'nested_tests.sh'), os.path.dirname(binary)],
                         cwd=top, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = [line for line in run.stdout.splitlines() if line.split(' ', 1)[0] in ('PASS', 'FAIL', 'SKIP')]
    lines = ['TCP throughput, Linux guest (Debian 12 cloud kernel, virtio-net through the DSDT) in an L1 under '
             "QEMU's TCG, a client in L1 streaming 1 KiB lines with 256 in flight, from the nested tier's "
             'linux_network.sh (its kill runs pass too):', '']
    for line in results:
        verdict, rest = line.split(' ', 1)
        name = rest.split(':', 1)[0]
        numbers = rest.split('TCP throughput ', 1)
        if verdict == 'PASS' and len(numbers) == 2:
            checkpoints = [part for part in rest.split('; ') if 'checkpoints before the kills' in part]
            lines.append('- %s: %s%s' % (name, numbers[1].split(' (L1 run', 1)[0],
                                         ('; ' + checkpoints[0]) if checkpoints else ''))
        else:
            lines.append('- %s: %s' % (name, line[:300]))
    if len(lines) == 2:
        lines.append('- no result: %s' % (run.stdout.strip().splitlines() or ['no output'])[-1][:300])
    return lines


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
    ] + rows + [''] + tcp_throughput(binary) + [''])
    with open(os.path.join(out_dir, 'network.md'), 'w') as f:
        f.write(report)
    print(report)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
