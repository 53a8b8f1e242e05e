"""A repository policy's explicit Deny stops a service's task from pulling, in IAM's words."""

from __future__ import annotations

import json

import pytest

from tests.sandbox.helpers import (
    Lab,
    create_service,
    messages,
    register,
    remove_service,
    unique,
    wait_for,
)

pytestmark = pytest.mark.sandbox


def test_an_explicit_deny_stops_the_pull_and_says_so(lab: Lab) -> None:
    ecr = lab.client("ecr")
    repository = lab.image_uri.split("/", 1)[1].split(":")[0]
    before = ecr.get_repository_policy(repositoryName=repository)["policyText"]
    statements = json.loads(before)["Statement"]
    deny = {
        "Sid": "no-instance-roles",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "ecr:BatchGetImage",
        "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Ec2*"}},
    }
    ecr.set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [*statements, deny]}),
    )
    name = unique()
    try:
        create_service(lab, name, register(lab))
        wait_for(lambda: any("CannotPullContainerError" in m for m in messages(lab, name)), 30)
        ecs = lab.client("ecs")
        arns = ecs.list_tasks(cluster=lab.cluster, serviceName=name, desiredStatus="STOPPED")
        task = ecs.describe_tasks(cluster=lab.cluster, tasks=arns["taskArns"][:1])["tasks"][0]
        reason = task["stoppedReason"]
        assert reason.startswith("CannotPullContainerError:"), reason
        assert "not authorized to perform: ecr:BatchGetImage" in reason
        assert reason.endswith("with an explicit deny in a resource-based policy"), reason
    finally:
        remove_service(lab, name)
        ecr.set_repository_policy(repositoryName=repository, policyText=before)
