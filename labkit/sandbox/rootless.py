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

import ctypes
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from labkit.errors import BackendError
from labkit.sandbox.context import LOOPBACK, Settings

ENV_VARIABLE = "LABKIT_SANDBOX_ROOTLESSKIT"

#: How many load balancer listener ports are forwarded (the lab makes one).
LB_PORTS_FORWARDED = 4

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


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


def enter_namespaces(pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that moves the child into ``pid``'s user and network namespaces.

    Done between fork and exec, so the sandbox's command line (what its pid record
    proves) is the usual one.
    """
    user_ns = f"/proc/{pid}/ns/user"
    net_ns = f"/proc/{pid}/ns/net"

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        for path, kind in ((user_ns, _CLONE_NEWUSER), (net_ns, _CLONE_NEWNET)):
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.setns(fd, kind) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns {path}: {os.strerror(error)}")
            finally:
                os.close(fd)

    return enter


def prepare(settings: Settings) -> Callable[[], None] | None:
    """For ``lifecycle.up``: forward the ports, return the ``preexec_fn`` (None: not used)."""
    state = state_dir()
    if state is None:
        return None
    pid = child_pid(state)
    forward_ports(state, settings)
    return enter_namespaces(pid)
