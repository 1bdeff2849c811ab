#!/bin/bash
# The demo behind `scons demo`: what colo-replicate can show on this build, for real.
# Usage: examples/demo.sh PATH/TO/colo-replicate
set -euo pipefail
bin=${1:?usage: demo.sh PATH/TO/colo-replicate}
here=$(cd "$(dirname "$0")" && pwd)
available() { ! "$bin" help "$1" | grep -q 'not available yet'; }

"$bin" --version
if ! available create; then
    echo "demo: this build cannot run guests yet ('create' is not built); showing the command table instead"
    "$bin" --help
    exit 0
fi
