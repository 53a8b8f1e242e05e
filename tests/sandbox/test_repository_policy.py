"""Repository policies against a real sandbox: what SetRepositoryPolicy refuses (ECR's
code and text, nothing stored), and Deny and Condition really deciding a docker pull."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from labkit.sandbox.registry.policy import INVALID_POLICY, PRINCIPAL_NOT_FOUND
from tests.sandbox.test_registry import (
    INSTANCE_ROLE,
    PULL,
    docker_cli,
    granted,
    login_password,
    role_login,
)

pytestmark = pytest.mark.sandbox

ACCOUNT = INSTANCE_ROLE.split(":")[4]


@pytest.fixture()
def repo(aws: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    ecr = aws("ecr")
    name = f"policy-{request.node.name.lower().replace('_', '-')[:40].rstrip('-')}"
    for char in "[]":
        name = name.replace(char, "-")
    ecr.create_repository(repositoryName=name)
    yield name
    ecr.delete_repository(repositoryName=name, force=True)


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow_role() -> dict[str, Any]:
    return {"Sid": "pull", "Effect": "Allow", "Principal": {"AWS": INSTANCE_ROLE}, "Action": PULL}


def stored_policy(aws: Any, repo: str) -> str | None:
    try:
        return aws("ecr").get_repository_policy(repositoryName=repo)["policyText"]
    except aws("ecr").exceptions.RepositoryPolicyNotFoundException:
        return None


REFUSED = [
    # (what the learner wrote, the message ECR or the sandbox answers with)
    (
        document({**allow_role(), "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/NoSuch"}}),
        PRINCIPAL_NOT_FOUND,
    ),
    ("{'Version': '2012-10-17'}", INVALID_POLICY),  # Python's repr, not JSON
    (document({**allow_role(), "Resource": "*"}), INVALID_POLICY),
    (
        document({**allow_role(), "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/Ec2*"}}),
        INVALID_POLICY,
    ),
    (
        document({**allow_role(), "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}),
        "The labkit sandbox cannot evaluate the condition operator 'IpAddress'",
    ),
    (
        document(
            {**allow_role(), "Condition": {"ForAllValues:StringEquals": {"aws:PrincipalArn": "x"}}}
        ),
        "The labkit sandbox cannot evaluate the condition operator 'ForAllValues:StringEquals'",
    ),
    (
        document({**allow_role(), "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}),
        "The labkit sandbox cannot evaluate the condition key 'aws:SourceVpce'",
    ),
]


REFUSED_IDS = [
    "role-not-found",
    "not-json",
    "resource-element",
    "wildcard-principal",
    "unknown-operator",
    "for-all-values",
    "unknown-key",
]


@pytest.mark.parametrize(("text", "message"), REFUSED, ids=REFUSED_IDS)
def test_set_repository_policy_refuses_and_stores_nothing(
    aws: Any, repo: str, text: str, message: str
) -> None:
    ecr = aws("ecr")
    with pytest.raises(ClientError) as refused:
        ecr.set_repository_policy(repositoryName=repo, policyText=text)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert error["Message"].startswith(message)
    assert stored_policy(aws, repo) is None
    # A policy already there stays as it was.
    good = document(allow_role())
    ecr.set_repository_policy(repositoryName=repo, policyText=good)
    with pytest.raises(ClientError):
        ecr.set_repository_policy(repositoryName=repo, policyText=text)
    assert json.loads(stored_policy(aws, repo)) == json.loads(good)


def test_a_missing_repository_is_named_before_the_policy_is_read(aws: Any) -> None:
    ecr = aws("ecr")
    with pytest.raises(ecr.exceptions.RepositoryNotFoundException):
        ecr.set_repository_policy(repositoryName="no-such-repository", policyText="{bad")


def test_deny_and_conditions_decide_a_real_docker_pull(
    aws: Any, sandbox: Any, repo: str, sample_image: str, tmp_path: Path, untag_at_end: list[str]
) -> None:
    ecr = aws("ecr")
    uri = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["repositoryUri"]
    untag_at_end.append(f"{uri}:v1")  # tagged, then pulled again as the role
    admin = login_password(aws)
    admin_docker, role_docker = tmp_path / "admin", tmp_path / "role"
    docker_cli(
        admin_docker, "login", "-u", admin[0], "--password-stdin", sandbox.registry, stdin=admin[1]
    )
    docker_cli(admin_docker, "tag", sample_image, f"{uri}:v1")
    assert docker_cli(admin_docker, "push", f"{uri}:v1").returncode == 0
    docker_cli(admin_docker, "rmi", f"{uri}:v1")
    role = role_login(aws, sandbox)
    login = docker_cli(
        role_docker, "login", "-u", role[0], "--password-stdin", sandbox.registry, stdin=role[1]
    )
    assert login.returncode == 0, login.stderr

    def role_pull() -> bool:
        pulled = docker_cli(role_docker, "pull", f"{uri}:v1")
        docker_cli(role_docker, "rmi", f"{uri}:v1")
        if pulled.returncode != 0:
            assert "denied" in (pulled.stderr + pulled.stdout).lower(), pulled.stderr
        return pulled.returncode == 0

    def set_policy(*statements: dict[str, Any]) -> None:
        ecr.set_repository_policy(repositoryName=repo, policyText=document(*statements))

    # Allowed only from the account: the condition holds, and the pull goes through.
    same_account = {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
    set_policy({**allow_role(), "Condition": same_account})
    assert role_pull()

    # An explicit Deny, scoped by ArnLike on the principal, wins over the Allow.
    deny_ec2_roles = {
        "Sid": "no-instance-roles",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "ecr:*",
        "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/Ec2*"}},
    }
    set_policy(allow_role(), deny_ec2_roles)
    assert granted(sandbox, repo, role) == []
    assert not role_pull()
    # ...and only whom it matches: the account's user still pulls.
    assert granted(sandbox, repo, admin) == ["pull", "push", "delete", "*"]

    # A role's pull carries no aws:SourceAccount: an Allow that requires it lets nothing in,
    # the IfExists form lets the role in.
    source = {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    set_policy({**allow_role(), "Condition": source})
    assert not role_pull()
    set_policy({**allow_role(), "Condition": {"StringEqualsIfExists": source["StringEquals"]}})
    assert role_pull()

    # A Deny to the account applies to every principal in it, the user included.
    deny_account = {k: v for k, v in deny_ec2_roles.items() if k != "Condition"}
    set_policy(allow_role(), {**deny_account, "Principal": {"AWS": ACCOUNT}})
    assert granted(sandbox, repo, role) == []
    assert granted(sandbox, repo, admin) == []
