"""Simulated hosts for the end-to-end tier: each host is a run directory (COLO_RUN_DIR) and every
command is the real `colo-replicate` binary, run exactly as an operator would.

Guests and receivers detach (fork + setsid), so they leave our process group. To still account for
every one of them, this process makes itself a child subreaper: the detached processes become our
children when their launcher exits, we can collect their exit status, and nothing outlives a test.
Cleanup kills, by pid, exactly the processes whose environment names one of the test's run dirs.
"""
import ctypes
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import traceback

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), 'prctl(PR_SET_CHILD_SUBREAPER)')


class TestFailure(Exception):
    """A check failed; the message is the one-line reason."""


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def wait_until(predicate, timeout, what, interval=0.02):
    """Polls predicate until it returns something true; fails the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailure('timed out after %.1fs waiting for %s' % (timeout, what))
        time.sleep(interval)


# --- processes we adopted as subreaper ---------------------------------------------------------
_exit_status = {}


def _record(pid, status):
    _exit_status[pid] = os.waitstatus_to_exitcode(status)


def reap_finished():
    """Collects every adopted child that has ended (never blocks)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _record(pid, status)


def alive(pid):
    if pid in _exit_status:
        return False
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            _record(pid, status)
            return False
        return True
    except ChildProcessError:
        pass  # not ours: look at /proc
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def exit_code(pid):
    """Exit code of an adopted process that has ended (negative: killed by that signal)."""
    return _exit_status.get(pid)


def wait_exit(pid, timeout, what):
    wait_until(lambda: not alive(pid), timeout, what)
    return exit_code(pid)


def processes_of(root):
    """Pids of live processes whose COLO_RUN_DIR lies under root."""
    key = b'COLO_RUN_DIR=' + os.fsencode(root)
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/environ' % entry, 'rb') as f:
                env = f.read()
        except OSError:
            continue
        if any(var.startswith(key) for var in env.split(b'\0')) and alive(int(entry)):
            found.append(int(entry))
    return found


def kill_all(root):
    pids = processes_of(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    reap_finished()
    return pids


# --- one host ----------------------------------------------------------------------------------
class Result:
    def __init__(self, argv, code, out, err):
        self.argv, self.code, self.out, self.err = argv, code, out, err

    def describe(self):
        text = (self.err.strip() or self.out.strip()).replace('\n', ' | ')
        return '`%s` exited %s: %s' % (' '.join(self.argv[1:]), self.code, text[:300])


# The commands that open a replication link: given the workspace's key unless told otherwise.
LINK_COMMANDS = ('protect', 'migrate', 'receive')


class Host:
    def __init__(self, binary, run_dir, key=None):
        """key: a key file every link command gets as --key (unless it names --key, --tls-cert
        or --insecure itself, or is run with clear=True)."""
        self.binary, self.run_dir, self.key = binary, run_dir, key
        os.makedirs(run_dir, exist_ok=True)

    def run(self, *args, timeout=60, env=None, clear=False):
        args = [str(a) for a in args]
        if (self.key and not clear and args and args[0] in LINK_COMMANDS
                and not {'--key', '--tls-cert', '--insecure'} & set(args)):
            args = [args[0], '--key', self.key] + args[1:]
        argv = [self.binary] + args
        env = dict(os.environ, **(env or {}), COLO_RUN_DIR=self.run_dir, COLO_STATE_DIR=os.path.join(self.run_dir, 'state'))
        try:
            p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               errors='replace', timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure('`%s` did not finish within %ds' % (' '.join(argv[1:]), timeout))
        return Result(argv, p.returncode, p.stdout, p.stderr)

    def ok(self, *args, timeout=60, env=None, clear=False):
        r = self.run(*args, timeout=timeout, env=env, clear=clear)
        check(r.code == 0, r.describe())
        return r

    def create(self, config, console_log, *extra):
        r = self.ok('create', config, '--console-log', console_log, *extra)
        m = re.search(r'\(pid (\d+)\)', r.out)
        check(m, 'create printed no pid: %r' % r.out)
        return int(m.group(1))

    def restore(self, file, console_log):
        r = self.ok('restore', file, '--console-log', console_log)
        m = re.search(r'\(pid (\d+)\)', r.out)
        check(m, 'restore printed no pid: %r' % r.out)
        return int(m.group(1))

    def receive(self, console_log, heartbeat_ms, *extra, env=None, clear=False):
        """Starts a detached receiver on an ephemeral loopback port; returns (address, pid, log)."""
        r = self.ok('receive', '-l', '127.0.0.1:0', '--console-log', console_log,
                    '--heartbeat-timeout', heartbeat_ms, *extra, env=env, clear=clear)
        m = re.search(r'Listening on (\S+) \(pid (\d+); log: ([^)]+)\)', r.out)
        check(m, 'receive printed no address/pid/log: %r' % r.out)
        address, pid, log = m.group(1), int(m.group(2)), m.group(3)
        check(not address.endswith(':0'), 'receive reported port 0: ' + address)
        return address, pid, log

    def guests(self):
        """{name: state} from `list --json`."""
        r = self.ok('list', '--json', timeout=30)
        try:
            return {g['name']: g['state'] for g in json.loads(r.out)}
        except (ValueError, KeyError, TypeError) as e:
            raise TestFailure('list --json printed something that is not the expected JSON (%s): %r' % (e, r.out))

    def status(self, name):
        """`status --json NAME` as a dict, or None when it fails (e.g. the guest is gone)."""
        r = self.run('status', '--json', name, timeout=30)
        if r.code != 0:
            return None
        try:
            return json.loads(r.out)
        except ValueError:
            raise TestFailure('status --json printed something that is not JSON: %r' % r.out)

    def state(self, name):
        s = self.status(name)
        return s.get('state') if s else None


class LinkProxy:
    """A TCP relay on loopback between a primary and its secondary whose network can vanish the
    way a dead host's does: after cut() it forwards nothing more, either way, and closes nothing,
    so neither side ever sees a FIN or a reset (a process killed after the cut closes its socket
    to us only). Whatever it had read but not yet forwarded is lost, like packets in flight.
    tamper(towards_target, offset, data) -> bytes, when given, may change, drop or repeat what
    passes (a man in the middle); offset counts the bytes already read in that direction."""

    def __init__(self, target, tamper=None):
        self._tamper = tamper
        host, port = target.rsplit(':', 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.address = '127.0.0.1:%d' % self._listener.getsockname()[1]
        self._lock = threading.Lock()  # held while forwarding, so cut() returns only once nothing moves
        self._cut = False
        self._closing = threading.Event()
        self._sockets = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def cut(self):
        with self._lock:
            self._cut = True

    def close(self):
        self._closing.set()
        self._thread.join()
        for s in self._sockets + [self._listener]:
            s.close()

    def _serve(self):
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        while not self._closing.is_set():
            for key, _ in selector.select(0.05):
                if key.fileobj is self._listener:
                    inside, _ = self._listener.accept()
                    outside = socket.create_connection(self._target)
                    self._sockets += [inside, outside]
                    selector.register(inside, selectors.EVENT_READ, [outside, True, 0])
                    selector.register(outside, selectors.EVENT_READ, [inside, False, 0])
                    continue
                with self._lock:
                    if self._cut:
                        selector.unregister(key.fileobj)  # silence: read nothing, close nothing
                        continue
                    try:
                        data = key.fileobj.recv(65536)
                    except OSError:
                        data = b''
                    peer, towards_target, offset = key.data
                    try:
                        if data:
                            key.data[2] += len(data)
                            if self._tamper:
                                data = self._tamper(towards_target, offset, data)
                            peer.sendall(data)
                            continue
                        peer.shutdown(socket.SHUT_WR)  # an end before the cut is passed on
                    except OSError:
                        pass
                    selector.unregister(key.fileobj)
        selector.close()


class Workspace:
    """A fresh temp dir for one test, with its hosts; everything started under it dies with it."""

    def __init__(self, binary, label, tls=True):
        """tls: the hosts' links run over TLS with one pre-shared key (`keygen`), as an operator's
        would; False: in clear (loopback needs no key)."""
        self.binary = binary
        self.root = tempfile.mkdtemp(prefix='colo-e2e-%s-' % label)
        self.failed = False
        self.key = None
        if tls:
            self.key = os.path.join(self.root, 'link.key')
            Host(binary, os.path.join(self.root, 'keygen')).ok('keygen', self.key)

    def host(self, name):
        return Host(self.binary, os.path.join(self.root, name), self.key)

    def path(self, name):
        return os.path.join(self.root, name)

    def write_config(self, filename, **keys):
        lines = []
        for k, v in keys.items():
            if isinstance(v, list):  # xl.cfg's list of strings: vif = [ '...', '...' ]
                lines.append('%s = [ %s ]' % (k, ', '.join("'%s'" % item for item in v)))
            else:
                lines.append('%s = %s' % (k, '"%s"' % v if isinstance(v, str) else v))
        path = self.path(filename)
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return path

    def close(self, keep=False):
        """Kills what is left; returns the pids it had to kill. keep: leave the files for a post-mortem."""
        leftovers = kill_all(self.root)
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
        return leftovers


def read_bytes(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return b''


def one_line_error(result):
    """The message of a failed command, checked to be exactly one non-empty line on stderr."""
    check(result.code != 0, '%s: expected a failure' % result.describe())
    lines = [l for l in result.err.split('\n') if l.strip()]
    check(len(lines) == 1, '`%s` printed %d error lines, not one: %r'
          % (' '.join(result.argv[1:]), len(lines), result.err[:300]))
    return lines[0]


def run_tests(tests, binary, wanted):
    """Runs the (name, test) pairs named in `wanted` (all when empty), each test(binary) returning its
    details, or 'SKIP: why' when the machine cannot set the case up; prints PASS, FAIL or SKIP per
    test and returns the exit code (1 on any failure)."""
    failed = 0
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        for name, _ in tests:
            print('SKIP %s: /dev/kvm is not accessible' % name, flush=True)
        return 0
    for name, test in tests:
        if wanted and name not in wanted:
            continue
        started = time.monotonic()
        try:
            details = test(binary)
            if details.startswith('SKIP: '):  # the machine cannot set the case up
                print('SKIP %s: %s' % (name, details[len('SKIP: '):]), flush=True)
                continue
            print('PASS %s (%s; %.1fs)' % (name, details, time.monotonic() - started), flush=True)
        except TestFailure as e:
            failed += 1
            print('FAIL %s: %s' % (name, e), flush=True)
        except Exception as e:  # a bug in the tier itself still counts as a failure, with its trace
            failed += 1
            print('FAIL %s: %s: %s' % (name, type(e).__name__, e), flush=True)
            traceback.print_exc()
    return 1 if failed else 0
