"""The learner's way in, in a real browser: ``labkit lab`` starts the sandbox and
JupyterLab (as root here: it must pass --allow-root itself), the learner opens notebook 01,
types the Task 1 call into the blank exercise cell, runs it and the check, and sees ✅;
then in notebook 02 types the guide's tag, login and push lines into the blank ``%%bash``
cells and sees the check's ✅; then types the same lines in a JupyterLab terminal, and the
check (it reads the registry) passes again.

    pytest -m browser tests/browser/test_labkit_lab.py -v -s
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from labkit.runner import NOTEBOOK_DIR
from labkit.sandbox import lifecycle
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.browser.test_jupyterlab import _cell, _open_notebook, _run_cell, _shot
from tests.conftest import (
    command_lines_showing,
    free_port,
    private_lab_env,
    require_data_plane,
    running_sandbox_clients,
)

pytestmark = pytest.mark.browser

_loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))
NOTEBOOK = "01_task1_repository.ipynb"


class Server:
    def __init__(self, url: str, token: str, root: Path) -> None:
        self.url, self.token, self.root = url, token, root

    def lab_url(self, path: str = "") -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"


@pytest.fixture(scope="module")
def labkit_lab(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Server]:
    """``labkit lab`` on a free port, on a copy of the notebooks, with a private sandbox
    that it has to start itself."""
    require_browser()
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=False):
        assert not lifecycle.status().running
        root = tmp_path_factory.mktemp("lab") / "notebooks"
        shutil.copytree(NOTEBOOK_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        home = tmp_path_factory.mktemp("jupyter")
        # The test's own needs, in the test's own config dir: window.jupyterapp to drive
        # JupyterLab, and no update checks (offline).
        (home / "config").mkdir()
        (home / "config" / "jupyter_lab_config.json").write_text(
            json.dumps(
                {
                    "LabApp": {
                        "expose_app_in_browser": True,
                        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                    }
                }
            )
        )
        port, token = free_port(), secrets.token_hex(16)
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "JUPYTER_TOKEN": token,  # labkit lab's token, as a user would choose one
        }
        env.pop("DISPLAY", None)  # headless: it must not try to open a browser
        log_path = artifacts / "labkit-lab.log"
        log = log_path.open("w")
        command = [sys.executable, "-m", "labkit.cli", "lab", "--port", str(port)]
        command += ["--notebooks", str(root)]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        try:
            deadline = started + 180
            while f"{url}/lab/tree/00_start_here.ipynb?token={token}" not in log_path.read_text():
                assert process.poll() is None, f"labkit lab stopped; see {log_path}"
                assert time.monotonic() < deadline, f"no URL printed; see {log_path}"
                time.sleep(0.5)
            _loopback.open(f"{url}/api/status?token={token}", timeout=5).read()
            assert not command_lines_showing(token), "the token is on a command line"
            print(f"labkit lab: URL printed after {time.monotonic() - started:.1f} s")
            yield Server(url, token, root)
        finally:
            process.terminate()  # labkit lab stops the JupyterLab it started
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            log.close()
        try:
            _loopback.open(f"{url}/api/status?token={token}", timeout=2)
            stopped = False
        except (urllib.error.URLError, OSError):
            stopped = True
        assert stopped, "JupyterLab kept running after labkit lab stopped"


@pytest.fixture(scope="module")
def chromium(labkit_lab: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
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


def _kernel_output(page: Any, code: str) -> str:
    """Run ``code`` in the open notebook's kernel; return what it printed."""
    return page.evaluate(
        """async (code) => {
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            const future = kernel.requestExecute({ code });
            let out = '';
            future.onIOPub = (msg) => {
                if (msg.header.msg_type === 'stream') out += msg.content.text;
                if (msg.header.msg_type === 'error') out += msg.content.ename + ': '
                    + msg.content.evalue;
            };
            await future.done;
            return out;
        }""",
        code,
    )


def _index_of(root: Path, tag: str, notebook: str = NOTEBOOK) -> int:
    cells = nbformat.read(root / notebook, as_version=4).cells
    return next(i for i, c in enumerate(cells) if tag in c.metadata.get("tags", []))


def _source(page: Any, index: int) -> str:
    return page.evaluate(
        "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel"
        ".getSource()",
        index,
    )


def _current_cell(page: Any, index: int) -> Any:
    """Cell ``index`` of the notebook in front (another open notebook's cells are hidden),
    scrolled to: a windowed notebook renders only the cells near the view."""
    panel = page.evaluate(
        """async (i) => {
            const panel = window.jupyterapp.shell.currentWidget;
            panel.content.activeCellIndex = i;
            if (panel.content.scrollToItem) await panel.content.scrollToItem(i, 'center');
            return panel.id;
        }""",
        index,
    )
    return page.locator(f"[id='{panel}'] .jp-Cell[data-windowed-list-index='{index}']")


def _type_source(page: Any, index: int, text: str) -> None:
    """Replace cell ``index``'s text by typing into its editor, as a learner does."""
    cell = _current_cell(page, index)
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)


def test_labkit_lab_then_task1_typed_in_the_browser(
    labkit_lab: Server, chromium: Any, artifacts: Path
) -> None:
    page = chromium
    assert lifecycle.status().running, "labkit lab starts the sandbox"
    _open_notebook(page, labkit_lab, NOTEBOOK)

    # The server's environment reaches the sandbox: the aws CLI, as in a terminal or an
    # `!aws` cell, before the notebook exported anything itself.
    listed = _kernel_output(
        page,
        "import subprocess\n"
        "done = subprocess.run(['aws', 'ecr', 'describe-repositories', '--output', 'json'],"
        " capture_output=True, text=True)\n"
        "print(done.returncode, done.stdout, done.stderr)",
    )
    assert listed.startswith("0 ") and '"repositories": []' in listed, listed

    exercise = _index_of(labkit_lab.root, "solution:task1_q1_create_repository.py")
    for index in range(exercise):
        _run_cell(page, index)
    settings = page.locator(".jp-OutputArea-output").filter(has_text="Lab settings:")
    assert "backend=sandbox" in settings.first.text_content()

    # Type the call into the code editor: the blank becomes the create_repository call.
    source = _source(page, exercise)
    assert "response = ____" in source
    call = 'ecr.create_repository(repositoryName="myrepo", tags=lab.tags())'
    _type_source(page, exercise, source.replace("____", call, 1))
    typed = _source(page, exercise)
    assert call in typed and "____" not in typed
    _shot(page, artifacts, "labkit-lab-01-answer-typed.png", _cell(page, exercise))

    _run_cell(page, exercise)
    _run_cell(page, exercise + 1)  # q1.check()
    check = page.locator(".jp-OutputArea-output").filter(has_text="✅ Exercise 1.1")
    check.wait_for(state="visible", timeout=60_000)
    assert "myrepo" in check.first.text_content()
    _shot(page, artifacts, "labkit-lab-02-check.png", check.first)
    errors = page.locator(".jp-OutputArea-output").filter(has_text="Traceback")
    assert errors.count() == 0, errors.first.text_content()

    ecr = running_sandbox_clients("ecr")["ecr"]
    assert ecr.describe_repositories(repositoryNames=["myrepo"])["repositories"]


def test_task2_lines_typed_into_blank_cells(
    labkit_lab: Server, chromium: Any, artifacts: Path
) -> None:
    """After the Task 1 catch-up: the guide's lines typed into 02's empty %%bash cells."""
    page = chromium
    notebook = "02_task2_push_image.ipynb"
    _open_notebook(page, labkit_lab, notebook)
    repository = _index_of(labkit_lab.root, "solution:task2_q1_repository_uri.py", notebook)
    caught_up = _kernel_output(  # Task 1's catch-up, as notebook 01's q2.solve() would
        page,
        "import labkit\nfrom labkit.tasks import task1\nlab = labkit.open_lab()\n"
        "lab.export_environment()\ntask1.TASK.solve(lab)\n"
        "print('URI', labkit.ecr.repository_uri(lab))",
    )
    uri = caught_up.rsplit("URI ", 1)[-1].strip()
    assert uri.endswith("/myrepo"), caught_up
    for index in range(repository):  # parameters, setup, step 18 (the offline stand-in)
        _run_cell(page, index)
    host = uri.split("/", 1)[0]

    # Exercise 2.1's first blank: the URI, pasted between quotes.
    source = _source(page, repository)
    _type_source(page, repository, source.replace("____", f'"{uri}"', 1))
    _run_cell(page, repository)
    lines = {
        "solution:task2_step22_tag.sh": "docker tag amazon/amazon-ecs-sample:latest $REPOSITORY",
        "solution:task2_step23_login.sh": "aws ecr get-login-password --region us-west-2 | "
        f"docker login --username AWS --password-stdin {host}",
        "solution:task2_step25_push.sh": "docker push $REPOSITORY",
    }
    for tag, line in lines.items():
        index = _index_of(labkit_lab.root, tag, notebook)
        blank = _source(page, index)
        assert blank.startswith("%%bash")  # and nothing but comments: the line is yours
        assert all(line.startswith(("%%", "#")) for line in blank.splitlines()), blank
        _type_source(page, index, f"{blank}\n{line}")
        _run_cell(page, index)
    page.locator(".jp-OutputArea-output").filter(has_text="Login Succeeded").first.wait_for()
    _shot(page, artifacts, "labkit-lab-03-task2-typed.png", _current_cell(page, index))
    check = next(
        i
        for i, c in enumerate(nbformat.read(labkit_lab.root / notebook, as_version=4).cells)
        if c.source.strip() == "q1.check()"
    )
    _run_cell(page, check)
    passed = page.locator(".jp-OutputArea-output").filter(has_text="✅ Exercise 2.1")
    passed.wait_for(state="visible", timeout=60_000)
    assert "is the sample image you tagged" in passed.first.text_content()
    _shot(page, artifacts, "labkit-lab-04-task2-check.png", passed.first)


def test_task2_lines_typed_in_a_jupyterlab_terminal(
    labkit_lab: Server, chromium: Any, artifacts: Path
) -> None:
    """The guide's lines typed in a JupyterLab terminal (File → New → Terminal) pass the
    same check: it reads the registry, not the notebook."""
    page = chromium
    reset = _kernel_output(  # undo the previous test's push: registry and local tag
        page,
        "import docker\n"
        "uri = labkit.ecr.repository_uri(lab)\n"
        "lab.ecr.batch_delete_image(repositoryName='myrepo', imageIds=[{'imageTag': 'latest'}])\n"
        "docker.from_env().images.remove(uri + ':latest')\n"
        "print(labkit.tasks.task2.q1.evaluate(lab).passed, 'URI', uri)",
    )
    assert reset.startswith("False") and "URI " in reset, reset
    uri = reset.rsplit("URI ", 1)[-1].strip()
    page.evaluate("() => window.jupyterapp.commands.execute('terminal:create-new')")
    terminal = page.locator(".jp-Terminal .xterm").last
    terminal.wait_for(state="visible", timeout=60_000)
    terminal.click()
    time.sleep(2)  # the shell's prompt
    lines = [
        f"REPOSITORY={uri}",
        "docker tag amazon/amazon-ecs-sample:latest $REPOSITORY",
        "aws ecr get-login-password --region us-west-2 | docker login --username AWS "
        f"--password-stdin {uri.split('/', 1)[0]}",
        "docker push $REPOSITORY",
    ]
    for line in lines:
        page.keyboard.type(line)
        page.keyboard.press("Enter")
    from labkit.lab import Lab
    from labkit.tasks import task2

    lab = Lab.from_parameters(backend="sandbox")  # the same sandbox, from this process
    deadline = time.monotonic() + 120
    result = task2.q1.evaluate(lab)
    while not result.passed and time.monotonic() < deadline:
        time.sleep(3)
        result = task2.q1.evaluate(lab)
    _shot(page, artifacts, "labkit-lab-05-task2-terminal.png")
    assert result.passed and "is the sample image you tagged" in result.message, result
