#!/usr/bin/env python3
"""A throwaway etcd for tests: the witness that names a guest's owner (issue 13 item 4).

    with EtcdServer() as etcd:          # etcd on 127.0.0.1, free ports, a temporary data dir
        colo_replicate('protect', '--witness', etcd.url, ...)
        etcd.pause()                    # SIGSTOP: etcd holds its connections and says nothing
        etcd.resume()                   # SIGCONT
        etcd.owner('web1')              # ('host-a:123:uuid', 7) or None, read over HTTP
        etcd.kill()                     # SIGKILL: connections refused from now on

start() returns once etcd answers a read (polled, with a deadline), or raises EtcdUnavailable with
the last lines of etcd's log. An absent `etcd` binary is EtcdUnavailable too: it is a declared
dependency (etcd-server in debian-packages.txt), so a test that needs it fails, it does not skip.

`wrap` runs etcd under another command, e.g. ('ip', 'netns', 'exec', 'ns-w'); `host` is then the
address it listens on inside, and readiness is still polled from here (so `host` must be
reachable from the test's namespace). Ports: free ones on `host` unless given.

As a command, for tests in other languages (tests/witness/ drives it from C++):
    python3 etcd_server.py serve
prints `ready URL PID` once etcd answers, then obeys one command a line on stdin (pause, resume,
kill, stop), answering `ok` or `error: why`; end of input stops etcd and removes its files.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEFAULT_READY_TIMEOUT = 20.0  # etcd 3.4 answers about 1 s after it starts (its first election)


class EtcdUnavailable(Exception):
    """etcd is not installed, did not start, or did not answer in time; the message says which."""


def free_port(host):
    with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _b64(text):
    return base64.b64encode(text.encode()).decode()


class EtcdServer:
    def __init__(self, host='127.0.0.1', client_port=None, peer_port=None, wrap=(), ready_timeout=DEFAULT_READY_TIMEOUT,
                 keep=False, extra_client_ports=0):
        """extra_client_ports: that many more client ports (self.extra_ports), e.g. one per host, so a
        test can cut one host's way to the witness by port and leave the other's."""
        self.host, self.wrap, self.ready_timeout, self.keep = host, tuple(wrap), ready_timeout, keep
        self.extra_count, self.extra_ports = extra_client_ports, []
        self._ports = (client_port, peer_port)
        self.client_port = self.peer_port = None
        self.proc = None
        self.dir = None

    # --- life ------------------------------------------------------------------------------
    def start(self):
        if shutil.which('etcd') is None:
            raise EtcdUnavailable('etcd is not installed (apt-get install etcd-server; it is in debian-packages.txt)')
        # A free port can be taken between our probe and etcd's bind: then try other ports.
        attempts = 1 if all(self._ports) else 3
        for attempt in range(attempts):
            self._spawn()
            try:
                self._wait_ready()
                return self
            except EtcdUnavailable as e:
                self.stop()
                if attempt + 1 == attempts or 'address already in use' not in str(e):
                    raise
        return self

    def _spawn(self):
        self.client_port = self._ports[0] or free_port(self.host)
        self.peer_port = self._ports[1] or free_port(self.host)
        self.extra_ports = [free_port(self.host) for _ in range(self.extra_count)]
        self.dir = tempfile.mkdtemp(prefix='colo-etcd-')
        peer_url = 'http://%s:%d' % (self._bracketed(), self.peer_port)
        listen = ','.join([self.http_url] + ['http://%s:%d' % (self._bracketed(), p) for p in self.extra_ports])
        argv = list(self.wrap) + [
            'etcd', '--name', 'witness', '--data-dir', os.path.join(self.dir, 'data'),
            '--listen-client-urls', listen, '--advertise-client-urls', self.http_url,
            '--listen-peer-urls', peer_url, '--initial-advertise-peer-urls', peer_url,
            '--initial-cluster', 'witness=' + peer_url, '--initial-cluster-state', 'new']
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        last = 'no answer yet'
        while True:
            if self.proc.poll() is not None:
                raise EtcdUnavailable('etcd exited with status %d before it answered: %s'
                                      % (self.proc.returncode, self.log_tail()))
            try:
                self._post('/v3/kv/range', {'key': _b64('/colo-replicate/ready-probe')}, timeout=1.0)
                return
            except (OSError, http.client.HTTPException, ValueError) as e:
                last = str(e) or type(e).__name__
            if time.monotonic() > deadline:
                raise EtcdUnavailable('etcd at %s did not answer within %.0f s (%s): %s'
                                      % (self.http_url, self.ready_timeout, last, self.log_tail()))
            time.sleep(0.02)

    def pause(self):
        """SIGSTOP: etcd keeps its sockets (connections are accepted by the kernel) but answers nothing.
        Returns once every thread of etcd has stopped (a request sent before that may be answered)."""
        os.kill(self.pid, signal.SIGSTOP)
        self._wait_state(lambda states: states and all(s in 'Tt' for s in states), 'stopped')

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)
        self._wait_state(lambda states: not any(s in 'Tt' for s in states), 'running')

    def _thread_states(self):
        """The state letter of each of etcd's threads (/proc/PID/task/*/stat), [] once it is gone."""
        states = []
        try:
            tasks = os.listdir('/proc/%d/task' % self.pid)
        except OSError:
            return states
        for task in tasks:
            try:
                with open('/proc/%d/task/%s/stat' % (self.pid, task)) as f:
                    states.append(f.read().rsplit(')', 1)[1].split()[0])
            except (OSError, IndexError):
                pass
        return states

    def _wait_state(self, done, what, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not done(self._thread_states()):
            if time.monotonic() > deadline:
                raise EtcdUnavailable('etcd (pid %d) not %s %.0f s after the signal' % (self.pid, what, timeout))
            time.sleep(0.001)

    def kill(self):
        """SIGKILL, and waits for it to be gone: from then on its port refuses connections."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        """Ends etcd (paused or not) and removes its files unless keep. Safe to call again."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- what tests look at ----------------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid

    @property
    def url(self):
        """For --witness: etcd://HOST:PORT."""
        return 'etcd://%s:%d' % (self._bracketed(), self.client_port)

    @property
    def http_url(self):
        return 'http://%s:%d' % (self._bracketed(), self.client_port)

    @property
    def log_path(self):
        return os.path.join(self.dir, 'etcd.log')

    def log_tail(self, lines=3):
        try:
            with open(self.log_path, 'rb') as f:
                text = f.read().decode(errors='replace').strip().splitlines()
        except OSError:
            return '(no log)'
        return ' | '.join(text[-lines:]) or '(empty log)'

    def owner(self, name, prefix=''):
        """(owner id, mod_revision) of guest `name`'s key, or None when nobody owns it."""
        return self.get('%s/colo-replicate/%s/owner' % (prefix, name))

    def get(self, key, timeout=2.0):
        answer = self._post('/v3/kv/range', {'key': _b64(key)}, timeout)
        kvs = answer.get('kvs', [])
        if not kvs:
            return None
        kv = kvs[0]
        return base64.b64decode(kv.get('value', '')).decode(), int(kv['mod_revision'])

    def put(self, key, value, timeout=2.0):
        """Sets `key` (a test playing a third owner); returns the new revision."""
        answer = self._post('/v3/kv/put', {'key': _b64(key), 'value': _b64(value)}, timeout)
        return int(answer['header']['revision'])

    def _bracketed(self):
        return '[%s]' % self.host if ':' in self.host else self.host

    def _post(self, path, body, timeout):
        connection = http.client.HTTPConnection(self._bracketed().strip('[]'), self.client_port, timeout=timeout)
        try:
            connection.request('POST', path, json.dumps(body), {'Content-Type': 'application/json'})
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                raise ValueError('etcd answered %d: %s' % (response.status, data[:200].decode(errors='replace')))
            return json.loads(data)
        finally:
            connection.close()


def serve():
    """`serve`: see the module's help. Exit status 1 when etcd did not start."""
    etcd = EtcdServer()
    try:
        etcd.start()
    except EtcdUnavailable as e:
        print('error: %s' % e, flush=True)
        return 1
    try:
        print('ready %s %d' % (etcd.url, etcd.pid), flush=True)
        actions = {'pause': etcd.pause, 'resume': etcd.resume, 'kill': etcd.kill, 'stop': etcd.stop}
        for line in sys.stdin:
            command = line.strip()
            try:
                actions[command]()
                print('ok', flush=True)
            except KeyError:
                print('error: unknown command %r (pause, resume, kill, stop)' % command, flush=True)
            except (OSError, EtcdUnavailable) as e:
                print('error: %s: %s' % (command, e), flush=True)
    finally:
        etcd.stop()
    return 0


if __name__ == '__main__':
    if sys.argv[1:] != ['serve']:
        sys.stderr.write('usage: %s serve\n' % sys.argv[0])
        sys.exit(2)
    sys.exit(serve())
