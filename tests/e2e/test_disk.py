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
from hosts import TestFailure, check, read_bytes, wait_until  # noqa: E402

DISK_LINE = re.compile(rb'^disk-(check|done) ')
DONE_LINE = re.compile(rb'^disk-done writes=(\d+) digest=([0-9a-f]{16})\s*$')
DISK_BYTES = 4 * 1024 * 1024
DISK_BLOCKS = DISK_BYTES // 4096


def make_image(path, size=DISK_BYTES):
    with open(path, 'wb') as f:
        f.truncate(size)
    return path


def disk_keys(image, rate=500, writes=2000, flush_every=8):
    return dict(disk=['%s,raw,xvda,rw' % image], disk_rate=rate, disk_blocks=DISK_BLOCKS,
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


def check_image(path, seed, digest, what):
    """The image's blocks read back to the digest the guest printed; returns a summary."""
    from disk_pattern import image_digest  # tests/disk_pattern.py, shared with the kvm tier
    got, problems = image_digest(path, DISK_BLOCKS, seed)
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


__all__ = ['TestFailure', 'make_image', 'disk_keys', 'split_disk_lines', 'corrupt_lines', 'done_digest',
           'check_image', 'joined_report', 'wait_done', 'elapsed', 'DISK_BLOCKS']
