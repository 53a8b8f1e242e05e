"""Instructor mode on a private sandbox: ``labkit run --until N`` jumps from a clean lab,
``labkit reset`` returns to one, ``--report`` writes an offline handout, and every widget
result in the executed notebooks still reads as text (no widget frontend in papermill).

    pytest -m notebooks tests/notebooks/test_instructor_mode.py -v
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from labkit.cli import main
from labkit.names import LAB
from tests.conftest import private_lab_env, require_data_plane, running_sandbox_clients

pytestmark = pytest.mark.notebooks

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def private_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A sandbox of our own (never ~/.labkit); `labkit run` starts it."""
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=False) as env:
        yield env


def _lab_state(aws: dict[str, Any]) -> dict[str, Any]:
    """What exists, read back with plain boto3 (not labkit)."""
    repos = [r["repositoryName"] for r in aws["ecr"].describe_repositories()["repositories"]]
    images = (
        aws["ecr"].describe_images(repositoryName=LAB.repository)["imageDetails"]
        if LAB.repository in repos
        else []
    )
    arns = aws["ecs"].list_services(cluster=LAB.cluster)["serviceArns"]
    services = (
        aws["ecs"].describe_services(cluster=LAB.cluster, services=arns)["services"] if arns else []
    )
    active = aws["ecs"].list_task_definitions(familyPrefix=LAB.task_family, status="ACTIVE")
    return {
        "repositories": repos,
        "images": len(images),
        "services": [s["serviceName"] for s in services if s["status"] == "ACTIVE"],
        "task definitions": len(active["taskDefinitionArns"]),
        "namespaces": [n["Name"] for n in aws["servicediscovery"].list_namespaces()["Namespaces"]],
    }


def _remembered_service_names(env: dict[str, str]) -> dict[str, str]:
    path = Path(env["LABKIT_STATE_DIR"]) / "state.json"
    return json.loads(path.read_text()).get("service_names", {}) if path.exists() else {}


def _assert_text_twins(notebook: Path) -> None:
    """Every rich output also reads as text; every widget has a readable twin beside it."""
    nb = nbformat.read(notebook, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        streams = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for output in cell.outputs:
            data = output.get("data", {})
            if not data:
                continue
            where = f"{notebook.name} cell {index}"
            assert data.get("text/plain", "").strip(), f"{where}: {sorted(data)} has no text/plain"
            if WIDGET_VIEW in data:
                plain = data["text/plain"]
                widget_repr = re.match(r"^[A-Z][A-Za-z]*\(", plain)
                # Either the bundle's own text/plain is a real twin (the dashboard's),
                # or the cell printed one (the settings form prints its fields).
                assert not widget_repr or ("✅" in streams or "❌" in streams), (
                    f"{where}: widget {plain[:60]!r} with no plain-text twin"
                )


def test_run_until_then_reset(private_sandbox: dict[str, str], tmp_path: Path, capsys) -> None:
    artifacts = Path("artifacts") / "instructor" / time.strftime("%Y%m%d-%H%M%S")

    # 1. From nothing to the state after notebook 05, with a handout report.
    started = time.monotonic()
    first = artifacts / "until-05"
    assert main(["run", "--until", "05", "-o", str(first), "--report", "-q"]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"\nlabkit run --until 05 --report: {time.monotonic() - started:.1f} s")
    assert "Resetting the lab" in out and "All 6 notebook(s) passed" in out
    aws = running_sandbox_clients("ecr", "ecs", "servicediscovery")
    state = _lab_state(aws)
    assert state["repositories"] == [LAB.repository] and state["images"] >= 1
    assert len(state["services"]) == 1 and state["services"][0].startswith(LAB.service_prefix)
    assert _remembered_service_names(private_sandbox)

    # Widgets read as text in the executed notebooks (no widget frontend in papermill).
    executed = sorted(first.glob("[0-9][0-9]_*.ipynb"))
    assert [p.name[:2] for p in executed] == ["00", "01", "02", "03", "04", "05"]
    for notebook in executed:
        _assert_text_twins(notebook)
    nb01 = nbformat.read(first / "01_task1_repository.ipynb", as_version=4)
    form_text = "".join(o.get("text", "") for o in nb01.cells[2].outputs)
    assert "Lab settings:" in form_text and f"repository_name={LAB.repository}" in form_text

    # The dashboard cell of 05: one text snapshot, well under a second or so.
    nb05 = nbformat.read(first / "05_operating_the_service.ipynb", as_version=4)
    cell = next(c for c in nb05.cells if "labkit.dashboard(" in c.source)
    seconds = cell.metadata["papermill"]["duration"]
    text = "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs
    )
    assert "Service dashboard" in text and "(newest first)" in text, text
    with capsys.disabled():
        print(f"dashboard cell (headless): {seconds:.2f} s")
    assert seconds < 1.5

    # The report: offline, every notebook, in order.
    page = (first / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)\b[^>]*(src|href)\s*=\s*[\"']?https?://", page, re.I)
    positions = [page.find(f'id="notebook-{p.stem}"') for p in executed]
    assert -1 not in positions and positions == sorted(positions)

    # 2. Jump back to "after 01" from any state: reset first, so only task 1 is done.
    started = time.monotonic()
    second = artifacts / "until-01"
    assert main(["run", "--until", "01", "-o", str(second), "-q"]) == 0
    with capsys.disabled():
        print(f"labkit run --until 01 (after 05): {time.monotonic() - started:.1f} s")
    state = _lab_state(aws)
    assert state == {
        "repositories": [LAB.repository],
        "images": 0,  # the reset deleted the repository and its images; 01 made it anew
        "services": [],
        "task definitions": 0,
        "namespaces": [],
    }, state
    assert _remembered_service_names(private_sandbox) == {}
    policy = aws["ecr"].get_repository_policy(repositoryName=LAB.repository)["policyText"]
    assert LAB.repository_statement in policy

    # 3. labkit reset: a clean lab, and the sandbox keeps running.
    capsys.readouterr()
    started = time.monotonic()
    assert main(["reset"]) == 0
    assert "The lab is clean" in capsys.readouterr().out
    with capsys.disabled():
        print(f"labkit reset: {time.monotonic() - started:.1f} s")
    from labkit import sandbox

    assert sandbox.status().running
    assert _lab_state(aws) == {
        "repositories": [],
        "images": 0,
        "services": [],
        "task definitions": 0,
        "namespaces": [],
    }
    assert main(["reset"]) == 0  # safe to repeat
