#!/usr/bin/env python3
"""The end-to-end tier: real KVM guests driven through the `colo-replicate` CLI as an operator
would, with primary and secondary as separate processes in separate run dirs on loopback.

    python3 tests/e2e/run.py PATH/TO/colo-replicate [TEST...]

Prints `PASS name (details)`, `FAIL name: why` or `SKIP name: why` per test and exits 1 on any
failure. COLO_E2E_SEED fixes the random kill moments of the failover tests (SIGKILL, and silent
death: the primary's link goes silent, then it is killed); COLO_E2E_RUNS changes their number of
runs per mode (default 20); COLO_E2E_KEEP=1 keeps a failed test's files.
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from console_sequence import SEQ_LINE, check_joined, check_sequence, count_seq_lines  # noqa: E402
from hostile_stream import STREAM_VERSION, garbage, stream_header  # noqa: E402
from test_network import TestNetwork, check_replies, wait_answering  # noqa: E402
from test_partition import make_frozen_primary_test, make_partition_test  # noqa: E402
from test_operations import make_operations_test  # noqa: E402
from test_status_watch import make_status_watch_test  # noqa: E402
from test_systemd_commands import make_unit_commands_test  # noqa: E402
from test_disk import (DISK_BLOCKS, check_image, corrupt_lines, disk_keys, done_digest, joined_report,  # noqa: E402
                       make_image, test_disk_local, wait_done)
from hosts import (LinkProxy, TestFailure, Workspace, alive, become_subreaper, check, exit_code,  # noqa: E402
                   one_line_error, read_bytes, run_tests, wait_exit, wait_until)

HEARTBEAT_MS = 800  # the product default; 300 makes protect itself fail on a loaded machine (report)
PRINT_INTERVAL_MS = 50


def guest_config(ws, name, **overrides):
    keys = dict(name=name, memory=64, vcpus=1, guest='builtin', working_set=32, dirty_rate=2000,
                seed=7, print_interval=PRINT_INTERVAL_MS)
    keys.update(overrides)
    return ws.write_config(name + '.cfg', **keys)


def start_pair(ws, name, **overrides):
    """Host B listening (`receive`) and host A running a new guest: how every two-host test starts.
    Returns (a, b, log_a, log_b, address, receiver_pid, guest_pid)."""
    a, b = ws.host('hostA'), ws.host('hostB')
    log_a, log_b = ws.path('a.log'), ws.path('b.log')
    address, receiver, _ = b.receive(log_b, HEARTBEAT_MS)
    pid = a.create(guest_config(ws, name, **overrides), log_a)
    return a, b, log_a, log_b, address, receiver, pid


def seq_count(path):
    return count_seq_lines(read_bytes(path))


def wait_lines(path, at_least, timeout, what):
    return wait_until(lambda: seq_count(path) >= at_least, timeout, '%s (%d seq lines in %s)'
                      % (what, at_least, os.path.basename(path)))


def wait_still(path, quiet, timeout, what):
    """Until the log's seq count has not changed for `quiet` seconds; returns the count."""
    state = {'n': seq_count(path), 'since': time.monotonic()}

    def still():
        n = seq_count(path)
        if n != state['n']:
            state.update(n=n, since=time.monotonic())
        return time.monotonic() - state['since'] >= quiet

    wait_until(still, timeout, what)
    return state['n']


def checkpoints_applied(host, name):
    s = host.status(name)
    return int(s.get('checkpoints_applied', 0)) if s else 0


def same_content_lines(*logs):
    """Lines with the same seq number must be byte-identical wherever they appear (the guest's line
    depends only on seed and N); returns the list of numbers that differ."""
    seen, differ = {}, []
    for data in logs:
        # Only whole lines: a log may end in the start of a line (a primary that died, or released
        # a matched prefix, mid-line), and a line cut inside its check value still looks like one.
        whole = data.lstrip(b'\0')
        whole = whole[:whole.rfind(b'\n') + 1]
        for line in whole.split(b'\n'):
            m = SEQ_LINE.match(line)
            if m:
                n = int(m.group(1))
                if seen.setdefault(n, line) != line:
                    differ.append(n)
    return differ


def expect_nothing_running(ws, host, what):
    guests = host.guests()
    check(not guests, '%s: guests still listed: %s' % (what, guests))
    procs = [p for p in _processes(ws) if alive(p)]
    check(not procs, '%s: processes still running under %s: %s' % (what, host.run_dir, procs))


def _processes(ws):
    from hosts import processes_of
    return processes_of(ws.root)


# --- 1 -----------------------------------------------------------------------------------------
def test_lifecycle(binary):
    ws = Workspace(binary, 'lifecycle')
    try:
        a = ws.host('hostA')
        log = ws.path('console.log')
        pid = a.create(guest_config(ws, 'life'), log)
        check(a.guests() == {'life': 'running'}, 'after create, list shows %s' % a.guests())
        wait_lines(log, 5, 10, 'the guest to print')

        a.ok('pause', 'life')
        check(a.guests().get('life') == 'paused', 'after pause, list shows %s' % a.guests())
        # Output already produced may still be on its way to the log: until it stops growing.
        before = wait_still(log, 0.3, 10, 'the paused guest\'s log to stop growing')
        time.sleep(1.0)  # then nothing may come for a while (an absence cannot be polled for)
        after = seq_count(log)
        check(after == before, 'paused guest printed %d new lines in 1 s' % (after - before))

        a.ok('unpause', 'life')
        check(a.guests().get('life') == 'running', 'after unpause, list shows %s' % a.guests())
        wait_lines(log, after + 5, 5, 'lines to resume after unpause')

        a.ok('destroy', 'life')
        check(a.guests() == {}, 'after destroy, list shows %s' % a.guests())
        wait_exit(pid, 5, 'the guest process %d to end after destroy' % pid)
        report = check_sequence(read_bytes(log), min_lines=10)
        check(report.ok, 'console log: ' + '; '.join(report.problems))
        details = [report.summary()]

        # Refusals: one line on stderr, exit 1, nothing left.
        cases = [
            ('bad value', ws.write_config('badvalue.cfg', name='bad', memory='lots'), 'badvalue.cfg:2'),
            ('unknown key', ws.write_config('badkey.cfg', name='bad', colour=3), 'badkey.cfg:2'),
            ('missing kernel', guest_config(ws, 'nokernel', guest='linux', kernel=ws.path('no-such-bzImage'),
                                            working_set=16), 'no-such-bzImage'),
            ('missing config file', ws.path('no-such.cfg'), 'no-such.cfg'),
            ('memory too large', guest_config(ws, 'huge', memory=65536), None),
            ('name ..', ws.write_config('dots.cfg', name='..', memory=64), 'must start with a letter or digit'),
            ('name -rf', ws.write_config('dashrf.cfg', name='-rf', memory=64), 'must start with a letter or digit'),
            ('config /dev/zero', '/dev/zero', 'larger than 1 MiB'),
        ]
        for label, cfg, must_mention in cases:
            r = a.run('create', cfg, '--console-log', ws.path(label.replace(' ', '-') + '.log'), timeout=60)
            if r.code == 0:
                a.run('destroy', os.path.splitext(os.path.basename(cfg))[0])
                raise TestFailure('%s: create succeeded: %s' % (label, r.out.strip()))
            check(r.code == 1, '%s: exit status %d, expected 1' % (label, r.code))
            line = one_line_error(r)
            if must_mention:
                check(must_mention in line, '%s: message does not name %s: %s' % (label, must_mention, line))
            expect_nothing_running(ws, a, label)
            details.append('%s -> "%s"' % (label, line[:90]))

        # A second guest of the same name is refused while the first runs.
        pid = a.create(guest_config(ws, 'dup'), ws.path('dup.log'))
        r = a.run('create', ws.path('dup.cfg'))
        check(r.code == 1, 'duplicate name: %s' % r.describe())
        one_line_error(r)
        check(alive(pid), 'the first guest died when a duplicate was refused')
        a.ok('destroy', 'dup')
        wait_exit(pid, 5, 'the guest to end after destroy')
        expect_nothing_running(ws, a, 'after the duplicate check')
        return '; '.join(details)
    finally:
        ws.close()


# --- 2 -----------------------------------------------------------------------------------------
def test_save_restore(binary, rounds=20):
    ws = Workspace(binary, 'saverestore')
    try:
        a = ws.host('hostA')
        log = ws.path('console.log')
        image = ws.path('guest.img')
        pid = a.create(guest_config(ws, 'sr'), log)
        wait_lines(log, 3, 10, 'the guest to print')
        sizes = []
        started = time.monotonic()
        for i in range(rounds):
            r = a.ok('save', 'sr', image)
            check(a.guests() == {}, 'round %d: after save, list shows %s' % (i, a.guests()))
            wait_exit(pid, 5, 'round %d: the saved guest to end' % i)
            sizes.append(os.path.getsize(image))
            n = seq_count(log)
            pid = a.restore(image, log)
            check(a.guests().get('sr') == 'running', 'round %d: after restore, list shows %s' % (i, a.guests()))
            wait_lines(log, n + 2, 10, 'round %d: the restored guest to print' % i)
        elapsed = time.monotonic() - started
        a.ok('destroy', 'sr')
        wait_exit(pid, 5, 'the guest to end after destroy')
        report = check_sequence(read_bytes(log), min_lines=3 + 2 * rounds)
        check(report.ok, 'joined console log over %d save/restore rounds: %s' % (rounds, '; '.join(report.problems)))

        # Damaged images are refused and leave nothing behind.
        data = open(image, 'rb').read()
        damaged = {'truncated': data[:len(data) // 2]}
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x10
        damaged['bit-flipped'] = bytes(flipped)
        header_flip = bytearray(data)
        header_flip[9] ^= 0x01  # inside the version field
        damaged['header bit-flipped'] = bytes(header_flip)
        damaged['garbage appended'] = data + garbage(4096)
        messages = []
        for label, content in damaged.items():
            path = ws.path(label.replace(' ', '-') + '.img')
            with open(path, 'wb') as f:
                f.write(content)
            r = a.run('restore', path, '--console-log', ws.path('damaged.log'))
            check(r.code == 1, '%s image: %s' % (label, r.describe()))
            messages.append('%s -> "%s"' % (label, one_line_error(r)[:80]))
            expect_nothing_running(ws, a, label + ' image')
        check(seq_count(ws.path('damaged.log')) == 0, 'a damaged image printed guest output')
        return '%d rounds in %.1fs, image %d KiB, %s; %s' % (rounds, elapsed, sizes[-1] // 1024,
                                                             report.summary(), '; '.join(messages))
    finally:
        ws.close()


# --- 3 -----------------------------------------------------------------------------------------
def test_migration(binary):
    ws = Workspace(binary, 'migrate')
    try:
        a, b, log_a, log_b, address, receiver, pid = start_pair(ws, 'mig')
        wait_lines(log_a, 10, 10, 'the guest to print')
        r = a.ok('migrate', 'mig', address)
        for field in ('downtime_us=', 'passes=', 'bytes='):
            check(field in r.out, 'migrate did not report %s: %r' % (field, r.out))
        check(a.guests() == {}, 'after migrate, host A lists %s' % a.guests())
        wait_exit(pid, 5, 'the migrated-away guest process to end')
        check(b.guests().get('mig') == 'running', 'after migrate, host B lists %s' % b.guests())
        state = b.state('mig')
        check(state == 'active', 'destination status state is %s, expected active' % state)
        n = seq_count(log_b)
        wait_lines(log_b, n + 10, 5, 'the migrated guest to go on printing')
        # A guest that arrived by migration (its process is a `receive`) saves like any other.
        image = ws.path('migrated.img')
        b.ok('save', '-c', 'mig', image)
        check(os.path.getsize(image) > 64 * 1024, 'the migrated guest saved only %d bytes' % os.path.getsize(image))
        check(b.guests().get('mig') == 'running', 'after save -c, host B lists %s' % b.guests())
        n = seq_count(log_b)
        wait_lines(log_b, n + 5, 5, 'the migrated guest to go on printing after save -c')
        b.ok('destroy', 'mig')
        wait_exit(receiver, 5, 'the receiver to end after destroy')
        data_a, data_b = read_bytes(log_a), read_bytes(log_b)
        # The destination's log goes on at the offset where the source's stopped.
        report = check_joined([data_a, data_b], min_lines=20)
        check(report.ok, 'joined log: ' + '; '.join(report.problems))
        check(count_seq_lines(data_b) > 0, 'the destination released nothing')
        check(data_b[:len(data_a)].strip(b'\0') == b'', 'the destination wrote over the positions the source released')
        return '%s; A ends seq=%s, B starts seq=%s; %s' % (
            r.out.strip(), check_sequence(data_a).last, check_sequence(data_b).first, report.summary())
    finally:
        ws.close()


# --- 4 -----------------------------------------------------------------------------------------
def failover_run(binary, mode, run, delay, rng_seed, silent_for=None):
    """One protect + SIGKILL of the primary `delay` s after protect returned; returns (ok, details).
    silent_for: a silent death instead: the primary's link goes silent at that moment (LinkProxy)
    and the SIGKILL follows silent_for s later, so the survivor hears nothing at all."""
    ws = Workspace(binary, '%s-%s-%d' % ('silent' if silent_for is not None else 'kill', mode, run))
    keep = False
    proxy = None
    when = 'delay %.3fs' % delay + ('' if silent_for is None else ', killed %.3fs after the cut' % silent_for)
    try:
        a, b, log_a, log_b, address, receiver, pid = start_pair(ws, 'prot', seed=rng_seed)
        if silent_for is not None:
            proxy = LinkProxy(address)
            address = proxy.address
        wait_lines(log_a, 2, 10, 'the guest to print')
        extra = ['--remus', '-i', '100'] if mode == 'remus' else []
        a.ok('protect', 'prot', address, '--heartbeat-timeout', HEARTBEAT_MS, *extra)
        if delay > 0:
            time.sleep(delay)  # the random moment of the death, not a wait for a condition
        if proxy:
            proxy.cut()
            if silent_for > 0:
                time.sleep(silent_for)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_exit(pid, 5, 'the killed primary to end')
        wait_until(lambda: b.state('prot') == 'active', 10, 'the secondary to become active')
        takeover_ms = (time.monotonic() - killed) * 1000
        n_b = seq_count(log_b)
        wait_lines(log_b, n_b + 5, 10, 'the survivor to go on printing')
        survivor_state = b.state('prot')
        b.run('destroy', 'prot')
        wait_exit(receiver, 5, 'the survivor to end after destroy')
        data_a, data_b = read_bytes(log_a), read_bytes(log_b)
        rep_a, rep_b = check_sequence(data_a, 0), check_sequence(data_b, 0)
        # A byte both released sits at the same offset in both logs: overlaid, each seq line once.
        joined = check_joined([data_a, data_b], min_lines=2)
        problems = list(joined.problems)
        differ = same_content_lines(data_a, data_b)
        if differ:
            problems.append('seq lines differ in content for N=%s' % differ[:5])
        if survivor_state != 'active':
            problems.append('survivor state %s after it printed on' % survivor_state)
        # Bytes both hosts released (the survivor's first position is before the primary's end).
        both = max(0, len(data_a) - (len(data_b) - len(data_b.lstrip(b'\0'))))
        where = 'primary released %s, survivor released %s, takeover %.0f ms' % (
            rep_a.summary(), rep_b.summary(), takeover_ms)
        if problems:
            keep = os.environ.get('COLO_E2E_KEEP') == '1'
            return False, 'run %d (%s): %s; %s%s' % (run, when, where, '; '.join(problems),
                                                   ' (kept %s)' % ws.root if keep else '')
        return True, (takeover_ms, both)
    except TestFailure as e:
        keep = os.environ.get('COLO_E2E_KEEP') == '1'
        return False, 'run %d (%s): %s%s' % (run, when, e, ' (kept %s)' % ws.root if keep else '')
    finally:
        if proxy:
            proxy.close()
        ws.close(keep=keep)


def kill_moments(rng, runs):
    """0-2 s after protect returns, with the first moments (mid-stream, mid-checkpoint) well covered."""
    moments = []
    for i in range(runs):
        if i % 4 == 0:
            moments.append(0.0)
        elif i % 4 == 1:
            moments.append(rng.uniform(0.0, 0.15))
        else:
            moments.append(rng.uniform(0.0, 2.0))
    return moments


def make_failover_test(mode, runs, seed, silent=False):
    """silent: each death is silent (LinkProxy.cut, then SIGKILL 0-1.2 s later). A kill within the
    heartbeat timeout is a host that died with its network; a later one lets the cut-off primary
    first give up on its secondary and release what it held, as the survivor does too: both
    release the same bytes, which the joined logs must hold once."""
    def test(binary):
        rng = random.Random('%s-%s%d' % (mode, 'silent-' if silent else '', seed))
        failures, takeovers, twice = [], [], []
        for run, delay in enumerate(kill_moments(rng, runs)):
            silent_for = rng.uniform(0.0, 1.2) if silent else None
            ok, result = failover_run(binary, mode, run, delay, rng.randint(1, 1 << 30), silent_for)
            if ok:
                takeovers.append(result[0])
                twice.append(result[1])
            else:
                failures.append(result)
        if failures:
            raise TestFailure('%d of %d runs broke (seed %d): %s' % (len(failures), runs, seed, ' || '.join(failures)))
        takeovers.sort()
        return '%d runs, seed %d, takeover after SIGKILL p50 %.0f ms max %.0f ms; %d runs released bytes on both hosts (at the same offsets)' % (
            runs, seed, takeovers[len(takeovers) // 2], takeovers[-1], sum(1 for n in twice if n > 0))
    return test


def net_failover_run(binary, network, mode, run, delay, rng_seed):
    """One protect of a guest with a NIC, a UDP client asking it numbered requests, and a SIGKILL of
    the primary `delay` s after protect returned. Returns (ok, details)."""
    ws = Workspace(binary, 'net-%s-%d' % (mode, run))
    keep = False
    client = None
    when = 'delay %.3fs' % delay
    try:
        a, b, log_a, log_b, address, receiver, pid = start_pair(ws, 'net', seed=rng_seed, vif=network.vif())
        wait_answering(network, 20, 'the guest to answer')
        client = network.start_client(ws.path('client.out'), '--resend-ms', 3000, '--gap-ms', 2)
        extra = ['--remus', '-i', '100'] if mode == 'remus' else []
        a.ok('protect', 'net', address, '--heartbeat-timeout', HEARTBEAT_MS, *extra)
        if delay > 0:
            time.sleep(delay)  # the random moment of the death, not a wait for a condition
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_exit(pid, 5, 'the killed primary to end')
        wait_until(lambda: b.state('net') == 'active', 10, 'the secondary to become active')
        takeover_ms = (time.monotonic() - killed) * 1000
        wait_until(network.tap_exists, 10, 'the survivor to make its TAP')
        # The client goes on; the survivor must answer it (not just print) before it stops.
        n_b = seq_count(log_b)
        wait_lines(log_b, n_b + 5, 10, 'the survivor to go on printing')
        answered = TestNetwork.answers(client)
        wait_until(lambda: TestNetwork.answers(client) >= answered + 5, 15, 'the survivor to answer the client')
        result = TestNetwork.stop_client(client)
        client = None
        problems = check_replies(result)
        replies = result['replies']
        if not replies:
            problems.append('no request was answered at all')
        b.run('destroy', 'net')
        wait_exit(receiver, 5, 'the survivor to end after destroy')
        where = '%d answers, %d re-sends, takeover %.0f ms' % (len(replies), result['resends'], takeover_ms)
        if problems:
            keep = os.environ.get('COLO_E2E_KEEP') == '1'
            return False, 'run %d (%s): %s; %s%s' % (run, when, where, '; '.join(problems),
                                                   ' (kept %s)' % ws.root if keep else '')
        return True, (takeover_ms, len(replies), result['resends'])
    except TestFailure as e:
        keep = os.environ.get('COLO_E2E_KEEP') == '1'
        return False, 'run %d (%s): %s%s' % (run, when, e, ' (kept %s)' % ws.root if keep else '')
    finally:
        if client:
            client.kill()
            client.communicate()
        ws.close(keep=keep)


def make_net_failover_test(mode, runs, seed):
    """Clients of a networked guest across a failover: every request answered exactly once, the
    guest's counter continuous, no reply twice (test_network.check_replies)."""
    def test(binary):
        if os.geteuid() != 0:
            return 'SKIP: needs root for a bridge, a TAP and a network namespace'
        rng = random.Random('net-%s-%d' % (mode, seed))
        network = TestNetwork(1 if mode == 'colo' else 2)
        try:
            failures, takeovers, answers, resends = [], [], 0, 0
            for run, delay in enumerate(kill_moments(rng, runs)):
                ok, result = net_failover_run(binary, network, mode, run, delay, rng.randint(1, 1 << 30))
                if ok:
                    takeovers.append(result[0])
                    answers += result[1]
                    resends += result[2]
                else:
                    failures.append(result)
        finally:
            network.close()
        if failures:
            raise TestFailure('%d of %d runs broke (seed %d): %s' % (len(failures), runs, seed, ' || '.join(failures)))
        takeovers.sort()
        return ('%d runs, seed %d, every request answered once (%d answers, %d re-sends after a lost request); '
                'takeover p50 %.0f ms max %.0f ms' % (runs, seed, answers, resends, takeovers[len(takeovers) // 2],
                                                      takeovers[-1]))
    return test


# --- 5 -----------------------------------------------------------------------------------------
def test_secondary_killed(binary):
    ws = Workspace(binary, 'killsecondary')
    try:
        a, b, log_a, _, address, receiver, pid = start_pair(ws, 'sec')
        a.ok('protect', 'sec', address, '--heartbeat-timeout', HEARTBEAT_MS)
        wait_until(lambda: a.state('sec') == 'protected' and checkpoints_applied(b, 'sec') >= 3, 20,
                   'the primary to be protected with 3 checkpoints applied')
        guest_log = os.path.join(a.run_dir, 'sec.log')
        log_before = read_bytes(guest_log)
        os.kill(receiver, signal.SIGKILL)
        wait_exit(receiver, 5, 'the killed receiver to end')
        status = wait_until(lambda: (lambda s: s if s and s.get('state') == 'unprotected' else None)(a.status('sec')),
                            10, 'the primary to report unprotected')
        reason = status.get('protection_lost', '')
        check(reason, 'status shows no protection_lost reason: %s' % status)
        n = seq_count(log_a)
        wait_lines(log_a, max(n + 10, 20), 10, 'the unprotected primary to go on printing')
        check(alive(pid), 'the primary died')
        new_log = read_bytes(guest_log)[len(log_before):].decode(errors='replace')
        lines = [l for l in new_log.split('\n') if l.strip()]
        told = [l for l in lines if 'secondary' in l.lower() or 'unprotected' in l.lower() or 'protection' in l.lower()]
        check(told, 'the guest log says nothing about losing the secondary: %r' % new_log[:300])
        a.ok('destroy', 'sec')
        wait_exit(pid, 5, 'the primary to end after destroy')
        report = check_sequence(read_bytes(log_a), min_lines=20)
        check(report.ok, 'primary log: ' + '; '.join(report.problems))
        return 'reason "%s"; log: "%s"; %s' % (reason[:80], told[0][:100], report.summary())
    finally:
        ws.close()


# --- 5b ----------------------------------------------------------------------------------------
SILENT_MARGIN_MS = 500  # past the heartbeat timeout: the status poll, a loaded machine


def test_silent_secondary(binary, runs=5):
    """The link to a live secondary goes silent (LinkProxy.cut: nothing forwarded, nothing closed,
    no TCP error) at a random moment of streaming and checkpoints: the primary must leave
    `protected` within the heartbeat timeout (+ a margin), also while it is blocked sending pages
    into the dead link, and say why. Each run's time from the cut to `unprotected` is reported."""
    rng = random.Random(int(os.environ.get('COLO_E2E_SEED') or time.time_ns() % 1000000))
    times, reasons, seen_ms = [], [], []
    for run in range(runs):
        ws = Workspace(binary, 'silentsec-%d' % run)
        proxy = None
        try:
            # A high dirty rate keeps pages streaming: the primary's sends fill the dead link's
            # buffers and block, the case TCP alone would report only after many seconds.
            a, b, log_a, _, address, receiver, pid = start_pair(ws, 'ss', dirty_rate=20000, working_set=48)
            proxy = LinkProxy(address)
            a.ok('protect', 'ss', proxy.address, '--heartbeat-timeout', HEARTBEAT_MS)
            wait_until(lambda: checkpoints_applied(b, 'ss') >= 2, 20, 'run %d: 2 checkpoints applied' % run)
            time.sleep(rng.uniform(0.0, 0.5))  # the random moment of the cut, not a wait for a condition
            proxy.cut()
            cut = time.time()
            status = wait_until(lambda: (lambda st: st if st and st.get('state') != 'protected' else None)(a.status('ss')),
                                15, 'run %d: the primary to leave protected after the cut' % run, interval=0.01)
            seen_ms.append((time.time() - cut) * 1000)
            check(status.get('state') == 'unprotected', 'run %d: the primary is %s' % (run, status.get('state')))
            # The primary's own clock says when it declared the loss (the status poll adds its
            # own latency on a loaded machine).
            took_ms = int(status.get('protection_lost_at_ms', 0)) - cut * 1000
            reason = status.get('protection_lost', '')
            check('silent' in reason or 'no message' in reason, 'run %d: the reason does not name the silence: %s'
                  % (run, reason))
            times.append(took_ms)
            reasons.append(reason)
            n = seq_count(log_a)
            wait_lines(log_a, n + 3, 10, 'run %d: the unprotected primary to go on printing' % run)
            check(alive(pid), 'run %d: the primary died' % run)
        finally:
            if proxy:
                proxy.close()
            ws.close()
    times.sort()
    check(times[-1] <= HEARTBEAT_MS + SILENT_MARGIN_MS,
          'the primary took %s ms to declare its silent secondary lost (heartbeat timeout %d ms)'
          % (['%.0f' % t for t in times], HEARTBEAT_MS))
    return ('%d runs, heartbeat timeout %d ms: cut -> declared lost (protection_lost_at_ms) min %.0f ms, median %.0f ms, '
            'max %.0f ms (seen by status polls after at most %.0f ms); "%s"' % (
                runs, HEARTBEAT_MS, times[0], times[len(times) // 2], times[-1], max(seen_ms), reasons[-1][:80]))


# --- 6 -----------------------------------------------------------------------------------------
def refusal_lines(log):
    return [l for l in read_bytes(log).decode(errors='replace').split('\n')
            if l.startswith('colo-replicate receive: refused')]


def probe(address, payload, close=True, hold=0.0):
    """One connection to a receive that is not a sender: `payload` (may be empty), then a hang-up,
    or the socket held open (silent) for `hold` s. Returns the socket when not closed."""
    host, port = address.rsplit(':', 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=5)
    except ConnectionRefusedError:
        raise TestFailure('nothing listens on %s any more: the receive ended' % address)
    try:
        if payload:
            s.sendall(payload)
        if hold:
            time.sleep(hold)  # idle on purpose: the receive's header deadline must pass meanwhile
    except OSError:
        pass  # the receiver may hang up first
    if close:
        s.close()
        return None
    return s


def test_hostile_streams(binary):
    """Streams that are not a sender's reach one `receive`: each is refused with one line in its
    log, the receive stays (nothing else is made on the host), and a real migrate to it then works."""
    # The hostile headers below must be of this build's version, or every case would be refused
    # for its version alone.
    version = subprocess.run([binary, '--version'], stdout=subprocess.PIPE, text=True).stdout
    check('(stream format %d)' % STREAM_VERSION in version,
          'hostile_stream.STREAM_VERSION is %d, the binary says %s' % (STREAM_VERSION, version.strip()))
    ws = Workspace(binary, 'hostile', tls=False)  # what reaches a receiver's header reader
    try:
        a, b, log_a, log_b, address, receiver, pid = start_pair(ws, 'hs')
        log = os.path.join(b.run_dir, 'receive-%s.log' % address.rsplit(':', 1)[1])
        cases = [
            ('garbage', garbage(), ('magic',)),
            ('wrong version', stream_header(version=99), ('version 99',)),
            ('truncated', stream_header()[:30], ('before its stream header was complete',)),
            ('header then garbage', stream_header() + garbage(), ('unexpected', 'bad message', 'not')),
        ]
        details = []
        for label, payload, words in cases:
            before = len(refusal_lines(log))
            probe(address, payload, close=True, hold=0.3 if label == 'header then garbage' else 0.0)
            lines = wait_until(lambda: refusal_lines(log)[before:], 10, '%s: a refusal line in the receive log' % label)
            check(len(lines) == 1, '%s: expected one refusal line, got %r' % (label, lines))
            check(any(w in lines[0] for w in words), '%s: the line does not say %s: %s' % (label, '/'.join(words), lines[0]))
            check(alive(receiver), '%s: the receive ended' % label)
            check(b.guests() == {}, '%s: host B lists %s' % (label, b.guests()))
            details.append('%s -> "%s"' % (label, lines[0][len('colo-replicate receive: refused '):][:80]))
        check(seq_count(log_b) == 0, 'a hostile stream produced guest output')
        a.ok('migrate', 'hs', address)
        wait_exit(pid, 10, 'the migrated-away guest to end')
        n = seq_count(log_b)
        wait_lines(log_b, n + 5, 10, 'the migrated guest to print on host B')
        b.ok('destroy', 'hs')
        wait_exit(receiver, 10, 'the receiver to end after destroy')
        return '; '.join(details) + '; then migrate succeeded'
    finally:
        ws.close()


def open_fds(pid):
    try:
        return len(os.listdir('/proc/%d/fd' % pid))
    except OSError:
        return -1


def test_receive_probes(binary, rounds=40):
    """A port scan's worth of connections that are not a sender (connect-and-close, random bytes,
    an HTTP request, sockets held idle past the heartbeat timeout, and a crowd of idle sockets
    held open throughout) at one `receive`: it survives them all with a bounded number of open
    descriptors, then the real primary's protect to it succeeds while the crowd is still there."""
    ws = Workspace(binary, 'probes')
    held = []
    try:
        a, b, log_a, log_b, address, receiver, pid = start_pair(ws, 'pr')
        log = os.path.join(b.run_dir, 'receive-%s.log' % address.rsplit(':', 1)[1])
        fds_at_start = open_fds(receiver)
        http = b'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
        count, most_fds = 0, fds_at_start
        idle = []
        for i in range(rounds):
            probe(address, b'')
            probe(address, garbage(512, seed=i + 1))
            probe(address, os.urandom(64))
            probe(address, http)
            count += 4
            if i % 10 == 0:  # idle past the heartbeat timeout, in the background
                t = threading.Thread(target=lambda: probe(address, b'', True, HEARTBEAT_MS / 1000 * 1.5)
                                     if alive(receiver) else None)
                t.start()
                idle.append(t)
                count += 1
            most_fds = max(most_fds, open_fds(receiver))
        for t in idle:
            t.join()
        for _ in range(30):  # a crowd of idle connections, held while the real primary comes
            held.append(probe(address, b'', close=False))
            count += 1
        most_fds = max(most_fds, open_fds(receiver))
        check(alive(receiver), 'the receive ended under %d probes' % count)
        a.ok('protect', 'pr', address, '--heartbeat-timeout', HEARTBEAT_MS)
        wait_until(lambda: a.state('pr') == 'protected' and checkpoints_applied(b, 'pr') >= 2, 20,
                   'protection with 2 checkpoints applied')
        lines = refusal_lines(log)
        check(lines, 'the receive log names no refused connection')
        # Bounded: the unheard connections it keeps open, plus what it had at start.
        check(most_fds <= fds_at_start + 8 + 4, 'the receive held %d descriptors (%d at start)' % (most_fds, fds_at_start))
        a.ok('destroy', 'pr')
        wait_exit(pid, 10, 'the primary to end')
        wait_exit(receiver, 10, 'the secondary to stand down')
        return ('%d probe connections survived (%d held idle during protect); receive fds at most %d (%d at start); '
                '%d refusal lines logged, e.g. "%s"; then protect succeeded' % (
                    count, len(held), most_fds, fds_at_start, len(lines), lines[-1][len('colo-replicate receive: '):][:90]))
    finally:
        for s in held:
            s.close()
        ws.close()


def test_protect_refused_values(binary):
    """protect with a value the pipeline cannot work with is refused before anything is connected,
    sent or paused: the guest runs on and the waiting secondary is still there for a good protect."""
    ws = Workspace(binary, 'refused')
    try:
        a, b, log_a, _, address, receiver, pid = start_pair(ws, 'rv')
        wait_lines(log_a, 3, 10, 'the guest to print')
        details = []
        for args, words in ((('--stream-period', 0), 'stream period'),
                            (('--heartbeat-timeout', 10), 'peer timeout')):
            r = a.run('protect', 'rv', address, *args)
            check(r.code != 0, 'protect %s was accepted' % (args,))
            line = one_line_error(r)
            check(words in line, 'protect %s: the error does not name the %s: %s' % (args, words, line))
            details.append(line[:70])
            check(a.state('rv') == 'unprotected', 'after the refusal the guest is %s' % a.state('rv'))
            check(alive(receiver), 'the refused protect reached the secondary: its receive ended')
        n = seq_count(log_a)
        wait_lines(log_a, n + 5, 10, 'the guest to go on running after the refusals')
        a.ok('protect', 'rv', address, '--heartbeat-timeout', HEARTBEAT_MS)
        wait_until(lambda: a.state('rv') == 'protected', 20, 'the good protect to the same secondary')
        a.ok('destroy', 'rv')
        wait_exit(pid, 10, 'the primary to end')
        wait_exit(receiver, 10, 'the secondary to stand down')
        return '; '.join(details)
    finally:
        ws.close()


# --- 6a ----------------------------------------------------------------------------------------
NOBODY = 65534


def as_user(host, uid, gid, groups, *args, env=None):
    """A colo-replicate command run by another (unprivileged) user, through setpriv."""
    argv = ['setpriv', '--reuid=%d' % uid, '--regid=%d' % gid,
            ('--groups=' + ','.join(str(g) for g in groups)) if groups else '--clear-groups',
            host.binary] + [str(a) for a in args]
    p = subprocess.run(argv, env=dict(os.environ, COLO_RUN_DIR=host.run_dir, COLO_STATE_DIR=os.path.join(host.run_dir, 'state'), **(env or {})),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, errors='replace', timeout=30)
    from hosts import Result
    return Result(argv[3:], p.returncode, p.stdout, p.stderr)


def mode_of(path):
    return os.lstat(path).st_mode & 0o7777


def refused_to(host, name, uid, gid, groups, what, log):
    """Every control request of another user fails with one line; the guest runs on, unpaused."""
    lines = []
    for args in (('list',), ('status', name), ('pause', name), ('console', name), ('destroy', name)):
        r = as_user(host, uid, gid, groups, *args)
        if args == ('list',) and r.code == 0:
            check(name not in r.out, '%s: list by uid %d shows the guest: %r' % (what, uid, r.out))
            continue
        check(r.code == 1, '%s: `%s` by uid %d: %s' % (what, ' '.join(args), uid, r.describe()))
        lines.append(one_line_error(r))
    check(host.guests().get(name) == 'running', '%s: after the refusals the guest is %s' % (what, host.guests()))
    wait_lines(log, seq_count(log) + 3, 10, '%s: the guest to go on printing' % what)
    return lines


def test_local_control(binary):
    """Local control with root's umask 000: the run directory, control socket and log get their own
    modes; a run directory others may write, or a log that is a symlink, is refused with one line;
    an unprivileged user (uid 65534) can neither list, see the status of, pause, attach to nor
    destroy the guest, also when the socket's mode has been opened up (the control socket asks
    the kernel who connected); with COLO_GROUP, a member of that group may."""
    if os.geteuid() != 0 or shutil.which('setpriv') is None:
        return 'SKIP: needs root and setpriv to act as another user'
    ws = Workspace(binary, 'localctl')
    old_umask = os.umask(0)
    group_made = False
    try:
        os.chmod(ws.root, 0o711)  # others may pass through to the run dirs, as through /run
        a = ws.host('hostA')  # made under umask 000: mode 0777
        cfg = guest_config(ws, 'lc')
        log = ws.path('lc.console')
        details = []
        r = a.run('create', cfg, '--console-log', log)
        line = one_line_error(r)
        check(r.code == 1 and '0777' in line and 'others may write' in line, 'run dir 0777: %s' % r.describe())
        details.append('run dir 0777 -> "%s"' % line[:90])
        os.chmod(a.run_dir, 0o700)
        victim = ws.path('victim')
        with open(victim, 'w') as f:
            f.write('untouched\n')
        os.symlink(victim, os.path.join(a.run_dir, 'lc.log'))
        r = a.run('create', cfg, '--console-log', log)
        line = one_line_error(r)
        check(r.code == 1 and 'symbolic link' in line, 'log symlink: %s' % r.describe())
        check(open(victim).read() == 'untouched\n', 'the symlink\'s target was written')
        details.append('log symlink -> "%s"' % line[:90])
        shutil.rmtree(a.run_dir)

        pid = a.create(cfg, log)  # makes the run dir itself, under umask 000
        wait_lines(log, 3, 10, 'the guest to print')
        sock = os.path.join(a.run_dir, 'lc.sock')
        modes = (mode_of(a.run_dir), mode_of(sock), mode_of(os.path.join(a.run_dir, 'lc.log')))
        check(modes == (0o700, 0o600, 0o600), 'modes of run dir, socket, log: %s' % ['%04o' % m for m in modes])
        details.append('modes %s' % '/'.join('%04o' % m for m in modes))

        lines = refused_to(a, 'lc', NOBODY, NOBODY, [], 'mode 0700', log)
        details.append('uid %d -> "%s"' % (NOBODY, lines[-1][:70]))
        # An operator opens the directory and the socket up: the kernel's word on the peer decides.
        os.chmod(a.run_dir, 0o755)
        os.chmod(sock, 0o777)
        lines = refused_to(a, 'lc', NOBODY, NOBODY, [], 'socket 0777', log)
        check(all('permission denied' in l for l in lines), 'socket 0777: %r' % lines)
        details.append('socket opened up -> "%s"' % lines[-1][:80])
        # Paths an operator gives (a save image, a console log) where another user planted a symlink.
        planted = ws.path('planted')
        os.symlink(victim, planted)
        os.lchown(planted, NOBODY, NOBODY)
        r = a.run('save', 'lc', planted)
        line = one_line_error(r)
        check('symbolic link owned by uid %d' % NOBODY in line, 'save to a planted symlink: %s' % r.describe())
        r = a.run('create', guest_config(ws, 'lc2'), '--console-log', planted)
        check('symbolic link owned by uid %d' % NOBODY in one_line_error(r), 'console log: %s' % r.describe())
        check(open(victim).read() == 'untouched\n', 'the planted symlink\'s target was written')
        check(a.guests() == {'lc': 'running'}, 'after the refused save and create: %s' % a.guests())
        details.append('save/console log to a planted symlink -> "%s"' % line[:80])
        a.ok('destroy', 'lc')
        wait_exit(pid, 10, 'the guest to end')

        # A configured group: its members may, others still may not.
        if subprocess.run(['getent', 'group', 'colotest'], capture_output=True).returncode != 0:
            subprocess.run(['groupadd', 'colotest'], check=True)
            group_made = True
        gid = int(subprocess.run(['getent', 'group', 'colotest'], capture_output=True, text=True).stdout.split(':')[2])
        os.environ['COLO_GROUP'] = 'colotest'
        try:
            pid = a.create(cfg, log)
        finally:
            del os.environ['COLO_GROUP']
        st = os.stat(a.run_dir)
        modes = (mode_of(a.run_dir), mode_of(sock), mode_of(os.path.join(a.run_dir, 'lc.log')))
        check(modes == (0o750, 0o660, 0o640) and st.st_gid == gid and os.stat(sock).st_gid == gid,
              'with COLO_GROUP: modes %s, group %d' % (['%04o' % m for m in modes], st.st_gid))
        for args in (('status', 'lc'), ('pause', 'lc'), ('unpause', 'lc')):
            r = as_user(a, NOBODY, NOBODY, [gid], *args)
            check(r.code == 0, 'a member of the group: %s' % r.describe())
        refused_to(a, 'lc', NOBODY, NOBODY, [], 'not in the group', log)
        details.append('COLO_GROUP: modes %s, a member may pause/unpause, others refused' %
                       '/'.join('%04o' % m for m in modes))
        a.ok('destroy', 'lc')
        wait_exit(pid, 10, 'the guest to end')
        return '; '.join(details)
    finally:
        os.umask(old_umask)
        ws.close()
        if group_made:
            subprocess.run(['groupdel', 'colotest'])


# --- 6b ----------------------------------------------------------------------------------------
def receive_errors(log):
    text = read_bytes(log).decode(errors='replace')
    return [l for l in text.split('\n') if l.startswith('colo-replicate:')]


def runs_on_then_destroy(host, name, log, pid):
    """The guest goes on printing where it is (a few more lines), then is destroyed and its process ends."""
    wait_lines(log, seq_count(log) + 3, 10, '%s to go on printing' % name)
    host.ok('destroy', name)
    wait_exit(pid, 10, 'the process of %s to end after destroy' % name)


def terminate_receiver(pid, log, what):
    """SIGTERM to a receive: it must end with status 1 and one line saying so. Returns a summary."""
    os.kill(pid, signal.SIGTERM)
    code = wait_exit(pid, 15, '%s to end on SIGTERM' % what)
    errors = receive_errors(log)
    check(code == 1, '%s: exit status %s after SIGTERM, expected 1' % (what, code))
    check(len(errors) == 1 and 'terminated by SIGTERM' in errors[0],
          '%s: expected one line saying it was terminated, got %r' % (what, errors))
    return 'exit %d "%s"' % (code, errors[0])


def test_receive_sigterm(binary):
    """SIGTERM ends a receive cleanly: waiting, at once; as a secondary, its SVM and control socket
    go (destructors run) and the primary goes on unprotected. Exit status 1, one line saying so."""
    ws = Workspace(binary, 'receiveterm')
    try:
        b = ws.host('hostB')
        _, waiting, waiting_log = b.receive(ws.path('w.log'), HEARTBEAT_MS)
        details = ['waiting: ' + terminate_receiver(waiting, waiting_log, 'the waiting receiver')]

        a, b, log_a, _, address, receiver, pid = start_pair(ws, 'term')
        receiver_log = os.path.join(b.run_dir, 'receive-%s.log' % address.rsplit(':', 1)[1])
        a.ok('protect', 'term', address, '--heartbeat-timeout', HEARTBEAT_MS)
        wait_until(lambda: b.state('term') == 'protecting', 10, 'B to be the secondary')
        check(os.path.exists(os.path.join(b.run_dir, 'term.sock')), 'the secondary has no control socket')
        details.append('secondary: ' + terminate_receiver(receiver, receiver_log, 'the secondary'))
        check(not os.path.exists(os.path.join(b.run_dir, 'term.sock')), 'the control socket is left behind')
        check(b.guests() == {}, 'host B lists guests after SIGTERM: %s' % b.guests())
        wait_until(lambda: a.state('term') == 'unprotected', 10, 'the primary to report unprotected')
        runs_on_then_destroy(a, 'term', log_a, pid)
        return '; '.join(details)
    finally:
        ws.close()


# --- 6c ----------------------------------------------------------------------------------------
def test_old_peer_version(binary):
    """protect and migrate to a receiver of stream version 1 (which hangs up on a header it does not
    speak, without an answer) fail at connect time with one line; no page is sent, the guest runs on."""
    ws = Workspace(binary, 'oldpeer', tls=False)  # an old receiver speaks no TLS
    listener = socket.socket()
    try:
        listener.bind(('127.0.0.1', 0))
        listener.listen(4)
        listener.settimeout(10)
        address = '127.0.0.1:%d' % listener.getsockname()[1]
        a = ws.host('hostA')
        log = ws.path('a.log')
        pid = a.create(guest_config(ws, 'old'), log)
        details = []
        for command in ('protect', 'migrate'):
            got = {}

            def old_receiver():
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(10)
                    got['header'] = conn.recv(24)  # the fixed part: a version-1 reader stops at the version
                    conn.shutdown(socket.SHUT_WR)  # and hangs up without a word
                    rest = b''
                    try:
                        while True:
                            chunk = conn.recv(65536)
                            if not chunk:
                                break
                            rest += chunk
                    except OSError:
                        pass
                    got['after'] = rest
            t = threading.Thread(target=old_receiver)
            t.start()
            started = time.monotonic()
            r = a.run(command, 'old', address, timeout=60)
            took = time.monotonic() - started
            t.join(15)
            line = one_line_error(r)
            check(r.code == 1, '%s: exit status %d, expected 1' % (command, r.code))
            check('peer speaks stream version 1, this is %d' % STREAM_VERSION in line, '%s: %s' % (command, line))
            check(took < 5, '%s took %.1f s to fail' % (command, took))
            # After the header (24 + 16n + 8 bytes) nothing: no config, no setup, no page.
            check(len(got.get('after', b'')) <= 16 * 4 + 8, '%s sent %d bytes after the header'
                  % (command, len(got.get('after', b''))))
            check(a.guests().get('old') == 'running', '%s: the guest is %s' % (command, a.guests()))
            details.append('%s -> "%s" in %.2fs' % (command, line[:100], took))
        runs_on_then_destroy(a, 'old', log, pid)
        return '; '.join(details)
    finally:
        listener.close()
        ws.close()


# --- 6d ----------------------------------------------------------------------------------------
def meminfo_mib(key):
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) // 1024
    return 0


def test_receive_too_big(binary):
    """A guest larger than the receiving host's available memory is refused before its memory exists:
    the receiver ends with one line, the sender hears why, the guest runs on where it was."""
    total, available = meminfo_mib('MemTotal'), meminfo_mib('MemAvailable')
    if total - available < 1024 or available + (total - available) // 2 > 65536:
        return 'SKIP: MemAvailable %d MiB of %d MiB leaves no room between the two' % (available, total)
    memory = available + (total - available) // 2  # fits the host (a new guest may), not what is free
    ws = Workspace(binary, 'toobig')
    try:
        a, b, log_a, _, address, receiver, pid = start_pair(ws, 'big', memory=memory)
        receiver_log = os.path.join(b.run_dir, 'receive-%s.log' % address.rsplit(':', 1)[1])
        r = a.run('protect', 'big', address, '--heartbeat-timeout', HEARTBEAT_MS, timeout=60)
        line = one_line_error(r)
        # protect may read the state before the reason lands (its status poll), so the reason is
        # checked where it stays: status protection_lost.
        reason = wait_until(lambda: (lambda st: st.get('protection_lost') if st else None)(a.status('big')),
                            10, 'the primary to record why protection failed')
        check('more than this host has available' in reason, 'the primary does not say why: %s' % reason)
        code = wait_exit(receiver, 15, 'the receiver to end')
        errors = receive_errors(receiver_log)
        check(code == 1 and len(errors) == 1 and 'more than this host has available' in errors[0],
              'receiver: exit %s, %r' % (code, errors))
        check(b.guests() == {}, 'host B lists %s' % b.guests())
        runs_on_then_destroy(a, 'big', log_a, pid)
        return '%d MiB guest, %d MiB available: protect -> "%s"; protection_lost "%s"; receiver -> "%s"' % (
            memory, available, line[:80], reason[:120], errors[0][:100])
    finally:
        ws.close()


# --- 7 -----------------------------------------------------------------------------------------
def test_forced_failover(binary):
    ws = Workspace(binary, 'failover')
    try:
        a, b, log_a, log_b, address, receiver, pid = start_pair(ws, 'fo')
        a.ok('protect', 'fo', address, '--heartbeat-timeout', HEARTBEAT_MS)
        wait_until(lambda: b.state('fo') == 'protecting' and checkpoints_applied(b, 'fo') >= 2, 20,
                   'the secondary to be protecting with 2 checkpoints applied')
        r = b.ok('failover', 'fo')
        check(b.state('fo') == 'active', 'after failover the secondary is %s' % b.state('fo'))
        n_b = seq_count(log_b)
        wait_lines(log_b, n_b + 10, 5, 'the new primary to print')
        check(alive(pid) and 'fo' in a.guests(), 'the old primary stopped running')
        wait_until(lambda: a.state('fo') == 'unprotected', 10, 'the old primary to report unprotected')
        r_b = b.run('failover', 'fo')
        check(r_b.code == 1, 'a second failover was accepted: %s' % r_b.describe())
        one_line_error(r_b)
        a.ok('destroy', 'fo')
        b.ok('destroy', 'fo')
        wait_exit(pid, 5, 'the old primary to end')
        wait_exit(receiver, 5, 'the new primary to end')
        expect_nothing_running(ws, a, 'host A after destroy')
        expect_nothing_running(ws, b, 'host B after destroy')
        data_a, data_b = read_bytes(log_a), read_bytes(log_b)
        rep_a, rep_b = check_sequence(data_a, 10), check_sequence(data_b, 10)
        check(rep_a.ok, 'old primary log: ' + '; '.join(rep_a.problems))
        check(rep_b.ok, 'new primary log: ' + '; '.join(rep_b.problems))
        check(rep_b.first <= rep_a.last + 1, 'the new primary starts at seq=%d, after a gap from seq=%d'
              % (rep_b.first, rep_a.last))
        differ = same_content_lines(data_a, data_b)
        check(not differ, 'the two logs differ for N=%s' % differ[:5])
        return '%s; old primary %s, new primary %s' % (r.out.strip(), rep_a.summary(), rep_b.summary())
    finally:
        ws.close()


# --- 8 -----------------------------------------------------------------------------------------
def test_survivor_protected_again(binary):
    """A survivor is a primary like any other: protected again after a takeover, then migrated on.
    Four hosts in a chain: A (killed) -> B (takes over, protected to C, killed) -> C (takes over,
    migrated) -> D. The released output of A, B, C and D joined is one unbroken sequence."""
    ws = Workspace(binary, 'chain')
    keep = False
    try:
        hosts = [ws.host('host' + h) for h in 'ABCD']
        logs = [ws.path(h + '.log') for h in 'abcd']
        a, b, c, d = hosts
        address_b, pid_b, _ = b.receive(logs[1], HEARTBEAT_MS)
        pid_a = a.create(guest_config(ws, 'chain'), logs[0])
        wait_lines(logs[0], 3, 10, 'the guest to print')
        a.ok('protect', 'chain', address_b, '--heartbeat-timeout', HEARTBEAT_MS)
        # Still a secondary: it must say why it cannot be protected yet.
        r = b.run('protect', 'chain', '127.0.0.1:9')
        check(r.code == 1 and 'secondary' in one_line_error(r), 'protect of a secondary: %s' % r.describe())
        wait_until(lambda: checkpoints_applied(b, 'chain') >= 2, 20, 'B to apply 2 checkpoints')
        os.kill(pid_a, signal.SIGKILL)
        wait_exit(pid_a, 5, 'the killed primary A to end')
        wait_until(lambda: b.state('chain') == 'active', 10, 'B to take over')

        address_c, pid_c, _ = c.receive(logs[2], HEARTBEAT_MS)
        r_b = b.ok('protect', 'chain', address_c, '--heartbeat-timeout', HEARTBEAT_MS)
        check(b.state('chain') == 'protected', 'B after protect is %s' % b.state('chain'))
        n_c = seq_count(logs[2])
        wait_until(lambda: c.state('chain') == 'protecting' and checkpoints_applied(c, 'chain') >= 2, 20,
                   'C to be B\'s secondary with 2 checkpoints applied')
        os.kill(pid_b, signal.SIGKILL)
        wait_exit(pid_b, 5, 'the killed primary B to end')
        wait_until(lambda: c.state('chain') == 'active', 10, 'C to take over')
        wait_lines(logs[2], n_c + 5, 5, 'C to go on printing')

        address_d, pid_d, _ = d.receive(logs[3], HEARTBEAT_MS)
        r_c = c.ok('migrate', 'chain', address_d)
        wait_exit(pid_c, 5, 'C to end after migrating away')
        n_d = seq_count(logs[3])
        wait_lines(logs[3], n_d + 5, 5, 'D to go on printing')
        d.ok('destroy', 'chain')
        wait_exit(pid_d, 5, 'D to end after destroy')
        data = [read_bytes(p) for p in logs]
        reports = [check_sequence(x, 0) for x in data]
        joined = check_joined(data, min_lines=20)
        check(joined.ok, 'joined log A+B+C+D: %s (A %s, B %s, C %s, D %s)' % (
            '; '.join(joined.problems), *[r.summary() for r in reports]))
        differ = same_content_lines(*data)
        check(not differ, 'seq lines differ in content for N=%s' % differ[:5])
        for name, x in zip('BCD', data[1:]):
            check(count_seq_lines(x) > 0, 'host %s released nothing' % name)
        return 'B: %s; C: %s; released A %s, B %s, C %s, D %s; joined %s' % (
            r_b.out.strip(), r_c.out.strip().split(': ', 1)[-1][:60],
            reports[0].summary(), reports[1].summary(), reports[2].summary(), reports[3].summary(), joined.summary())
    except TestFailure as e:
        keep = os.environ.get('COLO_E2E_KEEP') == '1'
        raise TestFailure('%s%s' % (e, ' (kept %s)' % ws.root if keep else ''))
    finally:
        ws.close(keep=keep)


# --- disks ---------------------------------------------------------------------------------------
def disk_pair(ws, name, seed, receive_env=None, **disk):
    """A receiver keeping its disk copies in its own dir (one host, two images) and a guest with a
    4 MiB disk running the block workload. Returns (a, b, log_a, log_b, address, receiver, pid, copy)."""
    a, b = ws.host('hostA'), ws.host('hostB')
    log_a, log_b = ws.path('a.log'), ws.path('b.log')
    disks = os.path.join(b.run_dir, 'disks')
    os.makedirs(disks, exist_ok=True)
    address, receiver, _ = b.receive(log_b, HEARTBEAT_MS, '--disk-dir', disks, env=receive_env)
    image = make_image(ws.path('%s.img' % name))
    pid = a.create(guest_config(ws, name, seed=seed, **disk_keys(image, **disk)), log_a)
    return a, b, log_a, log_b, address, receiver, pid, os.path.join(disks, '%s-xvda.img' % name)


def disk_failover_run(binary, mode, run, delay, rng_seed):
    """Protect a guest writing its disk, SIGKILL the primary `delay` s later; the survivor writes on
    to the end of its workload: no CORRUPT, its last read-back clean, and its image what the guest's
    memory expects. Returns (ok, details)."""
    ws = Workspace(binary, 'disk-%s-%d' % (mode, run))
    keep = False
    try:
        a, b, log_a, log_b, address, receiver, pid, copy = disk_pair(ws, 'dsk', rng_seed)
        wait_lines(log_a, 2, 10, 'the guest to print')
        extra = ['--remus', '-i', '100'] if mode == 'remus' else []
        a.ok('protect', 'dsk', address, '--heartbeat-timeout', HEARTBEAT_MS, *extra)
        if delay > 0:
            time.sleep(delay)  # the random moment of the death, not a wait for a condition
        os.kill(pid, signal.SIGKILL)
        wait_exit(pid, 5, 'the killed primary to end')
        wait_until(lambda: b.state('dsk') == 'active', 10, 'the secondary to become active')
        status = b.status('dsk') or {}
        digest = wait_done(log_b, 60, 'the survivor to finish its disk workload (disk-done)') if not done_digest(read_bytes(log_a)) else None
        report, joined = joined_report(log_a, log_b)
        digest = done_digest(joined)
        check(digest, 'no disk-done line in the joined logs')
        b.ok('pause', 'dsk')  # the image holds still while it is read
        problems = list(report.problems)
        try:
            check_image(copy, rng_seed, digest, 'survivor image')
        except TestFailure as e:
            problems.append(str(e))
        if os.path.exists(copy + '.colo-replica'):
            problems.append('the survivor image still carries its replica mark')
        b.run('destroy', 'dsk')
        wait_exit(receiver, 5, 'the survivor to end after destroy')
        dropped = int(status.get('disk_takeover_dropped_writes', 0))
        overlay_bytes = int(status.get('disk_takeover_overlay_bytes', 0))
        if problems:
            keep = os.environ.get('COLO_E2E_KEEP') == '1'
            return False, 'run %d (delay %.3fs): %s%s' % (run, delay, '; '.join(problems),
                                                        ' (kept %s)' % ws.root if keep else '')
        return True, (dropped, overlay_bytes)
    except TestFailure as e:
        keep = os.environ.get('COLO_E2E_KEEP') == '1'
        return False, 'run %d (delay %.3fs): %s%s' % (run, delay, e, ' (kept %s)' % ws.root if keep else '')
    finally:
        ws.close(keep=keep)


def make_disk_failover_test(mode, runs, seed):
    def test(binary):
        rng = random.Random('disk-%s-%d' % (mode, seed))
        failures, dropped, overlays = [], 0, 0
        for run, delay in enumerate(kill_moments(rng, runs)):
            ok, result = disk_failover_run(binary, mode, run, delay, rng.randint(1, 1 << 30))
            if ok:
                dropped += 1 if result[0] else 0
                overlays += 1 if result[1] else 0
            else:
                failures.append(result)
        if failures:
            raise TestFailure('%d of %d runs broke (seed %d): %s' % (len(failures), runs, seed, ' || '.join(failures)))
        return ('%d runs, seed %d: survivor images equal to the guests\' expected state; %d takeovers dropped '
                'uncommitted writes%s' % (runs, seed, dropped,
                                           ', %d wrote the SVM\'s own writes into the copy' % overlays if mode == 'colo' else ''))
    return test


def test_disk_secondary_killed_mid_apply(binary):
    """The secondary dies while it writes checkpoint 5 into its copy (a fault injected there): the
    primary runs on unprotected and intact; the half-applied copy is refused as a disk; protecting
    again to it sends only the blocks that differ, and a takeover from it then is exact."""
    ws = Workspace(binary, 'disk-midapply')
    try:
        a, b, log_a, log_b, address, receiver, pid, copy = disk_pair(
            ws, 'dma', 11, receive_env={'COLO_FAULT_DIE_APPLYING_DISK_CHECKPOINT': '5'}, rate=400, writes=4000,
            blocks=DISK_BLOCKS // 2)  # the image's second half is never written: the resync leaves it
        wait_lines(log_a, 2, 10, 'the guest to print')
        a.ok('protect', 'dma', address, '--heartbeat-timeout', HEARTBEAT_MS, '--remus', '-i', '50')
        wait_exit(receiver, 20, 'the secondary to die applying checkpoint 5')
        wait_until(lambda: a.state('dma') == 'unprotected', 10, 'the primary to report unprotected')
        n = seq_count(log_a)
        wait_lines(log_a, n + 10, 10, 'the unprotected primary to go on')
        mark = open(copy + '.colo-replica').read().strip()
        check(mark.endswith('applying 5'), 'the copy\'s mark says %r, expected applying 5' % mark)
        # Nobody may run a guest on it.
        cfg = guest_config(ws, 'onit', **disk_keys(copy))
        r = b.run('create', cfg, '--console-log', ws.path('onit.log'))
        check(r.code != 0, 'create on the half-applied copy succeeded')
        err = one_line_error(r)
        check('not a consistent disk' in err and 'checkpoint 5' in err, 'create said: %r' % err)
        # Protect again to the same copy: it is resynced, not copied whole.
        address, receiver, _ = b.receive(log_b, HEARTBEAT_MS, '--disk-dir', os.path.dirname(copy))
        a.ok('protect', 'dma', address, '--heartbeat-timeout', HEARTBEAT_MS, '--remus', '-i', '50')
        status = a.status('dma')
        sent, blocks = int(status['disk_sync_blocks_sent']), int(status['disk_sync_blocks'])
        check(0 < sent <= blocks // 2, 'the resync sent %d of %d blocks (the second half never changed)' % (sent, blocks))
        os.kill(pid, signal.SIGKILL)
        wait_exit(pid, 5, 'the killed primary to end')
        wait_until(lambda: b.state('dma') == 'active', 10, 'the secondary to become active')
        wait_done(log_b, 60, 'the survivor to finish its disk workload')
        report, joined = joined_report(log_a, log_b)
        check(report.ok, '; '.join(report.problems))
        b.ok('pause', 'dma')
        summary = check_image(copy, 11, done_digest(joined), 'survivor image', DISK_BLOCKS // 2)
        b.run('destroy', 'dma')
        return 'mark "%s", create refused: "%s"; resync sent %d of %d blocks; %s' % (mark, err[:90], sent, blocks, summary)
    finally:
        ws.close()


def test_disk_migration(binary):
    """migrate a guest writing its disk: the destination's copy is synced, then follows the guest's
    writes until the final pause; the guest finishes its workload there with its image exact."""
    ws = Workspace(binary, 'disk-migrate')
    try:
        a, b, log_a, log_b, address, receiver, pid, copy = disk_pair(ws, 'dmg', 5, rate=400, writes=2400)
        wait_lines(log_a, 2, 10, 'the guest to print')
        r = a.ok('migrate', 'dmg', address)
        wait_exit(pid, 10, 'the source to end after the migration')
        wait_done(log_b, 60, 'the migrated guest to finish its disk workload')
        report, joined = joined_report(log_a, log_b)
        check(report.ok, '; '.join(report.problems))
        b.ok('pause', 'dmg')
        summary = check_image(copy, 5, done_digest(joined), 'destination image')
        check(not os.path.exists(copy + '.colo-replica'), 'the migrated image still carries its replica mark')
        m = re.search(r'disk_sync_bytes=(\d+)', r.out)
        b.run('destroy', 'dmg')
        return '%s; disk sync %s bytes' % (summary, m.group(1) if m else '?')
    finally:
        ws.close()


def test_disk_same_image_refused(binary):
    """A secondary on the same host without --disk-dir would write the primary's own image: the
    image lock refuses it, protect fails with one line, and the guest runs on unharmed."""
    ws = Workspace(binary, 'disk-same')
    try:
        a, b = ws.host('hostA'), ws.host('hostB')
        log_a = ws.path('a.log')
        address, receiver, _ = b.receive(ws.path('b.log'), HEARTBEAT_MS)
        image = make_image(ws.path('same.img'))
        pid = a.create(guest_config(ws, 'same', **disk_keys(image, writes=0)), log_a)
        wait_lines(log_a, 2, 10, 'the guest to print')
        r = a.run('protect', 'same', address, '--heartbeat-timeout', HEARTBEAT_MS)
        check(r.code != 0, 'protect onto the primary\'s own image succeeded')
        err = one_line_error(r)
        check('in use by another process' in err, 'protect said: %r' % err)
        n = seq_count(log_a)
        wait_lines(log_a, n + 5, 10, 'the guest to go on')
        check(alive(pid) and not corrupt_lines(read_bytes(log_a)), 'the guest was harmed')
        r = b.run('receive', '--disk-dir', ws.path('nowhere'))
        check(r.code != 0 and 'is not a directory' in one_line_error(r), 'receive --disk-dir nowhere: %s' % r.describe())
        a.ok('destroy', 'same')
        return 'protect refused: "%s"' % err[:120]
    finally:
        ws.close()

# --- TLS ---------------------------------------------------------------------------------------
FLIP_AT = 1024 * 1024  # bytes into the primary's stream: inside the initial memory sync


def flip_one_bit(towards_target, offset, data):
    """A man in the middle: one bit of the primary's stream, FLIP_AT bytes in, changed."""
    if towards_target and offset <= FLIP_AT < offset + len(data):
        i = FLIP_AT - offset
        data = data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:]
    return data


def test_tls_link(binary):
    """The link runs over TLS with the workspace's key. A sender with another key, or in clear, is
    refused before anything reaches the receiving host, one line on both sides; a relay that flips
    one bit of the encrypted stream is detected (the record fails authentication), the incomplete
    replica is dropped and the guest runs on unprotected, unharmed; then the right key protects it."""
    ws = Workspace(binary, 'tls')
    proxy = None
    try:
        a, b, log_a, log_b, address, receiver, pid = start_pair(ws, 'tl')
        rlog = os.path.join(b.run_dir, 'receive-%s.log' % address.rsplit(':', 1)[1])
        details = []
        other_key = ws.path('other.key')
        a.ok('keygen', other_key)
        for label, args, clear, said, logged in (
                ('another key', ('--key', other_key), False, 'TLS handshake', "is not this host's"),
                ('in clear', (), True, 'takes TLS connections only', 'in clear')):
            before = len(refusal_lines(rlog))
            r = a.run('protect', 'tl', address, '--heartbeat-timeout', HEARTBEAT_MS, *args, clear=clear)
            line = one_line_error(r)
            check(r.code == 1 and said in line, '%s: protect %s' % (label, r.describe()))
            lines = wait_until(lambda: refusal_lines(rlog)[before:], 10, '%s: a refusal line in the receive log' % label)
            check(len(lines) == 1 and logged in lines[0], '%s: receive log %r' % (label, lines))
            check(alive(receiver) and b.guests() == {}, '%s: host B has %s' % (label, b.guests()))
            check(a.state('tl') == 'unprotected', '%s: the guest is %s' % (label, a.state('tl')))
            details.append('%s: "%s" / "%s"' % (label, line[:90], lines[0][len('colo-replicate receive: refused '):][:90]))
        proxy = LinkProxy(address, tamper=flip_one_bit)
        r = a.run('protect', 'tl', proxy.address, '--heartbeat-timeout', HEARTBEAT_MS, timeout=60)
        check(r.code == 1, 'protect through a bit-flipping relay: %s' % r.describe())
        text = wait_until(lambda: (lambda t: t if 'failed authentication' in t else None)(
            read_bytes(rlog).decode(errors='replace')), 10, 'the receiver to report a record that failed authentication '
            '(protect: %s; receive log: %r)' % (one_line_error(r), read_bytes(rlog)[-600:]))
        wait_exit(receiver, 15, 'the receive to end with its incomplete replica')
        check(b.guests() == {}, 'host B keeps %s after the tampered sync' % b.guests())
        check(a.state('tl') == 'unprotected', 'after the tampered sync the guest is %s' % a.state('tl'))
        n = seq_count(log_a)
        wait_lines(log_a, n + 5, 10, 'the guest to go on after the tampered sync')
        check(not corrupt_lines(read_bytes(log_a), read_bytes(log_b)), 'a guest printed CORRUPT')
        flagged = [l for l in text.split('\n') if 'failed authentication' in l][0]
        details.append('bit flipped %d bytes in: protect "%s"; receiver "%s"' % (FLIP_AT, one_line_error(r)[:80], flagged[:120]))
        address, receiver, _ = b.receive(ws.path('b2.log'), HEARTBEAT_MS)
        a.ok('protect', 'tl', address, '--heartbeat-timeout', HEARTBEAT_MS)
        status = wait_until(lambda: (lambda s: s if s and s.get('state') == 'protected' else None)(a.status('tl')),
                            20, 'the guest to be protected with the right key')
        wait_until(lambda: checkpoints_applied(b, 'tl') >= 3, 20, '3 checkpoints applied over TLS')
        check(status.get('link_security', '').startswith('tls1.3 key '), 'status link_security: %s' % status.get('link_security'))
        details.append('right key: protected, link_security "%s"' % status['link_security'])
        a.ok('destroy', 'tl')
        wait_exit(pid, 10, 'the primary to end after destroy')
        return '; '.join(details)
    finally:
        if proxy:
            proxy.close()
        ws.close()


def test_compressed_sync(binary):
    """migrate --compress A -> B, then protect --compress B -> C: the pages cross LZ4-compressed
    (the built-in guest's pages compress: each is a function of its seed, page and generation), the
    reports say how much, and the guest goes on whole: checkpoints applied on C, no CORRUPT, one
    unbroken console across the three hosts."""
    ws = Workspace(binary, 'compress')
    try:
        a, b, log_a, log_b, address, receiver_b, pid = start_pair(ws, 'cz')
        wait_lines(log_a, 5, 10, 'the guest to print')
        r = a.ok('migrate', '--compress', 'cz', address)
        m = re.search(r'page_bytes=(\d+) compressed_bytes=(\d+)', r.out)
        check(m, 'migrate --compress reported no page/compressed bytes: %r' % r.out)
        raw, packed = int(m.group(1)), int(m.group(2))
        check(0 < packed < raw, 'compressed %d of %d page bytes' % (packed, raw))
        wait_exit(pid, 5, 'the migrated-away guest process to end')
        c = ws.host('hostC')
        log_c = ws.path('c.log')
        address_c, receiver_c, _ = c.receive(log_c, HEARTBEAT_MS)
        r = b.ok('protect', '--compress', 'cz', address_c, '--heartbeat-timeout', HEARTBEAT_MS)
        m2 = re.search(r'pages compressed (\d+) -> (\d+) bytes', r.out)
        check(m2 and 0 < int(m2.group(2)) < int(m2.group(1)), 'protect --compress printed %r' % r.out)
        wait_until(lambda: checkpoints_applied(c, 'cz') >= 3, 20, '3 checkpoints applied on C')
        n = seq_count(log_b)
        wait_lines(log_b, n + 5, 10, 'the protected guest to go on printing')
        b.ok('destroy', 'cz')
        wait_exit(receiver_b, 10, 'the primary (a receive) to end after destroy')
        wait_exit(receiver_c, 10, 'the secondary to end with the protection')
        logs = [read_bytes(log_a), read_bytes(log_b)]
        check(not corrupt_lines(*logs, read_bytes(log_c)), 'a guest printed CORRUPT')
        joined = check_joined(logs, min_lines=10)
        check(joined.ok, 'joined log: ' + '; '.join(joined.problems))
        return 'migrate: %d page bytes sent as %d (%.1fx); protect: %s -> %s bytes' % (
            raw, packed, raw / packed, m2.group(1), m2.group(2))
    finally:
        ws.close()


def main(argv):
    if len(argv) < 2:
        print('usage: run.py PATH/TO/colo-replicate [TEST...]', file=sys.stderr)
        return 2
    binary = os.path.abspath(argv[1])
    become_subreaper()
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so each test's cleanup still runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit('e2e: terminated'))
    seed = int(os.environ.get('COLO_E2E_SEED') or time.time_ns() % 1000000)
    runs = int(os.environ.get('COLO_E2E_RUNS') or 20)
    tests = [
        ('lifecycle', test_lifecycle),
        ('save-restore-20x', test_save_restore),
        ('live-migration', test_migration),
        ('compressed-sync', test_compressed_sync),
        ('status-watch', make_status_watch_test(guest_config, HEARTBEAT_MS)),
        ('systemd-unit-commands', make_unit_commands_test(guest_config, HEARTBEAT_MS)),
        ('colo-sigkill-primary', make_failover_test('colo', runs, seed)),
        ('remus-sigkill-primary', make_failover_test('remus', runs, seed)),
        ('colo-silent-death', make_failover_test('colo', runs, seed, silent=True)),
        ('remus-silent-death', make_failover_test('remus', runs, seed, silent=True)),
        ('sigkill-secondary', test_secondary_killed),
        ('silent-secondary', test_silent_secondary),
        ('hostile-streams', test_hostile_streams),
        ('receive-probes', test_receive_probes),
        ('local-control', test_local_control),
        ('protect-refused-values', test_protect_refused_values),
        ('receive-sigterm', test_receive_sigterm),
        ('old-peer-version', test_old_peer_version),
        ('tls-link', test_tls_link),
        ('partitions-with-witness', make_partition_test(int(os.environ.get('COLO_PARTITION_RUNS') or runs), seed, guest_config)),
        ('frozen-primary-with-witness', make_frozen_primary_test(guest_config)),
        ('receive-too-big', test_receive_too_big),
        ('forced-failover', test_forced_failover),
        ('protection-from-config', make_operations_test(guest_config)),
        ('survivor-protected-again', test_survivor_protected_again),
        ('remus-net-sigkill-primary', make_net_failover_test('remus', runs, seed)),
        ('colo-net-sigkill-primary', make_net_failover_test('colo', runs, seed)),
        ('disk-local', test_disk_local),
        ('colo-disk-sigkill-primary', make_disk_failover_test('colo', runs, seed)),
        ('remus-disk-sigkill-primary', make_disk_failover_test('remus', runs, seed)),
        ('disk-secondary-killed-mid-apply', test_disk_secondary_killed_mid_apply),
        ('disk-migration', test_disk_migration),
        ('disk-same-image-refused', test_disk_same_image_refused),
    ]
    return run_tests(tests, binary, argv[2:])

if __name__ == '__main__':
    sys.exit(main(sys.argv))
