"""``labkit lab``: how JupyterLab is started, for root and for headless machines."""

from __future__ import annotations

import socket

import pytest

from labkit import launch
from labkit.cli import build_parser
from labkit.errors import InputError, PrerequisiteError
from labkit.lab import Lab
from labkit.runner import NOTEBOOK_DIR


def test_root_gets_allow_root_and_a_headless_machine_no_browser(monkeypatch):
    monkeypatch.setattr(launch.os, "geteuid", lambda: 0)
    monkeypatch.setattr(launch.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    server = launch.plan(NOTEBOOK_DIR)
    command = server.command()
    assert "--allow-root" in command and "--no-browser" in command
    assert "--ServerApp.ip=127.0.0.1" in command
    assert f"--IdentityProvider.token={server.token}" in command and len(server.token) >= 32
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/lab/tree/00_start_here.ipynb")
    assert server.url.endswith(f"?token={server.token}")


def test_a_user_with_a_display_gets_a_browser_and_no_allow_root(monkeypatch):
    monkeypatch.setattr(launch.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(launch.sys, "platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    command = launch.plan(NOTEBOOK_DIR).command()
    assert "--allow-root" not in command and "--no-browser" not in command
    assert "--no-browser" in launch.plan(NOTEBOOK_DIR, browser=False).command()


def test_a_busy_port_is_refused_and_the_default_skips_it():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match=f"Port {port}"):
            launch.plan(NOTEBOOK_DIR, port=port)
        assert launch.free_port_from(port) != port


def test_a_folder_without_the_notebooks_is_refused(tmp_path):
    with pytest.raises(PrerequisiteError, match="No lab notebooks"):
        launch.plan(tmp_path)


def test_the_environment_points_terminals_at_the_backend(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    env = launch.lab_environment(Lab.from_parameters(backend="endpoint", region="us-west-2"))
    assert env["LABKIT_BACKEND"] == "endpoint"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["AWS_DEFAULT_REGION"] == "us-west-2"


def test_the_cli_knows_the_command():
    args = build_parser().parse_args(["lab", "--port", "9999", "--no-browser", "-p", "region", "x"])
    assert (args.port, args.browser, args.parameter) == (9999, False, [["region", "x"]])
