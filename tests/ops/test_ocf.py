"""The Pacemaker resource agent (ocf/colo-replicate) against real guests: `ocf-tester` on one node,
then the transitions of a two-node promotable clone driven by hand the way Pacemaker would, with
each node a run directory of its own on loopback (tests/e2e/hosts.py).

Pacemaker's crm_attribute is replaced by a script that records the promotion scores the agent sets,
so the scores are checked too."""
import os
import re
import shutil
import socket
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, 'tests', 'e2e'))

from console_sequence import check_joined, count_seq_lines  # noqa: E402
from hosts import TestFailure, Workspace, alive, check, processes_of, read_bytes, wait_until  # noqa: E402

AGENT = os.path.join(TOP, 'ocf', 'colo-replicate')
OCF_ROOT = '/usr/lib/ocf'
OCF_SUCCESS, OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED = 0, 7, 8
RESOURCE = 'colo-test'

# The agent's scores (ocf/colo-replicate): a running guest, a complete replica, an empty receive.
SCORE_RUNNING, SCORE_REPLICA, SCORE_EMPTY = '1000', '100', '5'

FAKE_CRM_ATTRIBUTE = '#!/bin/sh\necho "$*" >> "$COLO_TEST_SCORES"\n'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def guest_keys(ws, name, listen, peer):
    """The built-in guest of examples/builtin-guest.cfg, small, with its protection keys."""
    return dict(name=name, memory=64, vcpus=1, guest='builtin', working_set=16, dirty_rate=2000, seed=7,
                print_interval=50, listen=listen, peer=peer, link_key=ws.key, heartbeat_timeout=800)


class Node:
    """One cluster node: its run dir, the agent's temp dir (HA_RSCTMP) and its recorded scores."""

    def __init__(self, ws, binary, label, config, console_log):
        self.ws, self.binary, self.label = ws, binary, label
        self.host = ws.host('host' + label)
        self.config, self.console_log = config, console_log
        self.rsctmp = ws.path('rsctmp-' + label)
        self.scores = ws.path('scores-' + label)
        sbin = ws.path('sbin')
        os.makedirs(sbin, exist_ok=True)
        fake = os.path.join(sbin, 'crm_attribute')
        if not os.path.exists(fake):
            with open(fake, 'w') as f:
                f.write(FAKE_CRM_ATTRIBUTE)
            os.chmod(fake, 0o755)
        self.env = dict(os.environ, OCF_ROOT=OCF_ROOT, HA_RSCTMP=self.rsctmp, HA_SBIN_DIR=sbin,
                        COLO_TEST_SCORES=self.scores, COLO_RUN_DIR=self.host.run_dir,
                        COLO_STATE_DIR=ws.path('state-' + label),
                        OCF_RESOURCE_INSTANCE=RESOURCE, OCF_RESKEY_config=config, OCF_RESKEY_binary=binary,
                        OCF_RESKEY_console_log=console_log, OCF_RESKEY_crm_feature_set='3.16.0',
                        OCF_RESKEY_CRM_meta_interval='10000', OCF_RESKEY_CRM_meta_timeout='60000')

    def agent(self, action, timeout=150, **reskeys):
        env = dict(self.env, **{'OCF_RESKEY_' + k: v for k, v in reskeys.items()})
        try:
            p = subprocess.run([AGENT, action], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               errors='replace', timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure('node %s: the agent\'s %s did not finish within %ds' % (self.label, action, timeout))
        return p.returncode, (p.stdout + p.stderr).strip().replace('\n', ' | ')[-400:]

    def expect(self, action, rc, **reskeys):
        got, out = self.agent(action, **reskeys)
        check(got == rc, 'node %s: %s returned %d, expected %d: %s' % (self.label, action, got, rc, out))

    def start(self):
        self.expect('monitor', OCF_NOT_RUNNING)
        self.expect('start', OCF_SUCCESS)
        self.expect('monitor', OCF_SUCCESS)
        check(self.host.state('pm') == 'waiting', 'node %s after start: state %s' % (self.label, self.host.state('pm')))
        check(self.score() == SCORE_EMPTY, 'node %s waiting: score %s' % (self.label, self.score()))

    def stop(self):
        self.expect('stop', OCF_SUCCESS)
        self.expect('monitor', OCF_NOT_RUNNING)
        check(self.score() is None, 'node %s stopped: score %s' % (self.label, self.score()))
        check(not self.host.guests(), 'node %s lists %s after stop' % (self.label, self.host.guests()))

    def wait_protect_attempt(self):
        """Until the agent's background `protect` has ended (it fails while the peer has no receive)."""
        with open(os.path.join(self.rsctmp, 'colo-replicate-%s.protect-pid' % RESOURCE)) as f:
            pid = int(f.read())
        wait_until(lambda: not alive(pid), 30, 'node %s: the background protect (pid %d) to end' % (self.label, pid))

    def score(self):
        """The last promotion score the agent set: a number, or None when it deleted it."""
        try:
            with open(self.scores) as f:
                last = f.read().strip().split('\n')[-1]
        except FileNotFoundError:
            return 'never set'
        m = re.search(r'-v (\S+)', last)
        return m.group(1) if m else (None if '-D' in last else last)


def test_ocf_tester(binary):
    """`ocf-tester` against the agent on one node; its output is printed with the result."""
    if ocf_tester_missing():
        return ocf_tester_missing()
    ws = Workspace(binary, 'ocf-tester')
    try:
        config = ws.write_config('solo.cfg', **guest_keys(ws, 'solo', '127.0.0.1:%d' % free_port(),
                                                          '127.0.0.1:%d' % free_port()))
        node = Node(ws, binary, 'A', config, ws.path('solo.log'))
        env = dict(node.env)
        for key in [k for k in env if k.startswith('OCF_RESKEY_') or k == 'OCF_RESOURCE_INSTANCE']:
            del env[key]
        argv = ['ocf-tester', '-n', RESOURCE, '-o', 'config=' + config, '-o', 'binary=' + binary,
                '-o', 'console_log=' + node.console_log, AGENT]
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors='replace',
                           timeout=600)
        printed = (p.stdout + p.stderr).rstrip('\n')
        for line in printed.split('\n'):
            print('    ocf-tester| ' + line, flush=True)
        check(p.returncode == 0, 'ocf-tester exited %d' % p.returncode)
        check('passed all tests' in printed, 'ocf-tester did not say "passed all tests"')
        # It promoted (create) and demoted (destroy) twice: the guest really ran.
        check(count_seq_lines(read_bytes(node.console_log)) > 0, 'the promoted guest printed nothing')
        left = processes_of(ws.root)
        check(not left, 'processes still running after ocf-tester\'s last stop: %s' % left)
        return printed.split('\n')[-1]
    finally:
        ws.close()


def test_transitions(binary):
    """Two nodes A and B, driven as Pacemaker would. A alone: start, promote (creates the guest: a
    cluster's first start), whose protection fails while B has no receive; B starts, and A's monitor
    protects the guest to it. Demote A (handover: B holds the last state and does not take over by
    itself); A stops. Promote B (failover: the guest goes on from where A left it); A starts again,
    and B's notify post-start protects the survivor to it. Demote B (handover to A), stop both."""
    if ocf_tester_missing():
        return ocf_tester_missing()
    ws = Workspace(binary, 'ocf')
    keep = False
    try:
        port_a, port_b = free_port(), free_port()
        cfg_a = ws.write_config('a.cfg', **guest_keys(ws, 'pm', '127.0.0.1:%d' % port_a, '127.0.0.1:%d' % port_b))
        cfg_b = ws.write_config('b.cfg', **guest_keys(ws, 'pm', '127.0.0.1:%d' % port_b, '127.0.0.1:%d' % port_a))
        a = Node(ws, binary, 'A', cfg_a, ws.path('a1.log'))
        b = Node(ws, binary, 'B', cfg_b, ws.path('b.log'))

        a.start()
        a.expect('promote', OCF_SUCCESS)
        a.expect('monitor', OCF_RUNNING_PROMOTED)
        check(a.host.guests().get('pm') == 'running', 'A after promote lists %s' % a.host.guests())
        check(a.score() == SCORE_RUNNING, 'A promoted: score %s' % a.score())
        wait_until(lambda: count_seq_lines(read_bytes(a.console_log)) >= 5, 10, 'the guest on A to print')
        a.wait_protect_attempt()
        check(a.host.state('pm') == 'unprotected', 'A with no receive on B: state %s' % a.host.state('pm'))

        # B's receive appears: A's monitor (run here as Pacemaker would, each poll) protects to it.
        b.start()
        wait_until(lambda: a.agent('monitor')[0] == OCF_RUNNING_PROMOTED and a.host.state('pm') == 'protected', 60,
                   'A\'s monitor to protect the guest to B', interval=0.5)
        wait_until(lambda: int((b.host.status('pm') or {}).get('checkpoints_applied', 0)) >= 2, 20,
                   'B to apply 2 checkpoints')
        b.expect('monitor', OCF_SUCCESS)
        check(b.score() == SCORE_REPLICA, 'B holding a replica: score %s' % b.score())

        # Demote: handover; A is a waiting receive again (with a console log of its own), then stops.
        a.console_log = ws.path('a2.log')
        a.expect('demote', OCF_SUCCESS, console_log=a.console_log)
        a.expect('monitor', OCF_SUCCESS, console_log=a.console_log)
        check(a.host.state('pm') == 'waiting', 'A after demote: state %s' % a.host.state('pm'))
        check(a.score() == SCORE_EMPTY, 'A demoted: score %s' % a.score())
        # Manual takeover: B holds the last state and waits for Pacemaker.
        wait_until(lambda: b.host.state('pm') == 'primary-lost', 10, 'B to see its primary gone')
        n_b = count_seq_lines(read_bytes(b.console_log))
        b.expect('monitor', OCF_SUCCESS)
        check(b.score() == SCORE_REPLICA, 'B holding the handed-over replica: score %s' % b.score())
        a.stop()

        b.expect('promote', OCF_SUCCESS)
        b.expect('monitor', OCF_RUNNING_PROMOTED)
        check(b.score() == SCORE_RUNNING, 'B promoted: score %s' % b.score())
        wait_until(lambda: count_seq_lines(read_bytes(b.console_log)) >= n_b + 5, 10, 'the guest on B to go on')
        joined = check_joined([read_bytes(ws.path('a1.log')), read_bytes(b.console_log)], min_lines=10)
        check(joined.ok, 'A then B is not one unbroken sequence: %s' % '; '.join(joined.problems))
        b.wait_protect_attempt()
        check(b.host.state('pm') == 'active', 'B with no receive on A: state %s' % b.host.state('pm'))

        # A comes back; B's notification of A's start protects the survivor (no monitor runs).
        a.start()
        b.expect('notify', OCF_SUCCESS, CRM_meta_notify_type='post', CRM_meta_notify_operation='start')
        wait_until(lambda: b.host.state('pm') == 'protected', 60, 'B\'s notify post-start to protect the guest to A')
        a.expect('monitor', OCF_SUCCESS)
        check(a.score() == SCORE_REPLICA, 'A holding a replica: score %s' % a.score())

        # Demote B (handover to A), then stop both.
        b.expect('demote', OCF_SUCCESS, console_log=ws.path('b2.log'))
        b.expect('monitor', OCF_SUCCESS, console_log=ws.path('b2.log'))
        wait_until(lambda: a.host.state('pm') == 'primary-lost', 10, 'A to see its primary gone')
        a.stop()
        b.stop()
        left = processes_of(ws.root)
        check(not left, 'processes still running after both stops: %s' % left)
        return 'A then B: %s' % joined.summary()
    except TestFailure as e:
        keep = os.environ.get('COLO_E2E_KEEP') == '1'
        raise TestFailure('%s%s' % (e, ' (kept %s)' % ws.root if keep else ''))
    finally:
        ws.close(keep=keep)


def ocf_tester_missing():
    """'SKIP: why' when resource-agents (ocf-tester and the ocf-shellfuncs the agent sources) is
    not installed, else None."""
    if shutil.which('ocf-tester') is None:
        return 'SKIP: ocf-tester is not installed (Debian package resource-agents, see debian-packages.txt)'
    return None
