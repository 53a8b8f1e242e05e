"""The installed kit, as ``pipx install .`` or ``pip install .`` leaves it: the wheel,
built from this checkout and installed into a fresh virtual environment, runs the lab
from an empty folder, and ``labkit lab`` opens the learner's own copy of the notebooks
with its token on no command line.

    pytest -m notebooks tests/notebooks/test_installed_kit.py -v -s

(``-k wheel_carries`` checks the wheel's content alone: the build only, about 10 s.)

It costs the wheel (a few seconds), the install of labkit's dependencies from pip's
index and cache into the new environment, then ``labkit run --until 04`` and a JupyterLab
start. Measured on the 2-core host shared with seven other test runs (load average
500-800): 7-8 minutes in all, of which the wheel 9-19 s, the new environment 21-42 s, the
install 138-216 s, the run 177-217 s, JupyterLab's URL 33 s.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.kit_files import CLONE_NOTEBOOKS
from labkit.names import LAB, NOTEBOOKS
from labkit.taskdef import MY_TASK_DEFINITION
from tests.conftest import (
    command_lines_showing,
    free_port,
    private_lab_env,
    require_data_plane,
    running_sandbox_clients,
)
from tests.unit.test_notebook_links import linked_files

pytestmark = pytest.mark.notebooks

REPO = CLONE_NOTEBOOKS.parent
PACKAGED = "labkit/_kit_files/notebooks/"
_loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _timed(what: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    print(f"{what}: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout (alone: a few seconds)."""
    dist = tmp_path_factory.mktemp("dist")
    _timed("wheel", [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w", str(dist)])
    [built] = dist.glob("ecs_labkit-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(
    wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path | str]]:
    """The wheel in a fresh virtual environment, a private sandbox, an empty folder and
    a home of its own; yields the paths and the environment to run ``labkit`` with."""
    require_data_plane()
    base = tmp_path_factory.mktemp("installed-kit")
    venv = base / "venv"
    _timed("fresh venv", [sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    constraints = ["--constraint", str(REPO / "constraints.txt")]
    _timed("install the wheel and its dependencies", [*pip, *constraints, str(wheel)])
    empty, home = base / "empty", base / "home"
    empty.mkdir()
    home.mkdir()
    with private_lab_env(tmp_path_factory, strict=True):
        env = dict(os.environ)
        # Nothing of this checkout or of the test's environment may leak in.
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_TOKEN"):
            env.pop(name, None)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
        env["HOME"] = str(home)
        yield {"wheel": wheel, "venv": venv, "empty": empty, "home": home, "env": env}


def _site_packages(venv: Path) -> Path:
    [site] = venv.glob("lib/python3*/site-packages")
    return site


def test_the_wheel_carries_the_notebooks_their_docs_and_nothing_a_run_left(wheel) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {name[len(PACKAGED) :] for name in names if name.startswith(PACKAGED)}
    in_git = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "notebooks"], capture_output=True, text=True
    ).stdout.split()
    expected = {path[len("notebooks/") :] for path in in_git}
    if expected:  # a checkout without git (an unpacked sdist) has no list to compare with
        assert shipped == expected
    assert {"task-definition.json", "sample-app/index.html", NOTEBOOKS[3]} <= shipped
    assert any(name.startswith("solutions/") for name in shipped)
    # What the notebooks and their docs link to (notebooks/docs/) opens in the installed kit.
    linked = linked_files() - {MY_TASK_DEFINITION}
    assert {"docs/sandbox.md", "docs/parity.md"} <= linked <= shipped


def test_every_exercise_shows_its_solution_from_the_installed_kit(installed) -> None:
    show_all = (
        "import labkit; print(labkit.__file__)\n"
        "from labkit.tasks import exercise, task1, task2, task3, task4, task5\n"
        "shown = 0\n"
        "for module in (task1, task2, task3, task4, task5):\n"
        "    for name, value in vars(module).items():\n"
        "        if isinstance(value, exercise.Exercise):\n"
        "            value.solution()\n"
        "            shown += 1\n"
        "print(f'{shown} shown')\n"
    )
    python = str(installed["venv"] / "bin" / "python")
    done = _timed(
        "every q.solution()", [python, "-c", show_all], cwd=installed["empty"], env=installed["env"]
    )
    assert done.stdout.startswith(str(_site_packages(installed["venv"]) / "labkit"))
    shown = int(re.search(r"(\d+) shown", done.stdout).group(1))
    assert shown >= 8 and done.stdout.count("Solution (") == shown


def test_labkit_run_from_an_empty_folder(installed) -> None:
    """``labkit run --until 04`` of the installed kit, in a folder with nothing in it:
    the lab is built up to a service whose page the load balancer serves."""
    empty, venv = installed["empty"], installed["venv"]
    labkit = str(venv / "bin" / "labkit")
    done = _timed(
        "labkit run --until 04 (installed kit)",
        [labkit, "run", "--until", "04", "-q"],
        cwd=empty,
        env=installed["env"],
        timeout=1200,
    )
    assert "All 5 notebook(s) passed" in done.stdout, done.stdout[-2000:]
    [run_dir] = (empty / "runs").iterdir()
    assert sorted(p.name[:2] for p in run_dir.glob("[0-9][0-9]_*.ipynb")) == [
        "00",
        "01",
        "02",
        "03",
        "04",
    ]
    # Notebook 03 worked in the run's copy; the installed package stays as shipped.
    assert (run_dir / "notebooks" / "my-task-definition.json").is_file()
    # The executed notebooks' links to the docs open from the run's folder too.
    assert (run_dir / "docs" / "sandbox.md").is_file()
    packaged = _site_packages(venv) / PACKAGED
    assert not list(packaged.glob("my-task-definition*"))

    # The page, through the load balancer, read with plain boto3 and urllib.
    aws = running_sandbox_clients("elbv2")
    lb = aws["elbv2"].describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0]
    url = aws["status"].load_balancers[lb["DNSName"]]
    with _loopback.open(url, timeout=10) as reply:
        assert reply.status == 200
        assert "Amazon ECS" in reply.read().decode()


def test_labkit_lab_from_an_empty_folder_opens_the_learners_copy(installed) -> None:
    """``labkit lab`` of the installed kit, from a folder with nothing in it: JupyterLab
    serves ~/labkit-notebooks (a copy of the installed notebooks), its URL answers, and
    its token is on no command line."""
    empty, home = installed["empty"], installed["home"]
    workspace = home / "labkit-notebooks"
    port = free_port()
    labkit = str(installed["venv"] / "bin" / "labkit")
    log_path = empty.parent / "labkit-lab.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [labkit, "lab", "--no-browser", "--port", str(port)],
            cwd=empty,
            env=installed["env"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.monotonic()
    try:
        pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab/tree/\S+\?token=(\w+)")
        while not (found := pattern.search(log_path.read_text())):
            assert process.poll() is None, f"labkit lab stopped:\n{log_path.read_text()}"
            assert time.monotonic() - started < 180, f"no URL:\n{log_path.read_text()}"
            time.sleep(0.5)
        print(f"labkit lab (installed kit): URL printed after {time.monotonic() - started:.1f} s")
        url, token = found.group(0), found.group(1)
        printed = log_path.read_text()
        assert f"Notebooks: {workspace}" in printed, printed

        with _loopback.open(url, timeout=10) as reply:
            assert reply.status == 200
        # JupyterLab's root is the learner's copy: a file made there now is served.
        (workspace / "mine.txt").write_text("the learner's")
        api = f"http://127.0.0.1:{port}/api/contents"
        with _loopback.open(f"{api}/mine.txt?content=1&token={token}", timeout=10) as reply:
            assert b"the learner's" in reply.read()
        with _loopback.open(f"{api}/{NOTEBOOKS[3]}?content=0&token={token}", timeout=10) as r:
            assert r.status == 200
        assert (workspace / "solutions").is_dir() and (workspace / "sample-app").is_dir()
        with pytest.raises(urllib.error.HTTPError):  # and nothing without the token
            _loopback.open(f"{api}/mine.txt", timeout=10)

        assert not command_lines_showing(token), "the token is on a command line"
    finally:
        process.send_signal(signal.SIGTERM)  # labkit lab stops its JupyterLab
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
