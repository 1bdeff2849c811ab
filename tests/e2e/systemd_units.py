#!/usr/bin/env python3
"""The systemd units in systemd/ pass `systemd-analyze verify`, with the binary path they get at
install (@BINDIR@) pointing at the built binary (verify fails on a missing ExecStart binary).

    python3 tests/e2e/systemd_units.py PATH/TO/colo-replicate [UNIT_DIR]

Each template is verified as an instance (NAME@demo.service) with the units' own directory first
on the unit path, so their references to each other (Wants=, BindsTo=) resolve to these files. A
unit broken on purpose (a mistyped key, a missing binary) must fail the same check, so a verify
that passes everything cannot pass this tier. --man=no: the man pages are checked by the install,
not here (verify looks them up in the installed man database).
Prints `PASS name` or `FAIL name: why` per unit, exits 1 on any failure.
"""
import os
import subprocess
import sys
import tempfile

PLACEHOLDER = '@BINDIR@'


def instance(unit):
    return unit.replace('@.service', '@demo.service')


def verify(unit_dir, unit):
    """The output of a failed verify of `unit` from `unit_dir`, or None when it passes."""
    env = dict(os.environ, SYSTEMD_UNIT_PATH=unit_dir + ':')  # the trailing ':' keeps the system's paths
    r = subprocess.run(['systemd-analyze', 'verify', '--man=no', instance(unit)], cwd=unit_dir, env=env,
                       capture_output=True, text=True, timeout=60)
    output = (r.stdout + r.stderr).strip()
    # verify prints warnings for problems it does not count as errors: those fail here too.
    return None if r.returncode == 0 and not output else output or 'exit status %d' % r.returncode


def write_units(source_dir, target_dir, bindir, edit=None):
    units = sorted(f for f in os.listdir(source_dir) if f.endswith('.service'))
    for unit in units:
        with open(os.path.join(source_dir, unit)) as f:
            text = f.read().replace(PLACEHOLDER, bindir)
        if edit:
            text = edit(unit, text)
        with open(os.path.join(target_dir, unit), 'w') as f:
            f.write(text)
    return units


def main(argv):
    if len(argv) < 2:
        print('usage: systemd_units.py PATH/TO/colo-replicate [UNIT_DIR]', file=sys.stderr)
        return 2
    bindir = os.path.dirname(os.path.abspath(argv[1]))
    source = argv[2] if len(argv) > 2 else os.path.join(os.path.dirname(__file__), '..', '..', 'systemd')
    failed = 0
    with tempfile.TemporaryDirectory(prefix='colo-units-') as good:
        units = write_units(source, good, bindir)
        if not units:
            print('FAIL systemd-units: no *.service in %s' % source)
            return 1
        for unit in units:
            with open(os.path.join(good, unit)) as f:
                left = PLACEHOLDER in f.read()
            problem = 'a placeholder is left' if left else verify(good, unit)
            if problem:
                failed += 1
                print('FAIL %s: %s' % (unit, problem.replace('\n', ' | ')), flush=True)
            else:
                print('PASS %s (systemd-analyze verify)' % unit, flush=True)
    # The check itself: each way of breaking a unit must make verify fail.
    breakages = {
        'a mistyped key': lambda unit, text: text.replace('\nRestart=', '\nRestrat='),
        'a missing binary': lambda unit, text: text.replace(bindir + '/colo-replicate', bindir + '/no-such-binary'),
    }
    for what, edit in breakages.items():
        with tempfile.TemporaryDirectory(prefix='colo-units-broken-') as broken:
            units = write_units(source, broken, bindir, edit)
            passed = [u for u in units if verify(broken, u) is None]
            if passed:
                failed += 1
                print('FAIL systemd-units-self-check: verify passed %s with %s' % (', '.join(passed), what), flush=True)
            else:
                print('PASS systemd-units-self-check (%s fails verify in every unit)' % what, flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
