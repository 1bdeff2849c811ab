#!/usr/bin/python3
"""disk_bench: what protecting a guest's disk costs the guest, measured at its virtio-blk device.

The built-in guest with a 64 MiB raw disk, its disk workload writing 4 KiB blocks as fast as it can
with a FLUSH after every 8 writes (disk_rate far above what the device serves), once unprotected,
then protected in Remus (checkpoint every 100 ms) and COLO (a checkpoint at least every 100 ms,
the default; this guest has no NIC, so no compare asks for one sooner), with the primary
and the secondary as two processes on this machine (as replication_bench.py does). Reported, over
BENCH_DISK_SECONDS after protection is up: write throughput (MB/s of data the guest wrote), and the
flush latency the device saw (p50/p99 of its last 1024 flushes, submit to completion: on the
primary a flush is an fdatasync of its own image, see colo-replicate(7), Disk), with the
checkpoints and the primary's pause for context. Nothing is asserted.

    disk_bench.py PATH/TO/colo-replicate OUTPUT-DIR

Environment: BENCH_DISK_SECONDS (default 10). Writes OUTPUT-DIR/disk.md and prints it.
"""
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from replication_bench import GUEST_NAME, Host, free_port, load_line  # noqa: E402

HEARTBEAT_TIMEOUT_MS = 10000
DISK_BYTES = 64 * 1024 * 1024
RECENT_FLUSHES = 1024  # the device's window for its flush percentiles (backends/guest_disk.hpp)


def write_config(path, image):
    with open(image, 'wb') as f:
        f.truncate(DISK_BYTES)
    with open(path, 'w') as f:
        f.write('name = "%s"\nmemory = 64\nvcpus = 1\nguest = "builtin"\nworking_set = 16\n'
                'dirty_rate = 1000\nprint_interval = 100\ndisk = [ \'%s,raw,xvda,rw\' ]\n'
                'disk_rate = 1000000\ndisk_flush_every = 8\n' % (GUEST_NAME, image))


def run_case(binary, work, mode, seconds):
    host_a = Host(binary, os.path.join(work, mode, 'hostA'))
    host_b = Host(binary, os.path.join(work, mode, 'hostB'))
    config = os.path.join(host_a.run_dir, 'guest.cfg')
    write_config(config, os.path.join(host_a.run_dir, 'disk.img'))
    try:
        host_a.run('create', config)
        sync = ''
        if mode != 'unprotected':
            port = free_port()
            os.makedirs(os.path.join(host_b.run_dir, 'disks'), exist_ok=True)
            host_b.run('receive', '-l', '127.0.0.1:%d' % port, '--heartbeat-timeout', str(HEARTBEAT_TIMEOUT_MS),
                       '--disk-dir', os.path.join(host_b.run_dir, 'disks'))
            options = ['--remus', '-i', '100'] if mode == 'remus' else []
            out = host_a.run('protect', GUEST_NAME, '127.0.0.1:%d' % port, '--heartbeat-timeout',
                             str(HEARTBEAT_TIMEOUT_MS), *options, timeout=120)
            sync = out.strip().splitlines()[-1].split('; disks: ', 1)[-1] if '; disks: ' in out else ''
        time.sleep(1)  # past the start (a measurement window, not a wait for a condition)
        before, t0 = host_a.status(), time.monotonic()
        time.sleep(seconds)
        after, t1 = host_a.status(), time.monotonic()
        if mode != 'unprotected' and after.get('state') != 'protected':
            raise RuntimeError('the primary is %s (%s)' % (after.get('state'), after.get('protection_lost', '')))
        written = int(after['disk_guest_write_bytes']) - int(before['disk_guest_write_bytes'])
        flushes = int(after['disk_guest_flushes']) - int(before['disk_guest_flushes'])
        return dict(mbps=written / (t1 - t0) / 1e6, flushes=flushes / (t1 - t0), flushes_in_window=flushes,
                    p50=int(after['disk_guest_flush_p50_us']), p99=int(after['disk_guest_flush_p99_us']),
                    checkpoints=int(after.get('checkpoints', 0)) - int(before.get('checkpoints', 0)),
                    pause=after.get('pause_p50_us', '-'), errors=int(after['disk_guest_errors']), sync=sync)
    finally:
        host_a.clean_up()
        host_b.clean_up()


def main(argv):
    if len(argv) != 3:
        print('usage: disk_bench.py PATH/TO/colo-replicate OUTPUT-DIR', file=sys.stderr)
        return 2
    binary, out_dir = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    seconds = float(os.environ.get('BENCH_DISK_SECONDS', '10'))
    os.makedirs(out_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('disk_bench: terminated'))
    # The images live next to the run dirs, on the file system the operator's would (not tmpfs).
    work = tempfile.mkdtemp(prefix='colo-diskbench.', dir=os.environ.get('BENCH_DISK_DIR', '/var/tmp'))
    load_before = load_line()
    rows = []
    try:
        for mode, name in (('unprotected', 'unprotected'), ('remus', 'remus, checkpoint every 100 ms'),
                           ('colo', 'colo, checkpoint at least every 100 ms (the default -i)')):
            print('disk_bench: %s ...' % name, flush=True)
            try:
                r = run_case(binary, work, mode, seconds)
                rows.append('| %s | %.1f | %.0f | %d | %d | %s | %s | %s |' % (
                    name, r['mbps'], r['flushes'], r['p50'], r['p99'],
                    '-' if mode == 'unprotected' else r['checkpoints'],
                    '-' if mode == 'unprotected' else r['pause'], r['sync'] or '-'))
                if r['flushes_in_window'] < RECENT_FLUSHES:
                    # The device's percentiles are over its last 1024 flushes: fewer in the window
                    # means some of them came before it (before protection, for a protected case).
                    rows[-1] += ' (only %d flushes measured: the percentiles include earlier ones)' % r['flushes_in_window']
                if r['errors']:
                    rows[-1] += ' %d I/O errors' % r['errors']
            except Exception as e:  # a failed case is a row too
                rows.append('| %s | failed: %s | | | | | | |' % (name, str(e).splitlines()[0] if str(e) else type(e).__name__))
                print('disk_bench: %s failed: %s' % (name, e), file=sys.stderr)
    finally:
        os.system('rm -rf %s' % work)
    report = '\n'.join([
        '# Disk benchmark',
        '',
        'Built-in guest (64 MiB, dirtying 1000 pages/s) with a 64 MiB raw disk on %s; its workload writes '
        '4 KiB blocks as fast as the device serves them, a FLUSH after every 8; %.0f s measured per case, '
        'primary and secondary as two processes on this machine. Flush latency: at the primary\'s device, '
        'of its last 1024 flushes (all within the measured seconds unless the row says otherwise); on the '
        'primary a flush is an fdatasync of its own image, see colo-replicate(7), Disk. Machine: %s before, '
        '%s after.' % (os.environ.get('BENCH_DISK_DIR', '/var/tmp'), seconds, load_before, load_line()),
        '',
        '| case | write MB/s | flushes/s | flush p50 (us) | flush p99 (us) | checkpoints | pause p50 (us) | initial disk sync |',
        '|---|---|---|---|---|---|---|---|',
    ] + rows + [''])
    with open(os.path.join(out_dir, 'disk.md'), 'w') as f:
        f.write(report)
    print(report)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
