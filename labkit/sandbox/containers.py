"""Docker Engine as the sandbox sees it: a client or nothing, and the sandbox's containers.

Kept apart from :mod:`labkit.sandbox.server` so that ``labkit sandbox down`` (and ``up``,
when a port is taken) can clear what a killed sandbox left without importing moto and boto3.
"""

from __future__ import annotations

import contextlib
from typing import Any

from labkit.sandbox.context import CONTAINER_LABEL


def docker_or_none() -> Any | None:
    """A Docker client when the daemon answers; None puts the sandbox in API-only mode."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception:  # any failure means the same thing here: no Docker
        return None


def remove_sandbox_containers(docker_client: Any, home: str) -> int:
    """Remove every container a sandbox with this home started; returns how many."""
    if docker_client is None:
        return 0
    containers = docker_client.containers.list(
        all=True, filters={"label": f"{CONTAINER_LABEL}={home}"}
    )
    for container in containers:
        with contextlib.suppress(Exception):  # already gone
            container.remove(force=True)
    return len(containers)
