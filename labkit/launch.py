"""``labkit lab``: the learner's way in, one command for whoever runs it (root included).

It starts the sandbox if that is the backend, then JupyterLab on the notebooks folder,
bound to 127.0.0.1 with a token, with the lab's AWS environment exported, so JupyterLab
terminals and ``!aws`` cells reach the same backend as the notebooks. It prints the URL
to open. Running as root (a container, a fresh VM after ``bash scripts/lab.sh``) adds
``--allow-root``; without a display no browser is opened.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.config import BACKEND_VARIABLE, DEFAULT_BACKEND_VARIABLE
from labkit.errors import BackendError, InputError, PrerequisiteError
from labkit.kit_files import copy_notebooks, editable_in_place, is_installed_copy, kit_notebooks
from labkit.lab import Lab
from labkit.names import NOTEBOOKS
from labkit.sandbox.context import port_is_free

#: JupyterLab's usual port; the next free one is taken if it is busy.
DEFAULT_PORT = 8888
#: The learner's copy of read-only notebooks, in their home folder.
WORKSPACE_NAME = "labkit-notebooks"
#: Jupyter's own variable for the login token (jupyter_server reads it at start-up).
TOKEN_VARIABLE = "JUPYTER_TOKEN"
#: How long JupyterLab may take to answer before labkit gives up.
START_TIMEOUT_SECONDS = 120


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def has_display() -> bool:
    """Could a browser window open here? (macOS and Windows: yes; Linux: X or Wayland.)"""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def free_port_from(first: int, tries: int = 50) -> int:
    for port in range(first, first + tries):
        if port_is_free(port):
            return port
    raise BackendError(
        f"No free port on 127.0.0.1 between {first} and {first + tries - 1}.",
        why="Other programs (other JupyterLab servers?) hold them.",
        fix="Stop one of them, or pass --port with a free port.",
    )


def lab_environment(lab: Lab, pin_backend: bool = False) -> dict[str, str]:
    """What JupyterLab, its kernels and its terminals inherit: the backend and the
    variables that point the ``aws`` CLI and boto3 at it.

    The backend is the session's default (LABKIT_DEFAULT_BACKEND), so a choice made in
    notebook 00 still holds (and the sandbox's AWS_ENDPOINT_URL does not make it
    "endpoint"); ``pin_backend`` (``labkit lab -p backend …``) exports LABKIT_BACKEND,
    which comes first."""
    env = {DEFAULT_BACKEND_VARIABLE: lab.backend.value, **lab.aws_environment()}
    if pin_backend:
        env[BACKEND_VARIABLE] = lab.backend.value
    return env


@dataclass(frozen=True)
class LabServer:
    """How JupyterLab is started, and where to find it."""

    notebooks: Path
    port: int
    token: str
    open_browser: bool
    allow_root: bool

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL to open: notebook 00, logged in with the token."""
        return f"{self.base_url}/lab/tree/{NOTEBOOKS[0]}?token={self.token}"

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.notebooks}",
            f"--LabApp.default_url=/lab/tree/{NOTEBOOKS[0]}",
        ]
        if not self.open_browser:
            command.append("--no-browser")
        if self.allow_root:
            command.append("--allow-root")
        return command

    def secret_environment(self) -> dict[str, str]:
        """The token, for JupyterLab's environment: not on its command line, which every
        user of the host can read (``ps``); a process's environment only its owner can."""
        return {TOKEN_VARIABLE: self.token}


def default_notebooks() -> Path:
    """The kit's notebooks (the clone's, or the installed kit's copy), from any folder."""
    return kit_notebooks()


def writable_notebooks(notebooks: Path) -> Path:
    """``notebooks`` if the lab may be worked there (notebook 03 saves a task definition
    beside the notebooks), else the learner's own copy in their home folder: for the
    installed kit's copy, or a folder this user cannot write to.

    The copy is made once; later runs add only what is missing (a notebook new in the kit),
    so a learner's edited notebooks are never overwritten."""
    if editable_in_place(notebooks, NOTEBOOKS[0]):
        return notebooks
    workspace = Path.home() / WORKSPACE_NAME
    try:
        copy_notebooks(notebooks, workspace)
    except OSError as exc:
        raise PrerequisiteError(
            f"Could not copy the notebooks to {workspace}.",
            why=f"{notebooks} is not to be worked in, and the copy failed: {exc}",
            fix="Pass --notebooks with a copy of the notebooks folder that you can write to.",
        ) from None
    why = (
        "the installed kit's notebooks stay as shipped"
        if is_installed_copy(notebooks)
        else f"{notebooks} is read-only for you"
    )
    print(
        f"JupyterLab opens your own copy of the notebooks in {workspace} ({why}; the copy "
        "is made once and your edits there are kept)."
    )
    return workspace


def plan(
    notebooks: Path,
    port: int | None = None,
    browser: bool | None = None,
    token: str | None = None,
) -> LabServer:
    """Decide port, token, browser and root handling, and the folder JupyterLab opens
    (a writable copy of ``notebooks`` if need be: :func:`writable_notebooks`)."""
    notebooks = notebooks.resolve()
    if not (notebooks / NOTEBOOKS[0]).is_file():
        raise PrerequisiteError(
            f"No lab notebooks in {notebooks}.",
            why=f"{NOTEBOOKS[0]} is not there.",
            fix="Leave out --notebooks to open the kit's own, or pass the folder that holds "
            f"{NOTEBOOKS[0]}.",
        )
    if port is not None and not port_is_free(port):
        raise InputError(
            f"Port {port} on 127.0.0.1 is in use.",
            why="Another program (another JupyterLab?) listens there.",
            fix="Pick another --port, or leave it out to take the next free one.",
        )
    return LabServer(
        notebooks=writable_notebooks(notebooks),
        port=port if port is not None else free_port_from(DEFAULT_PORT),
        # An exported JUPYTER_TOKEN is the user's choice, as for Jupyter itself.
        token=token or os.environ.get(TOKEN_VARIABLE) or secrets.token_hex(24),
        open_browser=has_display() if browser is None else browser,
        allow_root=is_root(),
    )


_loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until_up(server: LabServer, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            _loopback.open(f"{server.base_url}/api/status?token={server.token}", timeout=2)
            return
        except (urllib.error.URLError, OSError):
            if process.poll() is not None:
                raise BackendError(
                    "JupyterLab stopped at once.",
                    why=f"It exited with code {process.returncode}; its messages are above.",
                    fix="Read them; `pip install -e .` installs JupyterLab if it is missing.",
                ) from None
            if time.monotonic() > deadline:
                raise BackendError(
                    f"JupyterLab did not answer on {server.base_url} within "
                    f"{START_TIMEOUT_SECONDS} s.",
                    fix="Read its messages above; try again with another --port.",
                ) from None
            time.sleep(0.5)


def run(server: LabServer, lab: Lab, pin_backend: bool = False) -> int:
    """Start JupyterLab, print the URL once it answers, and wait until it stops."""
    env = {**os.environ, **lab_environment(lab, pin_backend), **server.secret_environment()}
    process = subprocess.Popen(server.command(), env=env, cwd=server.notebooks)

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds to `finally`, which stops JupyterLab

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        wait_until_up(server, process)
        print(
            "\n"
            f"JupyterLab is running. Open this URL in your browser:\n\n    {server.url}\n\n"
            f"Notebooks: {server.notebooks}. Terminals and !aws cells reach the lab's "
            f"backend ({lab.backend.value}). Stop with Ctrl-C.",
            flush=True,
        )
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
