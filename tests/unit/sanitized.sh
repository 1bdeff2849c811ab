#!/bin/bash
# The `unit-tsan` tier of `scons test` (tests/unit/SConscript): builds the unit tests with
# -fsanitize=SANITIZE into a build folder of their own (so the plain build is untouched and a
# second run rebuilds nothing), then runs them. Any sanitizer report fails the tier: the binary
# exits non-zero (TSAN: 66 at exit; ASAN/UBSAN: at the first report).
#   usage: sanitized.sh SANITIZE BUILD_DIR JOBS XEN
set -euo pipefail
sanitize=$1 build_dir=$2 jobs=$3 xen=$4
cd "$(dirname "$0")/../.."
mkdir -p "$build_dir"
log=$build_dir/sanitized-build.log
echo "building the unit tests with sanitize=$sanitize into $build_dir (log: $log)"
started=$SECONDS
if ! scons -j"$jobs" sanitize="$sanitize" build_dir="$build_dir" xen="$xen" "$build_dir/tests/unit/unit_tests" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "FAIL: the sanitize=$sanitize build failed"
    exit 1
fi
echo "built in $((SECONDS - started)) s"
# TSAN_OPTIONS, UBSAN_OPTIONS, ASAN_OPTIONS come from site_scons/colo_tests.py.
exec "$build_dir/tests/unit/unit_tests"
