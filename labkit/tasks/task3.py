"""Task 3 of the lab guide: register the task definition ``ecs-demo`` (steps 26–34).

- ``q1``: in ``my-task-definition.json`` (the learner's copy of the lab's JSON) replace
  the image placeholder with the repository URI (step 32). Its check reads that file:
  it is the learner's work product, and a JSON mistake is reported with line and column.
- ``q2``: register it (``register_task_definition`` / ``aws ecs register-task-definition``)
  with EC2 compatibility (step 28). Its check reads the highest ACTIVE revision of
  ``ecs-demo`` through the API, whoever registered it and however.

Only ``q2`` decides whether Task 3 is done (``TASK``): a learner who registered in a
terminal, from a file elsewhere, has done the task. ``TASK.solve()`` still runs ``q1``
first, since ``q2``'s solution registers the edited file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from labkit import ecr, taskdef
from labkit.errors import PrerequisiteError
from labkit.lab import Lab
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____
from labkit.tasks.understanding import Question, Quiz

__all__ = ["TASK", "q1", "q2", "quiz", "____"]

PLACEHOLDER = taskdef.IMAGE_PLACEHOLDER


def _repository_uri(lab: Lab) -> str:
    repository = ecr.find_repository(lab)
    if repository is None:
        raise PrerequisiteError(
            "the repository myrepo does not exist, so no image URI can be right",
            fix="Do Task 1 (notebook 01) and Task 2 (notebook 02) first.",
        )
    return repository["repositoryUri"]


def image_verdict(image: Any, repository_uri: str, where: str) -> Verdict | None:
    """What is wrong with a container's ``image`` (None when it is ``<URI>:latest``)."""
    wanted = f"{repository_uri}:latest"
    image = str(image or "")
    if image == wanted:
        return None
    if PLACEHOLDER in image:
        return Verdict.wrong(
            f"{where}: the image is still the placeholder {image!r}",
            f"Replace {PLACEHOLDER} (and only that: keep :latest) with your repository URI "
            f"from Task 1 (step 32): {wanted}.",
        )
    if image == repository_uri:
        return Verdict.wrong(
            f"{where}: the image {image!r} has no tag",
            "Add :latest to the URI: that is the tag you pushed in Task 2 (step 25). Without "
            "a tag Docker would also pull :latest, but the lab names it and the check wants it.",
        )
    if image.startswith(f"{repository_uri}:") and image.count(":") > wanted.count(":"):
        doubled = image[len(repository_uri) :]
        return Verdict.wrong(
            f"{where}: the image {image!r} carries two tags ({doubled}): the URI you put in "
            "already ended with a tag",
            f"Put in the repository URI alone, {repository_uri}, without its tag: the lab's "
            f"JSON adds :latest after YOUR-REPOSITORY-URI itself (step 32).",
        )
    name, _, tag = image.rpartition(":")
    if name == repository_uri and "/" not in tag:
        return Verdict.wrong(
            f"{where}: the image has the tag {tag!r}, not 'latest'",
            f"Task 2 pushed the tag latest (docker push $REPOSITORY pushes :latest); use {wanted}.",
        )
    repository_name = repository_uri.rsplit("/", 1)[-1]
    if image.split(":")[0].endswith(f"/{repository_name}") or f"/{repository_name}:" in image:
        return Verdict.wrong(
            f"{where}: the image {image!r} is not in your registry ({repository_uri})",
            "Copy the repository URI exactly as ECR reports it: "
            f"ecr.describe_repositories(repositoryNames=['{repository_name}']) → "
            "repositoryUri. (In the sandbox the registry is 127.0.0.1:PORT, not "
            "ACCOUNT.dkr.ecr.REGION.amazonaws.com.)",
        )
    return Verdict.wrong(
        f"{where}: the image is {image!r}, which is another repository's URI",
        f"Use your repository's URI followed by :latest: {wanted}.",
    )


def _container(definition: dict[str, Any], lab: Lab, where: str) -> dict[str, Any] | Verdict:
    name = lab.names.container_name
    containers = [c for c in definition.get("containerDefinitions") or [] if isinstance(c, dict)]
    for container in containers:
        if container.get("name") == name:
            return container
    found = ", ".join(repr(c.get("name")) for c in containers) or "none"
    return Verdict.wrong(
        f"{where} has no container named {name!r} (found: {found})",
        f'Keep the lab\'s container name "{name}" (step 31): the service of Task 4 sends '
        "the load balancer's traffic to the container of that name.",
    )


# -- q1: the image in your copy of the JSON (step 32) ---------------------------------


def my_file() -> Path:
    """Where the learner's copy is: beside the notebooks (the kernel's working directory)."""
    return Path(taskdef.MY_TASK_DEFINITION)


def _file_edited(lab: Lab) -> Verdict:
    path = my_file()
    if not path.exists():
        return Verdict.wrong(
            f"{path} does not exist (in {Path.cwd()})",
            "Run the cell with labkit.taskdef.copy_lab_json() first: it copies the lab's JSON "
            "for you to edit.",
        )
    definition = taskdef.parse_json(path.read_text(), path.name)  # line and column on errors
    container = _container(definition, lab, path.name)
    if isinstance(container, Verdict):
        return container
    wrong = image_verdict(container.get("image"), _repository_uri(lab), path.name)
    if wrong is not None:
        return wrong
    return Verdict.ok(f"{path.name}: {lab.names.container_name} runs {container['image']}")


def _file_version(lab: Lab) -> str | None:
    """The file's content and when it was last written (saved in an editor, sed…)."""
    path = my_file()
    if not path.exists():
        return None
    return f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mtime_ns}"


q1 = Exercise(
    task=3,
    number=1,
    title="the image in your task definition",
    evaluate_fn=_file_edited,
    hints=(
        f'In my-task-definition.json, the container\'s "image" is "{PLACEHOLDER}:latest". '
        "Replace the placeholder (not the :latest) with your repository URI (step 32).",
        "Your repository URI is in Task 1's output, or ask ECR: "
        'ecr.describe_repositories(repositoryNames=["myrepo"])["repositories"][0]'
        '["repositoryUri"]. In JupyterLab: double-click my-task-definition.json in the file '
        "browser, edit the image line, Ctrl+S. Or in the exercise cell: set repository_uri.",
        'repository_uri = ecr.describe_repositories(repositoryNames=["myrepo"])'
        '["repositories"][0]["repositoryUri"]  (then the cell replaces the placeholder)',
    ),
    solution_=Solution(
        file="task3_q1_image_uri.py",
        cli="URI=$(aws ecr describe-repositories --repository-names myrepo "
        "--query 'repositories[0].repositoryUri' --output text)\n"
        'sed -i "s|YOUR-REPOSITORY-URI|$URI|" my-task-definition.json',
        console="ECS → Task definitions → Create new Task Definition → EC2 → Next step → "
        "Configure via JSON: paste the lab's JSON, replace YOUR-REPOSITORY-URI with your "
        "repository URI (steps 27–32).",
    ),
    fingerprint_fn=_file_version,
    own_work="Fill in the exercise cell and run it, or open my-task-definition.json in the "
    "editor and save it (Ctrl+S): a save counts",
)


# -- q2: the registered revision (steps 28, 33–34) ------------------------------------


def _registered(lab: Lab) -> Verdict:
    family = lab.names.task_family
    definition = taskdef.task3_revision(lab)  # notebook 05's v2 does not undo Task 3
    if definition is None:
        families = lab.ecs.list_task_definition_families(status="ACTIVE").get("families", [])
        others = [f for f in families if f != family]
        if others:
            return Verdict.wrong(
                f"no ACTIVE {family!r} task definition; registered families: "
                f"{', '.join(sorted(others))}",
                f'The family is "{family}" (step 31: the JSON\'s "family"); fix it in '
                "my-task-definition.json and register again. The other family can stay.",
            )
        return Verdict.wrong(
            f"no {family!r} task definition is registered yet",
            "Build the request from your file (the helper cell), then call "
            "ecs.register_task_definition(**request), or run aws ecs "
            "register-task-definition --cli-input-json file://my-task-definition.request.json.",
        )
    where = f"{family}:{definition['revision']} (your highest ACTIVE revision)"
    container = _container(definition, lab, where)
    if isinstance(container, Verdict):
        return container
    wrong = image_verdict(container.get("image"), _repository_uri(lab), where)
    if wrong is not None:
        return Verdict.wrong(
            wrong.message,
            f"{wrong.hint} Then register again: a new revision is added, and the highest "
            "one counts.",
        )
    compatibilities = definition.get("requiresCompatibilities") or []
    if "EC2" not in compatibilities:
        return Verdict.wrong(
            f"{where} does not require EC2 compatibility "
            f"(requiresCompatibilities: {compatibilities or 'none'})",
            'Step 28 chooses EC2: add requiresCompatibilities=["EC2"] to the request (CLI: '
            "--requires-compatibilities EC2) and register again.",
        )
    return Verdict.ok(f"{where} runs {container['image']} and is EC2-compatible")


def _revision_arn(lab: Lab) -> str | None:
    """The revision the check judges: a registration since (terminal, console) differs."""
    definition = taskdef.task3_revision(lab)
    return definition["taskDefinitionArn"] if definition else None


q2 = Exercise(
    task=3,
    number=2,
    title="register the task definition",
    evaluate_fn=_registered,
    hints=(
        "An ECS client has one call that registers a task definition; it takes the "
        "JSON's keys as keyword arguments. Step 28's choice (EC2) is the request's "
        "requiresCompatibilities, a list.",
        'request["requiresCompatibilities"] = ["EC2"], then '
        "ecs.register_task_definition(**request). The reply's "
        '["taskDefinition"]["revision"] is the revision you made.',
        'request["requiresCompatibilities"] = ["EC2"]\n'
        "response = ecs.register_task_definition(**request)",
    ),
    solution_=Solution(
        file="task3_q2_register.py",
        cli="aws ecs register-task-definition --requires-compatibilities EC2 "
        "--cli-input-json file://my-task-definition.request.json",
        console="(after the JSON of step 32) Save → Create; the new revision of ecs-demo "
        "is the highest (steps 33–34).",
    ),
    expected_errors={
        "ClientException": "ECS refused the task definition: its message names the "
        "field (memory, image, port mappings…). Compare with the lab's JSON (step 31).",
    },
    fingerprint_fn=_revision_arn,
)


class _Task3(Task):
    """Done when q2 passes; the catch-up also writes the file q2's solution registers."""

    def run_solutions(self, lab: Lab, *, mark: bool) -> None:
        if self.evaluate(lab).passed:
            return
        if not my_file().exists():
            taskdef.copy_lab_json(my_file())
        steps = ([q1] if not q1.evaluate(lab).passed else []) + [q2]
        for exercise in steps:
            if mark:
                exercise.solve(lab)
            else:
                exercise.catch_up(lab)


TASK = _Task3(number=3, title="task definition registered", exercises=(q2,))

quiz = Quiz(
    3,
    (
        Question(
            "You change the memory in your file and register again. What happens?",
            {
                "a": "ecs-demo:1 is changed in place.",
                "b": "A new revision, ecs-demo:2, is added; revision 1 stays as it was.",
                "c": "ECS refuses: the family ecs-demo exists already.",
            },
            "b",
            "Revisions never change; each registration adds the next number. Naming just "
            "the family (ecs-demo) means its highest ACTIVE revision (step 34).",
            wrong={"c": "A family holds many revisions; registering again is how you change one."},
        ),
        Question(
            "What is the difference between a task definition and a task?",
            {
                "a": "None: two names for the same thing.",
                "b": "A task definition describes the containers; a task is one running "
                "copy of a revision of it, placed on a container instance.",
                "c": "A task is a task definition that has been deregistered.",
            },
            "b",
            "Task 4's service keeps a number of tasks of one revision running.",
        ),
        Question(
            'What does "requiresCompatibilities": ["EC2"] do (step 28)?',
            {
                "a": "ECS validates the definition against the EC2 launch type's rules, so "
                "it can run on the cluster's EC2 container instances.",
                "b": "It starts an EC2 instance for the task.",
                "c": "Nothing: ECS ignores it.",
            },
            "a",
            "It is a promise checked at registration; FARGATE would demand awsvpc networking "
            "and task-level cpu and memory.",
            wrong={"b": "Registering never starts anything: tasks run on the cluster's instances."},
        ),
    ),
)
