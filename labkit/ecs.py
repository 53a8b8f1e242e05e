"""Task 4 and beyond: the service, its service discovery, and watching the scheduler.

- **cluster**: a logical group of container instances (``ECSCluster``, 2 instances);
- **container instance**: an EC2 instance running the ECS agent, registered in a cluster;
- **service**: keeps N copies (tasks) of a task definition running;
- **service scheduler**: the part of ECS that places tasks, replaces failed ones and
  registers them with the load balancer (service load balancing);
- **service discovery**: Cloud Map DNS names for the tasks (private namespace).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from labkit.backends.lookup import find_target_group
from labkit.errors import BackendError, InputError, PrerequisiteError
from labkit.lab import Lab, describe_services
from labkit.names import NOTEBOOKS, not_done_yet

#: A condition for :func:`watch`: (the service, the events new since watching began) → stop?
Condition = Callable[[dict[str, Any], list[dict[str, Any]]], bool]

# -- looking things up ----------------------------------------------------------------


def find_service(lab: Lab, name: str | None = None) -> dict[str, Any] | None:
    """The service ``name`` (default: the learner's) if it is ACTIVE, else None."""
    services = describe_services(lab, [name or lab.service_name])
    return next((s for s in services if s.get("status") == "ACTIVE"), None)


def require_service(lab: Lab) -> dict[str, Any]:
    service = find_service(lab)
    if service is None:
        raise not_done_yet(f"Service {lab.service_name}", 4)
    return service


def target_group(lab: Lab) -> dict[str, Any]:
    """The lab's target group; PrerequisiteError naming notebook 00 when it is missing."""
    group = find_target_group(lab.elbv2, lab.names.target_group)
    if group is None:
        raise PrerequisiteError(
            f"The lab's target group {lab.names.target_group} does not exist.",
            why="It is part of the lab environment (cluster, roles, load balancer, target "
            "group) that the lab expects to be there already.",
            fix=f"Run {NOTEBOOKS[0]}: in AWS mode it finds or (with confirm_cost = True) "
            "creates the lab environment; in the sandbox it is built in.",
        )
    return group


def namespace_vpc_id(lab: Lab) -> str:
    """The lab's VPC: the one the target group (and so the tasks) is in.

    That is ``labkit.backends.aws.LabEnvironment.vpc_id``: in an account provisioned by the kit it
    is the stack's own VPC, not the default one, and a private DNS namespace only answers
    inside its VPC. The default VPC is the fallback for a target group without a VPC."""
    vpc_id = target_group(lab).get("VpcId")
    if vpc_id:
        return vpc_id
    reply = lab.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])
    if reply["Vpcs"]:
        return reply["Vpcs"][0]["VpcId"]
    raise BackendError(
        "The lab's target group has no VPC and this region has no default VPC.",
        why="The private DNS namespace must live in the VPC where the tasks run.",
        fix="Use the lab's region (us-west-2), or provision the lab environment "
        "(notebook 00 in AWS mode).",
    )


# -- service discovery ----------------------------------------------------------------


def poll_until(done: Callable[[], Any], timeout: float, poll: float) -> bool:
    """Where boto3 has no waiter (Cloud Map): ask ``done`` until it says yes or time is up."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def wait_for_operation(lab: Lab, operation_id: str, timeout: float, poll: float) -> dict[str, Any]:
    """A Cloud Map operation once it ends (SUCCESS or FAIL), or as it is at the timeout."""
    last: dict[str, Any] = {}

    def finished() -> bool:
        last.update(lab.servicediscovery.get_operation(OperationId=operation_id)["Operation"])
        return last["Status"] in ("SUCCESS", "FAIL")

    poll_until(finished, timeout, poll)
    return last


def namespaces(lab: Lab) -> list[dict[str, Any]]:
    """Every namespace with the lab's name (DNS names ignore case)."""
    wanted = lab.names.namespace.lower()
    pages = lab.servicediscovery.get_paginator("list_namespaces").paginate()
    return [ns for page in pages for ns in page["Namespaces"] if ns["Name"].lower() == wanted]


def find_namespace(lab: Lab) -> dict[str, Any] | None:
    return next(iter(namespaces(lab)), None)


def ensure_namespace(lab: Lab, timeout: float = 300) -> str:
    """The private DNS namespace ``myprivatednsnamespace`` in the lab's VPC; its id."""
    existing = find_namespace(lab)
    if existing is not None:
        print(f"♻️  Namespace {lab.names.namespace} already exists; reusing it.")
        return existing["Id"]
    operation = lab.servicediscovery.create_private_dns_namespace(
        Name=lab.names.namespace, Vpc=namespace_vpc_id(lab), Tags=lab.tags()
    )["OperationId"]
    # Namespace creation is asynchronous (minutes on AWS, instant locally).
    op = wait_for_operation(lab, operation, timeout, 2)
    if op["Status"] != "SUCCESS":
        raise BackendError(
            f"Creating namespace {lab.names.namespace} did not succeed.",
            why=op.get("ErrorMessage", f"status {op['Status']}"),
            fix="Re-run this cell; if it persists, run notebook 06 and start again.",
        )
    print(f"✅ Created private DNS namespace {lab.names.namespace}.")
    return op["Targets"]["NAMESPACE"]


def discovery_services(lab: Lab, namespace_id: str) -> list[dict[str, Any]]:
    """Every Cloud Map service in the namespace."""
    filters = [{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
    pages = lab.servicediscovery.get_paginator("list_services").paginate(Filters=filters)
    return [service for page in pages for service in page["Services"]]


def find_discovery_service(lab: Lab, namespace_id: str) -> dict[str, Any] | None:
    services = discovery_services(lab, namespace_id)
    return next((s for s in services if s["Name"] == lab.service_name), None)


# -- the service ----------------------------------------------------------------------


def check_desired_count(value: Any) -> int:
    """A service's desired count: a whole number, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"Desired count {value!r} is not valid.",
            why="A service runs a whole number of tasks: 0 or more.",
            fix="Use 1 (the lab's count), or 0 to stop every task and keep the service.",
        )
    return value


def tasks(
    lab: Lab, desired_status: str = "RUNNING", service: str | None = None
) -> list[dict[str, Any]]:
    """The tasks of ``service`` (default: the learner's), as the console's Tasks tab; none
    while the service does not exist (ECS answers ListTasks with ServiceNotFoundException)."""
    try:
        arns = lab.ecs.list_tasks(
            cluster=lab.names.cluster,
            serviceName=service or lab.service_name,
            desiredStatus=desired_status,
        )["taskArns"]
    except lab.ecs.exceptions.ServiceNotFoundException:
        return []
    if not arns:
        return []
    return lab.ecs.describe_tasks(cluster=lab.names.cluster, tasks=arns)["tasks"]


def task_instance_id(lab: Lab, task: dict[str, Any]) -> str | None:
    """The EC2 instance a task runs on (the target group registers it by instance id)."""
    arn = task.get("containerInstanceArn")
    if not arn:
        return None
    reply = lab.ecs.describe_container_instances(
        cluster=lab.names.cluster, containerInstances=[arn]
    )
    found = reply.get("containerInstances") or [{}]
    return found[0].get("ec2InstanceId")


def last_stopped_task(lab: Lab) -> dict[str, Any] | None:
    """The service's most recently stopped task (ECS keeps them for about an hour)."""
    stopped = tasks(lab, desired_status="STOPPED")
    stamp = lambda t: t.get("stoppedAt") or t.get("createdAt") or datetime.min  # noqa: E731
    return max(stopped, key=lambda t: str(stamp(t)), default=None)


def last_stop_note(lab: Lab) -> str:
    """``; the last task stopped: <reason>`` or '' (for "no task running" messages)."""
    task = last_stopped_task(lab)
    if task is None:
        return ""
    reasons = [c.get("reason") for c in task.get("containers", []) if c.get("reason")]
    reason = reasons[0] if reasons else task.get("stoppedReason", "")
    return f"; the last task stopped: {reason}" if reason else ""


def stopped_reason_hint(lab: Lab) -> str:
    """What the last stopped task's reason means, or '' when no task stopped."""
    note = last_stop_note(lab)
    if "CannotPullContainerError" in note:
        if "not authorized" in note or "pull access denied" in note:
            return (
                "CannotPullContainerError: the container instance's role may not pull from "
                "myrepo. Task 1's repository statement (steps 13–16) grants it: check it "
                "with ecr.get_repository_policy(repositoryName='myrepo')."
            )
        return (
            "CannotPullContainerError: the image is not in the registry. Task 2 pushes "
            "it (docker push $REPOSITORY); Task 3's image must be <URI>:latest."
        )
    if note:
        return "ECS stopped the task: the reason above says why; the Events view says more."
    return ""


def target_health(lab: Lab) -> list[dict[str, Any]]:
    """The target group's registered targets (the Targets tab)."""
    reply = lab.elbv2.describe_target_health(TargetGroupArn=target_group(lab)["TargetGroupArn"])
    return reply["TargetHealthDescriptions"]


@dataclass(frozen=True)
class WatchResult:
    service: dict[str, Any]
    reached: bool
    seconds: float
    new_events: list[dict[str, Any]]

    def __str__(self) -> str:
        s = self.service
        if is_steady(s):
            state = "✅ steady"
        elif self.reached:
            state = "⏹️  stopped watching"
        else:
            state = "⏱️  timed out"
        return (
            f"{state} after {self.seconds:.0f} s: running {s['runningCount']}, "
            f"pending {s['pendingCount']}, desired {s['desiredCount']}"
        )


def is_steady(service: dict[str, Any]) -> bool:
    """What the services_stable waiter checks: one deployment, running == desired."""
    return (
        len(service.get("deployments", [])) == 1
        and service["runningCount"] == service["desiredCount"]
        and service.get("pendingCount", 0) == 0
    )


#: When labkit last changed each service (service name → time), for watch().
_last_change: dict[str, datetime] = {}


def _note_change(lab: Lab) -> None:
    _last_change[lab.service_name] = datetime.now().astimezone()


def mark_change(lab: Lab) -> None:
    """Before the learner's own update_service or stop_task: what ECS writes from now on
    is news for :func:`watch` (an event written before watch starts is not history)."""
    _note_change(lab)


def watch(
    lab: Lab,
    until: Condition = lambda s, _e: is_steady(s),
    timeout: float = 300,
    interval: float = 2,
    progress: bool = True,
) -> WatchResult:
    """Poll the service, print each new event as it arrives, show running/desired as a bar.

    ``until(service, new_events)`` decides when to stop. Returns even on timeout (the
    caller decides whether that is a failure): watching never hangs a headless run.
    """
    from tqdm.auto import tqdm

    started = time.monotonic()
    # News starts at the last change (scale(), or mark_change() before the learner's own
    # call), so an event ECS wrote between that call and this watch is not history.
    start_time = _last_change.get(lab.service_name) or datetime.now().astimezone()
    events = require_service(lab).get("events", [])
    seen = {e["id"] for e in events if e["createdAt"] < start_time}  # history, not news
    printed: set[str] = set()
    new_events: list[dict[str, Any]] = []
    with tqdm(total=1, desc="tasks running", disable=not progress) as bar:
        while True:
            service = require_service(lab)
            for event in reversed(service.get("events", [])):  # the API lists newest first
                if event["id"] not in seen:
                    seen.add(event["id"])
                    new_events.append(event)
                    # ECS repeats some messages; print each distinct one once per watch.
                    if event["message"] not in printed:
                        printed.add(event["message"])
                        print(f"{event['createdAt']:%H:%M:%S}  {event['message']}")
            bar.total = max(service["desiredCount"], 1)
            bar.n = min(service["runningCount"], bar.total)
            bar.set_postfix_str(f"pending {service['pendingCount']}")  # and redraws
            reached = until(service, new_events)
            if reached or time.monotonic() - started > timeout:
                break
            time.sleep(interval)
    result = WatchResult(service, reached, time.monotonic() - started, new_events)
    print(result)
    return result


def wait_until_steady(lab: Lab, timeout: float = 300) -> WatchResult:
    """Wait for the service to settle, as step 50 does by pressing refresh."""
    return watch(lab, timeout=timeout)


def wait_for_service(lab: Lab, timeout: float = 600) -> WatchResult | None:
    """Step 50 for a learner: what the ``services_stable`` waiter waits for (one
    deployment, running == desired), with each new event and a progress bar as it goes;
    on timeout, where to look. None (and a note) when the service does not exist yet."""
    from labkit.display import note

    if find_service(lab) is None:
        note(f"Nothing to wait for: service {lab.service_name} does not exist yet.", "⏳")
        return None
    result = watch(lab, timeout=timeout)
    if not is_steady(result.service):
        note(
            f"{lab.service_name} is not steady after {timeout:.0f} s"
            f"{last_stop_note(lab)}. Where to look: the Events view (what ECS tried), "
            "the Tasks view (stopped tasks and why), the Targets (Exercise 4.4: health); "
            f"{stopped_reason_hint(lab) or 'then run this cell again.'}",
            "⏱️",
        )
    return result


def _update_service(lab: Lab, done: str, **changes: Any) -> dict[str, Any]:
    """UpdateService on the learner's service (which must exist); print ``done``."""
    require_service(lab)
    _note_change(lab)
    reply = lab.ecs.update_service(cluster=lab.names.cluster, service=lab.service_name, **changes)
    print(done)
    return reply["service"]


def scale(lab: Lab, desired_count: int) -> dict[str, Any]:
    """Change how many tasks the scheduler keeps running."""
    check_desired_count(desired_count)
    done = f"Asked ECS for {desired_count} task(s) of {lab.service_name}."
    return _update_service(lab, done, desiredCount=desired_count)


# -- conditions for watch() ----------------------------------------------------------


def steady_or_unplaceable(service: dict[str, Any], new_events: list[dict[str, Any]]) -> bool:
    """Stop when steady, or once ECS says it cannot place a task and nothing is pending any
    more: the tasks that fit are running, the rest wait for room (notebook 05)."""
    return is_steady(service) or (
        unplaceable(service, new_events) and service.get("pendingCount", 0) == 0
    )


def unplaceable(_service: dict[str, Any], new_events: list[dict[str, Any]]) -> bool:
    """Stop when ECS says it was unable to place a task (a rollout waiting for room)."""
    return any("unable to place" in e["message"] for e in new_events)


def replaced(lab: Lab, stopped_task_arn: str) -> Condition:
    """Stop when the stopped task no longer runs and a task started since it was stopped
    runs in its place (at any desired count)."""

    def another_runs() -> bool:
        reply = lab.ecs.describe_tasks(cluster=lab.names.cluster, tasks=[stopped_task_arn])
        stopped = next(iter(reply.get("tasks", [])), {})
        since = stopped.get("stoppingAt") or stopped.get("stoppedAt") or stopped.get("createdAt")
        running = tasks(lab)
        if since is None or stopped_task_arn in {t["taskArn"] for t in running}:
            return False
        return any(t.get("createdAt") and t["createdAt"] >= since for t in running)

    return lambda _service, _events: another_runs()


def rolled_out(task_definition_arn: str) -> Condition:
    """Stop when the only deployment runs ``task_definition_arn`` and is steady."""
    return lambda service, _events: (
        is_steady(service) and service["deployments"][0]["taskDefinition"] == task_definition_arn
    )
