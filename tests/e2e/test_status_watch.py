"""`status --watch` with its stdout a pipe: one line of key=value words per look, on both sides of
a protected built-in guest on loopback; the epoch and the checkpoint rate advance, the fields parse,
and each watch ends with exit 0 and a last line when the guest goes away."""
import os
import re
import subprocess
import threading

from hosts import TestFailure, Workspace, check, one_line_error, wait_exit, wait_until

WATCH_LINE = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+)((?: [a-z0-9_]+=\S+)+)$')
INTERVAL_S = 0.2
LINES = 8


class Watch:
    """`status --watch --interval 0.2 NAME` on a host, its lines gathered by a thread."""

    def __init__(self, host, name):
        self.proc = subprocess.Popen([host.binary, 'status', '--watch', '--interval', str(INTERVAL_S), name],
                                     env=dict(os.environ, COLO_RUN_DIR=host.run_dir), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip('\n'))

    def wait_lines(self, n, what):
        wait_until(lambda: len(self.lines) >= n or self.proc.poll() is not None, 20, what)
        if len(self.lines) < n:  # it ended: its stderr is complete now
            raise TestFailure('%s: the watch ended after %d lines (exit %s): %s' % (
                what, len(self.lines), self.proc.returncode, self.proc.stderr.read()[:300]))
        return [parse(line) for line in self.lines[:n]]

    def wait_end(self, what):
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise TestFailure('%s: the watch did not end within 15 s of the guest going away' % what)
        self.reader.join(5)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def parse(line):
    m = WATCH_LINE.match(line)
    check(m, 'not a watch line: %r' % line)
    fields = dict(word.split('=', 1) for word in m.group(3).split())
    fields['name'] = m.group(2)
    return fields


def number(fields, key):
    value = fields.get(key)
    check(value is not None and value != '-', 'no %s in %r' % (key, fields))
    try:
        return float(value)
    except ValueError:
        raise TestFailure('%s=%r is not a number' % (key, value))


def check_side(lines, role, state, what):
    """Every line says role/state/mode colo, parses, and from the second look on has rates; the
    epoch advances, and the checkpoint rate agrees with the epochs and the interval."""
    for f in lines:
        check((f['role'], f['state'], f['mode']) == (role, state, 'colo'), '%s: %r' % (what, f))
        number(f, 'pause_p50_us'), number(f, 'pause_p99_us'), number(f, 'epoch')
    check(lines[0]['checkpoints_per_s'] == '-', '%s: a rate at the first look: %r' % (what, lines[0]))
    epochs = [number(f, 'epoch') for f in lines]
    check(epochs == sorted(epochs) and epochs[-1] > epochs[0], '%s: epochs %s do not advance' % (what, epochs))
    rates = [number(f, 'checkpoints_per_s') for f in lines[1:]]
    check(all(r > 0 for r in rates), '%s: checkpoint rates %s' % (what, rates))
    # The rates sum to the epochs' change over the looks' time (the interval apart, give or take a
    # slow look on a loaded machine: a wide band).
    expected = (epochs[-1] - epochs[0]) / (INTERVAL_S * (len(lines) - 1))
    mean = sum(rates) / len(rates)
    check(0.3 * expected <= mean <= 3 * expected, '%s: mean rate %.1f/s for %.1f/s from the epochs %s' % (
        what, mean, expected, epochs))
    return epochs, mean


def make_status_watch_test(start_pair, heartbeat_ms):
    def test_status_watch(binary):
        ws = Workspace(binary, 'watch')
        watches = []
        try:
            a, b, _, _, address, receiver, pid = start_pair(ws, 'watch')
            r = a.run('status', '--watch', '--interval', '0', 'watch')
            refused = one_line_error(r)
            check('--interval' in refused, 'interval 0: %r' % refused)
            refused = one_line_error(a.run('status', '--watch', 'nosuch'))
            check('no guest named' in refused, 'a watch of no guest: %r' % refused)
            a.ok('protect', 'watch', address, '--heartbeat-timeout', heartbeat_ms)
            wait_until(lambda: b.state('watch') == 'protecting', 10, 'B to be the secondary')
            watches = [Watch(a, 'watch'), Watch(b, 'watch')]
            primary = watches[0].wait_lines(LINES, 'the primary\'s watch')
            secondary = watches[1].wait_lines(LINES, 'the secondary\'s watch')
            epochs_a, rate_a = check_side(primary, 'primary', 'protected', 'primary')
            epochs_b, rate_b = check_side(secondary, 'secondary', 'protecting', 'secondary')
            link = [number(f, 'link_bytes_per_s') for f in primary[1:]]
            check(any(x > 0 for x in link), 'primary: link rates %s' % link)
            for f in primary:
                number(f, 'net_held_frames'), number(f, 'output_released')
            for f in secondary[1:]:
                number(f, 'pages_received_per_s'), number(f, 'primary_released')
            a.ok('destroy', 'watch')
            wait_exit(pid, 10, 'the guest to end after destroy')
            wait_exit(receiver, 10, 'the secondary to end with the protection')
            for watch, side in zip(watches, ('primary', 'secondary')):
                code = watch.wait_end(side)
                check(code == 0, '%s: the watch exited %s after the guest went away' % (side, code))
                check(watch.lines and re.search(r" watch gone: no guest named 'watch'", watch.lines[-1]),
                      '%s: last line %r' % (side, watch.lines[-1:]))
            return 'primary %.1f checkpoints/s (epoch %d..%d), secondary %.1f/s, link up to %.0f B/s; both ended on destroy' % (
                rate_a, epochs_a[0], epochs_a[-1], rate_b, max(link))
        finally:
            for watch in watches:
                watch.kill()
            ws.close()
    return test_status_watch
