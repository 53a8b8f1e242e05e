"""Break and fix, end to end on a private sandbox: every scenario of ``labkit challenge``.

One lab (Tasks 1–4 by catch-up) for the module; the scenarios run in sequence on it. For
each: ``start`` (the check fails and ECS says so in its own words, read with plain
boto3), the fix with the ``aws`` CLI in a subprocess (the check passes), ``start`` again
and ``solve`` (the check passes), ``stop`` (the page through the load balancer, and the
lab's resources as before, compared describe by describe).

    pytest -m sandbox tests/challenges/test_scenarios.py -v -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.names import LAB
from tests.conftest import private_lab_env, require_data_plane, running_sandbox_clients

pytestmark = pytest.mark.sandbox

FIX_SECONDS = 240


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A working lab after Task 4 on a private sandbox (its own state dir and ports)."""
    require_data_plane()
    workdir = tmp_path_factory.mktemp("learner")  # Task 3's catch-up writes its JSON here
    before = Path.cwd()
    with private_lab_env(tmp_path_factory, strict=False):
        os.chdir(workdir)
        try:
            from labkit.challenges import engine
            from labkit.lab import Lab

            started = time.monotonic()
            lab = Lab.from_parameters(backend="sandbox")
            lab.start()
            engine.catch_up(lab)
            print(f"\nworking lab (Tasks 1–4 by catch-up): {time.monotonic() - started:.1f} s")
            yield lab
        finally:
            os.chdir(before)


def snapshot(lab: Any) -> dict[str, Any]:
    """The lab's resources as plain boto3 describes them (not what changes by itself:
    task ids, events, timestamps)."""
    aws = running_sandbox_clients("ecr", "ecs", "elbv2", "servicediscovery")
    ecs, ecr, elbv2 = aws["ecs"], aws["ecr"], aws["elbv2"]
    service = ecs.describe_services(cluster=LAB.cluster, services=[lab.service_name])["services"][0]
    keys = ("status", "taskDefinition", "desiredCount", "launchType", "loadBalancers",
            "serviceRegistries", "deploymentConfiguration", "roleArn")  # fmt: skip
    groups = elbv2.describe_target_groups()["TargetGroups"]
    balancers = elbv2.describe_load_balancers()["LoadBalancers"]
    return {
        "service": {k: service.get(k) for k in keys},
        "services": ecs.list_services(cluster=LAB.cluster)["serviceArns"],
        "revisions": ecs.list_task_definitions(familyPrefix=LAB.task_family, status="ACTIVE")[
            "taskDefinitionArns"
        ],
        "policy": ecr.get_repository_policy(repositoryName=LAB.repository)["policyText"],
        "images": sorted(
            (i["imageDigest"], tuple(sorted(i.get("imageTags", []))))
            for i in ecr.describe_images(repositoryName=LAB.repository)["imageDetails"]
        ),
        "repositories": [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]],
        "target_groups": groups,
        "listeners": [
            elbv2.describe_listeners(LoadBalancerArn=b["LoadBalancerArn"])["Listeners"]
            for b in balancers
        ],
        "instances": len(
            ecs.list_container_instances(cluster=LAB.cluster)["containerInstanceArns"]
        ),
        "discovery": [s["Name"] for s in aws["servicediscovery"].list_services()["Services"]],
    }


def ecs_words(lab: Any) -> list[str]:
    """Stopped tasks' stoppedReason and the service events, read with plain boto3."""
    ecs = running_sandbox_clients("ecs")["ecs"]
    arns = ecs.list_tasks(cluster=LAB.cluster, serviceName=lab.service_name,
                          desiredStatus="STOPPED")["taskArns"]  # fmt: skip
    tasks = ecs.describe_tasks(cluster=LAB.cluster, tasks=arns)["tasks"] if arns else []
    service = ecs.describe_services(cluster=LAB.cluster, services=[lab.service_name])["services"][0]
    return [t.get("stoppedReason", "") for t in tasks] + [e["message"] for e in service["events"]]


def aws_cli(lab: Any, *args: str) -> str:
    """The aws CLI as a terminal with the lab's exported environment runs it."""
    env = {**os.environ, **lab.aws_environment()}
    done = subprocess.run(["aws", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_fix(lab: Any, name: str, good_revision: str, workdir: Path) -> None:
    """What a learner types to fix ``name``."""
    service = ["--cluster", LAB.cluster, "--service", lab.service_name]
    if name == "pull-denied":
        role = json.loads(aws_cli(lab, "iam", "get-role", "--role-name", LAB.instance_role))
        from labkit.ecr import REPOSITORY_ACTIONS

        principal = {"AWS": role["Role"]["Arn"]}
        statement = {"Sid": LAB.repository_statement, "Effect": "Allow",
                     "Principal": principal, "Action": list(REPOSITORY_ACTIONS)}  # fmt: skip
        policy = workdir / "policy.json"
        policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
        aws_cli(lab, "ecr", "set-repository-policy", "--repository-name", LAB.repository,
                "--policy-text", f"file://{policy}")  # fmt: skip
    elif name == "port-conflict":
        aws_cli(lab, "ecs", "update-service", *service, "--desired-count", "2")
    else:  # back to the revision that worked
        aws_cli(lab, "ecs", "update-service", *service, "--task-definition", good_revision)


def labkit_cli(*args: str) -> subprocess.CompletedProcess:
    """`labkit challenge …` in a subprocess (this tree's labkit, the private lab's env)."""
    command = [sys.executable, "-m", "labkit.cli", "challenge", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def wait_fixed(lab: Any, name: str) -> Any:
    from labkit.challenges import engine

    deadline = time.monotonic() + FIX_SECONDS
    while True:
        result = engine.check(lab, name)
        if result.passed or time.monotonic() > deadline:
            return result
        time.sleep(3)


def serves_page(lab: Any) -> bool:
    from labkit.challenges import lab_state

    return lab_state.page_problem(lab, attempts=5) is None


SCENARIOS = ["pull-denied", "missing-tag", "wrong-port", "port-conflict", "memory", "exits"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_start_fix_with_cli_solve_and_stop(lab: Any, name: str, tmp_path: Path) -> None:
    from labkit.challenges import engine, scenario

    chosen = scenario(name)
    timings = {}
    before = snapshot(lab)
    good_revision = before["service"]["taskDefinition"]

    # 1. start: the check fails, and ECS says what is wrong in its own words.
    t = time.monotonic()
    lines = engine.start(lab, name)
    timings["start"] = time.monotonic() - t
    assert any(chosen.symptom_words in line for line in lines), lines
    assert any(chosen.symptom_words in words for words in ecs_words(lab))
    if name == "exits":  # the throttle event follows tasks that stopped for this reason
        assert any("stopped: Essential container in task exited" in line for line in lines)
    failed = engine.check(lab, name)
    assert not failed.passed and failed.problems, failed
    assert "❌" in str(failed)
    assert labkit_cli("check", name).returncode == 1  # what a terminal gets

    # 2. the learner's fix with the aws CLI: the check passes, with a score.
    t = time.monotonic()
    cli_fix(lab, name, good_revision, tmp_path)
    fixed = wait_fixed(lab, name)
    timings["cli fix"] = time.monotonic() - t
    assert fixed.passed, fixed
    assert "✅" in str(fixed) and fixed.score == 100
    done = labkit_cli("check")
    assert done.returncode == 0 and f"✅ {name}: fixed" in done.stdout, done.stdout + done.stderr

    # 3. start again, a clue, then solve: the check passes (score 0 after the solution).
    t = time.monotonic()
    engine.start(lab, name)
    assert not engine.check(lab, name).passed
    assert f"−{chosen.clues[0].cost} points" in engine.hint(name)
    assert engine.check(lab, name).score == 100 - chosen.clues[0].cost
    solved = engine.solve(lab, name)
    timings["start+solve"] = time.monotonic() - t
    assert solved.passed, solved
    assert engine.board_summary() == {"name": name, "score": 0, "fixed": True}
    # The lab's catch-up and the solution restore state without marking the learner's
    # exercises as the catch-up's (issue 20): their own checks stay theirs.
    from labkit.state import load_state
    from labkit.tasks.exercise import CATCH_UP_KEY

    assert not any(load_state().get(CATCH_UP_KEY, {}).values()), load_state()[CATCH_UP_KEY]

    # 4. stop: the working lab is back and nothing else changed.
    t = time.monotonic()
    engine.stop(lab)
    timings["stop"] = time.monotonic() - t
    assert engine.current() is None
    assert serves_page(lab)
    after = snapshot(lab)
    assert {k: after[k] for k in after if after[k] != before[k]} == {}, before
    print(f"\n{name}: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
