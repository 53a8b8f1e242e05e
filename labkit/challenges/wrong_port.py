"""The app listens on another port than the task definition maps: targets turn unhealthy.

A common cause: the application's port changed (8080 is a popular default) but the task
definition still maps container port 80. The load balancer's health checks get no answer,
the target turns unhealthy and ECS stops the task: "Task failed ELB health checks".
"""

from __future__ import annotations

from labkit.challenges import lab_state
from labkit.challenges.scenario import Clue, Scenario
from labkit.lab import Lab

APP_PORT = 8080
#: The sample image's web server, started on another port (its image's own entry point
#: serves port 80).
WRONG_PORT_ENTRYPOINT = ["/bin/busybox", "httpd", "-f", "-v", "-p", str(APP_PORT), "-h", "/www"]


def inject(lab: Lab) -> None:
    lab_state.deploy_entrypoint(lab, WRONG_PORT_ENTRYPOINT)


def solve(lab: Lab) -> None:
    lab_state.deploy_entrypoint(lab, None)


SCENARIO = Scenario(
    name="wrong-port",
    title="The app listens on another port than the task definition maps",
    symptom="A new deployment never finishes: each new task is stopped after a while.",
    symptom_words="Task failed ELB health checks",
    inject=inject,
    extra_check=lambda _lab: [],
    solve=solve,
    cli_fix="aws ecs update-service --cluster ECSCluster --service MYSERVICE<n> "
    "--task-definition ecs-demo:<a revision whose app listens on port 80>",
    clues=(
        Clue(
            10,
            "aws elbv2 describe-target-health --target-group-arn <myTargetgroup>: "
            "what state and reason do the new targets have?",
        ),
        Clue(
            20,
            "Health checks fail, and describe-tasks says 'Task failed ELB health "
            "checks'. Compare the new revision with the old one: "
            "aws ecs describe-task-definition --task-definition ecs-demo:<n>.",
        ),
        Clue(
            40,
            f"The new revision's entryPoint starts the server on port {APP_PORT}, but "
            "the container port is 80: deploy a revision without that entryPoint.",
        ),
    ),
    aws_safe=True,
    aws_cost="no new resources: only the lab's running instances for the time you take",
)
