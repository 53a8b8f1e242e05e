"""Task 3 of the lab guide: register the task definition ``ecs-demo`` (steps 26–34)."""

from __future__ import annotations

from labkit import ecr, taskdef
from labkit.lab import Lab
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____

__all__ = ["TASK", "q1", "____"]


def _registered(lab: Lab) -> Verdict:
    definition = taskdef.latest(lab)
    if definition is None:
        return Verdict.wrong(
            f"no ACTIVE {lab.names.task_family} task definition", "Register the task definition."
        )
    containers = {c["name"]: c for c in definition["containerDefinitions"]}
    container = containers.get(lab.names.container_name)
    if container is None:
        return Verdict.wrong(
            f"no container named {lab.names.container_name!r}", "Keep the lab's container name."
        )
    repository = ecr.find_repository(lab)
    wanted = f"{repository['repositoryUri']}:latest" if repository else "(repository missing)"
    if container["image"] != wanted:
        return Verdict.wrong(
            f"image is {container['image']!r}, expected {wanted!r}",
            "Replace the image placeholder with your repository URI and :latest.",
        )
    revision = f"{definition['family']}:{definition['revision']}"
    return Verdict.ok(f"{revision} runs {container['image']}")


q1 = Exercise(
    task=3,
    number=1,
    title="task definition registered",
    evaluate_fn=_registered,
    hints=("Replace the image placeholder with your repository URI, then register.",),
    solution_=Solution(
        file="task3_q1_register.py",
        cli="aws ecs register-task-definition --cli-input-json file://my-task-definition.json",
        console="ECS → Task definitions → Create new (JSON) (steps 26–34)",
    ),
)

TASK = Task(number=3, title="task definition registered", exercises=(q1,))
