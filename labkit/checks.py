"""Checks in the style of Kaggle's learntools: ``task1.check()``, ``hint()``, ``solution()``.

A check reads the lab's real state back through the API and reports ✅ or ❌ with a
hint. It never crashes a learner's notebook; under CI (``LABKIT_STRICT=1``, or
``CI=true``) a failed check raises :class:`~labkit.errors.CheckFailed` so papermill
fails the run.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Collection
from dataclasses import dataclass

from labkit.config import NOTEBOOKS, Backend, strict_checks
from labkit.errors import CheckFailed, LabkitError, PrerequisiteError
from labkit.lab import Lab, current_lab
from labkit.views import show

Verdict = tuple[bool, str]


@dataclass(frozen=True)
class CheckResult:
    task: int
    title: str
    passed: bool
    message: str
    hint: str

    def __str__(self) -> str:
        mark = "✅" if self.passed else "❌"
        text = f"{mark} Task {self.task} ({self.title}): {self.message}"
        return text if self.passed else f"{text}\n   Hint: {self.hint}"


# -- what each task must have left behind ---------------------------------------------


def _task1(lab: Lab) -> Verdict:
    from labkit import ecr

    if ecr.find_repository(lab) is None:
        return False, f"repository {lab.repository_name!r} does not exist"
    policy = ecr.repository_policy(lab) or {}
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    sid = lab.names.repository_statement
    mine = [s for s in statements if s.get("Sid") == sid]
    if not mine:
        return False, f"the repository policy has no statement named {sid!r}"
    statement = mine[0]
    principal = statement.get("Principal", {})
    principals = principal.get("AWS", []) if isinstance(principal, dict) else [principal]
    principals = [principals] if isinstance(principals, str) else principals
    if lab.instance_role_arn not in principals:
        return False, f"{sid} does not name {lab.instance_role_arn} as principal"
    actions = statement.get("Action", [])
    actions = {actions} if isinstance(actions, str) else set(actions)
    missing = set(ecr.REPOSITORY_ACTIONS) - actions
    if statement.get("Effect") != "Allow" or (missing and "ecr:*" not in actions):
        return False, f"{sid} does not allow all ECR actions (missing {len(missing)})"
    return True, f"repository {lab.repository_name} with {sid} for {lab.names.instance_role}"


def _task2(lab: Lab) -> Verdict:
    from labkit import ecr

    if ecr.find_repository(lab) is None:
        return False, f"repository {lab.repository_name!r} does not exist"
    image = ecr.find_image(lab, "latest")
    if image is None:
        return False, f"no image tagged 'latest' in {lab.repository_name}"
    return True, f"{lab.repository_name}:latest is in the registry ({image['imageDigest'][:19]}…)"


def _task3(lab: Lab) -> Verdict:
    from labkit import ecr, taskdef

    definition = taskdef.latest(lab)
    if definition is None:
        return False, f"no ACTIVE {lab.names.task_family} task definition"
    containers = {c["name"]: c for c in definition["containerDefinitions"]}
    container = containers.get(lab.names.container_name)
    if container is None:
        return False, f"no container named {lab.names.container_name!r}"
    uri = ecr.find_repository(lab)
    wanted = f"{uri['repositoryUri']}:latest" if uri else "(repository missing)"
    if container["image"] != wanted:
        return False, f"image is {container['image']!r}, expected {wanted!r}"
    revision = f"{definition['family']}:{definition['revision']}"
    return True, f"{revision} runs {container['image']}"


def _task4(lab: Lab) -> Verdict:
    from labkit import ecs, network

    service = ecs.find_service(lab)
    if service is None:
        return False, f"service {lab.service_name} does not exist"
    if service.get("launchType") != "EC2":
        return False, f"launch type is {service.get('launchType')}, expected EC2"
    lbs = service.get("loadBalancers", [])
    if not any(
        lb.get("containerName") == lab.names.container_name and lb.get("containerPort") == 80
        for lb in lbs
    ):
        return False, "the service is not attached to the target group (ecs-sample:80)"
    if not service.get("serviceRegistries"):
        return False, "service discovery is not enabled"
    if service["runningCount"] < 1:
        return False, f"no task is running yet ({service['pendingCount']} pending)"
    page = network.fetch_page(network.load_balancer_url(lab), attempts=5, delay=2)
    return True, (
        f"{lab.service_name}: {service['runningCount']} running; "
        f"the load balancer answers HTTP {page.status}"
    )


# -- the learntools-style objects -----------------------------------------------------


@dataclass(frozen=True)
class Task:
    number: int
    title: str
    evaluate_fn: Callable[[Lab], Verdict]
    hint_text: str
    solution_code: str

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.number]

    def evaluate(self, lab: Lab | None = None) -> CheckResult:
        """Check the lab's state; never raises (an error becomes a ❌ result)."""
        lab = lab or current_lab()
        try:
            passed, message = self.evaluate_fn(lab)
        except LabkitError as exc:
            passed, message = False, exc.what
        except Exception as exc:  # a check must never crash the notebook
            passed, message = False, f"could not check: {exc.__class__.__name__}: {exc}"
        return CheckResult(self.number, self.title, passed, message, self.hint_text)

    def check(self, lab: Lab | None = None) -> None:
        """Show ✅/❌; under CI (LABKIT_STRICT) a ❌ raises CheckFailed.

        Returns nothing (the display is the result); use evaluate() for a value."""
        result = self.evaluate(lab)
        color = "#2ca02c" if result.passed else "#d62728"
        body = html.escape(str(result)).replace("\n", "<br>")
        show(f"<div style='color:{color};font-weight:bold'>{body}</div>", str(result))
        if not result.passed and strict_checks():
            raise CheckFailed(
                f"Task {self.number} check failed: {result.message}.",
                why="LABKIT_STRICT (or CI=true) makes failed checks fail the run.",
                fix=self.hint_text,
            )

    def hint(self) -> None:
        show(f"<div>💡 {html.escape(self.hint_text)}</div>", f"💡 Hint: {self.hint_text}")

    def solution(self) -> None:
        code = html.escape(self.solution_code)
        show(f"<pre>{code}</pre>", f"Solution:\n{self.solution_code}")


task1 = Task(
    1,
    "repository and permission statement",
    _task1,
    "Create the repository, then add the statement my_repository_statement allowing "
    "Ec2instanceRole every ECR action.",
    "labkit.ecr.ensure_repository(lab)\nlabkit.ecr.ensure_repository_statement(lab)",
)
task2 = Task(
    2,
    "image pushed",
    _task2,
    "Tag the sample image as <repository URI>:latest, log in with the authorization "
    "token, then push.",
    "labkit.images.push_image(lab)",
)
task3 = Task(
    3,
    "task definition registered",
    _task3,
    "Replace YOUR-REPOSITORY-URI with your repository URI and register the ecs-demo family.",
    "prepared, registered = labkit.taskdef.register_lab_task_definition(lab)",
)
task4 = Task(
    4,
    "service behind the load balancer",
    _task4,
    "Create the service (EC2, 1 task, myTargetgroup, ecsServiceRole, service discovery) "
    "and wait for a steady state.",
    "labkit.ecs.ensure_service(lab)\nlabkit.ecs.wait_until_steady(lab)",
)

TASKS: tuple[Task, ...] = (task1, task2, task3, task4)


def require(lab: Lab, task: int, skip: Collection[int] = ()) -> None:
    """Before task ``task``: every earlier task must be done, else name the notebook.

    ``skip``: tasks the backend cannot serve (an endpoint without a registry), not required."""
    lab.identity  # noqa: B018 — raises a clear BackendError if the backend is unreachable
    for earlier in TASKS:
        if earlier.number >= task:
            break
        if earlier.number in skip:
            continue
        result = earlier.evaluate(lab)
        if not result.passed:
            why = result.message[:1].upper() + result.message[1:] + "."
            if lab.backend is Backend.SANDBOX and earlier.number >= 3:
                why += (
                    " (If the sandbox was restarted: it keeps repositories and images, "
                    "but ECS starts fresh.)"
                )
            raise PrerequisiteError(
                f"Task {earlier.number} ({earlier.title}) is not done yet.",
                why=why,
                fix=f"Run {earlier.notebook} first, then re-run this notebook.",
            )
