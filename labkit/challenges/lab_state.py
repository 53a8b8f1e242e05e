"""The lab's state as the challenges read and restore it: only real API calls and HTTP.

- :func:`baseline`: what ``stop`` puts back (the service's task definition and count, the
  repository policy, the family's ACTIVE revisions), recorded before a fault is injected;
- :func:`restore`: put it back and deregister every revision made since;
- :func:`service_problems`: what keeps the service from being healthy, in plain words;
- :func:`evidence`: ECS's own words for what went wrong since a moment (stopped tasks'
  ``stoppedReason`` and service events), as ``describe-tasks`` / ``describe-services`` show them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from labkit import ecr, ecs, network, taskdef
from labkit.display import short_arn
from labkit.errors import LabkitError
from labkit.lab import Lab


def service(lab: Lab) -> dict[str, Any]:
    return ecs.require_service(lab)


def repository_policy(lab: Lab) -> str | None:
    try:
        return lab.ecr.get_repository_policy(repositoryName=lab.repository_name)["policyText"]
    except lab.ecr.exceptions.RepositoryPolicyNotFoundException:
        return None


def baseline(lab: Lab) -> dict[str, Any]:
    """What the working lab looks like (after Task 4), for ``stop`` to put back."""
    current = service(lab)
    return {
        "task_definition": current["taskDefinition"],
        "desired_count": current["desiredCount"],
        "repository_policy": repository_policy(lab),
        "revisions": sorted(d["taskDefinitionArn"] for d in taskdef.revisions(lab)),
    }


def register_revision(lab: Lab, change: Callable[[dict[str, Any]], None]) -> str:
    """A new revision of the service's task definition with ``change`` applied to its
    container; the kit's tag, so notebook 06 finds it. Returns its ARN."""
    current = lab.ecs.describe_task_definition(taskDefinition=service(lab)["taskDefinition"])
    prepared = taskdef.prepare(copy.deepcopy(current["taskDefinition"]))
    change(prepared.request["containerDefinitions"][0])
    reply = lab.ecs.register_task_definition(**prepared.request, tags=lab.tags("key"))
    return reply["taskDefinition"]["taskDefinitionArn"]


def deploy_entrypoint(lab: Lab, entrypoint: list[str] | None) -> None:
    """Roll out a new revision whose container runs ``entrypoint`` (None: the image's own
    command), as a learner's ``register-task-definition`` + ``update-service`` would."""

    def set_entrypoint(container: dict[str, Any]) -> None:
        if entrypoint is None:
            container.pop("entryPoint", None)
        else:
            container["entryPoint"] = entrypoint

    deploy(lab, register_revision(lab, set_entrypoint))


def deploy(lab: Lab, task_definition: str) -> None:
    lab.ecs.update_service(
        cluster=lab.names.cluster, service=lab.service_name, taskDefinition=task_definition
    )


def restore(lab: Lab, saved: dict[str, Any]) -> list[str]:
    """Put back what :func:`baseline` recorded; returns what it changed."""
    changed = []
    if repository_policy(lab) != saved["repository_policy"]:
        if saved["repository_policy"] is None:
            lab.ecr.delete_repository_policy(repositoryName=lab.repository_name)
        else:
            lab.ecr.set_repository_policy(
                repositoryName=lab.repository_name, policyText=saved["repository_policy"]
            )
        changed.append("the repository policy")
    current = service(lab)
    updates: dict[str, Any] = {}
    if current["taskDefinition"] != saved["task_definition"]:
        updates["taskDefinition"] = saved["task_definition"]
    if current["desiredCount"] != saved["desired_count"]:
        updates["desiredCount"] = saved["desired_count"]
    if updates:
        lab.ecs.update_service(cluster=lab.names.cluster, service=lab.service_name, **updates)
        changed.append(f"the service's {', '.join(updates)}")
    for definition in taskdef.revisions(lab):
        arn = definition["taskDefinitionArn"]
        if arn not in saved["revisions"]:
            lab.ecs.deregister_task_definition(taskDefinition=arn)
            changed.append(f"deregistered {short_arn(arn)}")
    return changed


def page_problem(lab: Lab, attempts: int = 2) -> str | None:
    """None when the load balancer serves the page (a real HTTP GET), else why not."""
    try:
        page = network.fetch_page(network.load_balancer_url(lab), attempts=attempts, delay=1)
    except LabkitError as exc:
        return f"the page is down: {exc.what} {exc.why}"
    if page.status != 200:
        return f"the load balancer answers HTTP {page.status}"
    return None


def service_problems(lab: Lab) -> list[str]:
    """What keeps the learner's service from a healthy steady state, in plain words."""
    current = ecs.find_service(lab)
    if current is None:
        return [f"service {lab.service_name} does not exist"]
    problems = []
    name = current["serviceName"]
    deployments = current.get("deployments", [])
    if len(deployments) > 1:
        primary = next(d for d in deployments if d["status"] == "PRIMARY")
        problems.append(
            f"{name} is still deploying {short_arn(primary['taskDefinition'])}: "
            f"{primary['runningCount']}/{primary['desiredCount']} of its tasks running, "
            f"{len(deployments) - 1} older deployment(s) still active"
        )
    if current["runningCount"] != current["desiredCount"] or current.get("pendingCount"):
        problems.append(
            f"{name} runs {current['runningCount']} of {current['desiredCount']} task(s) "
            f"({current.get('pendingCount', 0)} pending)"
        )
    healthy = [t for t in ecs.target_health(lab) if t["TargetHealth"]["State"] == "healthy"]
    if len(healthy) < current["desiredCount"]:
        problems.append(
            f"{len(healthy)} healthy target(s) in {lab.names.target_group}, "
            f"{current['desiredCount']} wanted"
        )
    page = page_problem(lab)
    if page:
        problems.append(page)
    return problems


def evidence(lab: Lab, since: datetime) -> list[str]:
    """ECS's words since ``since``: stopped tasks' reasons, then service events (oldest first)."""
    lines = []
    for task in ecs.tasks(lab, desired_status="STOPPED"):
        stopped_at = task.get("stoppedAt") or task.get("stoppingAt")
        if task.get("stoppedReason") and (stopped_at is None or stopped_at >= since):
            lines.append(f"task {short_arn(task['taskArn'])} stopped: {task['stoppedReason']}")
    current = ecs.find_service(lab)
    events = (current or {}).get("events", [])
    lines += [f"event: {e['message']}" for e in reversed(events) if e["createdAt"] >= since]
    return lines


def wait_for_words(lab: Lab, words: str, since: datetime, timeout: float) -> list[str]:
    """ECS's lines since ``since`` once one contains ``words`` (or all there are at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = evidence(lab, since)
        if any(words in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(2)


def image_exists(lab: Lab, image: str) -> bool:
    """True when the registry holds ``image`` (repository URI:tag) in the lab's repository."""
    name, _, tag = image.rpartition(":")
    if name != ecr.repository_uri(lab):
        return False
    try:
        lab.ecr.describe_images(repositoryName=lab.repository_name, imageIds=[{"imageTag": tag}])
    except lab.ecr.exceptions.ImageNotFoundException:
        return False
    return True
