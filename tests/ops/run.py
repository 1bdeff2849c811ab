#!/usr/bin/env python3
"""The operations tier: colo-replicate run by the tools operators run it with (Pacemaker's resource
agent, ocf/colo-replicate), against real KVM guests on loopback.

    python3 tests/ops/run.py PATH/TO/colo-replicate [TEST...]

Prints `PASS name (details)`, `FAIL name: why` or `SKIP name: why` per test; exits 1 on any failure.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'e2e'))

from hosts import run_tests  # noqa: E402
from test_ocf import test_ocf_tester, test_transitions  # noqa: E402


def main(argv):
    if len(argv) < 2:
        print('usage: run.py PATH/TO/colo-replicate [TEST...]', file=sys.stderr)
        return 2
    # Not a subreaper (as the e2e tier is): the agent's daemons are orphaned to init and reaped
    # there, as under Pacemaker; a zombie kept for us would still look alive to `status`.
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so each test's cleanup still runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit('ops: terminated'))
    tests = [
        ('ocf-tester', test_ocf_tester),
        ('ocf-transitions', test_transitions),
    ]
    return run_tests(tests, os.path.abspath(argv[1]), argv[2:])


if __name__ == '__main__':
    sys.exit(main(sys.argv))
