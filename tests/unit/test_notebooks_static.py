"""The notebooks as files: order, parameters, prerequisites, no outputs in git."""

from __future__ import annotations

import nbformat
import pytest

from labkit.config import parameters_cell
from labkit.names import NOTEBOOKS
from labkit.runner import NOTEBOOK_DIR, lab_notebooks

NOTEBOOK_PATHS = lab_notebooks()


def test_notebook_names_match_config():
    assert [p.name for p in NOTEBOOK_PATHS] == list(NOTEBOOKS.values())


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.name)
def test_notebook_shape(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first = nb.cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", []), (
        "every notebook starts with its parameters cell"
    )
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, "strip outputs before commit"
    source = "\n".join(c.source for c in code)
    number = int(path.name[:2])
    if 1 <= number <= 5:
        assert (
            f"labkit.tasks.require(lab, {number})" in source
            or f"labkit.tasks.open_lab({number}, globals())" in source
        ), "check prerequisites first"
    if 1 <= number <= 4:
        assert "q1.check()" in source or f"task{number}.TASK.check()" in source


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.name)
def test_parameters_cell_is_the_settings_spec(path):
    """Every notebook's parameters cell is the one the settings' spec (LabConfig) gives:
    a new setting, or a changed help text, shows up here until the notebooks follow."""
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.source == parameters_cell()


def test_task_definition_json_is_next_to_the_notebooks():
    assert (NOTEBOOK_DIR / "task-definition.json").is_file()


SHAPED = [p for p in NOTEBOOK_PATHS if p.name[:2] in ("01", "02", "03", "04", "05")]


@pytest.mark.parametrize("path", SHAPED, ids=lambda p: p.name)
def test_task_notebook_shape(path):
    """Issue 20's shape: what you will be able to do and how long first; one setup cell of
    at most three lines; the parameters cell hidden; a recap and the course progress last;
    two or three questions, each answer cell filled from a solution file."""
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].metadata.get("jupyter", {}).get("source_hidden") is True
    intro = nb.cells[1].source
    assert "You will be able to" in intro and "minutes" in intro
    setup = nb.cells[2]
    lines = [line for line in setup.source.splitlines() if line.strip()]
    assert setup.cell_type == "code" and len(lines) <= 3  # (and ruff's blank after imports)
    assert "labkit.tasks.open_lab(" in setup.source
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "labkit.tasks.progress(lab)" in code[-1]
    assert any("## Recap" in c.source for c in nb.cells if c.cell_type == "markdown")
    answers = [c for c in nb.cells if c.source.startswith("quiz.check(")]
    assert 2 <= len(answers) <= 3
    for cell in nb.cells:
        for tag in cell.metadata.get("tags", []):
            if tag.startswith("solution:"):
                assert (NOTEBOOK_DIR / "solutions" / tag.split(":", 1)[1]).is_file(), tag
