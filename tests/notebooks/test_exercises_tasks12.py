"""Tasks 1 and 2 as exercises, end to end on a private sandbox.

- solved (``labkit run``): 00–02 pass every check on a fresh sandbox;
- re-run: 01 twice and 02 twice still pass, the second time with a short explanation;
- as shipped: 01, then 02 with Task 1 caught up, run to the end with their blanks
  untouched: checks ❌ with a hint, nothing crashes, nothing of their task is created;
- Task 1 done with the ``aws`` CLI outside any notebook passes the checks;
- Task 2's wrong pushes (another tag, another image) get the hint for their cause.

State is read back with plain boto3 and Docker, independently of the notebooks.

    pytest -m notebooks tests/notebooks/test_exercises_tasks12.py -v
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from labkit.lab import Lab
from labkit.names import LAB
from labkit.runner import reset_lab, run_notebooks
from tests.conftest import private_lab_env, require_data_plane, running_sandbox_clients

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private sandbox; not strict, so the as-shipped runs may show ❌ (the solved runs
    ask for strictness themselves)."""
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=False) as env:
        yield env


@pytest.fixture(scope="module")
def runs_dir() -> Path:
    path = Path("artifacts") / "exercises-tasks12" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def learner_env(sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Lab:
    """This process as a learner's kernel after lab.export_environment(): a plain
    boto3.client() and the aws CLI reach the sandbox (undone after the test)."""
    lab = Lab.from_parameters(backend="sandbox")
    for key, value in lab.aws_environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return lab


def _run(runs_dir: Path, number: str, label: str, solved: bool = True) -> Path:
    started = time.monotonic()
    runs = run_notebooks(
        start=number,
        until=number,
        output_dir=runs_dir / label,
        cell_timeout=600,
        log_output=False,
        strict=solved,
        solutions=solved,
    )
    print(f"{label}: {time.monotonic() - started:.1f} s")
    assert runs and all(r.ok for r in runs), [str(r) for r in runs if not r.ok]
    return runs[0].output


def _outputs(path: Path) -> list[str]:
    """Each code cell's outputs as text (stream and text/plain)."""
    nb = json.loads(path.read_text())
    texts = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        parts = []
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            parts.append("".join(output.get("data", {}).get("text/plain", "")))
            parts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
        texts.append("".join(parts))
    return texts


def _text(path: Path) -> str:
    return "\n".join(_outputs(path))


def _state() -> dict[str, Any]:
    aws = running_sandbox_clients("ecr")
    ecr = aws["ecr"]
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    images: list[dict[str, Any]] = []
    policy = None
    if LAB.repository in names:
        images = ecr.describe_images(repositoryName=LAB.repository)["imageDetails"]
        try:
            policy = json.loads(
                ecr.get_repository_policy(repositoryName=LAB.repository)["policyText"]
            )
        except ecr.exceptions.RepositoryPolicyNotFoundException:
            policy = None
    return {"repositories": names, "images": images, "policy": policy, "status": aws["status"]}


def _docker() -> Any:
    import docker

    return docker.from_env(timeout=120)


def _local_tags_for(repository_uri: str) -> list[str]:
    return [
        tag
        for image in _docker().images.list()
        for tag in image.tags
        if tag.startswith(f"{repository_uri}:")
    ]


# -- the tests, in order: they share the module's sandbox -----------------------------


def test_solved_00_to_02_on_a_fresh_sandbox(sandbox_env: dict[str, str], runs_dir: Path) -> None:
    _run(runs_dir, "00", "solved-00")
    nb01 = _run(runs_dir, "01", "solved-01")
    nb02 = _run(runs_dir, "02", "solved-02")
    state = _state()
    assert state["repositories"] == [LAB.repository]
    sids = [s["Sid"] for s in state["policy"]["Statement"]]
    assert sids == [LAB.repository_statement]
    assert [i.get("imageTags") for i in state["images"]] == [["latest"]]
    text01, text02 = _text(nb01), _text(nb02)
    assert "✅ Exercise 1.1" in text01 and "✅ Exercise 1.2" in text01 and "✅ Task 1" in text01
    # The settings in use, each with where it came from (the test exports LABKIT_BACKEND).
    assert "Lab settings: backend=sandbox (from LABKIT_BACKEND);" in text01
    assert "✅ Exercise 2.1" in text02 and "is the sample image you tagged" in text02
    assert "same image: yes" in text02 and "Login Succeeded" in text02
    for text, task in ((text01, 1), (text02, 2)):  # the answers, filled in headless
        assert f"✅ Question {task}.1" in text and f"✅ Question {task}.3" in text
        assert f"Course progress: {task} of 4 tasks done" in text
    # Step 18's failure is announced before the command, not explained after it.
    source = Path("notebooks/02_task2_push_image.ipynb").read_text()
    assert source.index("pull fails") < source.index("!docker pull")


def test_reruns_end_in_short_explanations(sandbox_env: dict[str, str], runs_dir: Path) -> None:
    before = _state()
    for number in ("01", "02"):
        for attempt in (1, 2):
            executed = _run(runs_dir, number, f"rerun-{number}-{attempt}")
            text = _text(executed)
            assert "Traceback" not in text
    nb01 = _outputs(runs_dir / "rerun-01-2" / "01_task1_repository.ipynb")
    create = next(t for t in nb01 if "CreateRepository" in t)
    assert "RepositoryAlreadyExistsException" in create and "exists already" in create
    assert len(create.strip().splitlines()) <= 3, create
    after = _state()
    assert after["repositories"] == before["repositories"]
    assert [i["imageDigest"] for i in after["images"]] == [
        i["imageDigest"] for i in before["images"]
    ]


def test_01_as_shipped_runs_to_the_end_and_creates_nothing(
    sandbox_env: dict[str, str], runs_dir: Path
) -> None:
    reset_lab({})
    assert _state()["repositories"] == []
    executed = _run(runs_dir, "01", "shipped-01", solved=False)
    text = _text(executed)
    assert "⏳ Exercise 1.1 is not done yet" in text and "⏳ Exercise 1.2 is not done yet" in text
    assert "❌ Exercise 1.1" in text and "Hint:" in text and "q1.hint(2)" in text
    assert "❌ Exercise 1.2" in text and "❌ Task 1" in text
    assert text.count("not answered yet") == 3  # the three questions, left blank
    assert "Course progress: 0 of 4 tasks done" in text
    assert "Traceback" not in text
    assert _state()["repositories"] == []


def test_02_as_shipped_after_the_task1_catch_up_pushes_nothing(
    learner_env: Lab, runs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from labkit.tasks import task1

    task1.TASK.solve(learner_env)  # the catch-up a learner would run in notebook 01
    assert "Catch-up" in capsys.readouterr().out
    assert task1.TASK.evaluate(learner_env).passed
    uri = f"{_state()['status'].registry}/{LAB.repository}"
    for tag in _local_tags_for(uri):  # an earlier test's push: start from no local tag
        _docker().images.remove(tag)

    executed = _run(runs_dir, "02", "shipped-02", solved=False)
    outputs = _outputs(executed)
    waiting = [t for t in outputs if "⏳ Exercise 2.1 is not done yet" in t]
    assert len(waiting) == 1  # REPOSITORY; the tag, login and push cells are empty %%bash
    text = "\n".join(outputs)
    assert text.count("not answered yet") == 3 and "❌ Task 2" in text
    assert "❌ Exercise 2.1" in text and "nothing has been pushed" in text and "Hint:" in text
    assert "Traceback" not in text
    assert _state()["images"] == []
    assert _local_tags_for(uri) == []  # not even tagged


def test_task1_with_the_aws_cli_outside_the_notebook(learner_env: Lab, tmp_path: Path) -> None:
    reset_lab({})
    env = {**os.environ, **learner_env.aws_environment()}

    def aws(*args: str) -> str:
        done = subprocess.run(["aws", *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    from labkit.tasks.task1 import q1, q2

    assert not q1.evaluate(learner_env).passed
    aws("ecr", "create-repository", "--repository-name", "myrepo")
    role = aws("iam", "get-role", "--role-name", "Ec2instanceRole")
    role_arn = json.loads(role)["Role"]["Arn"]
    policy = tmp_path / "my-policy.json"
    statement = {
        "Sid": "my_repository_statement",
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": ["ecr:*"],
    }
    policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    assert not q2.evaluate(learner_env).passed
    aws(
        "ecr",
        "set-repository-policy",
        "--repository-name",
        "myrepo",
        "--policy-text",
        f"file://{policy}",
    )
    assert q1.evaluate(learner_env).passed
    result = q2.evaluate(learner_env)
    assert result.passed, result


def test_task2_wrong_pushes_get_the_hint_for_their_cause(
    learner_env: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from labkit import ecr as lab_ecr
    from labkit.tasks.task2 import compare_digests, q1

    lab = learner_env
    assert lab_ecr.find_repository(lab) is not None  # Task 1, by the previous test
    uri = lab_ecr.repository_uri(lab)
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("not the sample\n")
    (other / "Dockerfile").write_text("FROM scratch\nCOPY note.txt /\n")
    client = _docker()
    image, _ = client.images.build(path=str(other), tag="labkit-test-other:latest", rm=True)
    login = lab_ecr.registry_login(lab)
    auth = {"username": login.username, "password": login.password}

    def push(tag: str) -> None:
        image.tag(uri, tag=tag)
        for event in client.images.push(uri, tag=tag, stream=True, decode=True, auth_config=auth):
            assert "error" not in event, event

    try:
        push("v1")
        result = q1.evaluate(lab)
        assert not result.passed and "no image tagged 'latest' (found: v1)" in result.message
        assert "latest" in result.hint and "docker push $REPOSITORY" in result.hint

        push("latest")
        result = q1.evaluate(lab)
        assert not result.passed and "is not the sample image" in result.message
        assert "docker tag amazon/amazon-ecs-sample:latest $REPOSITORY" in result.hint

        q1.solve(lab)  # the catch-up: looks the URI up and runs the lab's lines
        out = capsys.readouterr().out
        assert "$ docker push $REPOSITORY" in out and "Login Succeeded" in out
        assert q1.evaluate(lab).passed
        assert compare_digests(lab) is True
    finally:
        for tag in ("v1", "latest"):
            try:
                client.images.remove(f"{uri}:{tag}")
            except Exception:  # noqa: BLE001 — already gone
                pass
        client.images.remove("labkit-test-other:latest", force=True)
