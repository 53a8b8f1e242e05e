#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the whole test suite:
# unit tests, the real sandbox, the notebooks end to end, and the browser tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -q`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$KIT_ROOT"
set +e
python -m pytest -ra "$@"
status=$?
set -e
# pytest's 5 means it collected no test: that is a failure for us, not a pass.
[ "$status" = 5 ] && echo "no tests ran" && exit 1
exit "$status"
