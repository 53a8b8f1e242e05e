#!/usr/bin/env bash
# Writes constraints.txt: the exact version of every package that labkit and its dev tools
# install, read from an environment whose tests pass (default: .venv, or $LABKIT_VENV).
# scripts/setup.sh, and so CI, install with it, so a fresh machine gets those versions.
# Run it after changing the dependencies in pyproject.toml, with that environment updated
# (pip install -e .[dev]) and the tests green; commit constraints.txt with the change.
set -euo pipefail

KIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LABKIT_VENV:-$KIT_ROOT/.venv}"

"$VENV/bin/python" - "$KIT_ROOT/pyproject.toml" "$KIT_ROOT/constraints.txt" <<'PY'
"""Walk pyproject's requirements (with the dev extra) through the installed packages."""

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pyproject_path, out_path = map(Path, sys.argv[1:])
project = tomllib.loads(pyproject_path.read_text())["project"]
roots = project["dependencies"] + project["optional-dependencies"]["dev"]

pinned: dict[str, str] = {}
walked: set[tuple[str, str]] = set()
queue = [(Requirement(r), "") for r in roots]
while queue:
    requirement, extra = queue.pop()
    if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
        continue
    name = canonicalize_name(requirement.name)
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        sys.exit(f"{name} is required but not installed in {sys.prefix}: pip install -e .[dev]")
    pinned[name] = dist.version
    for wanted in {""} | set(requirement.extras):
        if (name, wanted) in walked:
            continue
        walked.add((name, wanted))
        queue += [(Requirement(r), wanted) for r in dist.requires or []]

header = (
    "# The versions the tests passed with: written by scripts/lock.sh, read by scripts/setup.sh\n"
    "# (pip install -c constraints.txt -e .[dev]). Do not edit by hand.\n"
)
lines = [f"{name}=={version}\n" for name, version in sorted(pinned.items())]
out_path.write_text(header + "".join(lines))
print(f"{out_path}: {len(lines)} packages from {sys.prefix}")
PY
