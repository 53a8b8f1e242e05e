"""Unit-test fixtures: moto in-process, with the lab's pre-provisioned environment."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from labkit.config import LAB
from labkit.lab import Lab
from labkit.tasks.exercise import Exercise, Task

REGION = "us-west-2"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No real credentials, no CI strictness, a private state file."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "LABKIT_BACKEND", "LABKIT_STRICT", "CI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    """A boto3 session on moto's in-process mock (for code that takes a session)."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def provision_lab_environment() -> None:
    """What the lab's CloudFormation stack (or the sandbox) provides before Task 1."""
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam = boto3.client("iam", region_name=REGION)
    for role in (LAB.instance_role, LAB.service_role):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    boto3.client("ecs", region_name=REGION).create_cluster(clusterName=LAB.cluster)
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    elbv2 = boto3.client("elbv2", region_name=REGION)
    lb = elbv2.create_load_balancer(
        Name=LAB.load_balancer,
        Type="network",
        Subnets=[s["SubnetId"] for s in subnets["Subnets"][:2]],
    )["LoadBalancers"][0]
    tg = elbv2.create_target_group(
        Name=LAB.target_group, Protocol="TCP", Port=80, VpcId=vpc["VpcId"]
    )["TargetGroups"][0]
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="TCP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A Lab on the "aws" backend, served by moto in-process."""
    with mock_aws():
        provision_lab_environment()
        yield Lab.from_parameters(backend="aws", region=REGION)


@pytest.fixture
def catch_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Lab]:
    """``catch_up(lab, task1.TASK, task4.q1, …)``: the lab as the reference solutions leave
    it, run through the kit's catch-up path (``solve()``) with the learner's plain boto3
    clients. Task 3's solution writes ``my-task-definition.json`` into a temp directory."""
    monkeypatch.chdir(tmp_path)

    def run(lab: Lab, *steps: Exercise | Task) -> Lab:
        lab.export_environment()
        for step in steps:
            step.solve(lab)
        return lab

    return run
