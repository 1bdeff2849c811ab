"""A network namespace of the test's own, and partitions made in it with nftables.

Entering it (setns for this thread) puts every process the test starts afterwards in it: the
receive, the guests' processes, etcd. Its loopback carries the replication link and the ways to
the witness; cut() adds nftables rules to its input hook that drop a port's packets both ways, so
the link goes silent as when a network drops everything (no FIN, no reset, TCP retransmitting into
nothing), and heal() removes them. Leaving it returns this thread to the namespace it came from and
deletes the namespace (its rules go with it).
"""
import ctypes
import os
import subprocess

CLONE_NEWNET = 0x40000000
TABLE = 'colo_partition'


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), 'setns(CLONE_NEWNET)')


def _run(*argv, stdin=None):
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('%s: %s' % (' '.join(argv), (r.stderr or r.stdout).strip().splitlines()[-1:] or r.returncode))


class NetnsPartition:
    def __init__(self, name):
        self.name = name
        self._home = None
        self._cuts = {}  # label -> [nft rule text]

    def __enter__(self):
        _run('ip', 'netns', 'add', self.name)
        try:
            _run('ip', '-n', self.name, 'link', 'set', 'lo', 'up')
            self._home = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
            fd = os.open('/run/netns/' + self.name, os.O_RDONLY)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            _run('nft', '-f', '-', stdin='table inet %s {\n chain input {\n  type filter hook input priority 0; policy accept;\n }\n}\n' % TABLE)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self._home is not None:
            _setns(self._home)
            os.close(self._home)
            self._home = None
        subprocess.run(['ip', 'netns', 'del', self.name], capture_output=True)

    def cut_port(self, label, port):
        """Drops every TCP packet to or from `port` on this namespace's loopback."""
        self._cuts[label] = ['tcp dport %d drop' % port, 'tcp sport %d drop' % port]
        self._apply()

    def heal(self, label):
        self._cuts.pop(label, None)
        self._apply()

    def _apply(self):
        rules = ''.join('add rule inet %s input %s\n' % (TABLE, rule) for rules in self._cuts.values() for rule in rules)
        _run('nft', '-f', '-', stdin='flush chain inet %s input\n%s' % (TABLE, rules))
