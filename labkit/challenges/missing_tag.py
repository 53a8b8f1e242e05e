"""The task definition names a tag that was never pushed: CannotPullContainerError (not found).

A common cause: a deployment pipeline registers ``:v2`` before (or without) pushing it, or
a typo in the tag. The new deployment's tasks stop at the pull; the old ones keep serving,
so the deployment is stuck.
"""

from __future__ import annotations

from typing import Any

from labkit.challenges import lab_state
from labkit.challenges.scenario import Clue, Scenario
from labkit.lab import Lab

MISSING_TAG = "v2"


def inject(lab: Lab) -> None:
    def retag(container: dict[str, Any]) -> None:
        container["image"] = container["image"].rpartition(":")[0] + f":{MISSING_TAG}"

    lab_state.deploy(lab, lab_state.register_revision(lab, retag))


def extra_check(lab: Lab) -> list[str]:
    arn = lab_state.service(lab)["taskDefinition"]
    definition = lab.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    image = definition["containerDefinitions"][0]["image"]
    if lab_state.image_exists(lab, image):
        return []
    return [f"the service's task definition names {image}, which is not in the registry"]


def solve(lab: Lab) -> None:
    def latest(container: dict[str, Any]) -> None:
        container["image"] = container["image"].rpartition(":")[0] + ":latest"

    lab_state.deploy(lab, lab_state.register_revision(lab, latest))


SCENARIO = Scenario(
    name="missing-tag",
    title="The task definition names a tag that does not exist",
    symptom="A new deployment never finishes: the old task keeps serving, new ones stop.",
    symptom_words="CannotPullContainerError",
    inject=inject,
    extra_check=extra_check,
    solve=solve,
    cli_fix="aws ecs update-service --cluster ECSCluster --service MYSERVICE<n> "
    "--task-definition ecs-demo:<a revision whose image tag exists>",
    clues=(
        Clue(
            10,
            "aws ecs describe-services: two deployments. Why do the new tasks stop? "
            "describe-tasks --desired-status STOPPED → stoppedReason.",
        ),
        Clue(
            20,
            "'manifest ... not found': compare the task definition's image with "
            "aws ecr describe-images --repository-name myrepo (which tags exist?).",
        ),
        Clue(
            40,
            "Deploy a revision whose image is :latest (the tag you pushed): "
            "update-service --task-definition ecs-demo:<that revision>.",
        ),
    ),
    aws_safe=True,
    aws_cost="no new resources: only the lab's running instances for the time you take",
)
