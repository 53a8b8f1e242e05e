"""Every doc a notebook names opens with one click: JupyterLab (``labkit lab``, the
classroom) is rooted at the notebooks folder, and the installed kit ships that folder
only, so what the notebooks link to lives in it (``notebooks/docs/``), is linked with a
relative markdown link, and every relative link in the notebooks and their docs names a
file inside that folder."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest

from labkit.classroom import host
from labkit.kit_files import CLONE_NOTEBOOKS
from labkit.runner import docs_beside_outputs
from labkit.taskdef import MY_TASK_DEFINITION

REPO = CLONE_NOTEBOOKS.parent
#: ``[text](target)`` and ``![alt](target)``, with an optional ``"title"``.
MARKDOWN_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: A markdown file named in prose (``docs/parity.md``, ``parity.md``), not as a link.
MARKDOWN_FILE_NAMED = re.compile(r"[\w./-]*\w\.md\b")
#: Targets that are not files of the kit: web pages, mail, places in the same page.
NOT_A_FILE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)
#: Files a notebook itself writes beside the notebooks (notebook 03), then links to.
WRITTEN_BY_THE_LAB = {CLONE_NOTEBOOKS / MY_TASK_DEFINITION}


def markdown_of(path: Path) -> str:
    """A notebook's markdown cells, or a markdown file's text."""
    if path.suffix == ".ipynb":
        notebook = nbformat.read(path, as_version=4)
        return "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    return path.read_text(encoding="utf-8")


def relative_links(markdown: str) -> list[str]:
    """The link targets that name a file (without any ``#place`` in it)."""
    targets = (match["target"] for match in MARKDOWN_LINK.finditer(markdown))
    return [target.split("#")[0] for target in targets if not NOT_A_FILE.match(target)]


def shipped_markdown() -> list[Path]:
    """The notebooks and every markdown file that ships with them."""
    return sorted([*CLONE_NOTEBOOKS.glob("*.ipynb"), *CLONE_NOTEBOOKS.rglob("*.md")])


def linked_files() -> set[str]:
    """Every file a notebook or a shipped doc links to, relative to the notebooks folder."""
    linked = set()
    for path in shipped_markdown():
        for target in relative_links(markdown_of(path)):
            resolved = (path.parent / target).resolve()
            if resolved.is_relative_to(CLONE_NOTEBOOKS):
                linked.add(resolved.relative_to(CLONE_NOTEBOOKS).as_posix())
    return linked


@pytest.mark.parametrize("path", shipped_markdown(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_opens_a_file_inside_the_notebooks_folder(path: Path):
    for target in relative_links(markdown_of(path)):
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(CLONE_NOTEBOOKS), (
            f"{target} leaves the notebooks folder: JupyterLab cannot open it, and the "
            "installed kit does not ship it"
        )
        assert resolved.is_file() or resolved in WRITTEN_BY_THE_LAB, f"{target} is not a file"


@pytest.mark.parametrize("path", shipped_markdown(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_markdown_file_named_is_a_link(path: Path):
    """A doc named in plain text cannot be opened with a click: it must be a link."""
    unlinked = MARKDOWN_FILE_NAMED.findall(MARKDOWN_LINK.sub("", markdown_of(path)))
    assert unlinked == [], f"named but not linked: {unlinked}"


def test_the_notebooks_link_to_the_docs_that_ship_with_them():
    docs = {f"docs/{path.name}" for path in (CLONE_NOTEBOOKS / "docs").glob("*.md")}
    assert {"docs/sandbox.md", "docs/sandbox-ecs.md", "docs/parity.md"} <= docs
    assert docs <= linked_files(), "a doc in notebooks/docs/ that nothing links to"


def test_the_readmes_relative_links_open_files_of_the_repository():
    readme = REPO / "README.md"
    targets = relative_links(readme.read_text(encoding="utf-8"))
    assert "notebooks/docs/aws-account.md" in targets
    missing = [target for target in targets if not (REPO / target).exists()]
    assert missing == []


def test_a_classroom_learners_copy_of_the_notebooks_carries_their_docs():
    """The classroom packs the notebooks folder as root and the learner (here: nobody)
    unpacks it in their home: the docs arrive with the notebooks, the learner's own."""
    if os.geteuid() != 0:
        pytest.skip("needs root (the copy is unpacked as another user)")
    nobody = pwd.getpwnam("nobody")
    # Not under pytest's tmp_path: its parents are root's only (0700), closed to nobody.
    base = Path(tempfile.mkdtemp(prefix="labkit-docs-"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir()
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        entry = pwd.struct_passwd((*nobody[:5], str(home), nobody.pw_shell))
        copy = host.install_notebooks(entry, CLONE_NOTEBOOKS)
        for linked in sorted(linked_files() - {MY_TASK_DEFINITION}):
            assert (copy / linked).read_bytes() == (CLONE_NOTEBOOKS / linked).read_bytes()
            assert (copy / linked).stat().st_uid == nobody.pw_uid
        assert (copy / "docs" / "parity.md").is_file()
    finally:
        shutil.rmtree(base)


def test_a_runs_executed_notebooks_find_their_docs_beside_them(tmp_path: Path):
    """`labkit run -o FOLDER` writes the executed notebooks to FOLDER: the docs they link
    to are put beside them; a doc already there (edited) is left as it is."""
    output = tmp_path / "runs"
    (output / "docs").mkdir(parents=True)
    (output / "docs" / "parity.md").write_text("my notes")
    docs_beside_outputs(CLONE_NOTEBOOKS, output)
    docs = sorted(linked for linked in linked_files() if linked.startswith("docs/"))
    assert "docs/sandbox.md" in docs
    for linked in docs:  # (the notebooks the docs link back to are the run's own outputs)
        if linked != "docs/parity.md":
            assert (output / linked).read_bytes() == (CLONE_NOTEBOOKS / linked).read_bytes()
    assert (output / "docs" / "parity.md").read_text() == "my notes"
    docs_beside_outputs(CLONE_NOTEBOOKS, CLONE_NOTEBOOKS)  # run in place: nothing to copy
