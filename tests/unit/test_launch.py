"""``labkit lab``: how JupyterLab is started, for root and for headless machines."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from labkit import launch
from labkit.cli import build_parser
from labkit.config import LabConfig
from labkit.errors import InputError, PrerequisiteError
from labkit.lab import Lab
from labkit.names import NOTEBOOKS
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
    assert len(server.token) >= 32 and not any(server.token in word for word in command)
    assert server.secret_environment() == {"JUPYTER_TOKEN": server.token}
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
    lab = Lab.from_parameters(backend="endpoint", region="us-west-2")
    env = launch.lab_environment(lab)
    # The session's default only: a backend chosen in notebook 00 still holds.
    assert env["LABKIT_DEFAULT_BACKEND"] == "endpoint" and "LABKIT_BACKEND" not in env
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["AWS_DEFAULT_REGION"] == "us-west-2"
    # `labkit lab -p backend endpoint`: for the whole session, as an exported variable.
    assert launch.lab_environment(lab, pin_backend=True)["LABKIT_BACKEND"] == "endpoint"


def test_in_a_session_00s_choice_holds_and_the_sandboxs_url_is_not_an_endpoint(monkeypatch):
    """A kernel of `labkit lab` on the sandbox sees the sandbox's AWS_ENDPOINT_URL: with
    nothing remembered that is still the sandbox; a backend chosen in 00 wins."""
    from labkit.state import resolve_settings, save_settings

    monkeypatch.setenv("LABKIT_DEFAULT_BACKEND", "sandbox")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4710")
    assert resolve_settings().config.backend.value == "sandbox"
    save_settings(LabConfig.from_parameters(backend="aws"))
    assert resolve_settings().config.backend.value == "aws"


def test_the_cli_knows_the_command():
    args = build_parser().parse_args(["lab", "--port", "9999", "--no-browser", "-p", "region", "x"])
    assert (args.port, args.browser, args.parameter) == (9999, False, [["region", "x"]])


def _as_a_learner(job):
    """``job()`` run by an ordinary user: as root, in a child that becomes ``nobody``
    (root may write anywhere, so only another user meets a read-only install)."""
    if os.geteuid() != 0:
        return job()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgid(65534)
            os.setuid(65534)
            reply = {"result": job()}
        except BaseException as exc:
            reply = {"error": f"{exc.__class__.__name__}: {exc}"}
        os.write(write, repr(reply).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(child, 0)
    reply = ast.literal_eval(text)
    assert "error" not in reply, reply["error"]
    return reply["result"]


def test_a_read_only_install_opens_a_writable_copy_in_the_home_folder(monkeypatch, request):
    base = Path(tempfile.mkdtemp())  # not in root's private pytest folder: nobody reads it
    base.chmod(0o755)
    kit = base / "kit" / "notebooks"
    # As shipped: without what a run in this checkout wrote beside the notebooks.
    shipped = shutil.ignore_patterns(".ipynb_checkpoints", "my-task-definition*.json")
    shutil.copytree(NOTEBOOK_DIR, kit, ignore=shipped)
    read_only = [kit, *kit.rglob("*")]
    for path in read_only:  # as a root-owned site-packages is
        path.chmod(0o555 if path.is_dir() else 0o444)

    def remove_base():
        for path in read_only:
            path.chmod(0o755)
        shutil.rmtree(base)

    request.addfinalizer(remove_base)
    home = base / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    monkeypatch.setenv("HOME", str(home))
    workspace = home / launch.WORKSPACE_NAME

    def first_run():
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            opened = launch.plan(kit).notebooks
        (opened / "my-task-definition.json").write_text("{}")  # what notebook 03 does
        (opened / NOTEBOOKS[0]).write_text("the learner's edits")
        (opened / NOTEBOOKS[6]).unlink()
        shutil.rmtree(opened / "docs")  # as a copy made by a kit without notebooks/docs/
        return [str(opened), printed.getvalue()]

    def second_run():
        opened = launch.plan(kit).notebooks
        return [str(opened), *((opened / NOTEBOOKS[n]).read_text() for n in (0, 6))]

    opened, printed = _as_a_learner(first_run)
    assert opened == str(workspace)
    assert "read-only for you" in printed and str(workspace) in printed
    again, edited, restored = _as_a_learner(second_run)
    assert again == str(workspace)
    assert edited == "the learner's edits"  # never overwritten
    assert restored == (kit / NOTEBOOKS[6]).read_text()  # what is missing is added
    assert (workspace / "solutions").is_dir() and (workspace / "sample-app").is_dir()
    # The docs the notebooks link to arrive in a copy made before they shipped.
    for doc in (kit / "docs").glob("*.md"):
        assert (workspace / "docs" / doc.name).read_text() == doc.read_text()
    assert (workspace / "docs" / "parity.md").is_file()
    assert not (kit / "my-task-definition.json").exists()


def test_a_writable_folder_is_opened_as_it_is(tmp_path):
    kit = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, kit)
    assert launch.plan(kit).notebooks == kit.resolve()


def test_lab_sh_ends_by_naming_labkit_lab():
    """`jupyter lab notebooks/` refuses as root, which lab.sh usually runs as."""
    script = (NOTEBOOK_DIR.parent / "scripts" / "lab.sh").read_text()
    assert "&& labkit lab" in script and "jupyter lab" not in script
