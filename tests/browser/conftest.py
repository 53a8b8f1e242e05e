"""Fixtures for the browser tests: a private sandbox, a JupyterLab server on a free
loopback port with a token, and Debian's Chromium driven headless by Playwright.

Nothing is downloaded: Playwright drives /usr/bin/chromium (``executable_path``), and
``playwright install`` is never run. Without Chromium or the playwright package the tests
skip, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.polling import wait_for
from labkit.runner import NOTEBOOK_DIR
from tests.conftest import free_port, private_lab_env, require_data_plane

CHROMIUM = os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path("artifacts") / "browser"
_loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _missing(what: str) -> None:
    message = f"needs {what} (apt-get install -y chromium; pip install playwright)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_browser() -> None:
    """Debian's Chromium and the playwright package; skipped locally, failed in CI."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _missing(f"Chromium at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright Python package")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and logs of the browser tests (kept: /artifacts/ is git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    shutil.rmtree(ARTIFACTS / "runs", ignore_errors=True)  # executed notebooks of this run
    return ARTIFACTS


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private sandbox that notebook 00 starts; the JupyterLab kernels (children of the
    server started below) find it through the environment too."""
    require_browser()
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=False) as env:
        yield env


@dataclass(frozen=True)
class JupyterLab:
    url: str
    token: str
    root: Path

    def lab_url(self, path: str = "") -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"


@pytest.fixture(scope="module")
def jupyterlab(
    sandbox_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[JupyterLab]:
    """JupyterLab 4 on 127.0.0.1 (free port, a token), rooted in a copy of notebooks/."""
    root = tmp_path_factory.mktemp("lab") / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    home = tmp_path_factory.mktemp("jupyter")
    settings_dir = home / "lab-settings"
    notification = settings_dir / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    # No news or update checks: the server and the browser stay offline and quiet.
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True})
    )
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_TOKEN": token,  # not on the command line, which every user can read
    }
    log = (artifacts / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.allow_root=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited; see {artifacts / 'jupyterlab.log'}")
            _loopback.open(f"{url}/api/status?token={token}", timeout=2).read()
            return True

        what = f"JupyterLab to answer (see {artifacts / 'jupyterlab.log'})"
        wait_for(answers, 90, 0.5, what=what, ignoring=(OSError,))
        yield JupyterLab(url, token, root)
    finally:
        # /api/shutdown stops the kernels too; terminate() is the fallback.
        try:
            request = urllib.request.Request(
                f"{url}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
            )
            _loopback.open(request, timeout=10).read()
            server.wait(20)
        except Exception:  # noqa: BLE001 — already gone, or stuck: terminate below
            pass
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
        log.close()


@pytest.fixture(scope="module")
def page(jupyterlab: JupyterLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A page of headless Chromium with a fresh user-data dir; closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            context.set_default_timeout(60_000)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
