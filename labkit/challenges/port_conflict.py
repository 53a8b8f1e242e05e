"""More tasks than host port 80 allows: "is already using a port required by your task".

A common cause: scaling out a service whose task definition maps a fixed host port. Each
container instance has one port 80, so the cluster's two instances run at most two tasks.
"""

from __future__ import annotations

from labkit.challenges import lab_state
from labkit.challenges.scenario import Clue, Scenario
from labkit.lab import Lab

WANTED = 3


def _instances(lab: Lab) -> int:
    arns = lab.ecs.list_container_instances(cluster=lab.names.cluster, status="ACTIVE")
    return len(arns["containerInstanceArns"])


def inject(lab: Lab) -> None:
    lab.ecs.update_service(cluster=lab.names.cluster, service=lab.service_name, desiredCount=WANTED)


def extra_check(lab: Lab) -> list[str]:
    wanted, room = lab_state.service(lab)["desiredCount"], _instances(lab)
    if wanted > room:
        return [f"{wanted} tasks wanted, but host port 80 exists once on each of {room} instances"]
    return []


def solve(lab: Lab) -> None:
    lab.ecs.update_service(
        cluster=lab.names.cluster, service=lab.service_name, desiredCount=_instances(lab)
    )


SCENARIO = Scenario(
    name="port-conflict",
    title="More tasks than host port 80 on two instances allows",
    symptom="A scale-out never finishes: one task stays missing.",
    symptom_words="is already using a port required by your task",
    inject=inject,
    extra_check=extra_check,
    solve=solve,
    cli_fix="aws ecs update-service --cluster ECSCluster --service MYSERVICE<n> --desired-count 2",
    clues=(
        Clue(10, "aws ecs describe-services: read the newest events."),
        Clue(
            20,
            "'is already using a port required by your task': the task maps host port "
            "80. How many container instances does ECSCluster have? "
            "aws ecs list-container-instances --cluster ECSCluster",
        ),
        Clue(
            40,
            "Ask for no more tasks than instances (desired count 2), or map host port 0 "
            "(dynamic ports) in a new revision.",
        ),
    ),
    aws_safe=True,
    aws_cost="no new resources: only the lab's running instances for the time you take",
)
