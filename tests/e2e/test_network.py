"""A small network for the e2e tier, made by the test and removed after it, on one machine:

    client netns (veth, 10.77.N.1/24) ── veth ── bridge crbrN (root netns) ── TAP crtapN (the guest's vif)

The guest's vif names the bridge and the TAP; the primary's colo-replicate makes the TAP and the
survivor makes it again at takeover (the primary's goes with its process). Nothing here sleeps a
fixed time: link changes are synchronous netlink requests.
"""
import json
import os
import signal
import subprocess

from hosts import TestFailure, wait_until


def ip(*args, check=True):
    result = subprocess.run(['ip'] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    if check and result.returncode != 0:
        raise TestFailure('ip %s: %s' % (' '.join(str(a) for a in args), result.stderr.strip()))
    return result


class TestNetwork:
    def __init__(self, number):
        self.number = number
        self.bridge = 'crbr%d' % number
        self.tap = 'crtap%d' % number
        self.netns = 'crcli%d' % number
        self.client_ip = '10.77.%d.1' % number
        self.guest_ip = '10.77.%d.2' % number
        self.mac = '52:54:00:77:%02x:02' % number
        self.close()  # leftovers of an interrupted run
        ip('link', 'add', self.bridge, 'type', 'bridge')
        ip('link', 'set', self.bridge, 'up')
        ip('netns', 'add', self.netns)
        ip('link', 'add', 'crv%d' % number, 'type', 'veth', 'peer', 'name', 'crvc%d' % number)
        ip('link', 'set', 'crv%d' % number, 'master', self.bridge)
        ip('link', 'set', 'crv%d' % number, 'up')
        ip('link', 'set', 'crvc%d' % number, 'netns', self.netns)
        ip('-n', self.netns, 'addr', 'add', self.client_ip + '/24', 'dev', 'crvc%d' % number)
        ip('-n', self.netns, 'link', 'set', 'crvc%d' % number, 'up')
        ip('-n', self.netns, 'link', 'set', 'lo', 'up')

    def vif(self):
        return ['mac=%s,bridge=%s,vifname=%s,ip=%s/24' % (self.mac, self.bridge, self.tap, self.guest_ip)]

    def tap_exists(self):
        return ip('link', 'show', self.tap, check=False).returncode == 0

    def probe(self, timeout_s=1):
        """One UDP request from the client netns; True when the guest answered it."""
        code = ('import socket,sys\n'
                's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(%f)\n'
                's.sendto(b"req=0",(sys.argv[1],7777))\n'
                'try: s.recvfrom(2048)\n'
                'except OSError: sys.exit(1)\n' % timeout_s)
        return subprocess.run(['ip', 'netns', 'exec', self.netns, 'python3', '-c', code, self.guest_ip],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def start_client(self, output, *args):
        """The UDP client (examples/udp-client.py) in the client netns, printing progress every
        100 ms into the file `output`; see answers() and stop_client()."""
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'examples', 'udp-client.py')
        with open(output, 'w') as out:
            client = subprocess.Popen(['ip', 'netns', 'exec', self.netns, 'python3', script, self.guest_ip,
                                       '--progress', '--progress-ms', '100'] + [str(a) for a in args],
                                      stdout=out, stderr=subprocess.PIPE, text=True)
        client.output = output
        return client

    @staticmethod
    def answers(client):
        """How many requests the client has had answered, by its last progress line."""
        with open(client.output) as f:
            lines = [line for line in f if line.startswith('progress ')]
        return int(lines[-1].split()[1].split('=')[1]) if lines else 0

    @staticmethod
    def stop_client(client, timeout=10):
        client.send_signal(signal.SIGTERM)
        try:
            _, err = client.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            client.kill()
            _, err = client.communicate()
            raise TestFailure('the UDP client did not stop: %s' % err.strip()[-300:])
        with open(client.output) as f:
            out = f.read()
        lines = [line for line in out.splitlines() if line.startswith('{')]
        if not lines:
            raise TestFailure('the UDP client printed no result (exit %s): %s' % (client.returncode, err.strip()[-300:]))
        return json.loads(lines[-1])

    def close(self):
        ip('netns', 'del', self.netns, check=False)
        ip('link', 'del', 'crv%d' % self.number, check=False)
        ip('link', 'del', self.bridge, check=False)


def check_replies(result):
    """Every request answered exactly once, in order, with the guest's counter going up by one each
    time. Returns a list of problems (empty: all good)."""
    problems = []
    replies = result['replies']
    if result['extra']:
        problems.append('%d replies twice or unasked: %s' % (len(result['extra']), result['extra'][:3]))
    counts = [n for _, n, _ in replies]
    jumps = [(a, b) for a, b in zip(counts, counts[1:]) if b != a + 1]
    if jumps:
        problems.append('the guest counter jumps %s' % jumps[:5])
    return problems


def wait_answering(network, timeout, what):
    """Until a UDP request from the client netns gets an answer."""
    wait_until(lambda: network.probe(), timeout, what, interval=0.1)
