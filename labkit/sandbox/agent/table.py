"""The agent's one task table: what it knows about each task and service beyond moto's objects.

Every part of the agent reads and writes this table, always under the sandbox lock (pool
threads doing Docker work touch only their own record). Service events are written here too,
as ECS words them, newest first.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.core.utils import utcnow

log = logging.getLogger(__name__)

#: Service events kept per service (ECS shows the latest 100).
MAX_EVENTS = 100
#: Retry back-off for a service whose tasks fail to start: 1, 2, 4 ... up to this many seconds.
MAX_BACKOFF_SECONDS = 30.0
#: After this many failed starts in a row (tasks that stopped before running, or whose
#: essential container exited before they stayed up), ECS writes that the service "is unable to
#: consistently start tasks successfully" (and throttles its retries).
IMPAIRED_AFTER_FAILURES = 3


class LaunchError(Exception):
    """A task could not start; ``str()`` is its ECS-style stoppedReason."""

    def __init__(self, reason: str, code: str = "TaskFailedToStart") -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class TaskRecord:
    """What the agent knows about one task beyond moto's Task object."""

    task: Any
    cluster: str
    task_def: Any
    instance: Any | None
    service: Any | None = None
    deployment_id: str | None = None
    #: launching -> running -> draining -> stopping -> stopped
    phase: str = "launching"
    #: a pool thread is doing Docker work for this task
    busy: bool = False
    launch_error: LaunchError | None = None
    #: container name -> docker container id
    containers: dict[str, str] = field(default_factory=dict)
    #: (container name, container port) -> (virtual host port, real loopback port)
    ports: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    #: (target group ARN, instance id, virtual port) the task is registered as
    targets: list[tuple[str, str, int]] = field(default_factory=list)
    #: (Cloud Map service id, instance id)
    registrations: list[tuple[str, str]] = field(default_factory=list)
    released: bool = False
    #: Draining: stop no sooner than ``drain_until``, and once its connections are closed,
    #: or at ``drain_deadline`` with connections still open (the deregistration delay).
    drain_until: float = 0.0
    drain_deadline: float = 0.0
    #: time.monotonic() when the task turned RUNNING: the health-check grace period starts here
    running_since: float = 0.0
    #: running long enough (or healthy) to count as a successful start (tasks.STAYED_UP_SECONDS)
    stayed_up: bool = False
    exit_codes: dict[str, int] = field(default_factory=dict)
    #: docker container id -> the signal that stops it (its image's StopSignal, or SIGTERM)
    stop_signals: dict[str, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return self.task.task_arn

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def live(self) -> bool:
        """Counts toward its service: not stopped and not on its way out."""
        return self.phase in ("launching", "running") and self.task.desired_status != "STOPPED"


@dataclass
class ServiceState:
    """What the scheduler keeps per service beyond moto's Service object."""

    service: Any
    primary_id: str = ""
    steady: bool = False
    failures: int = 0
    backoff_until: float = 0.0
    last_placement: tuple[str, float] = ("", 0.0)
    #: (deployment id, task definition) of the last deployment that completed: a rollback's goal
    last_completed: tuple[str, str] | None = None

    def launch_failed(self, now: float) -> bool:
        """Count a failed start and back off; True when the service has just become one
        that "is unable to consistently start tasks" (once per run of failures)."""
        self.failures += 1
        self.backoff_until = now + min(2.0 ** (self.failures - 1), MAX_BACKOFF_SECONDS)
        return self.failures == IMPAIRED_AFTER_FAILURES

    def reset_backoff(self) -> None:
        self.failures, self.backoff_until = 0, 0.0


class TaskTable:
    """Tasks by ARN (until they stop), the ARNs already done with, and services' state."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRecord] = {}
        self.done: set[str] = set()
        self.services: dict[int, ServiceState] = {}

    def records(self) -> list[TaskRecord]:
        return list(self.tasks.values())

    def service_tasks(self, service: Any) -> list[TaskRecord]:
        return [r for r in self.records() if r.service is service and r.phase != "stopped"]

    def state_of(self, service: Any) -> ServiceState | None:
        return self.services.get(id(service))


def service_event(service: Any, message: str) -> None:
    """Write a service event, newest first, keeping ECS's latest ``MAX_EVENTS``."""
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": utcnow(), "message": message})
    del service.events[MAX_EVENTS:]
    log.info("%s", message)


def active_instances(ecs: Any, cluster_name: str) -> list[Any]:
    """The cluster's ACTIVE container instances."""
    instances = ecs.container_instances.get(cluster_name, {}).values()
    return [ci for ci in instances if ci.status == "ACTIVE"]


def shortfall(instance: Any, needs: dict[str, Any]) -> str | None:
    """Why a task does not fit on a container instance, in ECS's words, or None if it fits.

    Not moto's ``_can_be_placed``: it counts hostPort 0 (dynamic) as a port taken.
    """
    remaining = {r["name"]: r for r in instance.remaining_resources}
    used_ports = set(remaining.get("PORTS", {}).get("stringSetValue") or [])
    if needs.get("MEMORY", 0) > remaining.get("MEMORY", {}).get("integerValue", 0):
        return "MEMORY"
    if needs.get("CPU", 0) > remaining.get("CPU", {}).get("integerValue", 0):
        return "CPU"
    if any(str(port) in used_ports for port in needs.get("PORTS", []) if port):
        return "PORTS"
    return None
