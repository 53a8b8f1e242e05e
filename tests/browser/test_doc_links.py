"""A doc a notebook links to opens with one click in JupyterLab rooted at the notebooks
folder, as ``labkit lab`` and the classroom root it: the learner clicks the link in the
rendered markdown and the doc's own text is what JupyterLab opened.

    pytest -m browser tests/browser/test_doc_links.py -v -s
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.conftest import JupyterLab
from tests.browser.test_jupyterlab import _cell, _open_notebook, _shot
from tests.unit.test_notebook_links import MARKDOWN_LINK, NOT_A_FILE

pytestmark = pytest.mark.browser

NOTEBOOK = "00_start_here.ipynb"


def _doc_links(notebook: Path) -> list[tuple[int, str, str]]:
    """(cell index, link text, target) of every link to a file in the notebook's markdown."""
    nb = nbformat.read(notebook, as_version=4)
    return [
        (index, match["text"], match["target"])
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for match in MARKDOWN_LINK.finditer(cell.source)
        if not NOT_A_FILE.match(match["target"]) and match["target"].endswith(".md")
    ]


def test_a_click_on_a_notebooks_doc_link_opens_the_doc(
    page: Any, jupyterlab: JupyterLab, artifacts: Path
) -> None:
    links = _doc_links(jupyterlab.root / NOTEBOOK)
    assert {target for _, _, target in links} == {"docs/sandbox.md", "docs/aws-account.md"}
    # docs/sandbox.md last: its own link is clicked next.
    for index, text, target in sorted(links, key=lambda link: link[2] == "docs/sandbox.md"):
        _open_notebook(page, jupyterlab, NOTEBOOK)
        # The reload restores the doc opened before, maybe after the click below: wait for
        # the restore, then close it, so the doc that opens is this click's.
        page.evaluate(
            """async () => {
                const app = window.jupyterapp;
                await app.restored;
                await app.commands.execute('application:close-other-tabs');
            }"""
        )
        cell = _cell(page, index)
        cell.scroll_into_view_if_needed()
        # The link text as rendered (markdown's `code` loses its backticks).
        cell.locator(".jp-RenderedMarkdown a", has_text=re.sub(r"[`*]", "", text)).click()
        _wait_until_open(page, jupyterlab.root, target)
        _shot(page, artifacts, f"doc-link-{Path(target).stem}.png")
    # The docs link to each other: from the rendered docs/sandbox.md to docs/aws-account.md
    # (in front first: JupyterLab may hand focus back to the notebook whose link was clicked).
    page.evaluate(
        """(path) => {
            const app = window.jupyterapp;
            for (const widget of app.shell.widgets('main')) {
                const context = widget.context;
                if (context && context.path === path) app.shell.activateById(widget.id);
            }
        }""",
        "docs/sandbox.md",
    )
    page.locator(".jp-MarkdownViewer a:visible", has_text="aws-account.md").click()
    _wait_until_open(page, jupyterlab.root, "docs/aws-account.md")


def _wait_until_open(page: Any, root: Path, target: str) -> None:
    """A tab holds ``target``, with the file's own first line (its heading). Any tab, not
    only the one in front (see above); only the notebook was open before the click."""
    heading = (root / target).read_text(encoding="utf-8").splitlines()[0]
    page.wait_for_function(
        """([path, heading]) => {
            for (const widget of window.jupyterapp.shell.widgets('main')) {
                const context = widget.context;
                if (context && context.path === path && context.isReady
                    && context.model.toString().startsWith(heading)) return true;
            }
            return false;
        }""",
        arg=[target, heading],
        timeout=60_000,
    )
