"""Notebooks 00, 01 and 06 in AWS mode, headless, against a local moto server: never AWS.

``backend = "aws"`` takes the real-AWS code path (default credential chain, no labkit
endpoint); boto3 itself honours ``AWS_ENDPOINT_URL``, which points at a moto server on
loopback. As a belt and braces, HTTPS_PROXY points at a dead port, so even a call that
somehow ignored the endpoint could not leave this machine.

    pytest -m notebooks tests/notebooks/test_aws_mode_e2e.py -v
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from labkit.names import LAB
from labkit.runner import run_notebooks
from tests.conftest import free_port

pytestmark = pytest.mark.notebooks

REGION = "us-west-2"


@pytest.fixture(scope="module")
def moto_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server on loopback, and an environment that sends every boto3 call to it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    home = tmp_path_factory.mktemp("aws-home")
    empty = home / "empty"
    empty.write_text("")
    env = {
        "AWS_ENDPOINT_URL": url,  # boto3's own setting: every client, every service
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
        "HTTPS_PROXY": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "HTTP_PROXY": f"http://127.0.0.1:{free_port()}",
        "NO_PROXY": "127.0.0.1,localhost",
        "LABKIT_BACKEND": "aws",
        "LABKIT_STATE_DIR": str(home / "state"),
        "LABKIT_STRICT": "1",
    }
    saved = {k: os.environ.get(k) for k in [*env, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(env)
    try:
        yield url
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reset(url: str) -> None:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    opener.open(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10)


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def _provider_environment() -> None:
    """What the lab's provider pre-creates, without the kit's tag."""
    iam = _client("iam")
    for role in (LAB.instance_role, LAB.service_role):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Statement": []}))
    _client("ecs").create_cluster(clusterName=LAB.cluster)
    ec2 = _client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    elbv2 = _client("elbv2")
    elbv2.create_load_balancer(
        Name=LAB.load_balancer,
        Type="network",
        Subnets=[s["SubnetId"] for s in subnets["Subnets"][:2]],
    )
    elbv2.create_target_group(Name=LAB.target_group, Protocol="TCP", Port=80, VpcId=vpc["VpcId"])


def _outputs(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "\n".join(json.dumps(o) for c in nb["cells"] for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def runs_dir() -> Path:
    path = Path("artifacts") / "aws-mode" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_empty_account_without_confirmation_shows_the_cost_and_creates_nothing(
    moto_aws: str, runs_dir: Path
) -> None:
    _reset(moto_aws)
    runs = run_notebooks(
        start="00", until="00", output_dir=runs_dir / "no-confirm", log_output=False
    )
    assert not runs[0].ok and "PrerequisiteError" in runs[0].error, runs[0].error
    text = _outputs(runs[0].output)
    assert "per hour" in text and "confirm_cost" in text  # the estimate, and how to confirm
    assert _client("cloudformation").list_stacks()["StackSummaries"] == []


def test_provider_environment_lab_and_cleanup(moto_aws: str, runs_dir: Path) -> None:
    _reset(moto_aws)
    _provider_environment()
    runs = run_notebooks(
        start="00",
        until="01",
        output_dir=runs_dir / "lab",
        parameters={"confirm_cost": True},
        log_output=False,
    )
    assert all(r.ok for r in runs), [str(r) for r in runs]
    text = _outputs(runs[0].output)
    assert "using it as it is" in text and "Ready for the lab." in text
    assert "adds nothing to your bill" in text
    assert "AWS mode: this creates billable resources" in _outputs(runs[1].output)
    repo = _client("ecr").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repo] == [LAB.repository]

    for label in ("cleanup", "cleanup-again"):
        done = run_notebooks(start="06", until="06", output_dir=runs_dir / label, log_output=False)
        assert done[0].ok, done[0].error
        out = _outputs(done[0].output)
        assert "Teardown in us-west-2" in out and "not created by the kit" in out
    assert _client("ecr").describe_repositories()["repositories"] == []
    # The provider's environment is untouched.
    assert _client("ecs").describe_clusters(clusters=[LAB.cluster])["clusters"][0]["status"] == (
        "ACTIVE"
    )
    assert _client("elbv2").describe_target_groups(Names=[LAB.target_group])["TargetGroups"]
