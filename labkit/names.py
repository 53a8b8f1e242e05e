"""The lab's names, from the lab guide (``../shared/lab-guide.md``), and the notebooks.

The sandbox (or the CloudFormation stack) provisions the pre-existing resources (cluster,
roles, load balancer, target group); the notebooks create the learner's own (repository,
task definition family, service…). Every resource the kit creates carries its tag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from labkit.errors import PrerequisiteError

#: The region the lab guide uses.
DEFAULT_REGION = "us-west-2"
#: moto's account id; the sandbox's account.
SANDBOX_ACCOUNT_ID = "123456789012"

#: The tag every resource the kit creates carries, so cleanup never touches anything else.
KIT_TAG_KEY = "labkit:created-by"
KIT_TAG_VALUE = "ecs-labkit"


def has_kit_tag(tags: Any) -> bool:
    """True when an AWS tag list (Key/Value or key/value casing) holds the kit's tag."""
    return any(
        tag.get("Key", tag.get("key")) == KIT_TAG_KEY
        and tag.get("Value", tag.get("value")) == KIT_TAG_VALUE
        for tag in tags or []
    )


def role_trust_policy(service: str) -> str:
    """A role trust policy that lets ``service`` (e.g. ec2.amazonaws.com) assume it."""
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class LabNames:
    """Names used by the lab guide, pre-provisioned and learner-created alike."""

    # Pre-provisioned by the lab environment (the sandbox, or the CloudFormation stack).
    cluster: str = "ECSCluster"
    instance_role: str = "Ec2instanceRole"
    service_role: str = "ecsServiceRole"
    #: ECS's own role, which services without ``role`` act as (created on first use).
    service_linked_role: str = "AWSServiceRoleForECS"
    load_balancer: str = "Myloadbalancer"
    target_group: str = "myTargetgroup"
    # Created by the learner in Tasks 1–4.
    repository: str = "myrepo"
    repository_statement: str = "my_repository_statement"
    task_family: str = "ecs-demo"
    container_name: str = "ecs-sample"
    service_prefix: str = "MYSERVICE"
    namespace: str = "myprivatednsnamespace"
    discovery_ttl_seconds: int = 10


LAB = LabNames()

#: The notebooks, in order; errors name the one to run.
NOTEBOOKS: dict[int, str] = {
    0: "00_start_here.ipynb",
    1: "01_task1_repository.ipynb",
    2: "02_task2_push_image.ipynb",
    3: "03_task3_task_definition.ipynb",
    4: "04_task4_service.ipynb",
    5: "05_operating_the_service.ipynb",
    6: "06_cleanup.ipynb",
    7: "07_troubleshooting.ipynb",  # optional: break and fix (labkit.challenges)
}


def not_done_yet(what: str, task: int, done_by: str = "creates") -> PrerequisiteError:
    """``what`` does not exist yet: Task ``task`` makes it, so run its notebook first."""
    return PrerequisiteError(
        f"{what} does not exist yet.",
        why=f"Task {task} {done_by} it.",
        fix=f"Run {NOTEBOOKS[task]} first.",
    )
