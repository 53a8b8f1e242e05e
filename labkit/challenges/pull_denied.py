"""The repository statement is gone: new tasks cannot pull (CannotPullContainerError).

A common cause on a real account: someone tidies up a repository's permissions (or a
policy is replaced by infrastructure code) and the instances' role may no longer pull.
Running tasks keep running; the next task that has to pull (a replaced one, a scale-out,
a new instance) stops with ``CannotPullContainerError``.
"""

from __future__ import annotations

from labkit import ecs
from labkit.challenges.scenario import Clue, Scenario
from labkit.lab import Lab
from labkit.tasks import task1


def inject(lab: Lab) -> None:
    lab.ecr.delete_repository_policy(repositoryName=lab.repository_name)
    for task in ecs.tasks(lab):  # as if the instance had been replaced
        lab.ecs.stop_task(
            cluster=lab.names.cluster, task=task["taskArn"], reason="Instance replaced (challenge)"
        )


def extra_check(lab: Lab) -> list[str]:
    result = task1.TASK.evaluate(lab)  # Task 1's own check: the statement lets the role pull
    return [] if result.passed else [f"repository policy: {result.message}"]


def solve(lab: Lab) -> None:
    task1.TASK.restore(lab)


SCENARIO = Scenario(
    name="pull-denied",
    title="The repository statement was removed",
    symptom="The page is down: the service's task was replaced and the new one never starts.",
    symptom_words="CannotPullContainerError",
    inject=inject,
    extra_check=extra_check,
    solve=solve,
    cli_fix="aws ecr set-repository-policy --repository-name myrepo --policy-text "
    "file://policy.json   # a statement allowing Ec2instanceRole the pull actions (Task 1)",
    clues=(
        Clue(
            10,
            "Why did the newest task stop? aws ecs describe-tasks on a STOPPED task of "
            "the service: read stoppedReason.",
        ),
        Clue(
            20,
            "CannotPullContainerError ... not authorized to perform: ecr:BatchGetImage: "
            "who may pull from myrepo? aws ecr get-repository-policy --repository-name myrepo",
        ),
        Clue(
            40,
            "The repository has no policy any more: put Task 1's statement back (the "
            "instance role Ec2instanceRole, the pull actions) with set-repository-policy.",
        ),
    ),
    aws_safe=True,
    aws_cost="no new resources: only the lab's running instances for the time you take",
)
