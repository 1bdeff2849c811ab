#!/usr/bin/env python3
"""The operations tier: colo-replicate run by the tools operators run it with (Pacemaker's resource
agent, ocf/colo-replicate), against real KVM guests on loopback.

    python3 tests/ops/run.py PATH/TO/colo-replicate [TEST...]

Prints `PASS name (details)`, `FAIL name: why` or `SKIP name: why` per test; exits 1 on any failure.
"""
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'e2e'))

from hosts import TestFailure, become_subreaper  # noqa: E402
from test_ocf import ocf_tester_missing, test_ocf_tester, test_transitions  # noqa: E402


def main(argv):
    if len(argv) < 2:
        print('usage: run.py PATH/TO/colo-replicate [TEST...]', file=sys.stderr)
        return 2
    binary = os.path.abspath(argv[1])
    become_subreaper()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit('ops: terminated'))
    # (name, test, a check returning why the machine cannot run it, or None)
    tests = [
        ('ocf-tester', test_ocf_tester, ocf_tester_missing),
        ('ocf-transitions', test_transitions, ocf_tester_missing),
    ]
    wanted = argv[2:]
    failed = 0
    for name, test, missing in tests:
        if wanted and name not in wanted:
            continue
        reason = missing()
        if reason is None and not os.access('/dev/kvm', os.R_OK | os.W_OK):
            reason = '/dev/kvm is not accessible'
        if reason:
            print('SKIP %s: %s' % (name, reason), flush=True)
            continue
        started = time.monotonic()
        try:
            details = test(binary)
            print('PASS %s (%s; %.1fs)' % (name, details, time.monotonic() - started), flush=True)
        except TestFailure as e:
            failed += 1
            print('FAIL %s: %s' % (name, e), flush=True)
        except Exception as e:  # a bug in the tier itself still counts as a failure, with its trace
            failed += 1
            print('FAIL %s: %s: %s' % (name, type(e).__name__, e), flush=True)
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
