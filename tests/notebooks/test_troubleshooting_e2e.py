"""Notebook 07 (break and fix) end to end on a private sandbox.

00–04 solved; 07 with the reference solutions filled in passes strictly (every scenario
started, fixed by its solution cell, checked ✅, the lab put back); 07 as shipped runs to
the end and shows ❌ for every scenario (the fix cells' blanks untouched), and its last
cell still gets the working lab back (the page through the load balancer).

    pytest -m notebooks tests/notebooks/test_troubleshooting_e2e.py -v -s
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from labkit.challenges import all_scenarios
from labkit.runner import NOTEBOOK_DIR, run_notebooks
from tests.conftest import private_lab_env, require_data_plane

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=False) as env:
        yield env


def _run(notebooks: Path, out: Path, start: str, until: str, *, solved: bool) -> list:
    started = time.monotonic()
    runs = run_notebooks(
        start=start, until=until, output_dir=out, notebook_dir=notebooks, cell_timeout=600,
        log_output=False, strict=solved, solutions=solved,
    )  # fmt: skip
    print(f"{start}–{until} {'solved' if solved else 'as shipped'}: "
          f"{time.monotonic() - started:.1f} s")  # fmt: skip
    assert runs and all(r.ok for r in runs), [str(r) for r in runs]
    return runs


def _text(path: Path) -> str:
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
            if output.get("output_type") == "error":
                parts.append(f"ERROR {output.get('ename')}: {output.get('evalue')}")
    return "\n".join(parts)


def test_notebook_07_solved_passes_and_as_shipped_shows_what_is_wrong(
    lab_env: dict[str, str], tmp_path: Path
) -> None:
    notebooks = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, notebooks, ignore=shutil.ignore_patterns("my-task-definition*"))
    _run(notebooks, tmp_path / "runs" / "lab", "00", "04", solved=True)
    names = [s.name for s in all_scenarios()]

    solved = _text(_run(notebooks, tmp_path / "runs" / "solved", "07", "07", solved=True)[0].output)
    for name in names:
        assert f"✅ {name}: fixed. Score 100/100" in solved, name
    for words in {s.symptom_words for s in all_scenarios()}:
        assert words in solved  # ECS's own words, printed by start
    assert "ERROR" not in solved and "❌" not in solved

    shipped = _text(
        _run(notebooks, tmp_path / "runs" / "shipped", "07", "07", solved=False)[0].output
    )
    for name in names:
        assert f"❌ {name}: not fixed yet" in shipped, name
    assert shipped.count("Not done yet: replace each ____") == len(names)
    assert "ERROR" not in shipped
    assert "✅ Task 4" in shipped  # the last cell: the working lab is back
