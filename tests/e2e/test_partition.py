"""Split brain: partitions of the replication link, of the witness, and of both, at random moments,
and a frozen primary; with `--witness` on both sides (a throwaway etcd, tests/e2e/etcd_server.py).

The runs live in a network namespace of the test's own (netns_partition.py): each host reaches
etcd on a port of its own and the primary reaches the secondary's receive on another, so a
partition is an nftables rule that drops a port's packets both ways: no FIN, no reset, TCP
retransmitting into nothing, as when a network drops everything. After the witness heals
(the rule is removed), exactly one copy of the guest must run,
the other must have stopped for good, and the two hosts' released console output, laid over each
other by offset, must be one unbroken sequence with no line that differs (a line both released
sits at the same offset with the same bytes: the survivor re-releases what its last checkpoint
carried, which the primary may have released just before the cut).
"""
import os
import random
import signal
import time

from console_sequence import check_joined, count_seq_lines
from etcd_server import EtcdServer, EtcdUnavailable
from hosts import TestFailure, Workspace, alive, check, read_bytes, wait_exit, wait_until
from netns_partition import NetnsPartition

HEARTBEAT_MS = 800
# What a side may take to decide once its peer is gone: the heartbeat timeout, then a claim that
# waits up to the witness client's deadline (2 s) per try.
SETTLE_S = 20

SCENARIOS = ('link', 'link+witness-a', 'link+witness-b', 'link+both-witnesses', 'witnesses')


def all_stopped(pid):
    """Every thread of `pid` is stopped (state T in /proc)."""
    try:
        tasks = os.listdir('/proc/%d/task' % pid)
        states = []
        for task in tasks:
            with open('/proc/%d/task/%s/stat' % (pid, task)) as f:
                states.append(f.read().rsplit(')', 1)[1].split()[0])
    except OSError:
        return False
    return bool(states) and all(state in ('T', 't') for state in states)


def seqs(path):
    return count_seq_lines(read_bytes(path))


def state_of(host, name):
    s = host.status(name)
    return s.get('state') if s else None


class Pair:
    """Host A (primary) and host B (receive), each reaching the witness on a port of its own
    (`net`, when given, cuts them and the link by port), the primary reaching B's receive directly."""

    def __init__(self, ws, etcd, name, guest_config, mode, seed, witness_ports=None):
        self.name = name
        self.a, self.b = ws.host('hostA'), ws.host('hostB')
        self.log_a, self.log_b = ws.path('a.log'), ws.path('b.log')
        self.witness_port_a, self.witness_port_b = witness_ports or (etcd.client_port, etcd.client_port)
        self.address, self.receiver, self.receive_log = self.b.receive(
            self.log_b, HEARTBEAT_MS, '--witness', 'etcd://127.0.0.1:%d' % self.witness_port_b)
        self.link_port = int(self.address.rsplit(':', 1)[1])
        self.pid = self.a.create(guest_config(ws, name, seed=seed), self.log_a)
        extra = ['--remus', '-i', '100'] if mode == 'remus' else []
        self.a.ok('protect', name, self.address, '--heartbeat-timeout', HEARTBEAT_MS,
                  '--witness', 'etcd://127.0.0.1:%d' % self.witness_port_a, *extra)

    def running(self):
        """Which hosts still run the guest: 'A' (its process alive, not stopped) and/or 'B'."""
        out = []
        if alive(self.pid) and state_of(self.a, self.name) in ('unprotected', 'protected', 'arbitrating'):
            out.append('A')
        if alive(self.receiver) and state_of(self.b, self.name) in ('active', 'protecting', 'failing-over'):
            out.append('B')
        return out


def partition_run(binary, etcd, net, guest_config, run, rng):
    scenario = SCENARIOS[run % len(SCENARIOS)]
    mode = 'remus' if (run // len(SCENARIOS)) % 2 else 'colo'
    at = rng.uniform(0.3, 2.0)
    lasts = rng.uniform(1.5, 4.0)
    name = 'part%d' % run
    when = '%s %s, cut %.2fs after protect for %.2fs' % (scenario, mode, at, lasts)
    ws = Workspace(binary, 'part-%d' % run)
    keep = False
    try:
        pair = Pair(ws, etcd, name, guest_config, mode, rng.randint(1, 1 << 30),
                    (etcd.client_port, etcd.extra_ports[0]))
        wait_until(lambda: state_of(pair.a, name) == 'protected', 20, 'the primary to be protected')
        time.sleep(at)  # the random moment of the partition, not a wait for a condition
        cut_link = scenario != 'witnesses'
        if scenario in ('link+witness-a', 'link+both-witnesses', 'witnesses'):
            net.cut_port('witness-a', pair.witness_port_a)
        if scenario in ('link+witness-b', 'link+both-witnesses', 'witnesses'):
            net.cut_port('witness-b', pair.witness_port_b)
        if cut_link:
            net.cut_port('link', pair.link_port)
        cut = time.monotonic()
        notes = []
        if scenario == 'link+both-witnesses':
            # Nobody may go live while neither reaches the witness: both stand still, and neither
            # console grows once both have noticed the loss.
            wait_until(lambda: state_of(pair.a, name) == 'arbitrating' and state_of(pair.b, name) == 'failing-over',
                       HEARTBEAT_MS / 1000 + 5, 'both sides to wait for the witness')
            still_a, still_b = len(read_bytes(pair.log_a)), len(read_bytes(pair.log_b))
            left = lasts - (time.monotonic() - cut)
            if left > 0:
                time.sleep(left)
            check(len(read_bytes(pair.log_a)) == still_a and len(read_bytes(pair.log_b)) == still_b,
                  'a side released output while neither reached the witness')
            notes.append('both held for %.1fs' % (time.monotonic() - cut))
        else:
            left = lasts - (time.monotonic() - cut)
            if left > 0:
                time.sleep(left)
        net.heal('witness-a')
        net.heal('witness-b')
        if not cut_link:
            # A witness out of reach changes nothing while the link lives.
            before = pair.b.status(name) or {}
            wait_until(lambda: int((pair.b.status(name) or {}).get('checkpoints_applied', 0)) >=
                       int(before.get('checkpoints_applied', 0)) + 3, 10, 'checkpoints to go on')
            check(pair.running() == ['A', 'B'] and state_of(pair.a, name) == 'protected',
                  'after a witness-only partition: running %s, A %s' % (pair.running(), state_of(pair.a, name)))
            pair.a.ok('destroy', name)
            wait_exit(pair.receiver, 10, 'the receive to end with the protection')
            return True, (scenario, None, notes, 0)
        # Exactly one runs: the other has stopped for good (its process or its receive ended).
        winner = wait_until(lambda: (lambda r: r[0] if len(r) == 1 and (
            (r == ['A'] and not alive(pair.receiver) and state_of(pair.a, name) == 'unprotected') or
            (r == ['B'] and not alive(pair.pid) and state_of(pair.b, name) == 'active')) else None)(pair.running()),
            SETTLE_S, 'exactly one side to run (running %s; A %s, B %s)' % (
                pair.running(), state_of(pair.a, name), state_of(pair.b, name)))
        settled = time.monotonic() - cut  # after the witness relays healed; by the status polls
        notes.append('settled %.2fs after the cut' % settled)
        expected = {'link+witness-a': 'B', 'link+witness-b': 'A'}.get(scenario)
        check(expected is None or winner == expected,
              '%s won though only %s reached the witness' % (winner, expected))
        survivor_log = pair.log_a if winner == 'A' else pair.log_b
        survivor = pair.a if winner == 'A' else pair.b
        n = seqs(survivor_log)
        wait_until(lambda: seqs(survivor_log) >= n + 5, 10, 'the survivor (%s) to go on printing' % winner)
        loser_log = pair.log_b if winner == 'A' else pair.log_a
        loser_size = len(read_bytes(loser_log))
        survivor.ok('destroy', name)
        check(len(read_bytes(loser_log)) == loser_size, 'the stopped side released output afterwards')
        data_a, data_b = read_bytes(pair.log_a), read_bytes(pair.log_b)
        joined = check_joined([data_a, data_b], min_lines=2)
        check(joined.ok, 'the hosts\' released output: ' + '; '.join(joined.problems))
        both = max(0, len(data_a) - (len(data_b) - len(data_b.lstrip(b'\0')))) if data_b.strip(b'\0') else 0
        return True, (scenario, winner, notes, both)
    except TestFailure as e:
        keep = os.environ.get('COLO_E2E_KEEP') == '1'
        return False, 'run %d (%s): %s%s' % (run, when, e, ' (kept %s)' % ws.root if keep else '')
    finally:
        net.heal('link')
        net.heal('witness-a')
        net.heal('witness-b')
        ws.close(keep=keep)


def make_partition_test(runs, seed, guest_config):
    """`runs` partitions cycling through SCENARIOS, COLO then Remus, each at a random moment for a
    random time longer than the heartbeat timeout."""
    def test(binary):
        rng = random.Random('partition-%d' % seed)
        with NetnsPartition('colo-part-%d' % os.getpid()) as net:
            try:
                etcd = EtcdServer(extra_client_ports=1).start()
            except EtcdUnavailable as e:
                raise TestFailure('no witness: %s' % e)
            try:
                return partition_runs(binary, etcd, net, guest_config, runs, seed, rng)
            finally:
                etcd.stop()
    return test


def partition_runs(binary, etcd, net, guest_config, runs, seed, rng):
    failures, outcomes, overlaps = [], {}, 0
    for run in range(runs):
        ok, result = partition_run(binary, etcd, net, guest_config, run, rng)
        if not ok:
            failures.append(result)
            continue
        scenario, winner, notes, both = result
        overlaps += 1 if both else 0
        settled = [n for n in notes if n.startswith('settled ')]
        outcomes.setdefault(scenario, []).append((winner or 'no failover') + (' ' + settled[0].split()[1] if settled else ''))
    if failures:
        raise TestFailure('%d of %d runs broke (seed %d): %s' % (len(failures), runs, seed, ' || '.join(failures)))
    return ('%d runs, seed %d, in a network namespace with nftables cuts; winner and when exactly one ran after '
            'the cut (the partition lasted 1.5-4 s): %s; %d runs had bytes released by both hosts (the same '
            'bytes at the same offsets: what the survivor\'s last checkpoint carried)' % (
                runs, seed, '; '.join('%s: %s' % (s, ','.join(outcomes[s])) for s in SCENARIOS if s in outcomes), overlaps))


def make_frozen_primary_test(guest_config):
    """SIGSTOP of the primary for three heartbeat timeouts, then SIGCONT: the secondary took over
    (it won the witness), and the primary, once it runs again, finds it lost and stops, having
    released nothing after the freeze."""
    def test(binary):
        try:
            etcd = EtcdServer().start()
        except EtcdUnavailable as e:
            raise TestFailure('no witness: %s' % e)
        ws = Workspace(binary, 'frozen')
        pair = None
        try:
            pair = Pair(ws, etcd, 'frozen', guest_config, 'colo', 11)
            wait_until(lambda: int((pair.b.status('frozen') or {}).get('checkpoints_applied', 0)) >= 3, 20,
                       '3 checkpoints applied')
            os.kill(pair.pid, signal.SIGSTOP)
            # The signal stops each thread at its next way through the kernel: only once all stand
            # still is the log what the primary released before the freeze.
            wait_until(lambda: all_stopped(pair.pid), 5, 'the primary to stand still')
            frozen_size = len(read_bytes(pair.log_a))
            frozen_at = time.monotonic()
            wait_until(lambda: state_of(pair.b, 'frozen') == 'active', 10, 'the secondary to take over')
            takeover = time.monotonic() - frozen_at
            took = etcd.owner('frozen')
            time.sleep(3 * HEARTBEAT_MS / 1000)  # frozen on purpose, longer than the timeout
            os.kill(pair.pid, signal.SIGCONT)
            wait_exit(pair.pid, SETTLE_S, 'the thawed primary to find it lost and stop')
            check(len(read_bytes(pair.log_a)) == frozen_size,
                  'the thawed primary released %d bytes' % (len(read_bytes(pair.log_a)) - frozen_size))
            n = seqs(pair.log_b)
            wait_until(lambda: seqs(pair.log_b) >= n + 5, 10, 'the survivor to go on printing')
            joined = check_joined([read_bytes(pair.log_a), read_bytes(pair.log_b)], min_lines=2)
            check(joined.ok, '; '.join(joined.problems))
            pair.b.ok('destroy', 'frozen')
            return ('frozen %.1fs; the secondary took over %.2fs after the freeze (heartbeat timeout %d ms); the '
                    'witness names %s; the thawed primary stopped having released nothing more' % (
                        3 * HEARTBEAT_MS / 1000, takeover, HEARTBEAT_MS, took[0] if took else None))
        finally:
            ws.close()
            etcd.stop()
    return test
