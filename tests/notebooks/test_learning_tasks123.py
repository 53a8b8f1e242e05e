"""Issue 20 for notebooks 01–03, on a private sandbox:

- terminal: Task 2 typed as the guide's own lines in bash (the lab's exported
  environment, as a JupyterLab terminal after ``eval "$(labkit sandbox env)"``) passes
  its check, which reads the registry;
- restart: each exercise cell of 01–03, with its solution, passes in a fresh kernel after
  only the parameters and setup cells (each cell in its own kernel, in order);
- no free passes: with every exercise caught up (``q.solve()``), 01–03 as shipped still
  show ❌ on every exercise check and every question; the solved cells pass again.

    pytest -m notebooks tests/notebooks/test_learning_tasks123.py -v
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import nbformat
import pytest

from labkit.images import LAB_SAMPLE_IMAGE, ensure_sample_image
from labkit.lab import Lab
from labkit.runner import NOTEBOOK_DIR, reset_lab, run_notebooks
from labkit.tasks import course_progress, task1, task2, task3
from labkit.tasks.exercise import EXERCISE_TAG
from tests.conftest import private_lab_env, require_data_plane
from tests.notebooks.test_exercises_tasks12 import _docker, _local_tags_for, _run, _text

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=False) as env:
        yield env


@pytest.fixture(scope="module")
def runs_dir() -> Path:
    path = Path("artifacts") / "learning-tasks123" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def learner_env(sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Lab:
    lab = Lab.from_parameters(backend="sandbox")
    for key, value in lab.aws_environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return lab


def _untag(uri: str) -> None:
    for tag in _local_tags_for(uri):
        _docker().images.remove(tag)


def test_task2_typed_in_a_terminal_passes_its_check(
    sandbox_env: dict[str, str], runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(runs_dir, "00", "solved-00")  # starts the sandbox, saves the settings
    lab = Lab.from_parameters(backend="sandbox")
    for key, value in lab.aws_environment().items():  # as the notebook's kernel has it
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    task1.TASK.solve(lab)  # the Task 1 catch-up
    print(ensure_sample_image())  # step 18, offline: the stand-in
    uri = task2.ecr.repository_uri(lab)
    _untag(uri)
    assert not task2.q1.evaluate(lab).passed
    host = uri.split("/", 1)[0]
    # The guide's lines (steps 21-25), ACCOUNTID swapped for the registry host (step 24).
    lines = (
        f"REPOSITORY={uri}\n"
        f"docker tag {LAB_SAMPLE_IMAGE} $REPOSITORY\n"
        f"aws ecr get-login-password --region {lab.region} | docker login --username AWS "
        f"--password-stdin {host}\n"
        "docker push $REPOSITORY\n"
    )
    env = {**os.environ, **lab.aws_environment()}
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail"], input=lines, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Login Succeeded" in done.stdout
    result = task2.q1.evaluate(lab, learner=True)  # as q1.check() judges: nothing caught up
    assert result.passed and "is the sample image you tagged" in result.message, result


def _lab_lines(lab: Lab, uri: str) -> str:
    """The guide's lines (steps 21-25), ACCOUNTID swapped for the registry host (step 24)."""
    return (
        f"REPOSITORY={uri}\n"
        f"docker tag {LAB_SAMPLE_IMAGE} $REPOSITORY\n"
        f"aws ecr get-login-password --region {lab.region} | docker login --username AWS "
        f"--password-stdin {uri.split('/', 1)[0]}\n"
        "docker push $REPOSITORY\n"
    )


def test_task2_after_a_catch_up_only_the_learners_lines_count(
    learner_env: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2.1 caught up: the learner's Docker config gets no login from it and its tag goes,
    so the REPOSITORY cell alone stays ❌; the tag, login and push lines (here in bash, as
    a terminal or a %%bash cell runs them) make it theirs."""
    lab = learner_env
    docker_config = tmp_path / "docker"  # the learner's own Docker config, no login yet
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    uri = task2.ecr.repository_uri(lab)
    _untag(uri)
    task2.q1.solve(lab)
    assert task2.q1.evaluate(lab).passed  # the catch-up counts toward Task 2
    assert task2.q1.caught_up(lab)
    assert not (docker_config / "config.json").exists()  # its login was kept apart
    assert _local_tags_for(uri) == []  # and its tag removed: it made it
    assert task2.compare_digests(lab) is True  # the digest it recorded at its push

    with task2.q1.attempt():  # exercise 2.1's REPOSITORY cell, filled in
        REPOSITORY = task2.use_repository(lab, uri)  # noqa: N806 — the notebook's name
    assert REPOSITORY
    result = task2.q1.evaluate(lab, learner=True)
    assert not result.passed and "the catch-up made it" in result.message, result
    assert "a terminal" in result.hint and "REPOSITORY cell alone" in result.hint

    env = {**os.environ, **lab.aws_environment()}
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail"],
        input=_lab_lines(lab, uri),
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (docker_config / "config.json").exists()  # the learner's own login
    result = task2.q1.evaluate(lab, learner=True)
    assert result.passed and "is the sample image you tagged" in result.message, result
    assert not task2.q1.caught_up(lab)


def _solution_notebook(source: Path, index: int, folder: Path) -> Path:
    """Parameters, setup, exercise cell ``index`` (filled with its solution headless) and
    the check right after it, if any: what a learner runs after a kernel restart."""
    nb = nbformat.read(source, as_version=4)
    cells = [nb.cells[0], nb.cells[2], nb.cells[index]]
    after = [c for c in nb.cells[index + 1 :] if c.cell_type == "code"]
    if after and after[0].source.strip().endswith(".check()"):
        cells.append(after[0])
    nb.cells = cells
    path = folder / f"{source.name[:2]}_restart_{index:02d}.ipynb"
    nbformat.write(nb, path)
    return path


def test_each_exercise_cell_passes_alone_after_a_restart(
    learner_env: Lab, runs_dir: Path, tmp_path: Path
) -> None:
    reset_lab({})
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copytree(NOTEBOOK_DIR / "solutions", folder / "solutions")
    uri_prefix = None
    timings = []
    for name in ("01_task1_repository", "02_task2_push_image", "03_task3_task_definition"):
        source = NOTEBOOK_DIR / f"{name}.ipynb"
        cells = nbformat.read(source, as_version=4).cells
        for index, cell in enumerate(cells):
            if EXERCISE_TAG not in cell.metadata.get("tags", []):
                continue
            if name.startswith("02") and uri_prefix is None:
                uri_prefix = task2.ecr.repository_uri(learner_env)
                _untag(uri_prefix)  # the tag cell must do its part in its own kernel
            path = _solution_notebook(source, index, folder)
            started = time.monotonic()
            runs = run_notebooks(
                start=path.name,
                until=path.name,
                output_dir=runs_dir / "restart",
                notebook_dir=folder,
                cell_timeout=600,
                log_output=False,
            )
            timings.append(time.monotonic() - started)
            assert runs and runs[0].ok, f"{name} cell {index}: {runs[0] if runs else ''}"
    print(f"{len(timings)} kernels, {sum(timings):.0f} s in all")
    assert len(timings) == 17  # 01: 2 + 3 questions, 02: 4 + 3, 03: 2 + 3
    assert course_progress(learner_env) == {1: True, 2: True, 3: True, 4: False}


def test_no_free_passes_when_the_state_holds_every_answer(
    learner_env: Lab, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every exercise caught up (``q.solve()``, run where notebook 03 keeps its file): 01–03
    as shipped show ❌ on every exercise check and every question, while each task counts
    as done; then the solved cells make each exercise the learner's own again."""
    assert course_progress(learner_env)[3], "the previous test did Tasks 1-3"
    with monkeypatch.context() as here:
        here.chdir(NOTEBOOK_DIR)  # where notebook 03's kernel reads its file
        for exercise in (task1.q1, task1.q2, task2.q1, task3.q1, task3.q2):
            exercise.solve(learner_env)
            assert exercise.caught_up(learner_env), exercise.label
    exercises = {"01": ("1.1", "1.2"), "02": ("2.1",), "03": ("3.1", "3.2")}
    for number, labels in exercises.items():
        text = _text(_run(runs_dir, number, f"shipped-caught-up-{number}", solved=False))
        assert text.count("not answered yet") == 3, number
        assert "✅ Question" not in text and "✅ Exercise" not in text, number
        for label in labels:
            assert f"❌ Exercise {label}" in text, label
        assert text.count("the catch-up made it") == len(labels), number
        assert f"✅ Task {int(number)}" in text  # the catch-up lets the learner move on
        assert "Traceback" not in text
    for number, labels in exercises.items():
        text = _text(_run(runs_dir, number, f"solved-after-catch-up-{number}"))
        for label in labels:
            assert f"✅ Exercise {label}" in text, label
    for exercise in (task1.q1, task1.q2, task2.q1, task3.q1, task3.q2):
        assert not exercise.caught_up(learner_env), exercise.label
