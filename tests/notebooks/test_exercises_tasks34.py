"""Notebooks 03 and 04 as exercises, end to end on a private sandbox.

One lab, in the order a class would meet it: 00–02 solved; 03 as shipped (blanks
untouched: runs to the end, ❌ with hints, no task definition); Task 3 done with the
``aws`` CLI in a subprocess (its check passes); 03 solved; 04 as shipped (no namespace,
no service); each exercise cell of 04 alone after the setup cell, in a fresh kernel
(restart safety); 04 solved (steady, the page through the load balancer); 04 as shipped
again with the state holding every answer (no free pass); 03 and 04 solved again (each
exercise explains what AWS answered). Every effect is read back with plain boto3 and HTTP.

    pytest -m notebooks tests/notebooks/test_exercises_tasks34.py -v
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from botocore.config import Config

from labkit.names import LAB
from labkit.runner import NOTEBOOK_DIR, run_notebooks
from tests.conftest import private_lab_env, require_data_plane, running_sandbox_clients

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def lab_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private sandbox; strictness is chosen per run (as-shipped runs must not be)."""
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=False) as env:
        yield env


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the notebooks, so the learner's files (my-task-definition.json) are ours."""
    target = tmp_path_factory.mktemp("lab") / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, target, ignore=shutil.ignore_patterns("my-task-definition*"))
    return target


def _run(notebooks: Path, out: Path, number: str, *, solved: bool) -> Path:
    started = time.monotonic()
    runs = run_notebooks(
        start=number,
        until=number,
        output_dir=out,
        notebook_dir=notebooks,
        cell_timeout=600,
        log_output=False,
        strict=solved,
        solutions=solved,
    )
    print(f"{number} {'solved' if solved else 'as shipped'}: {time.monotonic() - started:.1f} s")
    assert runs and all(r.ok for r in runs), [str(r) for r in runs]
    return runs[-1].output


def _alone(notebooks: Path, out: Path, number: str, exercise: int) -> Path:
    """Notebook ``number`` cut to its parameters and setup cells, exercise cell
    ``exercise`` and its check, run solved in a fresh kernel (a restart, cells skipped)."""
    folder = out / "notebooks"
    shutil.copytree(notebooks, folder, ignore=shutil.ignore_patterns("*.ipynb"))
    (path,) = notebooks.glob(f"{number}_*.ipynb")
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    cells = [c for c in code if "exercise" in c.metadata.get("tags", [])]
    cell = [c for c in cells if "quiz" not in c.source][exercise - 1]
    after = code[code.index(cell) + 1 :]
    check = next(c for c in after if ".check(" in c.source)
    nb.cells = [*code[:2], cell, *after[: after.index(check) + 1]]  # the wait, the check
    nbformat.write(nb, folder / path.name)
    return _run(folder, out, number, solved=True)


def _text(path: Path) -> str:
    """Every output of an executed notebook, as plain text."""
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
            if output.get("output_type") == "error":
                parts.append(f"ERROR {output.get('ename')}: {output.get('evalue')}")
    return "\n".join(parts)


def _families(aws) -> list[str]:
    return aws["ecs"].list_task_definition_families(status="ACTIVE")["families"]


def _services(aws) -> list[dict]:
    arns = aws["ecs"].list_services(cluster=LAB.cluster)["serviceArns"]
    if not arns:
        return []
    return aws["ecs"].describe_services(cluster=LAB.cluster, services=arns)["services"]


def test_tasks_3_and_4_shipped_cli_solved_and_rerun(
    lab_env: dict[str, str], notebooks: Path, tmp_path: Path
) -> None:
    wall = time.monotonic()
    out = tmp_path / "runs"
    runs = run_notebooks(
        start="00", until="02", output_dir=out / "first", notebook_dir=notebooks,
        cell_timeout=600, log_output=False, strict=True, solutions=True,
    )  # fmt: skip
    assert all(r.ok for r in runs), [str(r) for r in runs]
    aws = running_sandbox_clients("ecr", "ecs", "elbv2", "servicediscovery")

    # 03 as shipped: runs to the end, the checks say ❌ with a hint, nothing registered.
    shipped3 = _text(_run(notebooks, out / "shipped3", "03", solved=False))
    assert "Exercise 3.1 is not done yet" in shipped3 and "Exercise 3.2 is not done yet" in shipped3
    assert "❌ Exercise 3.1" in shipped3 and "still the placeholder" in shipped3
    assert "❌ Task 3" in shipped3 and "Hint:" in shipped3
    assert "botocore refuses the lab's JSON as is" in shipped3
    assert "ERROR" not in shipped3
    assert LAB.task_family not in _families(aws)

    # Task 3 with the aws CLI in a subprocess, as in a terminal: the check passes.
    from labkit import taskdef
    from labkit.lab import Lab
    from labkit.tasks import task3

    lab = Lab.from_parameters(backend="sandbox")
    uri = aws["ecr"].describe_repositories(repositoryNames=[LAB.repository])["repositories"][0][
        "repositoryUri"
    ]
    cli_dir = tmp_path / "terminal"
    cli_dir.mkdir()
    mine = taskdef.copy_lab_json(cli_dir / "my-task-definition.json")
    mine.write_text(mine.read_text().replace("YOUR-REPOSITORY-URI", uri))
    request_file = cli_dir / "request.json"
    taskdef.request_from_file(mine, lab, request_file=request_file)
    aws_cli = Path(sys.executable).parent / "aws"
    reply = subprocess.run(
        [
            str(aws_cli), "ecs", "register-task-definition",
            "--requires-compatibilities", "EC2",
            "--cli-input-json", f"file://{request_file}",
        ],
        env={**os.environ, **lab.aws_environment()}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert reply.returncode == 0, reply.stderr
    assert json.loads(reply.stdout)["taskDefinition"]["revision"] == 1
    result = task3.TASK.evaluate(lab)
    assert result.passed, result
    assert "ecs-demo:1" in result.message

    # 03 solved: a new revision, the highest, passes.
    solved3 = _text(_run(notebooks, out / "solved3", "03", solved=True))
    assert "✅ Exercise 3.1" in solved3 and "✅ Exercise 3.2" in solved3 and "✅ Task 3" in solved3
    assert "Registered ecs-demo:2" in solved3
    assert "dropped 16 key(s)" in solved3

    # 04 as shipped: runs to the end, ❌ with hints, nothing of Task 4 made.
    shipped4 = _text(_run(notebooks, out / "shipped4", "04", solved=False))
    for number in (1, 2, 3, 4, 5):
        assert f"Exercise 4.{number} is not done yet" in shipped4
        assert f"❌ Exercise 4.{number}" in shipped4
    assert "Nothing to wait for" in shipped4 and "not answered yet" in shipped4
    assert "ERROR" not in shipped4
    assert _services(aws) == []
    assert aws["servicediscovery"].list_namespaces()["Namespaces"] == []
    assert aws["servicediscovery"].list_services()["Services"] == []

    # Restart safety: each exercise cell, after only the setup cell in a fresh kernel,
    # passes its check with its solution (the earlier exercises' state is there).
    for number in (1, 2, 3, 4, 5):
        alone = _text(_alone(notebooks, out / f"alone4-{number}", "04", number))
        assert f"✅ Exercise 4.{number}" in alone, alone

    # 04 solved: steady, one task, discovery answers, the page comes through the NLB.
    solved4 = _text(_run(notebooks, out / "solved4", "04", solved=True))
    for number in (1, 2, 3, 4, 5):
        assert f"✅ Exercise 4.{number}" in solved4
    assert "✅ Task 4" in solved4 and "has reached a steady state" in solved4
    (service,) = _services(aws)
    assert service["runningCount"] == service["desiredCount"] == 1
    # No role in the call: ECS's service-linked role, as describe_services reports it on AWS.
    assert service["roleArn"].endswith(
        ":role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
    )
    discovery = lab.target.session.client(
        "servicediscovery",
        endpoint_url=aws["status"].api_url,
        config=Config(inject_host_prefix=False),  # a local endpoint has no data- host
    )
    found = discovery.discover_instances(
        NamespaceName=LAB.namespace, ServiceName=service["serviceName"]
    )["Instances"]
    assert found and "AWS_INSTANCE_PORT" in found[0]["Attributes"]
    url = aws["status"].load_balancers[
        aws["elbv2"].describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0][
            "DNSName"
        ]
    ]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as page:
        assert page.status == 200 and b"<html" in page.read().lower()

    # No free pass: 04 as shipped with the state holding every answer: each check ❌.
    free = _text(_run(notebooks, out / "free4", "04", solved=False))
    for number in (1, 2, 3, 4, 5):
        assert f"❌ Exercise 4.{number}" in free and f"✅ Exercise 4.{number}" not in free
    assert "still ____" in free and "✅ Task 4" in free  # the task itself is done

    # 03 and 04 again, solved: short explanations, nothing doubled.
    again3 = _text(_run(notebooks, out / "again3", "03", solved=True))
    assert "exists already (your edits are kept)" in again3 and "✅ Task 3" in again3
    again4 = _text(_run(notebooks, out / "again4", "04", solved=True))
    assert "Exists already:" in again4 and "Creation of service was not idempotent" in again4
    for number in (1, 2, 3, 4, 5):
        assert f"✅ Exercise 4.{number}" in again4
    assert "✅ Task 4" in again4
    assert len(_services(aws)) == 1
    assert len(aws["servicediscovery"].list_services()["Services"]) == 1
    print(f"whole test: {time.monotonic() - wall:.1f} s")


def _v2_images(aws) -> list[dict]:
    try:
        return aws["ecr"].describe_images(
            repositoryName=LAB.repository, imageIds=[{"imageTag": "v2"}]
        )["imageDetails"]
    except aws["ecr"].exceptions.ImageNotFoundException:
        return []


def _revisions(aws) -> list[str]:
    listed = aws["ecs"].list_task_definitions(familyPrefix=LAB.task_family, status="ACTIVE")
    return listed["taskDefinitionArns"]


def test_notebook_05_shipped_alone_solved_and_no_free_pass(
    lab_env: dict[str, str], notebooks: Path, tmp_path: Path
) -> None:
    """After the test above (Task 4 done): 05 as shipped changes nothing; 5.1 and 5.2
    alone after the setup cell; 05 solved (the capstone rolls v2 out with no failed
    request); the rollout cell alone; 05 as shipped again: no check passes."""
    out = tmp_path / "runs"
    aws = running_sandbox_clients("ecr", "ecs", "elbv2", "servicediscovery")
    (before,) = _services(aws)
    revisions = _revisions(aws)

    shipped = _text(_run(notebooks, out / "shipped5", "05", solved=False))
    for number in (1, 2, 3):
        assert f"Exercise 5.{number} is not done yet" in shipped
        assert f"❌ Exercise 5.{number}" in shipped
    assert "not answered yet" in shipped and "ERROR" not in shipped
    (after,) = _services(aws)
    assert after["desiredCount"] == 1 and after["taskDefinition"] == before["taskDefinition"]
    assert _revisions(aws) == revisions and _v2_images(aws) == []

    for number in (1, 2):
        alone = _text(_alone(notebooks, out / f"alone5-{number}", "05", number))
        assert f"✅ Exercise 5.{number}" in alone, alone
    (service,) = _services(aws)
    placement = [e["message"] for e in service["events"] if "unable to place" in e["message"]]
    assert any("is already using a port required by your task" in m for m in placement)

    solved = _text(_run(notebooks, out / "solved5", "05", solved=True))
    for number in (1, 2, 3):
        assert f"✅ Exercise 5.{number}" in solved
    assert "none failed" in solved and "✅ Task 5" in solved and "✅ Task 3" in solved
    assert len(_v2_images(aws)) == 1
    (service,) = _services(aws)
    config = service["deploymentConfiguration"]
    assert (config["minimumHealthyPercent"], config["maximumPercent"]) == (50, 200)
    definition = aws["ecs"].describe_task_definition(taskDefinition=service["taskDefinition"])
    assert definition["taskDefinition"]["containerDefinitions"][0]["image"].endswith(":v2")
    url = aws["status"].load_balancers[
        aws["elbv2"].describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0][
            "DNSName"
        ]
    ]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as page:
        assert b"Version 2 is live!" in page.read()

    # The capstone's rollout cell alone after the setup cell (a restart): it rolls out
    # again, and its check passes.
    alone = _text(_alone(notebooks, out / "alone5-rollout", "05", 6))
    assert "✅ Exercise 5.3" in alone and "none failed" in alone, alone

    # No free pass: as shipped again, the state holding every answer.
    free = _text(_run(notebooks, out / "free5", "05", solved=False))
    for number in (1, 2, 3):
        assert f"❌ Exercise 5.{number}" in free and f"✅ Exercise 5.{number}" not in free
    assert "no rollout started while the probe watched" in free
