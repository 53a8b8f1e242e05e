"""Hardening, end to end: re-runs, a killed sandbox, no Docker, and no secret in any output.

Against a PRIVATE sandbox (own home, own free ports), never the user's default one; every
notebook runs headless with papermill, as ``labkit run`` does. State is read back with
plain boto3, independently of labkit's learner API.

    pytest -m notebooks tests/notebooks/test_hardening_e2e.py -v
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.polling import wait_for
from labkit.names import LAB
from labkit.runner import run_notebooks
from tests.conftest import remove_aws_credentials, running_sandbox_clients

pytestmark = pytest.mark.notebooks

LAB_NOTEBOOKS = ("00", "01", "02", "03", "04", "05")


@pytest.fixture(scope="module")
def runs_dir() -> Path:
    path = Path("artifacts") / "hardening" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(runs_dir: Path, start: str, until: str, label: str) -> list[Any]:
    started = time.monotonic()
    runs = run_notebooks(
        start=start, until=until, output_dir=runs_dir / label, cell_timeout=600, log_output=False
    )
    print(f"{label}: {time.monotonic() - started:.1f} s")
    for run in runs:
        print(f"  {run}")
    return runs


def _ok(runs: list[Any]) -> None:
    assert runs and all(r.ok for r in runs), [str(r) for r in runs if not r.ok]


# -- what the lab has made, counted with plain boto3 ----------------------------------


def _counts(aws: dict[str, Any]) -> dict[str, int]:
    ecs, sd, elbv2 = aws["ecs"], aws["servicediscovery"], aws["elbv2"]
    arns = ecs.list_services(cluster=LAB.cluster)["serviceArns"]
    services = ecs.describe_services(cluster=LAB.cluster, services=arns)["services"] if arns else []
    active = [s for s in services if s["status"] == "ACTIVE"]
    for service in active:  # count once the scheduler has settled
        ecs.get_waiter("services_stable").wait(
            cluster=LAB.cluster,
            services=[service["serviceName"]],
            WaiterConfig={"Delay": 2, "MaxAttempts": 90},
        )
    group = elbv2.describe_target_groups(Names=[LAB.target_group])["TargetGroups"][0]

    def targets() -> int:
        health = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])
        states = [t["TargetHealth"]["State"] for t in health["TargetHealthDescriptions"]]
        return sum(1 for s in states if s != "draining")

    # Draining targets of replaced tasks leave within seconds: wait for the settled count.
    deadline = time.monotonic() + 60
    while targets() != sum(s["desiredCount"] for s in active) and time.monotonic() < deadline:
        time.sleep(2)
    return {
        "repositories": len(aws["ecr"].describe_repositories()["repositories"]),
        "task definition revisions": len(
            ecs.list_task_definitions(familyPrefix=LAB.task_family, status="ACTIVE")[
                "taskDefinitionArns"
            ]
        ),
        "services": len(active),
        "targets": targets(),
        "namespaces": len(sd.list_namespaces()["Namespaces"]),
        "discovery services": len(sd.list_services()["Services"]),
    }


# -- secrets ---------------------------------------------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    # A 40-character base64 run that is not hex (hex runs of 40 are SHA-1 digests).
    "40-character secret": re.compile(
        r"(?<![A-Za-z0-9/+=])(?=[0-9a-f]*[g-zA-Z/+])"
        r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
    ),
    # base64("AWS:…"): a whole ECR authorization token.
    "ECR authorization token": re.compile(r"QVdTO[A-Za-z0-9+/]{16,}"),
    # The password inside it: base64url('{"p"…') "." MAC.
    "ECR password": re.compile(r"eyJw[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
}


def _secret_findings(text: str, literal_secrets: list[str]) -> list[str]:
    found = [
        f"{name}: {m.group(0)[:12]}…"
        for name, rx in SECRET_PATTERNS.items()
        for m in rx.finditer(text)
    ]
    found += [f"literal secret {s[:6]}…" for s in literal_secrets if s and s in text]
    return found


def _notebook_text(path: Path) -> str:
    """Every output of an executed notebook (and its sources), as one string."""
    nb = json.loads(path.read_text())
    parts = []
    for cell in nb["cells"]:
        parts.append("".join(cell.get("source", "")))
        for output in cell.get("outputs", []):
            parts.append(json.dumps(output))
    return "\n".join(parts)


def _scan_for_secrets(paths: list[Path], literal: list[str]) -> dict[str, list[str]]:
    leaks = {}
    for path in paths:
        text = _notebook_text(path) if path.suffix == ".ipynb" else path.read_text(errors="replace")
        found = _secret_findings(text, literal)
        if found:
            leaks[str(path)] = found
    return leaks


def test_secret_patterns_catch_what_they_should() -> None:
    import base64

    token = base64.b64encode(
        b"AWS:eyJwIjogImFybjphd3M6aWFtOjoxMjM.abcdefghijklmnopqrstuvwxyz0123"
    ).decode()
    for leak in (
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        token,
        "eyJwIjogImFybjphd3M6aWFtOjoxMjM.abcdefghijklmnopqrstuvwxyz0123",
    ):
        assert _secret_findings(f"x {leak} y", []), leak
    harmless = "sha1 0123456789abcdef0123456789abcdef01234567 and sha256:" + "ab" * 32
    assert _secret_findings(harmless, []) == []


# -- the tests -------------------------------------------------------------------------


def test_without_docker_api_only_steps_work_and_docker_steps_say_why(
    sandbox_env: dict[str, str], runs_dir: Path, tmp_path: Path
) -> None:
    _ok(_run(runs_dir, "00", "00", "start"))
    os.environ["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"  # the kernels inherit it
    try:
        _ok(_run(runs_dir, "01", "01", "no-docker-01"))  # repository + policy: API only
        early = _run(runs_dir, "02", "02", "no-docker-02")
        assert not early[0].ok
        assert "DockerUnavailable" in early[0].error, early[0].error
        text = _notebook_text(early[0].output)
        assert "no-docker.sock" in text and "API" in text  # says where it looked and why
        _ok(_run(runs_dir, "06", "06", "no-docker-cleanup"))  # cleanup needs no Docker
    finally:
        os.environ.pop("DOCKER_HOST", None)
    assert (
        _counts(running_sandbox_clients("ecr", "ecs", "elbv2", "servicediscovery"))["repositories"]
        == 0
    )


def test_every_notebook_twice_and_the_whole_lab_twice(
    sandbox_env: dict[str, str], runs_dir: Path
) -> None:
    _ok(_run(runs_dir, "00", "05", "lab-1"))
    aws = running_sandbox_clients("ecr", "ecs", "elbv2", "servicediscovery")
    baseline = _counts(aws)
    print("after the whole lab:", baseline)
    assert baseline["services"] == 1 and baseline["namespaces"] == 1
    assert baseline["targets"] == 1 and baseline["discovery services"] == 1

    # Registering a task definition again adds a revision, as on AWS (03's exercise and 05's
    # capstone make the real call); nothing else may grow.
    revisions = "task definition revisions"
    for number in LAB_NOTEBOOKS:
        for attempt in (1, 2):
            _ok(_run(runs_dir, number, number, f"twice-{number}-{attempt}"))
        counts = _counts(aws)
        added = 2 if number in ("03", "05") else 0
        assert counts[revisions] == baseline[revisions] + added, (number, counts)
        baseline[revisions] = counts[revisions]
        assert counts == baseline, f"notebook {number} twice changed the counts"

    _ok(_run(runs_dir, "00", "05", "lab-2"))
    baseline[revisions] += 2  # 03's and 05's
    assert _counts(aws) == baseline, "the whole lab a second time changed the counts"

    for label in ("cleanup-1", "cleanup-2"):
        _ok(_run(runs_dir, "06", "06", label))
    empty = _counts(aws)
    assert empty == dict.fromkeys(baseline, 0), empty

    # No output of any executed notebook, and not the sandbox log, shows a secret.
    from labkit import sandbox

    literal = [sandbox.env()["AWS_SECRET_ACCESS_KEY"], "labkit-sandbox-secret"]
    token = aws["ecr"].get_authorization_token()["authorizationData"][0]["authorizationToken"]
    import base64

    literal += [token, base64.b64decode(token).decode().split(":", 1)[1]]
    paths = sorted(runs_dir.rglob("*.ipynb"))
    home = Path(sandbox_env["LABKIT_SANDBOX_HOME"])
    paths += [home / "sandbox.log"] + ([home / "registry.log"] * (home / "registry.log").exists())
    assert len(paths) > 20
    leaks = _scan_for_secrets(paths, literal)
    assert leaks == {}, leaks


def test_sandbox_killed_after_03_recovers(sandbox_env: dict[str, str], runs_dir: Path) -> None:
    _ok(_run(runs_dir, "00", "03", "before-kill"))
    home = Path(sandbox_env["LABKIT_SANDBOX_HOME"])
    from labkit.sandbox import processes

    sandbox_process, _ = processes.find_own(home / "sandbox.pid", "sandbox")
    assert sandbox_process is not None
    sandbox_process.kill()
    wait_for(lambda: processes.find_own(home / "sandbox.pid", "sandbox")[0] is None, 10, 0.2)

    # Without the sandbox, a notebook says how to start it.
    down = _run(runs_dir, "04", "04", "while-down")
    assert not down[0].ok and "SandboxNotRunning" in down[0].error, down[0].error
    assert "labkit sandbox up" in _notebook_text(down[0].output)

    up = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "sandbox", "up"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    status = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "status"], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Backend: sandbox" in status.stdout and "The sandbox is running" in status.stdout
    assert "account 123456789012" in status.stdout

    # ECR survives a restart: repository, statement, tags and the pushed image.
    aws = running_sandbox_clients("ecr", "ecs", "elbv2", "servicediscovery")
    repo = aws["ecr"].describe_repositories(repositoryNames=[LAB.repository])["repositories"][0]
    tags = aws["ecr"].list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert any(t["Key"] == "labkit:created-by" for t in tags)
    assert (
        LAB.repository_statement
        in aws["ecr"].get_repository_policy(repositoryName=LAB.repository)["policyText"]
    )
    assert aws["ecr"].describe_images(repositoryName=LAB.repository)["imageDetails"]

    # ECS survives too (task definitions, services, Cloud Map): 04 goes on from 03's work.
    _ok(_run(runs_dir, "04", "04", "after-restart-04"))
    _ok(_run(runs_dir, "05", "05", "after-restart-05"))
    counts = _counts(aws)
    assert counts["services"] == 1 and counts["namespaces"] == 1 and counts["targets"] == 1
    _ok(_run(runs_dir, "06", "06", "after-restart-cleanup"))
    assert _counts(aws) == dict.fromkeys(counts, 0)


def test_aws_mode_without_credentials_stops_at_once(
    runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notebook 00 on backend aws with no credentials anywhere: CredentialsMissing, and how
    to fix it. (The unit test proves no connection is even attempted.)"""
    remove_aws_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))
    runs = run_notebooks(
        start="00",
        until="00",
        output_dir=runs_dir / "aws-no-credentials",
        parameters={"backend": "aws"},
        cell_timeout=120,
        log_output=False,
    )
    assert not runs[0].ok and "CredentialsMissing" in runs[0].error, runs[0].error
    text = _notebook_text(runs[0].output)
    assert "aws configure" in text and "Nothing was sent to AWS" in text
