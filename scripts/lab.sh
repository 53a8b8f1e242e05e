#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), starts the offline sandbox and runs every lab
# notebook headless. The executed notebooks land in ./runs/; the sandbox keeps running
# so you can open JupyterLab on the same lab (stop it with: labkit sandbox down).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$KIT_ROOT"
labkit sandbox up
labkit run "$@"
