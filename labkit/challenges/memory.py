"""A memory reservation larger than any instance: "has insufficient memory available".

A common cause: a memory value in MiB written as if it were MB×1000, or copied from a
bigger machine. ECS cannot place the task on any container instance.
"""

from __future__ import annotations

from typing import Any

from labkit.challenges import lab_state
from labkit.challenges.scenario import Clue, Scenario
from labkit.lab import Lab

TOO_MUCH_MIB = 128_000


def inject(lab: Lab) -> None:
    def reserve(container: dict[str, Any]) -> None:
        container["memoryReservation"] = TOO_MUCH_MIB
        container["memory"] = TOO_MUCH_MIB

    lab_state.deploy(lab, lab_state.register_revision(lab, reserve))


def _largest_instance_mib(lab: Lab) -> int:
    arns = lab.ecs.list_container_instances(cluster=lab.names.cluster)["containerInstanceArns"]
    if not arns:
        return 0
    described = lab.ecs.describe_container_instances(
        cluster=lab.names.cluster, containerInstances=arns
    )
    return max(
        next(
            (r.get("integerValue", 0) for r in i["registeredResources"] if r["name"] == "MEMORY"), 0
        )
        for i in described["containerInstances"]
    )


def extra_check(lab: Lab) -> list[str]:
    arn = lab_state.service(lab)["taskDefinition"]
    container = lab.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"][
        "containerDefinitions"
    ][0]
    wants = max(container.get("memory") or 0, container.get("memoryReservation") or 0)
    largest = _largest_instance_mib(lab)
    if wants > largest:
        return [f"the task definition asks for {wants} MiB; the largest instance has {largest} MiB"]
    return []


def solve(lab: Lab) -> None:
    def lab_memory(container: dict[str, Any]) -> None:
        container.pop("memoryReservation", None)
        container["memory"] = 128

    lab_state.deploy(lab, lab_state.register_revision(lab, lab_memory))


SCENARIO = Scenario(
    name="memory",
    title="A memory reservation larger than an instance",
    symptom="A new deployment never starts a single task.",
    symptom_words="has insufficient memory available",
    inject=inject,
    extra_check=extra_check,
    solve=solve,
    cli_fix="aws ecs update-service --cluster ECSCluster --service MYSERVICE<n> "
    "--task-definition ecs-demo:<a revision with memory 128>",
    clues=(
        Clue(10, "aws ecs describe-services: what do the events say about placing the task?"),
        Clue(
            20,
            "'has insufficient memory available': compare the revision's memory with "
            "the instances' (aws ecs describe-container-instances: registeredResources).",
        ),
        Clue(
            40,
            "Deploy a revision with memory 128 (the lab's value) and no large memoryReservation.",
        ),
    ),
    aws_safe=True,
    aws_cost="no new resources: only the lab's running instances for the time you take",
)
