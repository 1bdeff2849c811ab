#!/usr/bin/python3
"""replication_bench: what protecting a guest costs, measured through the colo-replicate CLI.

For the built-in guest with 1 GiB of RAM and a 1 GiB working set, at several dirty rates, it runs
the guest once unprotected (the baseline) and once protected with a primary and a secondary as two
processes on loopback (two run directories stand in for two hosts, as in examples/demo.sh), with a
checkpoint every 100 ms. At 10k pages/s it also runs once with each optimisation switched off (at
10k and 50k pages/s also without the real-time pause, and unpinned), and once with the link in clear (every other case runs over TLS 1.3 with a pre-shared key, as an
operator's would); then it migrates the idle guest twice, over TLS and in clear, for the link's
throughput with and without encryption.
Everything it reports comes from `status --json` of both sides and from the guest's released
console output; nothing is asserted (the targets are printed next to the numbers to compare).

    replication_bench.py PATH/TO/colo-replicate OUTPUT-DIR

Environment: BENCH_SECONDS (seconds each case runs after protection is set up, default 15: at a
checkpoint every ~100 ms that is over 100 pauses, so the p99 is more than the maximum),
BENCH_RATES (comma-separated dirty rates, default 0,1000,10000,50000), BENCH_ABLATIONS=0 (no
ablation or unpinned rows), BENCH_MIGRATE=0 (no migrate rows), BENCH_HOGS=N (N busy processes,
on no particular CPU, run alongside every case: a loaded host).
Writes OUTPUT-DIR/replication.md (the table) and OUTPUT-DIR/pauses.png, and prints the table.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

GUEST_NAME = 'bench'
MEMORY_MIB = 1100
WORKING_SET_MIB = 1024
PRINT_INTERVAL_MS = 50     # short, so a stall of the guest shows between two console lines
CHECKPOINT_INTERVAL_MS = 100
# Generous: the machine is shared and loaded; a spurious "secondary lost" would end the case.
HEARTBEAT_TIMEOUT_MS = 10000
ABLATION_RATE = 10000
# How long the initial sync may take. Above the link's page rate the pre-copy rounds do not
# shrink and protect only returns after its last round; the case is reported as failed then.
PROTECT_TIMEOUT_S = 90
SEQ_LINE = re.compile(r'^seq=(\d+) writes=(\d+)')


class BenchError(Exception):
    """A case could not be run; the message says which step failed and why, on one line."""


class ConsoleWatcher:
    """Follows a console log file and records when each complete `seq=N writes=W` line appeared.

    The file is polled every 2 ms, so each time is when the line was released by the primary
    (its output gate) plus at most the poll period; it is what a client of the guest would see."""

    POLL_S = 0.002

    def __init__(self, path):
        self.path = path
        self.lines = []          # (monotonic seconds, seq, writes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        offset, partial = 0, ''
        while not self._stop.is_set():
            try:
                with open(self.path, 'r', errors='replace') as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
            except FileNotFoundError:
                chunk = ''
            if chunk:
                now = time.monotonic()
                text = partial + chunk
                *complete, partial = text.split('\n')
                for line in complete:
                    m = SEQ_LINE.match(line)
                    if m:
                        self.lines.append((now, int(m.group(1)), int(m.group(2))))
            time.sleep(self.POLL_S)

    def stop(self):
        self._stop.set()
        self._thread.join()

    def window(self, start, end):
        return [line for line in self.lines if start <= line[0] <= end]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def percentile(values, p):
    """Nearest-rank percentile, as the toolstack computes its pause percentiles."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def status_kib(pid, keys):
    """The sum of the given kB fields of /proc/PID/status (0 for a process that is gone)."""
    total = 0
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                name, _, value = line.partition(':')
                if name in keys:
                    total += int(value.split()[0])
    except OSError:
        pass
    return total


def memfd_paths(pid):
    """Paths that open each memfd a process holds, through an fd or a mapping (/proc/PID/fd/N,
    /proc/PID/map_files/RANGE), so that os.stat reaches the file itself."""
    out = []
    for folder in ('/proc/%d/fd' % pid, '/proc/%d/map_files' % pid):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            try:
                if os.readlink(path).startswith('/memfd:'):
                    out.append(path)
            except OSError:
                pass
    return out


class Host:
    """One run directory standing in for one host; every process it starts is recorded by pid."""

    def __init__(self, binary, run_dir, cpus=None):
        """cpus: the CPU list (taskset) this host's processes run on: what they start inherits it,
        so a guest's process and its threads stay there, as on a host of its own."""
        self.binary, self.run_dir, self.cpus = binary, run_dir, cpus
        os.makedirs(run_dir, exist_ok=True)

    def run(self, *args, check=True, timeout=120):
        env = dict(os.environ, COLO_RUN_DIR=self.run_dir, COLO_STATE_DIR=os.path.join(self.run_dir, 'state'))
        pin = ['taskset', '-c', self.cpus] if self.cpus is not None else []
        proc = subprocess.run([*pin, self.binary, *args], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            why = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise BenchError('colo-replicate %s: %s' % (' '.join(args), why[-1] if why else
                                                        'exit status %d' % proc.returncode))
        return proc.stdout

    def status(self):
        return json.loads(self.run('status', '--json', GUEST_NAME))

    def pids(self):
        """Processes started with this run directory (found by their environment, so a daemon
        that forked away is found too, and nobody else's process is)."""
        found = []
        want = ('COLO_RUN_DIR=' + self.run_dir).encode()
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open('/proc/%s/environ' % entry, 'rb') as f:
                    if want in f.read().split(b'\0'):
                        found.append(int(entry))
            except OSError:
                pass
        return [pid for pid in found if pid != os.getpid()]

    def rss_mib(self):
        """VmRSS of this host's processes (MiB). A page mapped twice in one process (the
        secondary's RAM cache memfd, mapped shared for the cache and copy-on-write as the SVM's
        memory) counts twice here: see memory_mib for what the host really spends."""
        total = 0
        for pid in self.pids():
            total += status_kib(pid, ('VmRSS',))
        return total / 1024.0

    def memory_mib(self):
        """Memory this host's processes really use (MiB): RssAnon + RssFile of each process (its
        private pages, including copy-on-write copies of a memfd's pages, and its binary and
        libraries) plus the allocated size of every memfd they hold open or map (fstat's
        st_blocks, each file once however often it is mapped, whether or not its pages are mapped
        at the moment). Shared memory other than memfds is not counted (colo-replicate uses none)."""
        total, files = 0, {}
        for pid in self.pids():
            total += status_kib(pid, ('RssAnon', 'RssFile'))
            for path in memfd_paths(pid):
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                files[(st.st_dev, st.st_ino)] = st.st_blocks * 512 // 1024
        return (total + sum(files.values())) / 1024.0

    def clean_up(self):
        try:
            self.run('destroy', GUEST_NAME, check=False, timeout=15)
        except subprocess.TimeoutExpired:
            pass   # a guest process too busy to answer is killed below
        deadline = time.monotonic() + 5
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def write_config(path, dirty_rate):
    with open(path, 'w') as f:
        f.write('name = "%s"\nmemory = %d\nvcpus = 1\nguest = "builtin"\nworking_set = %d\n'
                'dirty_rate = %d\nseed = 1\nprint_interval = %d\n'
                % (GUEST_NAME, MEMORY_MIB, WORKING_SET_MIB, dirty_rate, PRINT_INTERVAL_MS))


def wait_until_steady(watcher, limit_s=45):
    """Waits until the guest prints at its nominal line rate (neither behind nor catching up) for
    two seconds running. A fresh 1 GiB guest runs slowly for several seconds (first touch of its
    memory) and then catches up on its write schedule in a burst; measuring either would be
    wrong. Returns whether it became steady within limit_s."""
    nominal = 1000.0 / PRINT_INTERVAL_MS
    deadline, steady_since = time.monotonic() + limit_s, None
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = time.monotonic()
        recent = len(watcher.window(now - 1, now))
        if 0.8 * nominal <= recent <= 1.25 * nominal:
            steady_since = steady_since or now
            if now - steady_since >= 2:
                return True
        else:
            steady_since = None
    return False


def guest_metrics(watcher, start, end):
    """Write rate and the longest gap between released console lines in [start, end]."""
    lines = watcher.window(start, end)
    if len(lines) < 2:
        raise BenchError('the guest printed fewer than 2 console lines in %.1f s' % (end - start))
    (t0, _, w0), (t1, _, w1) = lines[0], lines[-1]
    gaps = [(b[0] - a[0]) * 1000 for a, b in zip(lines, lines[1:])]
    # Output latency: the guest prints line N on a fixed schedule (N print intervals after its
    # start); how much later than the least delayed line of the window it appeared is how long
    # it waited to be released (held by the output gate, or the guest stalled).
    lag = [t - seq * PRINT_INTERVAL_MS / 1000.0 for t, seq, _ in lines]
    least = min(lag)
    waited = sorted((l - least) * 1000 for l in lag)
    return dict(writes_per_s=(w1 - w0) / (t1 - t0), lines_per_s=(len(lines) - 1) / (t1 - t0),
                gaps_ms=gaps, max_gap_ms=max(gaps), out_p50_ms=percentile(waited, 50), out_p99_ms=percentile(waited, 99))


def guest_stall_ms(first, last):
    """The longest gap the guest's own loop saw between two `status` snapshots (its histogram of
    gaps, status guest_stall_histogram: TSC kHz, then BUCKET:COUNT for the nonzero buckets; bucket
    4*L + S holds gaps in [(4+S) << (L-2), (5+S) << (L-2)) TSC ticks): the upper bound of the
    highest bucket that grew, in ms (a bucket is 25% wide at most). None when the guest says nothing."""
    def parse(status):
        words = str((status or {}).get('guest_stall_histogram', '')).split()
        if not words:
            return None, {}
        return int(words[0]), {int(b): int(c) for b, c in (w.split(':') for w in words[1:])}
    khz, before = parse(first)
    _, after = parse(last)
    grown = [b for b, c in after.items() if c > before.get(b, 0)]
    if not khz or not grown:
        return None
    top = max(grown)
    upper = top + 1 if top < 8 else (5 + top % 4) << (top // 4 - 2)
    return upper / khz


# Host A's processes on one core, host B's on the other: two hosts never share a core.
CPUS_A, CPUS_B = '0', '1'


def run_unprotected(binary, work, dirty_rate, seconds):
    host = Host(binary, os.path.join(work, 'baseline'), CPUS_A)
    config = os.path.join(host.run_dir, 'guest.cfg')
    log = os.path.join(host.run_dir, 'console.log')
    write_config(config, dirty_rate)
    watcher = ConsoleWatcher(log)
    try:
        host.run('create', config, '--console-log', log)
        steady = wait_until_steady(watcher)
        first = host.status()
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
        return dict(guest_metrics(watcher, start, end), steady=steady, guest_stall_ms=guest_stall_ms(first, host.status()))
    finally:
        watcher.stop()
        host.clean_up()


def link_arguments(work, options):
    """The link's security for both hosts: TLS with a fresh key unless the case says --clear."""
    if '--clear' in options:
        return [o for o in options if o != '--clear'], []
    key = os.path.join(work, 'link.key')
    if not os.path.exists(key):
        Host(BINARY[0], os.path.join(work, 'keygen')).run('keygen', key)
    return list(options), ['--key', key]


def run_protected(binary, work, dirty_rate, seconds, options):
    tag = 'protected' + ''.join(options).replace('-', '_')
    pinned = '--unpinned' not in options
    options, link = link_arguments(work, [o for o in options if o != '--unpinned'])
    host_a = Host(binary, os.path.join(work, tag, 'hostA'), CPUS_A if pinned else None)
    host_b = Host(binary, os.path.join(work, tag, 'hostB'), CPUS_B if pinned else None)
    config = os.path.join(host_a.run_dir, 'guest.cfg')
    log_a = os.path.join(host_a.run_dir, 'console.log')
    log_b = os.path.join(host_b.run_dir, 'console.log')
    write_config(config, dirty_rate)
    port = free_port()
    watcher = ConsoleWatcher(log_a)
    try:
        host_b.run('receive', '-l', '127.0.0.1:%d' % port, '--console-log', log_b,
                   '--heartbeat-timeout', str(HEARTBEAT_TIMEOUT_MS), *link)
        host_a.run('create', config, '--console-log', log_a)
        # A guest that cannot keep to its schedule (too high a rate for this machine) is
        # measured all the same; the table marks it.
        steady = wait_until_steady(watcher)
        host_a.run('protect', GUEST_NAME, '127.0.0.1:%d' % port, '-i', str(CHECKPOINT_INTERVAL_MS),
                   '--heartbeat-timeout', str(HEARTBEAT_TIMEOUT_MS), *options, *link, timeout=PROTECT_TIMEOUT_S)
        first, first_b = host_a.status(), host_b.status()
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
        last, secondary = host_a.status(), host_b.status()
        rss_a, rss_b = host_a.rss_mib(), host_b.rss_mib()
        mem_a, mem_b = host_a.memory_mib(), host_b.memory_mib()
        if last.get('state') != 'protected':
            raise BenchError('the primary is %s after %.0f s (%s)' % (
                last.get('state'), seconds, last.get('protection_lost_reason', '')))
        measured = guest_metrics(watcher, start, end)
    finally:
        watcher.stop()
        host_a.clean_up()
        host_b.clean_up()
    checkpoints = last['checkpoints'] - first['checkpoints']
    per_ckpt = max(checkpoints, 1)
    paused = last['pages_sent_paused'] - first['pages_sent_paused']
    streamed = last['pages_streamed'] - first['pages_streamed']
    measured.update(
        steady=steady, checkpoints=checkpoints,
        pause_p50_us=last['pause_p50_us'], pause_p99_us=last['pause_p99_us'],
        pause_max_us=last['pause_max_us'],
        steps_p99_us=[last.get('pause_%s_p99_us' % s, 0) for s in ('stop', 'harvest', 'copy', 'state')],
        pause_realtime=last.get('pause_realtime', ''),
        enter_colo_us=last['time_to_enter_colo_us'],
        pvm_enter_colo_pause_us=last.get('enter_colo_pause_us', 0),
        svm_enter_colo_pause_us=secondary.get('enter_colo_pause_us', 0),
        pages_paused=paused, pages_streamed=streamed, rss_a_mib=rss_a, rss_b_mib=rss_b,
        guest_stall_ms=guest_stall_ms(first, last),
        mem_a_mib=mem_a, mem_b_mib=mem_b,
        svm_commit_p50_us=secondary.get('pause_p50_us', 0), svm_commit_p99_us=secondary.get('pause_p99_us', 0),
        svm_writes_per_s=(secondary.get('svm_dirty_reverted', 0) - first_b.get('svm_dirty_reverted', 0)) / (end - start),
        paused_per_ckpt=paused / per_ckpt, streamed_per_ckpt=streamed / per_ckpt,
        link_mb_per_s=(last['bytes_sent'] - first['bytes_sent']) / (end - start) / 1e6)
    return measured


MIGRATION = re.compile(r'bytes=(\d+) total_us=(\d+)')


def run_migration(binary, work, options):
    """Migrates the idle guest (its 1 GiB working set written once) to a receive; returns
    (bytes, seconds, MB/s) from migrate's own report."""
    tag = 'migrate' + ''.join(options).replace('-', '_')
    options, link = link_arguments(work, options)
    host_a = Host(binary, os.path.join(work, tag, 'hostA'), CPUS_A)
    host_b = Host(binary, os.path.join(work, tag, 'hostB'), CPUS_B)
    config = os.path.join(host_a.run_dir, 'guest.cfg')
    log_a = os.path.join(host_a.run_dir, 'console.log')
    write_config(config, 0)
    port = free_port()
    watcher = ConsoleWatcher(log_a)
    try:
        host_b.run('receive', '-l', '127.0.0.1:%d' % port, '--console-log', os.path.join(host_b.run_dir, 'console.log'), *link)
        host_a.run('create', config, '--console-log', log_a)
        wait_until_steady(watcher)
        out = host_a.run('migrate', GUEST_NAME, '127.0.0.1:%d' % port, *options, *link, timeout=PROTECT_TIMEOUT_S)
    finally:
        watcher.stop()
        host_a.clean_up()
        host_b.clean_up()
    m = MIGRATION.search(out)
    if not m:
        raise BenchError('migrate printed no bytes/total_us: %r' % out[:200])
    sent, seconds = int(m.group(1)), int(m.group(2)) / 1e6
    return sent, seconds, sent / seconds / 1e6


def load_line():
    with open('/proc/loadavg') as f:
        return 'load average %s (%d CPUs)' % (' '.join(f.read().split()[:3]), os.cpu_count())


def fmt_stall(ms):
    return 'n/a' if ms is None else '%.2f' % ms


def fmt_us(us):
    return '%.2f' % (us / 1000.0)


def table(results):
    head = ('| case | ckpts | PVM pause p50 / p99 / max (ms) | pause steps p99: stop / harvest / copy / state (ms) | enter COLO (ms) | enter-COLO pause PVM / SVM (ms)'
            ' | pages paused (per ckpt) | pages streamed (per ckpt) | link MB/s'
            ' | guest writes/s (vs unprotected) | longest console gap (ms; unprotected)'
            ' | output waited p50 / p99 (ms; unprotected) | guest\'s own longest stall (ms; unprotected)'
            ' | SVM commit p50 / p99 (ms) | SVM pages written/s | memory A / B (MiB) | VmRSS A / B (MiB) |')
    rows = [head, '|' + '---|' * head.count(' | ') + '---|']
    for r in results:
        if 'error' in r:
            rows.append('| %s | failed: %s |' % (r['case'], r['error']))
            continue
        base = r['baseline']
        rel = (r['lines_per_s'] / base['lines_per_s'] * 100) if base['lines_per_s'] else None
        behind = '' if r['steady'] and base['steady'] else ' (guest behind schedule before measuring)'
        realtime = '' if r['pause_realtime'] in ('on', 'off') else ' (real-time pause %s)' % r['pause_realtime']
        rows.append('| %s | %d | %s / %s / %s | %s | %s | %s / %s | %d (%.0f) | %d (%.0f) | %.1f | %.0f (%s) | %.0f (%.0f) |' % (
            r['case'] + behind + realtime, r['checkpoints'], fmt_us(r['pause_p50_us']), fmt_us(r['pause_p99_us']),
            fmt_us(r['pause_max_us']), ' / '.join(fmt_us(v) for v in r['steps_p99_us']), fmt_us(r['enter_colo_us']), fmt_us(r['pvm_enter_colo_pause_us']),
            fmt_us(r['svm_enter_colo_pause_us']),
            r['pages_paused'], r['paused_per_ckpt'], r['pages_streamed'], r['streamed_per_ckpt'],
            r['link_mb_per_s'], r['writes_per_s'], '%.0f%%' % rel if rel is not None else 'n/a',
            r['max_gap_ms'], base['max_gap_ms'])
            + ' %.0f / %.0f (%.0f / %.0f) | %s (%s) | %s / %s | %.0f | %.0f / %.0f | %.0f / %.0f |' % (
                r['out_p50_ms'], r['out_p99_ms'], base['out_p50_ms'], base['out_p99_ms'],
                fmt_stall(r.get('guest_stall_ms')), fmt_stall(base.get('guest_stall_ms')),
                fmt_us(r['svm_commit_p50_us']), fmt_us(r['svm_commit_p99_us']), r['svm_writes_per_s'],
                r['mem_a_mib'], r['mem_b_mib'], r['rss_a_mib'], r['rss_b_mib']))
    return '\n'.join(rows)


def targets(results):
    by_case = {r['case']: r for r in results if 'error' not in r}
    out = []
    main = by_case.get('%d pages/s' % ABLATION_RATE)
    if main:
        out.append('- secondary memory <= 1.2x guest RAM at 10k pages/s: measured %.0f MiB, %.2fx of %d MiB'
                   % (main['mem_b_mib'], main['mem_b_mib'] / MEMORY_MIB, MEMORY_MIB))
        out.append('- pinned, p99 pause <= 1 ms at 10k pages/s: measured %s ms' % fmt_us(main['pause_p99_us']))
    fast = by_case.get('50000 pages/s')
    if fast:
        out.append('- pinned, p99 pause <= 2 ms at 50k pages/s: measured %s ms (the guest wrote %.0f pages/s while protected)'
                   % (fmt_us(fast['pause_p99_us']), fast['writes_per_s']))
    if main:
        no_stream = by_case.get('%d pages/s --no-stream' % ABLATION_RATE)
        if no_stream:
            ratio = no_stream['paused_per_ckpt'] / main['paused_per_ckpt'] if main['paused_per_ckpt'] else float('inf')
            out.append('- streaming cuts pages sent while paused >= 5x at 10k pages/s: measured %.1fx '
                       '(%.0f vs %.0f pages per checkpoint)' % (ratio, no_stream['paused_per_ckpt'],
                                                               main['paused_per_ckpt']))
    enter = [r['svm_enter_colo_pause_us'] for c, r in by_case.items() if '--no-cache-backup' not in c]
    pvm_enter = [r['pvm_enter_colo_pause_us'] for c, r in by_case.items() if '--no-cache-backup' not in c]
    if enter:
        out.append('- entering COLO on 1 GiB pauses < 5 ms: primary pause %s..%s ms, secondary pause %s..%s ms '
                   'with the cache backup%s'
                   % (fmt_us(min(pvm_enter)), fmt_us(max(pvm_enter)), fmt_us(min(enter)), fmt_us(max(enter)),
                      ('; %s ms without it' % fmt_us(by_case['%d pages/s --no-cache-backup' % ABLATION_RATE]
                                                     ['svm_enter_colo_pause_us'])
                       if '%d pages/s --no-cache-backup' % ABLATION_RATE in by_case else '')))
    return '\n'.join(out)


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return 'no plot: python3-matplotlib is not installed (see debian-packages.txt)'
    ok = [r for r in results if 'error' not in r]
    if not ok:
        return 'no plot: no case succeeded'
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    xs = range(len(ok))
    for key, marker, label in (('pause_p50_us', 'o', 'p50'), ('pause_p99_us', 's', 'p99'),
                               ('pause_max_us', '^', 'max')):
        left.plot(xs, [r[key] / 1000 for r in ok], marker, label=label, markersize=8)
    left.axhline(2, color='grey', linestyle='--', linewidth=1, label='target p99 at 10k (2 ms)')
    left.set_yscale('log')
    left.set_xticks(list(xs), [r['case'] for r in ok], rotation=30, ha='right', fontsize=8)
    left.set_ylabel('ms')
    left.set_title('PVM pause per checkpoint (status: p50 / p99 / max)')
    left.legend(fontsize=8)
    data = []
    for r in ok:
        data += [r['baseline']['gaps_ms'], r['gaps_ms']]
    labels = []
    for r in ok:
        labels += ['unprotected', r['case']]
    right.boxplot(data, whis=(0, 99), showfliers=True, flierprops=dict(markersize=2))
    right.axhline(PRINT_INTERVAL_MS, color='grey', linestyle='--', linewidth=1)
    # Linear: lines released together by the output gate are 0 ms apart.
    right.set_ylim(bottom=0)
    right.set_xticks(range(1, len(labels) + 1), labels, rotation=60, ha='right', fontsize=7)
    right.set_ylabel('ms between consecutive released console lines')
    right.set_title('Guest-visible stalls (line every %d ms; whiskers 0-99%%)' % PRINT_INTERVAL_MS)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


BINARY = ['']  # the colo-replicate under test (for keygen)


def main(argv):
    if len(argv) != 3:
        print('usage: replication_bench.py PATH/TO/colo-replicate OUTPUT-DIR', file=sys.stderr)
        return 2
    binary, out_dir = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    BINARY[0] = binary
    try:
        seconds = float(os.environ.get('BENCH_SECONDS', '15'))
        rates = [int(x) for x in os.environ.get('BENCH_RATES', '0,1000,10000,50000').split(',') if x]
    except ValueError as e:
        print('replication_bench: bad BENCH_SECONDS or BENCH_RATES: %s' % e, file=sys.stderr)
        return 2
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        print('replication_bench: /dev/kvm is not available here', file=sys.stderr)
        return 1
    os.makedirs(out_dir, exist_ok=True)
    # A SIGTERM (timeout, scons interrupted) must still run the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('replication_bench: terminated'))
    work = tempfile.mkdtemp(prefix='colo-bench.')
    hogs = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
            for _ in range(int(os.environ.get('BENCH_HOGS', '0')))]
    load_before = load_line()
    cases = []
    for rate in rates:
        cases.append((rate, ()))
        if os.environ.get('BENCH_ABLATIONS', '1') == '0':
            continue
        if rate == ABLATION_RATE:
            cases += [(rate, (opt,)) for opt in ('--no-stream', '--no-early-resume', '--no-cache-backup', '--clear')]
        if rate in (ABLATION_RATE, 50000):
            cases += [(rate, ('--no-realtime-pause',)), (rate, ('--unpinned',))]
    baselines, results, migrations = {}, [], []
    try:
        for rate, options in cases:
            name = '%d pages/s%s' % (rate, ''.join(' ' + o for o in options))
            print('replication_bench: %s ...' % name, flush=True)
            try:
                if rate not in baselines:
                    baselines[rate] = run_unprotected(binary, os.path.join(work, str(rate)), rate, seconds)
                r = run_protected(binary, os.path.join(work, str(rate)), rate, seconds, options)
                r.update(case=name, baseline=baselines[rate])
            except subprocess.TimeoutExpired as e:
                r = dict(case=name, error='%s did not finish in %.0f s' % (' '.join(e.cmd[1:3]), e.timeout))
                print('replication_bench: %s failed: %s' % (name, r['error']), file=sys.stderr)
            except (BenchError, KeyError, ValueError) as e:
                r = dict(case=name, error=str(e).splitlines()[0] if str(e) else type(e).__name__)
                print('replication_bench: %s failed: %s' % (name, r['error']), file=sys.stderr)
            results.append(r)
        migrate_cases = (((), 'TLS 1.3 (--key)'), (('--clear',), 'in clear'),
                         (('--compress',), 'TLS 1.3 and --compress (LZ4)'))
        for options, name in migrate_cases if os.environ.get('BENCH_MIGRATE', '1') != '0' else ():
            print('replication_bench: migrate, %s ...' % name, flush=True)
            try:
                sent, took, rate = run_migration(binary, os.path.join(work, 'migrate'), options)
                migrations.append('| %s | %.1f | %.2f | %.0f |' % (name, sent / 1e6, took, rate))
            except (BenchError, subprocess.TimeoutExpired, ValueError) as e:
                migrations.append('| %s | failed: %s | | |' % (name, str(e).splitlines()[0] if str(e) else type(e).__name__))
    finally:
        load_after = load_line()
        for hog in hogs:
            hog.kill()
            hog.wait()
        shutil.rmtree(work, ignore_errors=True)

    report = '\n'.join([
        '# Replication benchmark',
        '',
        'Built-in guest, %d MiB RAM, %d MiB working set, 1 vCPU; checkpoint interval %d ms; '
        'primary and secondary as two processes on loopback, host A\'s on CPU %s and host B\'s on CPU %s '
        '(taskset: two hosts never share a core) except the "--unpinned" rows, where the scheduler '
        'places them; %.0f s measured per case (after protection is set up); an unprotected run of the '
        'same guest per dirty rate (on CPU %s).'
        % (MEMORY_MIB, WORKING_SET_MIB, CHECKPOINT_INTERVAL_MS, CPUS_A, CPUS_B, seconds, CPUS_A),
        '',
        'Machine: %s before, %s after%s. Numbers are noisy on a shared machine.'
        % (load_before, load_after, '; %d busy processes ran alongside (BENCH_HOGS)' % len(hogs) if hogs else ''),
        '',
        table(results),
        '',
        'Every case runs over TLS 1.3 with a pre-shared key (`--key`) except "--clear", the same '
        'as the 10k case with the link in clear: the two rows give the checkpoint pause and link '
        'MB/s with and without TLS. The link\'s throughput with and without TLS, migrating the idle '
        'guest (its working set written once); MB are the pages and state the migration carried, '
        'a zero page counted as 4 KiB though it crosses as an 8-byte marker, so MB/s is the rate at '
        'which guest memory moved:',
        '',
        '| migrate | MB of guest memory | seconds | MB/s |',
        '|---|---|---|---|',
        *migrations,
        '',
        'How it is measured:',
        '- PVM pause p50/p99/max, enter COLO (primary: from the final pause of the initial sync until the '
        'secondary is ready) and the enter-COLO pauses (how long each VM stood still for it): '
        '`status --json` of each side.',
        '- Pages, checkpoints and link bytes (page and state payload): deltas of `status --json` '
        'over the measured window, so the initial sync is excluded.',
        '- Guest writes/s: the `writes=W` counter of the first and last console line released in '
        'the window, over the time between them; the % is the rate of released console lines '
        'relative to the unprotected run (the guest writes a fixed number of pages per line and '
        'keeps to a schedule, so 100% means it kept up; it catches up after a stall, so a '
        'short window can show a little over 100%). Each run starts measuring once the guest '
        'prints at its nominal rate (a fresh 1 GiB guest is slow for its first seconds).',
        '- Longest console gap: the longest time between two consecutive seq lines appearing in '
        'the primary\'s released console log (polled every 2 ms), guest prints one every %d ms. '
        'In COLO mode it includes output held back by the gate, not only the guest\'s own stall.'
        % PRINT_INTERVAL_MS,
        '- Output waited: the guest prints line N on a fixed schedule (N intervals after its start); '
        'each line\'s release time minus its schedule, less that of the least delayed line in the '
        'window: how long released output waited (the gate, or a stall of the guest), p50 and p99.',
        '- Guest\'s own longest stall: the built-in guest times every step of its own busy loops '
        '(a page written or checked) and how late it wakes from an idle wait, with the TSC, into a '
        'histogram in its memory that `status` reports (guest_stall_histogram); the upper bound of '
        'the highest bucket that grew during the window (buckets are 25% wide at most). Unlike the '
        'console gap it holds no output gating: it is what a checkpoint pause (or the host) cost the '
        'guest\'s own work.',
        '- SVM commit: how long the secondary takes to apply a checkpoint, from pausing the SVM to '
        'resuming it (`status --json` of the secondary, pause p50/p99). SVM pages written/s: the '
        'pages the SVM dirtied itself (reverted at checkpoints) over the window: how fast the SVM '
        'runs (the PVM writes the dirty rate).',
        '- Memory: what each host\'s processes really use at the end of the window: RssAnon + RssFile '
        'of each process plus the allocated size of each memfd they hold (guest RAM, the '
        'secondary\'s RAM cache), each file once. VmRSS is shown too: it counts a memfd page once '
        'per mapping, so on a secondary whose SVM maps the RAM cache copy-on-write it counts the '
        'pages the SVM reads twice.',
        '',
        'Targets (reported, not asserted):',
        targets(results),
        ''])
    with open(os.path.join(out_dir, 'replication.md'), 'w') as f:
        f.write(report)
    why_no_plot = plot(results, os.path.join(out_dir, 'pauses.png'))
    print(report)
    if why_no_plot:
        print(why_no_plot)
    print('replication_bench: wrote %s and %s' % (os.path.join(out_dir, 'replication.md'),
                                                   os.path.join(out_dir, 'pauses.png')))
    # A failed case is a result too (it is in the table, with why); only nothing measured at all
    # makes the run fail.
    return 0 if any('error' not in r for r in results) else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
