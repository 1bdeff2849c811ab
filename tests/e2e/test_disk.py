"""End-to-end checks of a guest's disk through the CLI (run.py runs them): the built-in guest's
disk workload on a raw image finishes clean and the image holds what the guest says
(tests/disk_pattern.py); save and restore in the middle of it continue without a CORRUPT; a
missing, misfit, busy or non-raw image is a one-line error that leaves nothing running. The
replication of the disk (protect, migrate, failover) is tested with the checkpoint device that
does it."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from disk_pattern import image_digest  # noqa: E402
from hosts import Workspace, check, one_line_error, read_bytes, wait_exit, wait_until  # noqa: E402

DISK_DONE = re.compile(rb'^disk-done writes=(\d+) digest=([0-9a-f]{16})$', re.M)
SEED = 5


def make_image(path, size):
    with open(path, 'wb') as f:
        f.truncate(size)
    return path


def disk_config(ws, name, image, **overrides):
    keys = dict(name=name, memory=64, vcpus=1, guest='builtin', working_set=8, dirty_rate=1000, seed=SEED,
                print_interval=50, disk=[image + ',raw,xvda,rw'], disk_rate=1000)
    keys.update(overrides)
    return ws.write_config(name + '.cfg', **keys)


def wait_done(log, timeout, what):
    return wait_until(lambda: DISK_DONE.search(read_bytes(log)), timeout, what)


def check_clean(log, what):
    text = read_bytes(log)
    for bad in (b'CORRUPT', b'DISKERR', b'FAULT'):
        check(bad not in text, '%s: the console has %s: %r' % (what, bad.decode(), text[text.find(bad):][:200]))


def check_image(image, blocks, done, what):
    digest, problems = image_digest(image, blocks, SEED)
    check(not problems, '%s: the image has bad blocks: %s' % (what, '; '.join(problems[:5])))
    check(digest == done.group(2).decode(), '%s: the image\'s digest %s is not the guest\'s %s'
          % (what, digest, done.group(2).decode()))
    return digest


def test_disk_local(binary):
    ws = Workspace(binary, 'disk')
    try:
        a = ws.host('hostA')
        details = []
        # 1. The workload to its end: 400 writes over 512 blocks, a clean pass, the image agrees.
        image = make_image(ws.path('disk.img'), 2 << 20)
        log = ws.path('disk.log')
        pid = a.create(disk_config(ws, 'dsk', image, disk_writes=400), log)
        done = wait_done(log, 30, 'disk-done from the guest')
        a.ok('destroy', 'dsk')
        wait_exit(pid, 5, 'the guest to end after destroy')
        check_clean(log, 'workload')
        check(done.group(1) == b'400', 'disk-done says %s writes, not 400' % done.group(1).decode())
        details.append('400 writes, digest %s matches the image' % check_image(image, 512, done, 'workload'))

        # 2. Save and restore in the middle: the restored guest continues (no second first pass)
        #    and ends clean on the image the first one wrote to.
        image = make_image(ws.path('saved-disk.img'), 2 << 20)
        log = ws.path('sr.log')
        pid = a.create(disk_config(ws, 'dsr', image, disk_writes=3000), log)
        wait_until(lambda: b'disk-check pass=1 ' in read_bytes(log), 20, 'a first full disk pass')
        saved = ws.path('dsr.save')
        a.ok('save', 'dsr', saved)
        wait_exit(pid, 5, 'the saved guest to end')
        before = read_bytes(log)
        written = int(re.findall(rb'disk-check pass=\d+ blocks=\d+ written=(\d+)', before)[-1])
        check(written < 3000, 'the guest had finished its writes before the save (%d)' % written)
        pid = a.restore(saved, log)
        done = wait_done(log, 60, 'disk-done from the restored guest')
        a.ok('destroy', 'dsr')
        wait_exit(pid, 5, 'the restored guest to end')
        check_clean(log, 'save/restore')
        check(read_bytes(log).count(b'disk-check pass=1 ') == 1, 'the restored guest started its disk workload over')
        details.append('saved at %d of 3000 writes, restored, digest %s matches'
                       % (written, check_image(image, 512, done, 'save/restore')))

        # 3. Refusals: one line, exit 1, nothing left running.
        busy_image = make_image(ws.path('busy.img'), 1 << 20)
        holder = a.create(disk_config(ws, 'holder', busy_image), ws.path('holder.log'))
        odd = ws.path('odd.img')
        with open(odd, 'wb') as f:
            f.write(b'\0' * 1000)
        cases = [
            ('missing image', disk_config(ws, 'nofile', ws.path('no-such.img')),
             'open disk image %s: No such file or directory' % ws.path('no-such.img')),
            ('size not a multiple of 512', disk_config(ws, 'odd', odd), 'is 1000 bytes, not a multiple of 512'),
            ('image in use', disk_config(ws, 'second', busy_image),
             'disk image %s is in use by another process' % busy_image),
            ('qcow2', ws.write_config('qcow.cfg', name='qcow', disk=[busy_image + ',qcow2,xvda,rw']),
             "qcow.cfg:2: disk '%s,qcow2,xvda,rw': format 'qcow2' is not supported (only raw)" % busy_image),
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
