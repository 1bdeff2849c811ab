"""Runs colo-replicate's test tiers and prints one summary line.

A tier is a command. A doctest binary reports through its own summary line; any other command
prints one line per test: `PASS name`, `FAIL name: why` or `SKIP name: why`. A tier whose
requirement is missing (no /dev/kvm, no qemu) is skipped as a whole with the reason printed.
The last line is `tests: N passed, N failed[, N skipped]`; the exit code is 1 on any failure.
"""
import atexit
import os
import re
import subprocess
import sys
import time

DOCTEST_SUMMARY = re.compile(
    r'\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed\s*\|\s*(\d+) skipped')
LINE_RESULT = re.compile(r'^(?:\S+\| )?(PASS|FAIL|SKIP)\b(.*)$')


class Tier:
    """name: tier name; command: argv (strings or nodes); deps: nodes to build first;
    requires: callable returning None when the tier can run, or the reason it cannot;
    doctest: whether `command` is a doctest binary."""

    def __init__(self, name, command, deps, requires=None, doctest=False, timeout=3600):
        self.name, self.command, self.deps = name, command, deps
        self.requires, self.doctest, self.timeout = requires, doctest, timeout


def needs_kvm():
    if not os.path.exists('/dev/kvm'):
        return 'no /dev/kvm on this machine'
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        return '/dev/kvm is not accessible to this user'
    return None


def needs_programs(*names):
    def check():
        import shutil
        missing = [n for n in names if shutil.which(n) is None]
        return ('missing ' + ', '.join(missing) + ' (see debian-packages.txt)') if missing else None
    return check


def _run_tier(tier, top):
    reason = tier.requires() if tier.requires else None
    if reason:
        print('SKIP tier %s: %s' % (tier.name, reason), flush=True)
        return 0, 0, 1
    argv = [str(c) for c in tier.command]
    print('=== tier %s: %s' % (tier.name, ' '.join(argv)), flush=True)
    started = time.time()
    passed = failed = skipped = 0
    summary = None
    proc = subprocess.Popen(argv, cwd=top, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors='replace')
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if tier.doctest:
                m = DOCTEST_SUMMARY.search(line)
                if m:
                    summary = tuple(int(x) for x in m.groups())
            else:
                m = LINE_RESULT.match(line.rstrip('\n'))
                if m:
                    kind = m.group(1)
                    passed += kind == 'PASS'
                    failed += kind == 'FAIL'
                    skipped += kind == 'SKIP'
        rc = proc.wait(timeout=tier.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        print('FAIL tier %s: timed out after %ds' % (tier.name, tier.timeout))
        return passed, failed + 1, skipped
    if tier.doctest:
        if summary is None:
            print('FAIL tier %s: exited %d without a doctest summary' % (tier.name, rc))
            return 0, 1, 0
        _, passed, failed, skipped = summary
    if rc != 0 and failed == 0:
        print('FAIL tier %s: exited %d' % (tier.name, rc))
        failed = 1
    print('=== tier %s: %d passed, %d failed, %d skipped (%.1fs)'
          % (tier.name, passed, failed, skipped, time.time() - started), flush=True)
    return passed, failed, skipped


def sanitizer_environment(top, reports):
    """How a sanitized build's binaries report (`sanitize=`, and the sanitized tiers): every
    report fails the run, with a stack. `reports`: a folder for the reports (they then go to
    files there, also from the e2e tier's background guest processes, whose own logs are
    deleted with their test), or None for stderr. The caller's own settings win."""
    log = ' log_path=%s' % os.path.join(reports, 'report') if reports else ''
    return {
        # TSAN exits 66 at the end when it reported anything; tests/tsan.supp says what it is told
        # to ignore, and why.
        'TSAN_OPTIONS': 'second_deadlock_stack=1 suppressions=%s%s' % (os.path.join(top, 'tests', 'tsan.supp'), log),
        # UBSAN only prints and goes on unless told to stop.
        'UBSAN_OPTIONS': 'halt_on_error=1 print_stacktrace=1' + log,
        'ASAN_OPTIONS': 'detect_leaks=1 strict_string_checks=1' + log,
    }


def _sanitizer_reports(reports):
    """Prints every report file in `reports`; returns how many there were."""
    if not reports or not os.path.isdir(reports):
        return 0
    found = sorted(os.listdir(reports))
    for name in found:
        with open(os.path.join(reports, name), errors='replace') as f:
            sys.stdout.write(f.read())
        print('FAIL sanitizer report %s' % os.path.join(reports, name))
    return len(found)


def run_tiers(tiers, top, reports=None):
    if reports:
        import shutil
        shutil.rmtree(reports, ignore_errors=True)
        os.makedirs(reports)
    for key, value in sanitizer_environment(top, reports).items():
        os.environ.setdefault(key, value)
    totals = [0, 0, 0]
    for tier in tiers:
        for i, n in enumerate(_run_tier(tier, top)):
            totals[i] += n
    totals[1] += _sanitizer_reports(reports)
    line = 'tests: %d passed, %d failed' % (totals[0], totals[1])
    if totals[2]:
        line += ', %d skipped' % totals[2]
    # SCons prints its own closing words after the last action; the summary must be the last
    # line of `scons test`, so it is printed at interpreter exit.
    atexit.register(lambda: print(line, flush=True))
    return 1 if totals[1] else 0


def define_test_alias(env, tiers, selected):
    if selected:
        names = {t.name for t in tiers}
        bad = [s for s in selected if s not in names]
        if bad:
            print('scons: unknown test tier(s) %s (have: %s)' % (', '.join(bad), ', '.join(sorted(names))))
            env.Exit(2)
        tiers = [t for t in tiers if t.name in selected]
    top = env.Dir('#').abspath

    # A sanitized build collects its reports here (sanitizer_environment).
    reports = os.path.join(top, env['build_dir'], 'sanitizer-reports') if env['sanitize'] else None

    def action(target, source, env):
        return run_tiers(tiers, top, reports)

    deps = [t.deps for t in tiers]
    run = env.Command('test-run', deps, env.Action(action, 'running tests'))
    env.AlwaysBuild(run)
    env.Alias('test', run)
