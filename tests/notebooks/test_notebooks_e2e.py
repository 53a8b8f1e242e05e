"""Every notebook, run headless with papermill against a fresh sandbox.

The assertions read the REAL effects back independently of labkit's learner API:
plain boto3 against the sandbox endpoint, the registry's own manifest over HTTP, and
the page fetched through the load balancer's URL.

    pytest -m notebooks tests/notebooks -v
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from labkit.names import LAB
from labkit.runner import run_notebooks
from tests.conftest import running_sandbox_clients

pytestmark = pytest.mark.notebooks

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


@pytest.fixture(scope="module")
def runs_dir() -> Path:
    """Executed notebooks are kept as artifacts (./artifacts/notebooks/<timestamp>)."""
    path = Path("artifacts") / "notebooks" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _registry_manifest(registry: str, repo: str, tag: str, token: str) -> tuple[bytes, str]:
    """GET a manifest the way any Docker client does: challenge → bearer token → manifest."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(f"http://{registry}/v2/", timeout=5)
        raise AssertionError("the registry answered /v2/ without credentials")
    except urllib.error.HTTPError as challenge:
        header = challenge.headers["WWW-Authenticate"]
    scheme, _, rest = header.partition(" ")
    assert scheme.lower() == "bearer", header
    params = {k: v.strip('"') for k, v in (p.split("=", 1) for p in rest.split(","))}
    token_request = urllib.request.Request(
        f"{params['realm']}?service={params['service']}&scope=repository:{repo}:pull",
        headers={"Authorization": f"Basic {token}"},  # the ECR token is base64("AWS:…")
    )
    bearer = json.loads(opener.open(token_request, timeout=5).read())["token"]
    manifest_request = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}",
        headers={"Accept": MANIFEST_TYPES, "Authorization": f"Bearer {bearer}"},
    )
    with opener.open(manifest_request, timeout=10) as reply:
        return reply.read(), reply.headers["Docker-Content-Digest"]


def _run(runs_dir: Path, start: str, until: str, label: str):
    started = time.monotonic()
    runs = run_notebooks(
        start=start, until=until, output_dir=runs_dir / label, cell_timeout=600, log_output=False
    )
    print(f"{label}: {time.monotonic() - started:.1f} s")
    for run in runs:
        print(f"  {run}")
    return runs


def test_whole_lab(sandbox_env: dict[str, str], runs_dir: Path) -> None:
    # 00 starts the sandbox; 02 before 01 must stop at once and name notebook 01.
    assert all(r.ok for r in _run(runs_dir, "00", "00", "start"))
    early = _run(runs_dir, "02", "02", "out-of-order")
    assert not early[0].ok
    assert "PrerequisiteError" in early[0].error and "01_task1_repository" in early[0].error

    wall = time.monotonic()
    lab_runs = _run(runs_dir, "00", "05", "lab")
    wall = time.monotonic() - wall
    assert all(r.ok for r in lab_runs), [str(r) for r in lab_runs if not r.ok]
    print(f"whole lab (00-05) papermill wall time: {wall:.1f} s")

    aws = running_sandbox_clients("ecr", "ecs", "elbv2", "servicediscovery")
    status = aws["status"]

    # Task 1: the repository and its statement for the instance role.
    repo = aws["ecr"].describe_repositories(repositoryNames=[LAB.repository])["repositories"][0]
    policy = aws["ecr"].get_repository_policy(repositoryName=LAB.repository)["policyText"]
    assert LAB.repository_statement in policy
    assert f"arn:aws:iam::{status.account_id}:role/{LAB.instance_role}" in policy

    # Task 2: the image in the registry; ECR's digest is the registry manifest's sha256.
    image = aws["ecr"].describe_images(
        repositoryName=LAB.repository, imageIds=[{"imageTag": "latest"}]
    )["imageDetails"][0]
    token = aws["ecr"].get_authorization_token()["authorizationData"][0]["authorizationToken"]
    body, header_digest = _registry_manifest(status.registry, LAB.repository, "latest", token)
    assert image["imageDigest"] == header_digest == "sha256:" + hashlib.sha256(body).hexdigest()

    # Task 3: a revision points at the pushed image (05's v2 revision came after it).
    revisions = aws["ecs"].list_task_definitions(familyPrefix=LAB.task_family, status="ACTIVE")
    images = [
        aws["ecs"].describe_task_definition(taskDefinition=arn)["taskDefinition"][
            "containerDefinitions"
        ][0]["image"]
        for arn in revisions["taskDefinitionArns"]
    ]
    assert f"{repo['repositoryUri']}:latest" in images

    # Task 4: exactly one kit service (re-runs made no second one), steady, one task.
    arns = aws["ecs"].list_services(cluster=LAB.cluster)["serviceArns"]
    services = aws["ecs"].describe_services(cluster=LAB.cluster, services=arns)["services"]
    mine = [s for s in services if s["serviceName"].startswith(LAB.service_prefix)]
    assert len(mine) == 1, [s["serviceName"] for s in mine]
    service = mine[0]
    aws["ecs"].get_waiter("services_stable").wait(
        cluster=LAB.cluster,
        services=[service["serviceName"]],
        WaiterConfig={"Delay": 2, "MaxAttempts": 60},
    )
    service = aws["ecs"].describe_services(cluster=LAB.cluster, services=[service["serviceName"]])[
        "services"
    ][0]
    assert service["runningCount"] == service["desiredCount"] == 1
    assert any("has reached a steady state" in e["message"] for e in service["events"])
    # Notebook 05: two of three tasks placed (the third waits for a host port 80), and the
    # capstone: the changed page as :v2, its revision rolled out at 50/200.
    messages = [e["message"] for e in service["events"]]
    assert any("is already using a port required by your task" in m for m in messages)
    config = service["deploymentConfiguration"]
    assert (config["minimumHealthyPercent"], config["maximumPercent"]) == (50, 200)
    running = aws["ecs"].describe_task_definition(taskDefinition=service["taskDefinition"])
    v2 = f"{repo['repositoryUri']}:v2"
    assert running["taskDefinition"]["containerDefinitions"][0]["image"] == v2
    aws["ecr"].describe_images(repositoryName=LAB.repository, imageIds=[{"imageTag": "v2"}])

    # The page, through the load balancer's URL.
    lb = aws["elbv2"].describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0]
    url = status.load_balancers[lb["DNSName"]]
    with urllib.request.urlopen(url, timeout=10) as reply:
        page = reply.read().decode()
        assert reply.status == 200
    assert "Amazon ECS" in page and "Version 2 is live!" in page

    # Service discovery: the namespace and an instance for the running task.
    namespaces = aws["servicediscovery"].list_namespaces()["Namespaces"]
    assert [n["Name"] for n in namespaces] == [LAB.namespace]

    # No output shows a secret key.
    from labkit import sandbox

    secret = sandbox.env()["AWS_SECRET_ACCESS_KEY"]
    for executed in (runs_dir / "lab").glob("*.ipynb"):
        assert secret not in executed.read_text(), f"{executed.name} shows the secret key"

    # Every step is safe to re-run: tasks 1-4 again change nothing.
    rerun = _run(runs_dir, "01", "04", "rerun")
    assert all(r.ok for r in rerun), [str(r) for r in rerun if not r.ok]
    arns_after = aws["ecs"].list_services(cluster=LAB.cluster)["serviceArns"]
    assert len(arns_after) == len(arns)

    # 06 removes everything the kit made, and is safe to re-run.
    for label in ("cleanup", "cleanup-again"):
        assert all(r.ok for r in _run(runs_dir, "06", "06", label))
    with pytest.raises(aws["ecr"].exceptions.RepositoryNotFoundException):
        aws["ecr"].describe_repositories(repositoryNames=[LAB.repository])
    left = aws["ecs"].describe_services(cluster=LAB.cluster, services=arns)["services"]
    assert all(s["status"] != "ACTIVE" for s in left)
    assert aws["servicediscovery"].list_namespaces()["Namespaces"] == []
    active = aws["ecs"].list_task_definitions(familyPrefix=LAB.task_family, status="ACTIVE")
    assert active["taskDefinitionArns"] == []  # revision 2 (v2) included
    from labkit.images import docker_client

    local = docker_client().images.list(name=repo["repositoryUri"])
    assert not [t for image in local for t in image.tags], "local :latest and :v2 tags removed"
