"""Run the sandbox beside a learner's rootless Docker Engine (the classroom's set-up).

A rootless ``dockerd`` lives in its own network namespace (made by RootlessKit), so the
``127.0.0.1`` it pushes to and pulls from is not the host's. For ``docker push
127.0.0.1:<registry port>/…`` to reach the learner's own registry, the sandbox is started
inside that namespace, and its API, registry and load balancer ports are forwarded to the
host's loopback by RootlessKit's port driver, where the learner's kernel calls them.

``LABKIT_SANDBOX_ROOTLESSKIT`` names RootlessKit's state directory (it holds
``child_pid`` and ``api.sock``); unset, the sandbox starts as usual.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from labkit.errors import BackendError
from labkit.sandbox.context import LOOPBACK, Settings

ENV_VARIABLE = "LABKIT_SANDBOX_ROOTLESSKIT"

#: How many load balancer listener ports are forwarded (the lab makes one).
LB_PORTS_FORWARDED = 4


def state_dir() -> Path | None:
    value = os.environ.get(ENV_VARIABLE)
    return Path(value) if value else None


def child_pid(state: Path) -> int:
    try:
        return int((state / "child_pid").read_text().strip())
    except (OSError, ValueError):
        raise BackendError(
            "Your Docker Engine (rootless) is not running.",
            why=f"No RootlessKit child process is recorded in {state}.",
            fix="Ask the instructor to restart your server (hub: File > Hub Control Panel > "
            "Stop My Server, then Start My Server).",
        ) from None


def forwarded_ports(settings: Settings) -> list[int]:
    lbs = range(settings.lb_port, settings.lb_port + LB_PORTS_FORWARDED)
    return [settings.api_port, settings.registry_port, *lbs]


def forward_ports(state: Path, settings: Settings) -> None:
    """Host 127.0.0.1:P → the namespace's 127.0.0.1:P for each sandbox port (idempotent)."""

    def rootlessctl(*args: str) -> subprocess.CompletedProcess[str]:
        command = ["rootlessctl", "--socket", str(state / "api.sock"), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    listed = rootlessctl("list-ports").stdout
    for port in forwarded_ports(settings):
        if f"{LOOPBACK}:{port}" in listed:
            continue
        done = rootlessctl("add-ports", f"{LOOPBACK}:{port}:{port}/tcp")
        if done.returncode != 0:
            raise BackendError(
                f"The sandbox port {port} could not be forwarded from the Docker namespace.",
                why=done.stderr.strip() or done.stdout.strip(),
                fix="Another program may use that port: restart your server from the hub.",
            )


def entering_namespaces(pid: int) -> list[str]:
    """The command prefix that runs a program in ``pid``'s user and network namespaces.

    ``nsenter`` joins them and execs the program, so the sandbox's command line (what its
    pid record proves) is the usual one; no Python runs between fork and exec (a
    ``preexec_fn`` may deadlock in a process with threads). The learner keeps their own
    credentials: their user owns those namespaces.
    """
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        raise BackendError(
            "The sandbox cannot join your Docker Engine's network: nsenter is missing.",
            fix="Ask the instructor to install util-linux (it provides nsenter).",
        )
    return [nsenter, f"--target={pid}", "--user", "--net", "--preserve-credentials", "--"]


def prepare(settings: Settings) -> list[str]:
    """For ``lifecycle.up``: forward the ports, return the command prefix (empty: none)."""
    state = state_dir()
    if state is None:
        return []
    pid = child_pid(state)
    forward_ports(state, settings)
    return entering_namespaces(pid)
