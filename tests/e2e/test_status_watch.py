"""`status --watch` with its stdout a pipe: one line of key=value words per look, on both sides of
a built-in guest protected on loopback from its config (`receive CONFIG`, `protect NAME`, as the
systemd units run them): the secondary's watch sees its receive waiting, then protecting, without
ending between; the epoch and the checkpoint rate advance, the fields parse, and each watch ends
with exit 0 and a last line when the guest goes away."""
import os
import re
import subprocess
import threading

from hosts import TestFailure, Workspace, check, one_line_error, wait_exit, wait_until
from test_operations import started_pid
from test_systemd_commands import paired_configs

WATCH_LINE = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+)((?: [a-z0-9_]+=\S+)+)$')
INTERVAL_S = 0.2
LINES = 8


class Watch:
    """`status --watch --interval 200 NAME` on a host, its lines gathered by a thread."""

    def __init__(self, host, name):
        self.proc = subprocess.Popen([host.binary, 'status', '--watch', '--interval', str(int(INTERVAL_S * 1000)), name],
                                     env=dict(os.environ, COLO_RUN_DIR=host.run_dir,
                                              COLO_STATE_DIR=os.path.join(host.run_dir, 'state')),
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip('\n'))

    def wait_lines(self, n, what, state=None):
        """The first n parsed lines (of those saying `state`, when given)."""
        def chosen():
            parsed = [parse(line) for line in list(self.lines)]
            return [f for f in parsed if state is None or f['state'] == state]
        wait_until(lambda: len(chosen()) >= n or self.proc.poll() is not None, 30, what)
        if len(chosen()) < n:  # it ended: its stderr is complete now
            raise TestFailure('%s: the watch ended after %d lines (exit %s): %s' % (
                what, len(self.lines), self.proc.returncode, self.proc.stderr.read()[:300]))
        return chosen()[:n]

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


def check_side(lines, role, state, what, first_look=True):
    """Every line says role/state/mode colo, parses, and from the second look on has rates (the
    first has none when it is the watch's first look); the epoch advances, and the checkpoint rate
    agrees with the epochs and the interval."""
    for f in lines:
        check((f['role'], f['state'], f['mode']) == (role, state, 'colo'), '%s: %r' % (what, f))
        number(f, 'pause_p50_us'), number(f, 'pause_p99_us'), number(f, 'epoch')
    check(not first_look or lines[0]['checkpoints_per_s'] == '-', '%s: a rate at the first look: %r' % (what, lines[0]))
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


def make_status_watch_test(guest_config, heartbeat_ms):
    def test_status_watch(binary):
        ws = Workspace(binary, 'watch')
        watches = []
        try:
            a, b = ws.host('hostA'), ws.host('hostB')
            cfg_a, cfg_b = paired_configs(ws, guest_config, 'watch', heartbeat_ms, ws.path('a'), ws.path('b'))
            receiver = started_pid(b.ok('receive', cfg_b, '--console-log', ws.path('b.log'), clear=True),
                                   r'\(pid (\d+);')
            refused = one_line_error(b.run('status', '--watch', '--interval', '50', 'watch'))
            check('--interval' in refused, 'interval 0: %r' % refused)
            refused = one_line_error(a.run('status', '--watch', 'watch'))
            check('no guest named' in refused, 'a watch of no guest: %r' % refused)

            watches.append(Watch(b, 'watch'))
            waiting = watches[0].wait_lines(2, 'the secondary\'s watch while its receive waits', state='waiting')
            check(waiting[0]['role'] == 'secondary' and waiting[0]['epoch'] == '-', 'waiting: %r' % waiting[0])
            pid = a.create(cfg_a, ws.path('a.log'))
            a.ok('protect', 'watch', clear=True)
            watches.append(Watch(a, 'watch'))
            primary = watches[1].wait_lines(LINES + 6, 'the primary\'s watch')  # reports come once a second
            secondary = watches[0].wait_lines(LINES, 'the secondary\'s watch', state='protecting')
            epochs_a, rate_a = check_side(primary, 'primary', 'protected', 'primary')
            epochs_b, rate_b = check_side(secondary, 'secondary', 'protecting', 'secondary', first_look=False)
            link = [number(f, 'link_bytes_per_s') for f in primary[1:]]
            check(any(x > 0 for x in link), 'primary: link rates %s' % link)
            for f in primary:
                number(f, 'net_held_frames'), number(f, 'output_released'), number(f, 'output_held')
            # Both sides on the primary's host: the secondary's own rate and pauses, from its reports
            # (about once a second; the looks are INTERVAL_S apart, so later looks have a rate).
            theirs = [f for f in primary if f.get('secondary_checkpoints_per_s', '-') != '-']
            check(theirs, 'the primary\'s watch never showed the secondary\'s side: %r' % primary[-1])
            number(theirs[-1], 'secondary_pause_p50_us'), number(theirs[-1], 'secondary_pause_p99_us')
            check(any(number(f, 'secondary_checkpoints_per_s') > 0 for f in theirs),
                  'the secondary\'s reported checkpoint rate never rose: %r' % [f['secondary_checkpoints_per_s'] for f in theirs])
            for f in secondary[1:]:
                number(f, 'pages_received_per_s'), number(f, 'primary_released')
            a.ok('destroy', 'watch')
            wait_exit(pid, 10, 'the guest to end after destroy')
            wait_exit(receiver, 10, 'the secondary to end with the protection')
            for watch, side in zip(watches, ('secondary', 'primary')):
                code = watch.wait_end(side)
                check(code == 0, '%s: the watch exited %s after the guest went away' % (side, code))
                check(watch.lines and re.search(r" watch gone: no guest named 'watch'", watch.lines[-1]),
                      '%s: last line %r' % (side, watch.lines[-1:]))
            return ('secondary watched from waiting to protecting; primary %.1f checkpoints/s (epoch %d..%d), '
                    'secondary %.1f/s, link up to %.0f B/s; both ended on destroy') % (
                rate_a, epochs_a[0], epochs_a[-1], rate_b, max(link))
        finally:
            for watch in watches:
                watch.kill()
            ws.close()
    return test_status_watch
