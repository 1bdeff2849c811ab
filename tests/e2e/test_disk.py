"""The end-to-end disk tests: a built-in guest whose workload writes numbered, self-checking blocks
to a virtio-blk disk and keeps in memory what each block must hold (kvm/builtin_guest/disk.c).

It prints `disk-check pass=P blocks=B written=W digest=H` after each full read-back pass,
`disk-done writes=W digest=H` once its `disk_writes` are written and a last pass was clean, and a
line with CORRUPT on any mismatch. The digest covers (block, generation) of every block, so an
image whose blocks tests/disk_pattern.py reads back to the same digest is exactly the state the
guest's memory expects.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from console_sequence import check_sequence, overlay  # noqa: E402
from hosts import TestFailure, Workspace, check, one_line_error, read_bytes, wait_exit, wait_until  # noqa: E402

DISK_LINE = re.compile(rb'^disk-(check|done) ')
DONE_LINE = re.compile(rb'^disk-done writes=(\d+) digest=([0-9a-f]{16})\s*$')
DISK_BYTES = 4 * 1024 * 1024
DISK_BLOCKS = DISK_BYTES // 4096


def make_image(path, size=DISK_BYTES):
    with open(path, 'wb') as f:
        f.truncate(size)
    return path


def disk_keys(image, rate=500, writes=2000, flush_every=8, blocks=DISK_BLOCKS):
    return dict(disk=['%s,raw,xvda,rw' % image], disk_rate=rate, disk_blocks=blocks,
                disk_writes=writes, disk_flush_every=flush_every)


def split_disk_lines(data):
    """(the log without its disk lines, the disk lines): the seq lines are checked as before."""
    data = data.lstrip(b'\0')
    lines = data.split(b'\n')
    partial = lines.pop() if lines else b''
    seq, disk = [], []
    for line in lines:
        (disk if DISK_LINE.match(line) or (b'CORRUPT' in line and line.startswith(b'disk')) else seq).append(line)
    rest = b'\n'.join(seq) + (b'\n' if seq else b'')
    if partial and not b'disk-'.startswith(partial[:5]):
        rest += partial
    return rest, disk


def corrupt_lines(*logs):
    out = []
    for data in logs:
        out += [l for l in data.split(b'\n') if b'CORRUPT' in l]
    return out


def done_digest(data):
    """The digest of the log's disk-done line, or None."""
    for line in data.lstrip(b'\0').split(b'\n'):
        m = DONE_LINE.match(line)
        if m:
            return m.group(2).decode()
    return None


def check_image(path, seed, digest, what, blocks=DISK_BLOCKS):
    """The image's blocks read back to the digest the guest printed; returns a summary."""
    from disk_pattern import image_digest  # tests/disk_pattern.py, shared with the kvm tier
    got, problems = image_digest(path, blocks, seed)
    check(not problems, '%s: %s' % (what, '; '.join(problems[:5])))
    check(got == digest, '%s: the image reads back to digest %s, the guest expects %s' % (what, got, digest))
    return 'image digest %s' % digest


def joined_report(log_a, log_b):
    """The two hosts' released logs overlaid: seq lines one unbroken sequence, no CORRUPT; returns
    (report, joined bytes)."""
    joined = overlay(read_bytes(log_a), read_bytes(log_b))
    rest, _ = split_disk_lines(joined.data)
    report = check_sequence(rest, 2)
    if joined.conflicts:
        report.problems.insert(0, '%d positions differ between the logs' % len(joined.conflicts))
    bad = corrupt_lines(joined.data)
    if bad:
        report.problems.insert(0, 'CORRUPT: %s' % bad[0][:160].decode(errors='replace'))
    return report, joined.data


def wait_done(log, timeout, what):
    return wait_until(lambda: done_digest(read_bytes(log)), timeout, what)


def elapsed(since):
    return time.monotonic() - since


def check_clean(log, what):
    text = read_bytes(log)
    for bad in (b'CORRUPT', b'DISKERR', b'FAULT'):
        check(bad not in text, '%s: the console has %s: %r' % (what, bad.decode(), text[text.find(bad):][:200]))


def test_disk_local(binary):
    """One host, no replication: the workload runs to its end and the image agrees with the guest;
    save and restore in the middle continue it without a CORRUPT; a missing, misfit, busy or
    non-raw image is a one-line error that leaves nothing running."""
    from disk_pattern import self_test
    self_test()  # the checker itself, on blocks it makes: clean ones, a torn, a foreign, a garbled one
    ws = Workspace(binary, 'disk-local')
    seed = 5
    try:
        a = ws.host('hostA')
        details = []

        def config(name, image, **disk):
            keys = dict(name=name, memory=64, vcpus=1, guest='builtin', working_set=8, dirty_rate=1000, seed=seed,
                        print_interval=50)
            keys.update(disk_keys(image, **disk))
            return ws.write_config(name + '.cfg', **keys)

        # 1. The workload to its end: the image reads back to the digest the guest printed.
        image = make_image(ws.path('disk.img'))
        log = ws.path('disk.log')
        pid = a.create(config('dsk', image, rate=1000, writes=400), log)
        digest = wait_done(log, 30, 'disk-done from the guest')
        a.ok('destroy', 'dsk')
        wait_exit(pid, 5, 'the guest to end after destroy')
        check_clean(log, 'workload')
        check(b'disk-done writes=400 ' in read_bytes(log), 'disk-done does not say 400 writes')
        details.append('400 writes, ' + check_image(image, seed, digest, 'workload'))

        # 2. Save and restore in the middle: the restored guest continues (its passes go on from
        #    where they were) and ends clean on the image the first one wrote to.
        image = make_image(ws.path('saved-disk.img'))
        log = ws.path('sr.log')
        pid = a.create(config('dsr', image, rate=1000, writes=3000), log)
        wait_until(lambda: b'disk-check pass=1 ' in read_bytes(log), 20, 'a first full disk pass')
        saved = ws.path('dsr.save')
        a.ok('save', 'dsr', saved)
        wait_exit(pid, 5, 'the saved guest to end')
        written = int(re.findall(rb'disk-check pass=\d+ blocks=\d+ written=(\d+)', read_bytes(log))[-1])
        check(written < 3000, 'the guest had finished its writes before the save (%d)' % written)
        pid = a.restore(saved, log)
        digest = wait_done(log, 60, 'disk-done from the restored guest')
        a.ok('destroy', 'dsr')
        wait_exit(pid, 5, 'the restored guest to end')
        check_clean(log, 'save/restore')
        check(read_bytes(log).count(b'disk-check pass=1 ') == 1, 'the restored guest started its disk workload over')
        details.append('saved at %d of 3000 writes, restored, %s' % (written, check_image(image, seed, digest, 'save/restore')))

        # 3. Refusals: one line, exit 1, nothing left running.
        busy = make_image(ws.path('busy.img'))
        holder = a.create(config('holder', busy, writes=10), ws.path('holder.log'))
        odd = ws.path('odd.img')
        with open(odd, 'wb') as f:
            f.write(b'\0' * 1000)
        cases = [
            ('missing image', config('nofile', ws.path('no-such.img')), 'no-such.img'),
            ('size not a multiple of 512', config('odd', odd), 'is 1000 bytes, not a multiple of 512'),
            ('image in use', config('second', busy), 'disk image %s is in use by another process' % busy),
            ('qcow2', ws.write_config('qcow.cfg', name='qcow', disk=[busy + ',qcow2,xvda,rw']),
             "qcow.cfg:2: disk '%s,qcow2,xvda,rw': format 'qcow2' is not supported (only raw)" % busy),
        ]
        for label, cfg, must_mention in cases:
            r = a.run('create', cfg, '--console-log', ws.path(label.replace(' ', '-') + '.log'), timeout=60)
            line = one_line_error(r)
            check(r.code == 1, '%s: exit status %d, expected 1' % (label, r.code))
            check(must_mention in line, '%s: message does not say "%s": %s' % (label, must_mention, line))
            check(set(a.guests()) == {'holder'}, '%s: guests listed: %s' % (label, a.guests()))
            details.append('%s -> "%s"' % (label, line[-70:]))
        a.ok('destroy', 'holder')
        wait_exit(holder, 5, 'the holder guest to end')
        return '; '.join(details)
    finally:
        ws.close()


__all__ = ['TestFailure', 'make_image', 'disk_keys', 'split_disk_lines', 'corrupt_lines', 'done_digest',
           'check_image', 'joined_report', 'wait_done', 'elapsed', 'DISK_BLOCKS', 'test_disk_local']
