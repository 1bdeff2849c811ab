"""Protection declared in each host's guest config, as a service manager or cluster manager runs it
(man colo-replicate.cfg(5), PROTECTION; man colo-replicate(7), Operations): `receive CONFIG`,
`protect NAME` with nothing else, a manual takeover held until `failover`, the guard that keeps a
restarted primary from starting a second copy, and a handover back."""
import os
import re
import signal
import socket
import time

from console_sequence import check_joined, count_seq_lines
from hosts import TestFailure, Workspace, alive, check, one_line_error, read_bytes, wait_exit, wait_until

HEARTBEAT_MS = 800


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def started_pid(result, pattern):
    m = re.search(pattern, result.out)
    check(m, 'no pid in %r' % result.out)
    return int(m.group(1))


def make_operations_test(guest_config):
    def test(binary):
        ws = Workspace(binary, 'ops')
        keep = False
        try:
            a, b = ws.host('hostA'), ws.host('hostB')
            port_a, port_b = free_port(), free_port()
            log_a, log_b, log_a2 = ws.path('a.log'), ws.path('b.log'), ws.path('a2.log')
            # One config per host; only the protection keys differ (each names the other host).
            common = dict(protection='remus', checkpoint_interval=50, heartbeat_timeout=HEARTBEAT_MS, link_key=ws.key)
            cfg_a = guest_config(ws, 'ops', peer='127.0.0.1:%d' % port_b, listen='127.0.0.1:%d' % port_a,
                                 takeover='auto', **common)
            os.rename(cfg_a, ws.path('a.cfg'))
            cfg_b = guest_config(ws, 'ops', peer='127.0.0.1:%d' % port_a, listen='127.0.0.1:%d' % port_b,
                                 takeover='manual', **common)
            os.rename(cfg_b, ws.path('b.cfg'))
            cfg_a, cfg_b = ws.path('a.cfg'), ws.path('b.cfg')

            r = b.ok('check', cfg_b)
            check('protection: remus to 127.0.0.1:%d' % port_a in r.out and 'takeover manual' in r.out,
                  'check of b.cfg: %s' % r.out.strip())
            # A receive that ends while it waits (SIGTERM exits at once, skipping destructors) is not
            # reported as waiting any more.
            r = b.ok('receive', cfg_b, clear=True)
            pid = started_pid(r, r'\(pid (\d+);')
            wait_until(lambda: (b.status('ops') or {}).get('state') == 'waiting', 10, 'the first receive to wait')
            os.kill(pid, signal.SIGTERM)
            wait_exit(pid, 10, 'the first receive to end on SIGTERM')
            check(b.status('ops') is None, 'status after the waiting receive ended: %s' % b.status('ops'))

            # B: a bare receive for the guest; status sees it waiting before any sender came.
            r = b.ok('receive', cfg_b, '--console-log', log_b, clear=True)
            pid_b = started_pid(r, r'\(pid (\d+);')
            check('127.0.0.1:%d' % port_b in r.out, 'receive did not listen where b.cfg says: %s' % r.out.strip())
            s = b.status('ops')
            check(s and s.get('role') == 'secondary' and s.get('state') == 'waiting',
                  'status of a waiting receive: %s' % s)

            # A: create, then `protect NAME` and nothing else: peer, mode, interval, key from a.cfg.
            pid_a = a.create(cfg_a, log_a)
            r = a.ok('protect', 'ops', clear=True)
            check('(remus)' in r.out and str(port_b) in r.out, 'protect from the config: %s' % r.out.strip())
            check('link_security' in (a.status('ops') or {}) and a.status('ops')['link_security'].startswith('tls1.3'),
                  'the config\'s link_key was not used: %s' % a.status('ops'))
            wait_until(lambda: (b.status('ops') or {}).get('state') == 'protecting'
                       and int((b.status('ops') or {}).get('checkpoints_applied', 0)) >= 3, 20,
                       'B to apply 3 checkpoints')
            check(b.status('ops').get('mode', '').startswith('remus'), 'B mode: %s' % b.status('ops'))

            # takeover = manual: A's loss leaves B's replica standing still until `failover`.
            os.kill(pid_a, signal.SIGKILL)
            wait_exit(pid_a, 5, 'the killed primary to end')
            wait_until(lambda: b.state('ops') == 'primary-lost', 10, 'B to see its primary lost')
            held = count_seq_lines(read_bytes(log_b))
            epoch = b.status('ops').get('epoch')
            # Three heartbeat timeouts: an automatic takeover would long have happened.
            deadline = time.monotonic() + 3 * HEARTBEAT_MS / 1000.0
            while time.monotonic() < deadline:
                s = b.status('ops') or {}
                check(s.get('state') == 'primary-lost' and s.get('epoch') == epoch and
                      count_seq_lines(read_bytes(log_b)) == held,
                      'with takeover manual B moved by itself: %s, %d -> %d lines'
                      % (s, held, count_seq_lines(read_bytes(log_b))))
            b.ok('failover', 'ops')
            wait_until(lambda: count_seq_lines(read_bytes(log_b)) >= held + 10, 10, 'B to run the guest')

            # A restarted the way a service manager would: refused, its secondary took over.
            r = a.run('create', cfg_a, '--console-log', log_a2)
            check(r.code == 1 and '--force' in one_line_error(r), 'create after a crash while protected: %s' % r.describe())
            check('ops' not in a.guests(), 'the refused create left a guest on A')

            # Back to A by a handover: A receives (a.cfg, takeover auto), B protects to its peer.
            r = a.ok('receive', cfg_a, '--console-log', log_a2, clear=True)
            pid_a2 = started_pid(r, r'\(pid (\d+);')
            b.ok('protect', 'ops', clear=True)
            wait_until(lambda: int((a.status('ops') or {}).get('checkpoints_applied', 0)) >= 3, 20, 'A to apply 3 checkpoints')
            r = b.ok('handover', 'ops')
            check('Handed ops over' in r.out, 'handover said: %s' % r.out.strip())
            wait_exit(pid_b, 10, 'B to end after the handover')
            wait_until(lambda: a.state('ops') == 'active', 10, 'A to take over after the handover')
            n = count_seq_lines(read_bytes(log_a2))
            wait_until(lambda: count_seq_lines(read_bytes(log_a2)) >= n + 10, 10, 'A to run the guest')
            r = b.run('create', cfg_b, '--console-log', ws.path('b2.log'))
            check(r.code == 1 and 'did not end cleanly' in one_line_error(r), 'create on B after the handover: %s' % r.describe())
            r = b.run('handover', 'ops')
            check(r.code == 1, 'handover of no guest: %s' % r.describe())
            one_line_error(r)
            a.ok('destroy', 'ops')
            wait_exit(pid_a2, 10, 'A to end after destroy')
            check(not alive(pid_b), 'B still runs')

            data = [read_bytes(p) for p in (log_a, log_b, log_a2)]
            joined = check_joined(data, min_lines=30)
            check(joined.ok, 'joined log A+B+A: %s' % '; '.join(joined.problems))
            return 'receive CONFIG waiting, protect NAME from the config (remus, TLS), manual takeover held (log at %d lines) ' \
                   'until failover, create refused after the crash, handover B->A; joined %s' % (held, joined.summary())
        except TestFailure as e:
            keep = os.environ.get('COLO_E2E_KEEP') == '1'
            raise TestFailure('%s%s' % (e, ' (kept %s)' % ws.root if keep else ''))
        finally:
            ws.close(keep=keep)
    return test
