"""The lab's names and the kit's settings, defined once.

The names come from the lab guide (``../shared/lab-guide.md``); the sandbox provisions
the pre-existing ones (cluster, roles, load balancer, target group) and the notebooks
create the learner's ones (repository, task definition family, service…).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The tag every resource the kit creates carries, so cleanup never touches anything else.
KIT_TAG_KEY = "labkit:created-by"
KIT_TAG_VALUE = "ecs-labkit"

#: The region the lab guide uses.
DEFAULT_REGION = "us-west-2"

#: moto's account id; the sandbox's account.
SANDBOX_ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class LabNames:
    """Names used by the lab guide, pre-provisioned and learner-created alike."""

    # Pre-provisioned by the lab environment (the sandbox, or the CloudFormation stack).
    cluster: str = "ECSCluster"
    instance_role: str = "Ec2instanceRole"
    service_role: str = "ecsServiceRole"
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
