#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), starts the offline sandbox and runs the lab's
# notebooks 00-05 headless. The executed notebooks land in ./runs/; the service keeps
# serving its page, and the sandbox keeps running, until you clean up (see the end).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$KIT_ROOT"
labkit sandbox up
labkit run --until 05 "$@"
python - <<'PY'
from labkit import sandbox

for dns_name, url in sandbox.status().load_balancers.items():
    print(f"\nThe lab's page: {url}  (load balancer {dns_name})")
PY
cat <<'MSG'

Do the lab yourself, in JupyterLab:  source .venv/bin/activate && labkit lab
When you are done:                   labkit cleanup && labkit sandbox down
MSG
