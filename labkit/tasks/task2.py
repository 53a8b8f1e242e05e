"""Task 2 of the lab guide: pull, tag, log in and push the sample image (steps 17–25)."""

from __future__ import annotations

from labkit import ecr
from labkit.lab import Lab
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____

__all__ = ["TASK", "q1", "____"]


def _image_pushed(lab: Lab) -> Verdict:
    if ecr.find_repository(lab) is None:
        return Verdict.wrong(f"repository {lab.repository_name!r} does not exist", "Do Task 1.")
    image = ecr.find_image(lab, "latest")
    if image is None:
        return Verdict.wrong(
            f"no image tagged 'latest' in {lab.repository_name}",
            "Tag the sample image as <repository URI>:latest, log in, then push.",
        )
    return Verdict.ok(
        f"{lab.repository_name}:latest is in the registry ({image['imageDigest'][:19]}…)"
    )


q1 = Exercise(
    task=2,
    number=1,
    title="image pushed",
    evaluate_fn=_image_pushed,
    hints=("Tag the sample image as <repository URI>:latest, log in with the token, push.",),
    solution_=Solution(
        file="task2_q1_push_image.py",
        cli="docker tag amazon/amazon-ecs-sample:latest $REPOSITORY\n"
        "aws ecr get-login-password | docker login --username AWS --password-stdin $REPOSITORY\n"
        "docker push $REPOSITORY",
        console="(a terminal on the instance, through Session Manager: steps 17–25)",
    ),
)

TASK = Task(number=2, title="image pushed", exercises=(q1,))
