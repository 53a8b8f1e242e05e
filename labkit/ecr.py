"""Task 1 and the registry side of Task 2: repository, permission statement, login token.

Concepts (the notebooks explain them where they are used):

- **registry**: one per account and region, ``<account>.dkr.ecr.<region>.amazonaws.com``
  (in the sandbox ``127.0.0.1:4711``);
- **repository**: a named collection of images inside the registry (``myrepo``);
- **repository policy**: who may do what to the repository; the lab allows the container
  instances' role ``Ec2instanceRole`` so ECS can pull;
- **authorization token**: a 12-hour password Docker uses to log in to the registry;
- **image**: layers + a manifest, named ``<repository URI>:<tag>``, identified by digest.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from labkit.config import compare_repository_uri, not_done_yet
from labkit.lab import Lab

#: What the console lists under "Actions" in Task 1, step 15 ("select all").
REPOSITORY_ACTIONS: tuple[str, ...] = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchDeleteImage",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DeleteLifecyclePolicy",
    "ecr:DeleteRepository",
    "ecr:DeleteRepositoryPolicy",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview",
    "ecr:GetRepositoryPolicy",
    "ecr:InitiateLayerUpload",
    "ecr:ListImages",
    "ecr:PutImage",
    "ecr:PutLifecyclePolicy",
    "ecr:SetRepositoryPolicy",
    "ecr:StartLifecyclePolicyPreview",
    "ecr:UploadLayerPart",
)


def as_list(value: Any) -> list[Any]:
    """A policy's Statement, Action or Principal: one value or a list, as a list."""
    return [value] if isinstance(value, str | dict) else list(value or [])


def find_repository(lab: Lab) -> dict[str, Any] | None:
    """The repository, or None if it does not exist."""
    try:
        reply = lab.ecr.describe_repositories(repositoryNames=[lab.repository_name])
    except lab.ecr.exceptions.RepositoryNotFoundException:
        return None
    return reply["repositories"][0]


def repository_uri(lab: Lab) -> str:
    """The Repository URI the lab asks you to copy to a text editor (step 8)."""
    repo = find_repository(lab)
    if repo is None:
        raise not_done_yet(f"Repository {lab.repository_name!r}", 1)
    return repo["repositoryUri"]


def check_repository_uri(lab: Lab, uri: Any) -> str:
    """:func:`compare_repository_uri` against the lab's repository (which must exist)."""
    return compare_repository_uri(uri, repository_uri(lab))


def registry_host(uri: str) -> str:
    """``123456789012.dkr.ecr.us-west-2.amazonaws.com/myrepo`` → the part before ``/``."""
    return uri.split("/", 1)[0]


def repository_policy(lab: Lab) -> dict[str, Any] | None:
    """The repository's policy document, or None if it has none."""
    missing = lab.ecr.exceptions
    try:
        reply = lab.ecr.get_repository_policy(repositoryName=lab.repository_name)
    except (missing.RepositoryNotFoundException, missing.RepositoryPolicyNotFoundException):
        return None
    return json.loads(reply["policyText"])


@dataclass(frozen=True)
class RegistryLogin:
    """What ``aws ecr get-login-password`` gives Docker. The password never prints."""

    registry: str  # host[:port] for `docker login`
    username: str
    password: str = field(repr=False)
    expires_at: datetime | None = None

    @property
    def masked_password(self) -> str:
        """The first 4 characters and the length: enough to tell two tokens apart."""
        return f"{self.password[:4]}…({len(self.password)} characters hidden)"

    def __str__(self) -> str:
        when = f", valid until {self.expires_at:%Y-%m-%d %H:%M %Z}" if self.expires_at else ""
        return (
            f"Docker login for {self.registry} as {self.username}, "
            f"password {self.masked_password}{when}"
        )


def registry_login(lab: Lab) -> RegistryLogin:
    """An authorization token from ECR, decoded into a Docker username and password."""
    data = lab.ecr.get_authorization_token()["authorizationData"][0]
    username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    registry = data["proxyEndpoint"].split("://", 1)[-1].rstrip("/")
    return RegistryLogin(registry, username, password, data.get("expiresAt"))


def find_image(lab: Lab, tag: str = "latest") -> dict[str, Any] | None:
    """DescribeImages for ``tag``, or None if the repository has no such image."""
    missing = lab.ecr.exceptions
    try:
        reply = lab.ecr.describe_images(
            repositoryName=lab.repository_name, imageIds=[{"imageTag": tag}]
        )
    except (missing.RepositoryNotFoundException, missing.ImageNotFoundException):
        return None
    return reply["imageDetails"][0] if reply["imageDetails"] else None
