"""The task lifecycle: PENDING -> RUNNING -> (DEACTIVATING ->) STOPPING -> STOPPED.

Tasks created by RunTask/StartTask, or by the scheduler for a service, change state as their
containers really start and stop (moto's own auto-advance is switched off by the hooks). A
task moves through the phases of its :class:`~labkit.sandbox.agent.table.TaskRecord`:
``launching`` (Docker work on a pool thread) -> ``running`` (registered) -> ``draining``
(deregistered, connections finish) -> ``stopping`` (containers stop) -> ``stopped``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from moto.core.utils import utcnow
from moto.ecs.models import Container

from labkit.sandbox.agent.registration import Registration
from labkit.sandbox.agent.runtime import DockerRuntime
from labkit.sandbox.agent.table import TaskRecord, TaskTable, service_event
from labkit.sandbox.context import LOOPBACK, SandboxContext

#: Seconds a deregistered target drains at most before its container is stopped (sandbox
#: speed; AWS: the deregistration delay, 300 s). It stops sooner once no connection through
#: the load balancer is open, but not before DRAIN_MIN_SECONDS: a connection the load
#: balancer routed just before the deregistration gets time to be counted.
DRAIN_CAP_SECONDS = 1.0
DRAIN_MIN_SECONDS = 0.25
#: A service task has "started successfully" once it has been RUNNING this long, or once
#: its load balancer targets are all healthy. An essential container that exits sooner
#: counts as a failed start toward the service's throttle, as a pull failure does.
STAYED_UP_SECONDS = 10.0

DockerStates = dict[str, tuple[str, int | None]]


@dataclass
class TaskLifecycle:
    """Moves each task of the table along, handing Docker work to a thread pool."""

    ctx: SandboxContext
    table: TaskTable
    runtime: DockerRuntime
    registration: Registration
    wake: threading.Event
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="labkit-agent")
    )

    def adopt(self, task: Any) -> TaskRecord:
        """Put a moto task in the table, PENDING, with ECS's container models."""
        backend = self.ctx.backend("ecs")
        td = backend.describe_task_definition(task.task_definition_arn)
        instance = None
        if task.container_instance_arn:
            ci_id = task.container_instance_arn.split("/")[-1]
            instance = backend.container_instances.get(task.cluster_name, {}).get(ci_id)
        rec = TaskRecord(task=task, cluster=task.cluster_name, task_def=td, instance=instance)
        task.last_status = "PENDING"
        if not getattr(task, "created_at", None):
            task.created_at = utcnow()
        task.containers = [self._container_model(task, td, c) for c in td.container_definitions]
        task.availability_zone = (
            instance.attributes.get("ecs.availability-zone") if instance else None
        )
        if task.group.startswith("service:"):  # a service task created outside the agent
            for state in self.table.services.values():
                if (
                    state.service.name == task.group[8:]
                    and state.service.cluster_name == task.cluster_name
                ):
                    rec.service, rec.deployment_id = state.service, state.primary_id
        self.table.tasks[rec.arn] = rec
        return rec

    def _container_model(self, task: Any, td: Any, cdef: dict[str, Any]) -> Any:
        c = Container(td)
        c.name = cdef.get("name")
        c.image = cdef.get("image")
        c.cpu = str(cdef.get("cpu", 0))
        c.memory = str(cdef["memory"]) if cdef.get("memory") else None
        c.memory_reservation = (
            str(cdef["memoryReservation"]) if cdef.get("memoryReservation") else None
        )
        c.environment = cdef.get("environment")
        c.command = cdef.get("command")
        c.task_arn = task.task_arn
        c.container_arn = (
            f"arn:aws:ecs:{self.ctx.region}:{self.ctx.account_id}:container/"
            f"{task.cluster_name}/{task.id}/{uuid.uuid4()}"
        )
        c.last_status = "PENDING"
        c.exitCode = None
        c.health_status = "UNKNOWN"
        c.network_bindings = []
        c.essential = cdef.get("essential", True)
        return c

    def _in_pool(self, work: Callable[[TaskRecord], None], rec: TaskRecord) -> None:
        rec.busy = True

        def run() -> None:
            try:
                work(rec)
            finally:
                rec.busy = False
                self.wake.set()

        self.pool.submit(run)

    def launch_pending(self) -> None:
        """Start the Docker work of every task that waits to launch."""
        for rec in self.table.records():
            if rec.phase == "launching" and not rec.busy and rec.launch_error is None:
                # A task to stop is not launched (again): its next advance stops it.
                if not rec.containers and rec.task.desired_status != "STOPPED":
                    self._in_pool(self.runtime.launch, rec)

    def advance(self, rec: TaskRecord, docker_states: DockerStates | None, now: float) -> None:
        """One step of the task's lifecycle, as far as its containers and desired status go."""
        task = rec.task
        stop_wanted = task.desired_status == "STOPPED"
        launched = rec.phase == "launching" and not rec.busy
        if launched and rec.launch_error is not None:
            self._fail_launch(rec, now)
            return
        if launched and rec.containers and not stop_wanted:
            self._mark_running(rec)
            return
        if stop_wanted and (launched or rec.phase == "running"):
            self.begin_stop(rec, task.stopped_reason or "Task stopped", "UserInitiated")
        elif rec.phase == "running" and docker_states is not None:  # None: Docker did not answer
            self._note_stayed_up(rec, now)
            self._check_containers(rec, docker_states, now)
        drained = now >= rec.drain_until and (
            now >= rec.drain_deadline or self.registration.idle(rec)
        )
        if rec.phase == "draining" and drained and not rec.busy:
            rec.phase = "stopping"
            rec.task.last_status = "STOPPING"
            self._in_pool(self.runtime.stop, rec)
        elif rec.phase == "stopping" and not rec.busy:
            self._finish_stop(rec)

    def begin_stop(self, rec: TaskRecord, reason: str, code: str) -> None:
        """Deregister the task's targets and registrations, then let it drain and stop."""
        task = rec.task
        if task.desired_status != "STOPPED" or not task.stopped_reason:
            task.desired_status = "STOPPED"
            task.stopped_reason = task.stopped_reason or reason
            task.stop_code = getattr(task, "stop_code", None) or code
            task.stopping_at = utcnow()
        if rec.phase == "launching" and rec.busy:
            return  # the launch finishes first; the next tick comes back here
        drain = self.registration.deregister(rec)
        task.last_status = "DEACTIVATING" if drain else "STOPPING"
        rec.phase = "draining"
        now = time.monotonic()
        rec.drain_until = now + (DRAIN_MIN_SECONDS if drain else 0.0)
        rec.drain_deadline = now + (DRAIN_CAP_SECONDS if drain else 0.0)

    def _mark_running(self, rec: TaskRecord) -> None:
        task = rec.task
        rec.phase = "running"
        rec.running_since = time.monotonic()
        task.last_status = "RUNNING"
        task.started_at = utcnow()
        task.health_status = "UNKNOWN"
        for c in task.containers:
            c.last_status = "RUNNING"
            c.runtime_id = rec.containers.get(c.name)
            c.network_bindings = [
                {
                    # ECS reports the container instance's (virtual) host port, and the
                    # address it really listens on: the agent publishes on loopback only.
                    "bindIP": LOOPBACK,
                    "containerPort": cport,
                    "hostPort": virtual,
                    "protocol": "tcp",
                }
                for (name, cport), (virtual, _real) in rec.ports.items()
                if name == c.name
            ]
        self.registration.publish(rec)
        if rec.service is not None:
            self.registration.register(rec)

    def _note_stayed_up(self, rec: TaskRecord, now: float) -> None:
        """Once a service task stays up, its service's run of failed starts is over."""
        if rec.stayed_up or rec.service is None:
            return
        healthy = bool(rec.targets) and self.registration.targets_healthy(rec)
        if healthy or now - rec.running_since >= STAYED_UP_SECONDS:
            rec.stayed_up = True
            state = self.table.state_of(rec.service)
            if state is not None:
                state.reset_backoff()

    def _check_containers(self, rec: TaskRecord, docker_states: DockerStates, now: float) -> None:
        for c in rec.task.containers:
            cid = rec.containers.get(c.name)
            status, exit_code = docker_states.get(cid, ("missing", None))
            if status == "running" or c.last_status == "STOPPED":
                continue
            c.last_status = "STOPPED"
            c.exitCode = exit_code
            if exit_code is not None:
                rec.exit_codes[c.name] = exit_code
            c.reason = None if status == "exited" else f"The container is {status}"
            if c.essential:
                self.begin_stop(
                    rec, "Essential container in task exited", "EssentialContainerExited"
                )
                if not rec.stayed_up:
                    self._count_failed_start(rec, now)
                count_failed_task(rec)
                return

    def _fail_launch(self, rec: TaskRecord, now: float) -> None:
        error = rec.launch_error
        assert error is not None
        task = rec.task
        task.stopped_reason = str(error)
        task.stop_code = error.code
        for c in task.containers:
            c.reason = str(error)
        task.desired_status = "STOPPED"
        rec.phase = "draining" if rec.containers else "stopping"
        rec.drain_until = now
        if rec.service is not None:
            service_event(
                rec.service,
                f"(service {rec.service.name}) was unable to start a task: (task {rec.task_id}) "
                f"stopped: {error}",
            )
            self._count_failed_start(rec, now)
            count_failed_task(rec)

    def _count_failed_start(self, rec: TaskRecord, now: float) -> None:
        """A service task failed to start (or stopped before it stayed up): back off, and
        after a few in a row say the service is unable to consistently start tasks."""
        state = self.table.state_of(rec.service)
        if state is not None and state.launch_failed(now):
            service_event(
                rec.service,
                f"(service {rec.service.name}) is unable to consistently start tasks "
                "successfully. For more information, see the Troubleshooting section of "
                "the Amazon ECS Developer Guide.",
            )

    def _finish_stop(self, rec: TaskRecord) -> None:
        task = rec.task
        for c in task.containers:
            c.last_status = "STOPPED"
            c.network_bindings = c.network_bindings or []
            if c.name in rec.exit_codes:
                c.exitCode = rec.exit_codes[c.name]
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_at = task.execution_stopped_at = utcnow()
        if rec.instance is not None and not rec.released:
            with contextlib.suppress(ValueError):  # moto already freed them
                self.ctx.backend("ecs").update_container_instance_resources(
                    rec.instance, task.resource_requirements, removing=True
                )
        rec.released = True
        self.registration.publish(rec, published=False)
        rec.phase = "stopped"
        self.table.done.add(rec.arn)
        del self.table.tasks[rec.arn]

    def docker_states(self) -> DockerStates | None:
        """What Docker says of the containers, when a running task needs checking."""
        if not self.runtime.available or not any(
            r.phase == "running" for r in self.table.records()
        ):
            return {}
        return self.runtime.states()

    def stop_all(self) -> None:
        """The sandbox stops: shut the pool, remove every container, mark tasks STOPPED."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        records = self.table.records()
        self.runtime.remove_all({cid for rec in records for cid in rec.containers.values()})
        with self.ctx.lock:
            for rec in records:
                if rec.phase != "stopped":
                    rec.task.desired_status = "STOPPED"
                    rec.task.last_status = "STOPPED"
                    rec.task.stopped_reason = rec.task.stopped_reason or "The sandbox stopped"
                    rec.phase = "stopped"


def count_failed_task(rec: TaskRecord) -> None:
    """A task of a rolling deployment failed: the circuit breaker counts it."""
    for deployment in rec.service.deployments if rec.service is not None else []:
        if deployment["id"] == rec.deployment_id and deployment.get("rolloutState") in (
            "IN_PROGRESS",
            None,
        ):
            deployment["failedTasks"] = deployment.get("failedTasks", 0) + 1


def count_cluster_tasks(ecs: Any) -> None:
    """Each cluster's running and pending task counts, as DescribeClusters reports them."""
    for name, cluster in ecs.clusters.items():
        tasks = list(ecs.tasks.get(name, {}).values())
        cluster.running_tasks_count = sum(1 for t in tasks if t.last_status == "RUNNING")
        cluster.pending_tasks_count = sum(1 for t in tasks if t.last_status == "PENDING")
