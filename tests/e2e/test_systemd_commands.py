"""The systemd units' own command lines (systemd/*.service: ExecCondition, ExecStart, ExecStop with
@BINDIR@, %i and /etc/colo-replicate/ filled in), run as systemd would run them, on two simulated
hosts: the receive unit waits, the guest unit's create runs the guest, the protect unit protects it
from the config. Then the guest's process is killed (a crash) and its secondary takes over; the
guest unit's Restart= runs its create again, which must be refused (the primary marker): a
restarted unit never makes a second live copy. The units' stop commands end the rest."""
import os
import shlex
import signal
import subprocess

from hosts import TestFailure, Workspace, check, wait_exit, wait_until
from test_operations import free_port

UNIT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'systemd')


def unit_commands(unit, binary, name, etc):
    """{key: [argv, ...]} of the unit's Exec*= lines, as systemd would run them for instance `name`
    (a leading '-', failure ignored, is dropped: the test looks at every exit status itself)."""
    commands = {}
    with open(os.path.join(UNIT_DIR, unit)) as f:
        for line in f:
            key, sep, value = line.strip().partition('=')
            if not sep or not key.startswith('Exec'):
                continue
            value = value.lstrip('-').replace('@BINDIR@', os.path.dirname(binary)).replace('%i', name)
            value = value.replace('/etc/colo-replicate/', etc + '/')
            commands.setdefault(key, []).append(shlex.split(value))
    return commands


def host_env(host):
    return dict(os.environ, COLO_RUN_DIR=host.run_dir, COLO_STATE_DIR=os.path.join(host.run_dir, 'state'))


def run_command(host, argv, timeout=60):
    try:
        return subprocess.run(argv, env=host_env(host), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure('`%s` did not finish within %ds' % (' '.join(argv), timeout))


def start_service(host, argv, log):
    """ExecStart of a Type=simple unit: the process stays in the foreground."""
    with open(log, 'wb') as out:
        return subprocess.Popen(argv, env=host_env(host), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def ended(proc, timeout, what):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure('%s did not end within %ds' % (what, timeout))


def paired_configs(ws, guest_config, name, heartbeat_ms, dir_a, dir_b):
    """DIR/NAME.cfg for host A and host B, each naming the other as its peer on loopback and where
    it listens itself, with the workspace's link key; returns their paths."""
    port_a, port_b = free_port(), free_port()
    paths = []
    for folder, peer, listen in ((dir_a, port_b, port_a), (dir_b, port_a, port_b)):
        os.makedirs(folder, exist_ok=True)
        cfg = guest_config(ws, name, peer='127.0.0.1:%d' % peer, listen='127.0.0.1:%d' % listen,
                           heartbeat_timeout=heartbeat_ms, link_key=ws.key)
        paths.append(os.path.join(folder, name + '.cfg'))
        os.rename(cfg, paths[-1])
    return paths


def make_unit_commands_test(guest_config, heartbeat_ms):
    def test(binary):
        ws = Workspace(binary, 'units')
        procs = []
        try:
            a, b = ws.host('hostA'), ws.host('hostB')
            etc_a, etc_b = ws.path('etc-a'), ws.path('etc-b')
            paired_configs(ws, guest_config, 'unit', heartbeat_ms, etc_a, etc_b)
            guest_unit = unit_commands('colo-replicate@.service', binary, 'unit', etc_a)
            protect_unit = unit_commands('colo-replicate-protect@.service', binary, 'unit', etc_a)
            receive_unit = unit_commands('colo-replicate-receive@.service', binary, 'unit', etc_b)

            receive = start_service(b, receive_unit['ExecStart'][0], ws.path('receive.log'))
            procs.append(receive)
            wait_until(lambda: b.state('unit') == 'waiting', 10, 'the receive unit to wait for its sender')
            guest = start_service(a, guest_unit['ExecStart'][0], ws.path('guest.log'))
            procs.append(guest)
            wait_until(lambda: a.state('unit') == 'unprotected', 10, 'the guest unit\'s guest to run')
            for argv in protect_unit['ExecCondition']:
                r = run_command(a, argv)
                check(r.returncode == 0, 'the protect unit\'s condition skipped a config with a peer: %s' % argv)
            r = run_command(a, protect_unit['ExecStart'][0], timeout=120)
            check(r.returncode == 0, 'the protect unit\'s protect failed: %s' % (r.stderr.strip() or r.stdout))
            wait_until(lambda: int((b.status('unit') or {}).get('checkpoints_applied', 0)) >= 3, 20,
                       'B to apply 3 checkpoints')

            # A crash of the guest unit's process: its secondary takes over.
            guest.send_signal(signal.SIGKILL)
            ended(guest, 10, 'the killed guest')
            wait_until(lambda: b.state('unit') == 'active', 20, 'B to take over (state active)')
            # Restart=on-failure: the same create again. It must be refused, and run nothing.
            restarted = run_command(a, guest_unit['ExecStart'][0], timeout=30)
            lines = [l for l in restarted.stderr.split('\n') if l.strip()]
            check(restarted.returncode != 0 and len(lines) == 1,
                  'the restarted guest unit was not refused with one line: exit %d, %r' % (
                      restarted.returncode, restarted.stderr[:300]))
            check(a.guests() == {}, 'host A runs %s after the refused restart' % a.guests())
            check(b.state('unit') == 'active', 'B does not run the guest any more: %s' % b.status('unit'))

            # The guest unit's stop on A (nothing to destroy: its failure is ignored, '-'), then
            # the receive unit's stop on B: SIGTERM ends the guest that took over.
            for argv in guest_unit['ExecStop']:
                run_command(a, argv)
            receive.send_signal(signal.SIGTERM)
            code = ended(receive, 15, 'the receive unit\'s process after SIGTERM')
            check(b.guests() == {}, 'host B runs %s after its receive unit stopped' % b.guests())

            # A config that names no peer declares no protection: the protect unit is skipped.
            with open(os.path.join(etc_a, 'unit.cfg')) as f:
                text = ''.join(l for l in f if not l.startswith('peer'))
            with open(os.path.join(etc_a, 'unit.cfg'), 'w') as f:
                f.write(text)
            skipped = [run_command(a, argv).returncode for argv in protect_unit['ExecCondition']]
            check(any(c == 1 for c in skipped), 'the protect unit\'s condition passed a config without peer')
            return 'protected from the units\' commands; after a crash the restarted create was refused (%s); ' \
                   'receive stopped with exit %d' % (lines[0].split(': ', 1)[-1][:80], code)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            ws.close()
    return test
