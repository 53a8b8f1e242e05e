"""The lab in a real browser: JupyterLab 4 + ipywidgets 8 in headless Chromium.

Notebook 00 runs in the browser, where the settings form's validation must react to
typing, as a learner sees it, and saves the settings (it starts the private sandbox);
01–04 run headless, solved, with no parameters: they use the name chosen in the
browser. The load balancer's URL from notebook 04 is opened in the browser. Screenshots
of every step go to artifacts/browser/.

    pytest -m browser tests/browser -v -s
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import boto3
import nbformat
import pytest

from labkit.report import build_report
from labkit.runner import run_notebooks
from tests.browser.conftest import JupyterLab

pytestmark = pytest.mark.browser

NEW_NAME = "labrepo"  # the name typed in the browser; 02-04 run with it


# -- driving JupyterLab (window.jupyterapp, exposed with LabApp.expose_app_in_browser) --


def _open_notebook(page: Any, lab: JupyterLab, name: str) -> None:
    page.goto(lab.lab_url(name))
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=90_000)
    page.wait_for_function(
        """(name) => {
            const panel = window.jupyterapp.shell.currentWidget;
            const kernel = panel && panel.sessionContext && panel.sessionContext.session
                && panel.sessionContext.session.kernel;
            return panel && panel.context.path.endsWith(name) && kernel
                && kernel.status === 'idle' && panel.content.widgets.length > 0;
        }""",
        arg=name,
        timeout=90_000,
    )


def _run_cell(page: Any, index: int, command: str = "notebook:run-cell") -> None:
    """Select cell ``index`` and run a notebook command; resolves when execution ends."""
    ok = page.evaluate(
        """async ([index, command]) => {
            const app = window.jupyterapp;
            const panel = app.shell.currentWidget;
            panel.content.activeCellIndex = index;
            panel.content.deselectAll();
            return await app.commands.execute(command);
        }""",
        [index, command],
    )
    if ok is False:  # say which output: the error text the learner would see
        errors = page.locator(".jp-OutputArea-output[data-mime-type*='stderr']")
        shown = [errors.nth(i).text_content()[-600:] for i in range(errors.count())]
        raise AssertionError(f"{command} on cell {index} reported a failure: {shown}")


def _cell(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _shot(page: Any, artifacts: Path, name: str, locator: Any = None) -> Path:
    if locator is not None:
        locator.scroll_into_view_if_needed()
    path = artifacts / name
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def _repository_field(page: Any) -> tuple[Any, Any]:
    """The form's 'repository name' text input and its ✅/❌ status (a widget HTML)."""
    row = page.locator(".widget-hbox").filter(
        has=page.locator(".widget-text label", has_text="repository name")
    )
    return row.locator("input").first, row.locator(".widget-html").first


def _clients() -> dict[str, Any]:
    from labkit import sandbox

    status = sandbox.status()
    env = sandbox.env()
    kwargs = dict(
        endpoint_url=status.api_url,
        region_name=status.region,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    return {n: boto3.client(n, **kwargs) for n in ("ecr",)}


def _headless(jupyterlab: JupyterLab, artifacts: Path, start: str, until: str, **parameters):
    started = time.monotonic()
    runs = run_notebooks(
        start=start,
        until=until,
        output_dir=artifacts / "runs",
        parameters=parameters,
        notebook_dir=jupyterlab.root,
        cell_timeout=600,
        log_output=False,
    )
    print(f"headless {start}-{until}: {time.monotonic() - started:.1f} s")
    assert all(r.ok for r in runs), [str(r) for r in runs if not r.ok]
    return runs


def test_settings_in_the_browser_then_the_lab_and_the_page(
    jupyterlab: JupyterLab, page: Any, artifacts: Path
) -> None:
    # Notebook 00 in JupyterLab: the settings form (a real widget), validated as one types.
    started = time.monotonic()
    _open_notebook(page, jupyterlab, "00_start_here.ipynb")
    form_index = _cell_index(jupyterlab.root / "00_start_here.ipynb", "settings_form(")
    for index in range(form_index + 1):
        _run_cell(page, index)
    field, status = _repository_field(page)
    field.wait_for(state="visible")
    assert field.input_value() == "myrepo"
    page.wait_for_function(  # the widget rendered and its kernel-side validation ran
        "() => [...document.querySelectorAll('.widget-html')]"
        ".some(e => e.textContent.includes('✅ myrepo'))"
    )
    _shot(page, artifacts, "01-settings-form.png", _cell(page, form_index))

    # A bad name: the kernel re-validates on every edit and the ❌ line says why.
    field.fill("My Repo")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.widget-html')]"
        ".some(e => e.textContent.includes(\"❌ Repository name 'My Repo' is not valid.\"))"
    )
    assert "uppercase" in status.text_content()
    _shot(page, artifacts, "02-bad-repository-name.png", _cell(page, form_index))

    # Fixed: ✅ again, with the new name.
    field.fill(NEW_NAME)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.widget-html')]"
        f".some(e => e.textContent.trim() === '✅ {NEW_NAME}')"
    )
    _shot(page, artifacts, "03-fixed-repository-name.png", _cell(page, form_index))

    # The rest of 00 with the form's current value: saved, and the sandbox started.
    _run_cell(page, form_index + 1, "notebook:run-all-below")
    saved = page.locator(".jp-OutputArea-output").filter(has_text="Saved for notebooks 01–06")
    saved.wait_for(state="visible", timeout=120_000)
    assert f"repository_name={NEW_NAME}" in saved.first.text_content()
    page.locator(".jp-OutputArea-output").filter(has_text="Cluster").first.wait_for()
    _shot(page, artifacts, "04-settings-saved.png", saved.first)
    errors = page.locator(".jp-OutputArea-output").filter(has_text="Traceback")
    assert errors.count() == 0, errors.first.text_content()
    print(f"notebook 00 in the browser: {time.monotonic() - started:.1f} s")

    # 01-04 headless, solved, with no parameters: they use the name chosen in the browser.
    runs = _headless(jupyterlab, artifacts, "01", "04")
    ecr = _clients()["ecr"]
    assert ecr.describe_repositories(repositoryNames=[NEW_NAME])["repositories"]
    executed = nbformat.read(runs[-1].output, as_version=4)
    printed = "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
    )
    # Exercise 4.5's solution fetched the page through the load balancer and printed it.
    fetched = re.search(r"GET (http://127\.0\.0\.1:\d+)/? → HTTP 200", printed)
    assert fetched, printed[-2000:]
    url = fetched.group(1)
    reply = page.goto(url)
    assert reply is not None and reply.status == 200
    page.get_by_text("Your application is now running on a container in Amazon ECS.").wait_for()
    assert page.title() == "Amazon ECS Sample App"
    _shot(page, artifacts, "05-load-balancer-page.png")

    # The instructor's handout of the headless runs opens with no network at all.
    handout = build_report(artifacts / "runs", artifacts / "report.html")
    requests: list[str] = []

    def record(request: Any) -> None:
        requests.append(request.url)

    page.on("request", record)
    page.goto(handout.resolve().as_uri())
    page.get_by_text("ECS Lab Kit: executed run").wait_for()
    page.get_by_text("04_task4_service.ipynb").first.wait_for()
    page.remove_listener("request", record)
    remote = [u for u in requests if not u.startswith(("file:", "data:", "blob:"))]
    assert remote == [], remote
    _shot(page, artifacts, "05b-offline-report.png")

    # Notebook 05's optional dashboard, live: the widget refreshes from the kernel's
    # background thread while the cell has long returned.
    _open_notebook(page, jupyterlab, "05_operating_the_service.ipynb")
    dashboard_index = _cell_index(
        jupyterlab.root / "05_operating_the_service.ipynb", "labkit.dashboard("
    )
    _run_cell(page, dashboard_index, "notebook:run-all-above")  # the lab, as chosen in 00
    started = time.monotonic()
    _run_cell(page, dashboard_index)
    assert time.monotonic() - started < 10, "the dashboard cell must return at once"
    board = page.locator(".widget-html").filter(has_text="Service dashboard")
    board.wait_for(state="visible")
    first = _stamp(board.text_content())
    page.wait_for_function(
        """(first) => [...document.querySelectorAll('.widget-html')].some(e => {
            const m = e.textContent.match(/Service dashboard · (\\d\\d:\\d\\d:\\d\\d)/);
            return m && m[1] !== first;
        })""",
        arg=first,
        timeout=20_000,
    )
    text = board.text_content()
    assert "running 1" in text and "(newest first)" in text and "healthy" in text
    _shot(page, artifacts, "06-live-dashboard.png", board)
    _run_cell_code(page, "board.stop()")


def _cell_index(notebook: Path, text: str) -> int:
    nb = nbformat.read(notebook, as_version=4)
    return next(i for i, c in enumerate(nb.cells) if text in c.source)


def _stamp(text: str) -> str:
    return re.search(r"Service dashboard · (\d\d:\d\d:\d\d)", text).group(1)


def _run_cell_code(page: Any, code: str) -> None:
    """Run ``code`` in the notebook's kernel (no cell added to the notebook)."""
    page.evaluate(
        """async (code) => {
            const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
            await kernel.requestExecute({ code }).done;
        }""",
        code,
    )
