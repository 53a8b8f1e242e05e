"""The container's command exits: "Essential container in task exited", over and over.

A common cause: a missing setting makes the app quit at start. ECS restarts the task,
it exits again, and the service says it "is unable to consistently start tasks
successfully" (and slows its retries down).
"""

from __future__ import annotations

from labkit.challenges import lab_state
from labkit.challenges.scenario import Clue, Scenario
from labkit.lab import Lab

EXITING_ENTRYPOINT = [
    "/bin/busybox",
    "sh",
    "-c",
    "echo 'fatal: DATABASE_URL is not set' >&2; exit 1",
]


def inject(lab: Lab) -> None:
    lab_state.deploy_entrypoint(lab, EXITING_ENTRYPOINT)


def solve(lab: Lab) -> None:
    lab_state.deploy_entrypoint(lab, None)


SCENARIO = Scenario(
    name="exits",
    title="The container's command exits",
    symptom="A new deployment never finishes: its tasks stop seconds after they start.",
    # The throttle event comes after a few "Essential container in task exited" stops, so
    # start shows both: each stopped task's reason, then the event.
    symptom_words="is unable to consistently start tasks successfully",
    inject=inject,
    extra_check=lambda _lab: [],
    solve=solve,
    cli_fix="aws ecs update-service --cluster ECSCluster --service MYSERVICE<n> "
    "--task-definition ecs-demo:<a revision that runs the image's own command>",
    clues=(
        Clue(
            10,
            "aws ecs describe-tasks on a STOPPED task: stoppedReason and the container's exitCode.",
        ),
        Clue(
            20,
            "'Essential container in task exited' with exit code 1: what does the "
            "container run? aws ecs describe-task-definition (entryPoint, command); "
            "its log says why it quit.",
        ),
        Clue(
            40,
            "The new revision's entryPoint exits at once: deploy a revision without it "
            "(the image's own command serves the page).",
        ),
    ),
    aws_safe=True,
    aws_cost="no new resources: only the lab's running instances for the time you take",
)
