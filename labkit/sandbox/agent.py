"""The sandbox's ECS agent: services and tasks in moto's backend become real Docker containers.

One reconciler thread ticks a few times a second over moto's ecs backend (moto runs in this
process, so what the agent writes is what the API reports):

* tasks created by RunTask/StartTask, or by the agent for a service, go PENDING -> RUNNING ->
  STOPPED as their containers really start and stop (moto's own auto-advance is switched off);
* services keep ``desiredCount`` tasks, replace tasks whose essential container exits, roll to
  a new task definition within the service's ``deploymentConfiguration`` (minimum healthy and
  maximum percent, ECS defaults 100/200; the circuit breaker fails, and may roll back, a
  deployment whose tasks keep failing), and write service events the way ECS words them,
  newest first;
* placement uses moto's resource accounting per container instance (CPU, memory, host
  ports), so two tasks that want host port 80 land on different container instances; a
  RunTask that cannot place answers with ECS's ``failures`` (``RESOURCE:PORTS`` ...);
* images are pulled from the sandbox registry *as the container instance role*, so the
  repository policy decides whether a task can start;
* running tasks are registered as targets of the service's target groups (the virtual
  ``instance-id:hostPort``, whose real loopback address the load balancer is told) and as
  Cloud Map instances; they are deregistered when the task stops;
* a task whose target stays ``unhealthy`` past the service's ``healthCheckGracePeriodSeconds``
  (counted from the task's start) is stopped as ECS stops it, "Task failed ELB health checks
  in (target-group ...)", and replaced.

Container ports are published on 127.0.0.1 only, on an ephemeral host port: the container
instance's "host port 80" is virtual, mapped to a real loopback port.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from labkit.sandbox.context import CONTAINER_LABEL, LOOPBACK, SandboxContext
from labkit.sandbox.loadbalancer import LoadBalancers

log = logging.getLogger(__name__)

#: Seconds between two reconciler passes.
TICK_SECONDS = 0.25
#: Seconds a stopping container gets between SIGTERM and SIGKILL (ECS: 30; sandbox speed).
STOP_TIMEOUT_SECONDS = 1
#: Seconds a deregistered target drains before its container is stopped (sandbox speed).
DRAIN_SECONDS = 1.0
#: Retry back-off for a service whose tasks fail to start: 1, 2, 4 ... up to this many seconds.
MAX_BACKOFF_SECONDS = 30.0
#: At most this often, the same placement failure is written again as a service event.
PLACEMENT_EVENT_SECONDS = 30.0
#: Service events kept per service (ECS shows the latest 100).
MAX_EVENTS = 100

#: ECS's deploymentConfiguration defaults for a replica service.
DEFAULT_MINIMUM_HEALTHY_PERCENT = 100
DEFAULT_MAXIMUM_PERCENT = 200

#: The role the container instances run as: their pulls are authorized as this principal.
INSTANCE_ROLE = "Ec2instanceRole"

_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def _now() -> Any:
    from moto.core.utils import utcnow

    return utcnow()


class _LaunchError(Exception):
    """A task could not start; ``str()`` is its ECS-style stoppedReason."""

    def __init__(self, reason: str, code: str = "TaskFailedToStart") -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class _TaskRecord:
    """What the agent knows about one task beyond moto's Task object."""

    task: Any
    cluster: str
    task_def: Any
    instance: Any | None
    service: Any | None = None
    deployment_id: str | None = None
    #: launching -> running -> draining -> stopping -> stopped
    phase: str = "launching"
    busy: bool = False
    launch_error: _LaunchError | None = None
    #: container name -> docker container id
    containers: dict[str, str] = field(default_factory=dict)
    #: (container name, container port) -> (virtual host port, real loopback port)
    ports: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    targets: list[tuple[str, str, int]] = field(default_factory=list)
    registrations: list[tuple[str, str]] = field(default_factory=list)
    released: bool = False
    drain_until: float = 0.0
    #: time.monotonic() when the task turned RUNNING: the health-check grace period starts here
    running_since: float = 0.0
    exit_codes: dict[str, int] = field(default_factory=dict)

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
class _ServiceState:
    service: Any
    primary_id: str = ""
    steady: bool = False
    failures: int = 0
    backoff_until: float = 0.0
    last_placement: tuple[str, float] = ("", 0.0)
    #: (deployment id, task definition) of the last deployment that completed: a rollback's goal
    last_completed: tuple[str, str] | None = None


class EcsAgent:
    """Runs the tasks of moto's ecs backend as Docker containers; see the module docstring."""

    def __init__(self, ctx: SandboxContext, lbs: LoadBalancers | None) -> None:
        self.ctx = ctx
        self.lbs = lbs
        self._tasks: dict[str, _TaskRecord] = {}
        self._done: set[str] = set()
        self._services: dict[int, _ServiceState] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="labkit-agent")
        self._originals: dict[str, Any] = {}

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Take over task states from moto and start the reconciler thread."""
        from moto.moto_api import state_manager

        # The agent sets task.last_status itself; moto must not advance it on Describe.
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
        self._patch_backend()
        _ACTIVE["agent"] = self
        _install_response_patches()
        self._thread = threading.Thread(target=self._run, name="labkit-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reconciler, then stop and remove every container the agent started."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        client = self.ctx.docker
        if client is not None:
            ids = {cid for rec in self._tasks.values() for cid in rec.containers.values()}
            try:  # also catch containers whose launch was cut short
                found = client.containers.list(
                    all=True, filters={"label": f"{CONTAINER_LABEL}={self.ctx.settings.home}"}
                )
                ids |= {c.id for c in found if "com.amazonaws.ecs.task-arn" in c.labels}
            except Exception:
                log.exception("listing containers at stop failed")
            for cid in ids:
                try:
                    client.containers.get(cid).remove(force=True)
                except Exception:
                    pass
        with self.ctx.lock:
            for rec in self._tasks.values():
                if rec.phase != "stopped":
                    rec.task.desired_status = "STOPPED"
                    rec.task.last_status = "STOPPED"
                    rec.task.stopped_reason = rec.task.stopped_reason or "The sandbox stopped"
                    rec.phase = "stopped"
            self._unpatch_backend()
        if _ACTIVE.get("agent") is self:
            del _ACTIVE["agent"]

    def endpoints(self) -> dict[str, dict[str, str]]:
        """Task ARN -> {"containerName:containerPort": "127.0.0.1:realPort"} for running tasks."""
        out: dict[str, dict[str, str]] = {}
        for rec in list(self._tasks.values()):
            if rec.phase == "running":
                out[rec.arn] = {
                    f"{name}:{cport}": f"{LOOPBACK}:{real}"
                    for (name, cport), (_v, real) in rec.ports.items()
                }
        return out

    # moto patches -------------------------------------------------------------------------
    def _patch_backend(self) -> None:
        backend = self.ctx.ecs()
        with self.ctx.lock:
            for name in ("run_task", "start_task", "stop_task", "list_tasks"):
                self._originals[name] = getattr(backend, name)
            for name in ("create_service", "update_service", "delete_service", "list_services"):
                self._originals[name] = getattr(backend, name)
            # Instance attributes shadow the class's methods for this backend only.
            backend.run_task = self._run_task
            backend.start_task = self._start_task
            backend.stop_task = self._stop_task
            backend.list_tasks = self._list_tasks
            backend.create_service = self._create_service
            backend.update_service = self._update_service
            backend.delete_service = self._delete_service
            backend.list_services = self._list_services
            discovery = self.ctx.servicediscovery()
            self._originals["discovery_create_service"] = discovery.create_service
            discovery.create_service = self._create_discovery_service

    def _unpatch_backend(self) -> None:
        backend = self.ctx.ecs()
        for name in self._originals:
            backend.__dict__.pop(name, None)
        self.ctx.servicediscovery().__dict__.pop("create_service", None)
        self._originals.clear()

    def _new_tasks_pending(self, tasks: list[Any]) -> list[Any]:
        # moto creates tasks RUNNING; nothing runs yet, so they are PENDING until it does.
        for task in tasks:
            task.last_status = "PENDING"
            task.created_at = _now()
            task.connectivity = "CONNECTED"
        self._wake.set()
        return tasks

    def _run_task(self, cluster_str: str, *args: Any, **kwargs: Any) -> list[Any]:
        from moto.ecs.exceptions import InvalidParameterException

        with self.ctx.lock:
            backend = self.ctx.ecs()
            cluster = backend._get_cluster(cluster_str)
            fargate = "FARGATE" in (args[5:6] or [kwargs.get("launch_type")])
            if not fargate and not self._active_instances(cluster.name):
                # moto raises a bare Exception (HTTP 500); ECS answers with this.
                raise InvalidParameterException(
                    "No Container Instances were found in your cluster."
                )
            tasks = self._originals["run_task"](cluster_str, *args, **kwargs)
            return self._new_tasks_pending(tasks)

    def run_task_failures(self, cluster_str: str, task_definition: str) -> list[dict[str, str]]:
        """What RunTask answers for tasks it could not place: per instance, ECS's reason."""
        with self.ctx.lock:
            backend = self.ctx.ecs()
            cluster = backend._get_cluster(cluster_str)
            needs = backend._calculate_task_resource_requirements(
                backend.describe_task_definition(task_definition)
            )
            return [
                {"arn": ci.container_instance_arn, "reason": f"RESOURCE:{shortfall}"}
                for ci in self._active_instances(cluster.name)
                if (shortfall := _shortfall(ci, needs))
            ]

    def set_deployment_configuration(self, service: Any, config: dict[str, Any] | None) -> None:
        """Keep CreateService's deploymentConfiguration (moto drops it) with ECS's defaults."""
        with self.ctx.lock:
            merged = {
                "maximumPercent": DEFAULT_MAXIMUM_PERCENT,
                "minimumHealthyPercent": DEFAULT_MINIMUM_HEALTHY_PERCENT,
            }
            merged.update(getattr(service, "deployment_configuration", None) or {})
            merged.update({k: v for k, v in (config or {}).items() if v is not None})
            service.deployment_configuration = merged
        self._wake.set()

    def _active_instances(self, cluster_name: str) -> list[Any]:
        instances = self.ctx.ecs().container_instances.get(cluster_name, {}).values()
        return [ci for ci in instances if ci.status == "ACTIVE"]

    def _start_task(self, *args: Any, **kwargs: Any) -> list[Any]:
        with self.ctx.lock:
            return self._new_tasks_pending(self._originals["start_task"](*args, **kwargs))

    def _stop_task(self, cluster_str: str, task_str: str, reason: str) -> Any:
        # ECS answers StopTask with desiredStatus STOPPED while the task is still running;
        # the agent drains and stops it, then frees its resources (moto frees them at once).
        backend = self.ctx.ecs()
        with self.ctx.lock:
            cluster = backend._get_cluster(cluster_str)
            task_id = task_str.split("/")[-1]
            for arn, task in backend.tasks.get(cluster.name, {}).items():
                if arn.endswith(task_id):
                    if task.desired_status != "STOPPED":
                        task.desired_status = "STOPPED"
                        task.stopped_reason = reason or "Task stopped by user"
                        task.stop_code = "UserInitiated"
                        task.stopping_at = _now()
                    if arn not in self._tasks and task.last_status != "STOPPED":
                        task.last_status = "STOPPED"
                    self._wake.set()
                    return task
        return self._originals["stop_task"](cluster_str, task_str, reason)

    def _list_tasks(
        self,
        cluster_str: str | None = None,
        container_instance: str | None = None,
        family: str | None = None,
        started_by: str | None = None,
        service_name: str | None = None,
        desiredStatus: str | None = None,  # noqa: N803 - moto's parameter name
    ) -> list[Any]:
        # ECS filters on RUNNING unless told otherwise, and on serviceName (moto ignores it).
        tasks = self._originals["list_tasks"](
            cluster_str, container_instance, family, started_by, None, desiredStatus or "RUNNING"
        )
        if service_name:
            group = "service:" + service_name.split("/")[-1]
            tasks = [t for t in tasks if t.group == group]
        return tasks

    def _list_services(self, cluster_str: str, *args: Any, **kwargs: Any) -> list[str]:
        # ECS lists ACTIVE and DRAINING services; a deleted (INACTIVE) one only describes.
        arns = self._originals["list_services"](cluster_str, *args, **kwargs)
        backend = self.ctx.ecs()
        inactive = {s.arn for s in list(backend.services.values()) if s.status == "INACTIVE"}
        return [arn for arn in arns if arn not in inactive]

    def _create_service(self, *args: Any, **kwargs: Any) -> Any:
        from moto.ecs.exceptions import InvalidParameterException

        cluster_str = kwargs.get("cluster_str", args[0] if args else "default")
        name = kwargs.get("service_name", args[1] if len(args) > 1 else "")
        with self.ctx.lock:
            # ECS keeps one ACTIVE service per name in a cluster; moto would replace it.
            backend = self.ctx.ecs()
            cluster = backend._get_cluster(cluster_str)
            existing = backend.services.get(f"{cluster.name}:{name}")
            if existing is not None and existing.status != "INACTIVE":
                raise InvalidParameterException("Creation of service was not idempotent.")
            service = self._originals["create_service"](*args, **kwargs)
            if service.role_arn and not service.role_arn.startswith("arn:"):
                # ECS answers with the role's ARN, whichever way it was named.
                service.role_arn = f"arn:aws:iam::{self.ctx.account_id}:role/{service.role_arn}"
            self.set_deployment_configuration(service, None)
            self._service_state(service)
        self._wake.set()
        return service

    def _create_discovery_service(self, name: str, namespace_id: str, *args: Any, **kwargs: Any):
        from moto.core.exceptions import JsonRESTError

        # Cloud Map refuses a second service of the same name in a namespace.
        for existing in list(self.ctx.servicediscovery().services.values()):
            if existing.name == name and existing.namespace_id == namespace_id:
                raise JsonRESTError(
                    "ServiceAlreadyExists",
                    f"Service {name} already exists in namespace {namespace_id} "
                    f"(service id {existing.id}).",
                )
        return self._originals["discovery_create_service"](name, namespace_id, *args, **kwargs)

    def _update_service(self, props: dict[str, Any]) -> Any:
        force = bool(props.get("force_new_deployment"))
        with self.ctx.lock:
            backend = self.ctx.ecs()
            before = backend._get_service(props.get("cluster", "default"), props["service"])
            old_ids = [d.get("id") for d in before.deployments]
            config = props.pop("deployment_configuration", None)
            service = self._originals["update_service"](props)
            if config:
                self.set_deployment_configuration(service, config)
            # moto rewrites the primary deployment's id on force: undo, we add a new one.
            if force and service.deployments and old_ids:
                service.deployments[0]["id"] = old_ids[0]
            state = self._service_state(service)
            self._refresh_deployments(state, force=force)
            self._update_counts(state)
        self._wake.set()
        return service

    def _delete_service(self, *args: Any, **kwargs: Any) -> Any:
        with self.ctx.lock:
            service = self._originals["delete_service"](*args, **kwargs)
            service.desired_count = 0
        self._wake.set()
        return service

    # services: deployments, counts, events ------------------------------------------------
    def _service_state(self, service: Any) -> _ServiceState:
        state = self._services.get(id(service))
        if state is None or state.service is not service:
            state = _ServiceState(service=service)
            if service.deployments:
                state.primary_id = service.deployments[0]["id"]
            self._services[id(service)] = state
            self._normalize_task_definition(service)
        return state

    def _normalize_task_definition(self, service: Any) -> None:
        # UpdateService may name the task definition "family:rev"; ECS reports the ARN.
        if service.task_definition and not service.task_definition.startswith("arn:"):
            try:
                td = self.ctx.ecs().describe_task_definition(service.task_definition)
                service.task_definition = td.arn
            except Exception:
                pass

    def _refresh_deployments(self, state: _ServiceState, force: bool = False) -> None:
        service = state.service
        self._normalize_task_definition(service)
        if not service.deployments:
            return
        primary = service.deployments[0]
        if primary["taskDefinition"] != service.task_definition or force:
            now = _now()
            primary["status"] = "ACTIVE"
            new = dict(primary)
            new.update(
                id=f"ecs-svc/{uuid.uuid4().int % 10**19:019d}",
                createdAt=now,
                updatedAt=now,
                status="PRIMARY",
                taskDefinition=service.task_definition,
                desiredCount=service.desired_count,
                runningCount=0,
                pendingCount=0,
                failedTasks=0,
                rolloutState="IN_PROGRESS",
            )
            new["rolloutStateReason"] = f"ECS deployment {new['id']} in progress."
            service.deployments.insert(0, new)
            state.primary_id = new["id"]
            state.steady = False
            state.failures, state.backoff_until = 0, 0.0
        primary = service.deployments[0]
        if primary["desiredCount"] != service.desired_count:
            primary["desiredCount"] = service.desired_count
            state.steady = False

    def _event(self, service: Any, message: str) -> None:
        service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _now(), "message": message})
        del service.events[MAX_EVENTS:]
        log.info("%s", message)

    def _service_tasks(self, service: Any) -> list[_TaskRecord]:
        return [r for r in self._tasks.values() if r.service is service and r.phase != "stopped"]

    def _update_counts(self, state: _ServiceState) -> None:
        service = state.service
        tasks = self._service_tasks(service)
        service.running_count = sum(1 for r in tasks if r.phase == "running")
        service.pending_count = sum(1 for r in tasks if r.phase == "launching")
        for deployment in service.deployments:
            mine = [r for r in tasks if r.deployment_id == deployment["id"]]
            running = sum(1 for r in mine if r.phase == "running")
            pending = sum(1 for r in mine if r.phase == "launching")
            if (running, pending) != (deployment["runningCount"], deployment["pendingCount"]):
                deployment["runningCount"], deployment["pendingCount"] = running, pending
                deployment["updatedAt"] = _now()
            if deployment["status"] != "PRIMARY":
                deployment["desiredCount"] = len(mine)

    def _reconcile_service(self, state: _ServiceState, now: float) -> None:
        service = state.service
        name = service.name
        self._refresh_deployments(state)
        self._stop_unhealthy_targets(state, now)
        tasks = self._service_tasks(service)
        if service.status != "ACTIVE" or service.desired_count == 0:
            leaving = [r for r in tasks if r.live]
            for rec in leaving:
                self._begin_stop(rec, self._scaling_reason(state), "ServiceSchedulerInitiated")
            self._events_for_stops(service, leaving)
        primary_id = state.primary_id
        desired = service.desired_count if service.status == "ACTIVE" else 0
        primary = [r for r in tasks if r.live and r.deployment_id == primary_id]
        old = [r for r in tasks if r.live and r.deployment_id != primary_id]

        # Too many: stop the newest (pending ones first).
        if len(primary) > desired:
            excess = sorted(primary, key=lambda r: (r.phase == "running", r.task.created_at))
            stopped = excess[: len(primary) - desired]
            for rec in stopped:
                self._begin_stop(rec, self._scaling_reason(state), "ServiceSchedulerInitiated")
            self._events_for_stops(service, stopped)
            primary = [r for r in primary if r not in stopped]

        # deploymentConfiguration bounds the rollout: at least `min_healthy` tasks stay
        # healthy, at most `max_total` run or start at once (ECS rounds up and down).
        config = getattr(service, "deployment_configuration", None) or {}
        min_pct = config.get("minimumHealthyPercent", DEFAULT_MINIMUM_HEALTHY_PERCENT)
        max_pct = config.get("maximumPercent", DEFAULT_MAXIMUM_PERCENT)
        min_healthy = math.ceil(desired * min_pct / 100)
        max_total = max(math.floor(desired * max_pct / 100), 1 if desired else 0)

        # A failed deployment launches nothing more and keeps what still runs (ECS).
        failed = service.deployments and service.deployments[0].get("rolloutState") == "FAILED"

        # Old deployments: stop what minimumHealthyPercent allows; unhealthy ones first.
        if old and not failed:
            healthy = [r for r in primary + old if self._healthy(r)]
            spare = max(len(healthy) - min_healthy, 0)
            victims = [r for r in old if not self._healthy(r)]
            victims += [r for r in old if self._healthy(r)][:spare]
            for rec in victims:
                self._begin_stop(rec, self._scaling_reason(state), "ServiceSchedulerInitiated")
            self._events_for_stops(service, victims)
            old = [r for r in old if r not in victims]

        # Too few: place and start as many as maximumPercent leaves room for.
        wanted = min(desired - len(primary), max_total - len(primary) - len(old))
        stuck = old and wanted <= 0 < desired - len(primary) and not failed
        if stuck and not any(r.phase in ("draining", "stopping") for r in tasks):
            # Neither a stop (minimum) nor a start (maximum) is allowed: say so, as ECS does.
            self._placement_event(
                state,
                f"(service {name}) was unable to stop or start tasks during a deployment "
                "because of the service deployment configuration. Update the "
                "minimumHealthyPercent or maximumPercent value and try again.",
                now,
            )
        if wanted > 0 and now >= state.backoff_until and not failed:
            if self.ctx.docker is None:
                self._placement_event(
                    state,
                    f"(service {name}) was unable to start a task because the sandbox runs "
                    "without Docker Engine (API-only mode): no container can run. Start "
                    "Docker Engine, then restart the sandbox.",
                    now,
                )
            else:
                started, unplaced = [], ""
                for _ in range(wanted):
                    rec, unplaced = self._place_service_task(state)
                    if rec is None:
                        break
                    started.append(rec)
                if started:
                    ids = " ".join(f"(task {r.task_id})" for r in started)
                    self._event(
                        service, f"(service {name}) has started {len(started)} tasks: {ids}."
                    )
                    state.steady = False
                    primary += started
                if unplaced:  # ECS waits for room (an old task leaving, an instance joining)
                    self._placement_event(state, unplaced, now)

        self._check_circuit_breaker(state)

        # Drained deployments leave the list.
        live_ids = {r.deployment_id for r in self._service_tasks(service)}
        service.deployments[1:] = [d for d in service.deployments[1:] if d["id"] in live_ids]
        self._update_counts(state)

        # Steady: one deployment, all desired tasks running, their targets healthy.
        tasks = self._service_tasks(service)
        steady = (
            service.status == "ACTIVE"
            and len(service.deployments) == 1
            and service.running_count == desired
            and service.pending_count == 0
            and all(r.phase == "running" and self._targets_healthy(r) for r in tasks)
        )
        if steady and not state.steady:
            state.steady = True
            state.last_placement = ("", 0.0)
            deployment = service.deployments[0]
            if deployment.get("rolloutState") == "IN_PROGRESS":
                deployment["rolloutState"] = "COMPLETED"
                deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."
                completed = f"(deployment {deployment['id']}) deployment completed."
                self._event(service, f"(service {name}) {completed}")
            if deployment.get("rolloutState") == "COMPLETED":
                state.last_completed = (deployment["id"], deployment["taskDefinition"])
            self._event(service, f"(service {name}) has reached a steady state.")
        elif not steady and service.running_count != desired:
            state.steady = False

    def _healthy(self, rec: _TaskRecord) -> bool:
        """Counts toward minimumHealthyPercent: running, and healthy in its target groups."""
        if not (rec.live and rec.phase == "running"):
            return False
        if rec.service is not None and rec.service.load_balancers and not rec.targets:
            return False  # not registered (yet, or its port never came up): not serving
        return self._targets_healthy(rec)

    def _check_circuit_breaker(self, state: _ServiceState) -> None:
        """Fail the deployment once enough of its tasks failed; roll back if asked to."""
        service = state.service
        config = getattr(service, "deployment_configuration", None) or {}
        breaker = config.get("deploymentCircuitBreaker") or {}
        if not breaker.get("enable") or not service.deployments:
            return
        deployment = service.deployments[0]
        if deployment.get("rolloutState") != "IN_PROGRESS":
            return
        # ECS's threshold: half the desired count, at least 3 and at most 200 tasks.
        threshold = min(max(math.ceil(service.desired_count * 0.5), 3), 200)
        if deployment.get("failedTasks", 0) < threshold:
            return
        deployment["rolloutState"] = "FAILED"
        deployment["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
        self._event(
            service,
            f"(service {service.name}) (deployment {deployment['id']}) deployment failed: "
            "tasks failed to start.",
        )
        if breaker.get("rollback") and state.last_completed:
            good_id, good_td = state.last_completed
            self._event(service, f"(service {service.name}) rolling back to deployment {good_id}.")
            service.task_definition = good_td
            self._refresh_deployments(state, force=True)

    def _scaling_reason(self, state: _ServiceState) -> str:
        return f"Scaling activity initiated by (deployment {state.primary_id})"

    def _events_for_stops(self, service: Any, stopped: list[_TaskRecord]) -> None:
        if stopped:
            ids = " ".join(f"(task {r.task_id})" for r in stopped)
            self._event(
                service,
                f"(service {service.name}) has stopped {len(stopped)} running tasks: {ids}.",
            )

    def _placement_event(self, state: _ServiceState, message: str, now: float) -> None:
        last_message, last_at = state.last_placement
        if message != last_message or now - last_at >= PLACEMENT_EVENT_SECONDS:
            state.last_placement = (message, now)
            self._event(state.service, message)

    def _targets_healthy(self, rec: _TaskRecord) -> bool:
        if self.lbs is None:
            return True
        return all(self.lbs.target_state(*t) == "healthy" for t in rec.targets)

    def _stop_unhealthy_targets(self, state: _ServiceState, now: float) -> None:
        """Stop each task whose target is unhealthy past the grace period, in ECS's words.

        ECS ignores ELB health for ``healthCheckGracePeriodSeconds`` (default 0) after a task
        starts, then stops a task whose target is ``unhealthy`` (never one still ``initial``);
        the service then starts a replacement. ECS starts the replacement first where
        ``maximumPercent`` leaves room; the sandbox stops first, then replaces.
        """
        if self.lbs is None:
            return
        service = state.service
        grace = float(getattr(service, "health_check_grace_period_seconds", None) or 0)
        for rec in self._service_tasks(service):
            if rec.phase != "running" or rec.task.desired_status == "STOPPED":
                continue
            if now - rec.running_since < grace:
                continue
            unhealthy = [t for t in rec.targets if self.lbs.target_state(*t) == "unhealthy"]
            if not unhealthy:
                continue
            tg_arn, target_id, port = unhealthy[0]
            why = self.lbs.failure_description(tg_arn, target_id, port)
            self._event(
                service,
                f"(service {service.name}) (task {rec.task_id}) (instance {target_id}) "
                f"(port {port}) is unhealthy in (target-group {tg_arn}) due to (reason {why}).",
            )
            self._begin_stop(
                rec,
                f"Task failed ELB health checks in (target-group {tg_arn})",
                "ServiceSchedulerInitiated",
            )
            self._events_for_stops(service, [rec])

    # placement ----------------------------------------------------------------------------
    def _place_service_task(self, state: _ServiceState) -> tuple[_TaskRecord | None, str]:
        service = state.service
        backend = self.ctx.ecs()
        td = backend.describe_task_definition(service.task_definition)
        needs = backend._calculate_task_resource_requirements(td)
        instances = [
            ci
            for ci in backend.container_instances.get(service.cluster_name, {}).values()
            if ci.status == "ACTIVE"
        ]
        # Not moto's _can_be_placed: it counts hostPort 0 (dynamic) as a port taken.
        fits = [ci for ci in instances if _shortfall(ci, needs) is None]
        if not fits:
            return None, self._placement_failure(service.name, instances, needs)
        # Spread: the instance with the fewest tasks, as ECS's default spread strategy does.
        ci = min(fits, key=lambda c: c.running_tasks_count)
        task = backend.start_task(
            service.cluster_name,
            td.arn,
            [ci.container_instance_arn],
            {},
            state.primary_id,
            None,
            f"service:{service.name}",
        )[0]
        rec = self._adopt(task)
        rec.service, rec.deployment_id = service, state.primary_id
        return rec, ""

    @staticmethod
    def _placement_failure(name: str, instances: list[Any], needs: dict[str, Any]) -> str:
        head = (
            f"(service {name}) was unable to place a task because no container instance "
            "met all of its requirements."
        )
        tail = (
            " For more information, see the Troubleshooting section of the Amazon ECS "
            "Developer Guide."
        )
        if not instances:
            return f"{head} Reason: No Container Instances were found in your cluster.{tail}"
        closest = instances[0]
        why = {
            "PORTS": "is already using a port required by your task.",
            "MEMORY": "has insufficient memory available.",
            "CPU": "has insufficient CPU units available.",
        }[_shortfall(closest, needs) or "CPU"]
        return f"{head} The closest matching (container-instance {closest.id}) {why}{tail}"

    # tasks --------------------------------------------------------------------------------
    def _adopt(self, task: Any) -> _TaskRecord:
        backend = self.ctx.ecs()
        td = backend.describe_task_definition(task.task_definition_arn)
        instance = None
        if task.container_instance_arn:
            ci_id = task.container_instance_arn.split("/")[-1]
            instance = backend.container_instances.get(task.cluster_name, {}).get(ci_id)
        rec = _TaskRecord(task=task, cluster=task.cluster_name, task_def=td, instance=instance)
        if task.last_status != "PENDING":
            task.last_status = "PENDING"
        if not getattr(task, "created_at", None):
            task.created_at = _now()
        task.containers = [
            self._container_model(task, td, cdef) for cdef in td.container_definitions
        ]
        task.availability_zone = (
            instance.attributes.get("ecs.availability-zone") if instance else None
        )
        if task.group.startswith("service:"):  # a service task created outside the agent
            for state in self._services.values():
                if (
                    state.service.name == task.group[8:]
                    and state.service.cluster_name == task.cluster_name
                ):
                    rec.service, rec.deployment_id = state.service, state.primary_id
        self._tasks[rec.arn] = rec
        return rec

    def _container_model(self, task: Any, td: Any, cdef: dict[str, Any]) -> Any:
        from moto.ecs.models import Container

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

    def _begin_stop(self, rec: _TaskRecord, reason: str, code: str) -> None:
        """Deregister the task's targets and registrations, then let it drain and stop."""
        task = rec.task
        if task.desired_status != "STOPPED" or not task.stopped_reason:
            task.desired_status = "STOPPED"
            task.stopped_reason = task.stopped_reason or reason
            task.stop_code = getattr(task, "stop_code", None) or code
            task.stopping_at = _now()
        if rec.phase == "launching" and rec.busy:
            return  # the launch finishes first; the next tick comes back here
        drain = self._deregister(rec)
        task.last_status = "DEACTIVATING" if drain else "STOPPING"
        rec.phase = "draining"
        rec.drain_until = time.monotonic() + (DRAIN_SECONDS if drain else 0.0)

    def _deregister(self, rec: _TaskRecord) -> bool:
        """Remove the task from target groups and Cloud Map; True when targets must drain."""
        drained = False
        if rec.targets:
            backend = self.ctx.elbv2()
            by_group: dict[str, int] = {}
            for tg_arn, target_id, port in rec.targets:
                try:
                    backend.deregister_targets(tg_arn, [{"Id": target_id, "Port": port}])
                    by_group[tg_arn] = by_group.get(tg_arn, 0) + 1
                except Exception:
                    pass  # deregistered by hand already
                if self.lbs is not None:
                    self.lbs.begin_draining(tg_arn, target_id, port)
            if rec.service is not None:
                for tg_arn, n in by_group.items():
                    self._event(
                        rec.service,
                        f"(service {rec.service.name}) deregistered {n} targets in "
                        f"(target-group {tg_arn})",
                    )
            drained = any(self._container_alive(rec))
            rec.targets = []
        if rec.registrations:
            sd = self.ctx.servicediscovery()
            for service_id, instance_id in rec.registrations:
                try:
                    sd.deregister_instance(service_id, instance_id)
                except Exception:
                    pass
            rec.registrations = []
        return drained

    def _container_alive(self, rec: _TaskRecord) -> list[bool]:
        return [c.last_status == "RUNNING" for c in rec.task.containers]

    def _finish_stop(self, rec: _TaskRecord) -> None:
        task = rec.task
        backend = self.ctx.ecs()
        for c in task.containers:
            c.last_status = "STOPPED"
            c.network_bindings = c.network_bindings or []
            if c.name in rec.exit_codes:
                c.exitCode = rec.exit_codes[c.name]
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_at = task.execution_stopped_at = _now()
        if rec.instance is not None and not rec.released:
            try:
                backend.update_container_instance_resources(
                    rec.instance, task.resource_requirements, removing=True
                )
            except ValueError:
                pass  # moto already freed them
        rec.released = True
        if self.lbs is not None:
            for (_name, _cport), (virtual, _real) in rec.ports.items():
                if rec.instance is not None:
                    self.lbs.remove_endpoint(
                        rec.instance.ec2_instance_id, virtual, (LOOPBACK, _real)
                    )
        rec.phase = "stopped"
        self._done.add(rec.arn)
        del self._tasks[rec.arn]

    def _mark_running(self, rec: _TaskRecord) -> None:
        task = rec.task
        rec.phase = "running"
        rec.running_since = time.monotonic()
        task.last_status = "RUNNING"
        task.started_at = _now()
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
        if rec.instance is not None and self.lbs is not None:
            for (_name, _cport), (virtual, real) in rec.ports.items():
                self.lbs.set_endpoint(rec.instance.ec2_instance_id, virtual, (LOOPBACK, real))
        if rec.service is not None:
            self._register(rec)
            state = self._services.get(id(rec.service))
            if state is not None:
                state.failures, state.backoff_until = 0, 0.0

    def _register(self, rec: _TaskRecord) -> None:
        service = rec.service
        if rec.instance is not None:
            backend = self.ctx.elbv2()
            for lb in service.load_balancers or []:
                tg_arn = lb.get("targetGroupArn")
                key = (lb.get("containerName"), int(lb.get("containerPort") or 0))
                if not tg_arn or key not in rec.ports:
                    continue
                virtual = rec.ports[key][0]
                target_id = rec.instance.ec2_instance_id
                try:
                    backend.register_targets(tg_arn, [{"Id": target_id, "Port": virtual}])
                except Exception as exc:
                    log.warning("registering %s in %s failed: %s", target_id, tg_arn, exc)
                    continue
                rec.targets.append((tg_arn, target_id, virtual))
                self._event(
                    service,
                    f"(service {service.name}) registered 1 targets in (target-group {tg_arn})",
                )
        sd = self.ctx.servicediscovery()
        for registry in service.service_registries or []:
            arn = registry.get("registryArn", "")
            service_id = arn.split("/")[-1]
            real = self._registry_port(rec, registry)
            attributes = {
                "AWS_INSTANCE_IPV4": LOOPBACK,
                "AVAILABILITY_ZONE": getattr(rec.task, "availability_zone", None) or "",
                "ECS_CLUSTER_NAME": rec.cluster,
                "ECS_SERVICE_NAME": service.name,
                "ECS_TASK_DEFINITION_FAMILY": rec.task_def.family,
            }
            if real:
                attributes["AWS_INSTANCE_PORT"] = str(real)
            try:
                sd.register_instance(service_id, rec.task_id, str(uuid.uuid4()), attributes)
                rec.registrations.append((service_id, rec.task_id))
            except Exception as exc:
                log.warning("Cloud Map registration in %s failed: %s", arn, exc)

    @staticmethod
    def _registry_port(rec: _TaskRecord, registry: dict[str, Any]) -> int | None:
        name, cport = registry.get("containerName"), registry.get("containerPort")
        for (cname, port), (_virtual, real) in rec.ports.items():
            if (name is None or cname == name) and (cport is None or int(cport) == port):
                return real
        return None

    # the reconciler -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # one bad tick must not kill the agent
                log.exception("agent tick failed")
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()

    def _tick(self) -> None:
        docker_states = self._docker_states()
        now = time.monotonic()
        with self.ctx.lock:
            backend = self.ctx.ecs()
            # Services first, so their state exists before their tasks are adopted.
            for service in list(backend.services.values()):
                self._service_state(service)
            for key in list(self._services):
                if self._services[key].service not in backend.services.values():
                    del self._services[key]
            for cluster_tasks in list(backend.tasks.values()):
                for arn, task in list(cluster_tasks.items()):
                    if arn in self._tasks or arn in self._done:
                        continue
                    if task.last_status == "STOPPED" or task.desired_status == "STOPPED":
                        self._done.add(arn)
                        continue
                    self._adopt(task)
            for rec in list(self._tasks.values()):
                self._advance_task(rec, docker_states, now)
            for state in list(self._services.values()):
                self._reconcile_service(state, now)
            for rec in list(self._tasks.values()):
                if rec.phase == "launching" and not rec.busy and rec.launch_error is None:
                    if not rec.containers:
                        rec.busy = True
                        self._pool.submit(self._launch, rec)
            self._count_cluster_tasks(backend)

    def _advance_task(
        self, rec: _TaskRecord, docker_states: dict[str, tuple[str, int | None]], now: float
    ) -> None:
        task = rec.task
        if rec.phase == "launching" and not rec.busy:
            if rec.launch_error is not None:
                self._fail_launch(rec, now)
                return
            if rec.containers:
                if task.desired_status == "STOPPED":
                    self._begin_stop(rec, task.stopped_reason or "Task stopped", "UserInitiated")
                else:
                    self._mark_running(rec)
                    return
        if rec.phase == "launching" and rec.busy and task.desired_status == "STOPPED":
            return
        if rec.phase == "launching" and task.desired_status == "STOPPED" and not rec.containers:
            self._begin_stop(rec, task.stopped_reason or "Task stopped", "UserInitiated")
        if rec.phase == "running":
            if task.desired_status == "STOPPED":
                self._begin_stop(rec, task.stopped_reason or "Task stopped", "UserInitiated")
            else:
                self._check_containers(rec, docker_states)
        if rec.phase == "draining" and now >= rec.drain_until and not rec.busy:
            rec.phase = "stopping"
            rec.task.last_status = "STOPPING"
            rec.busy = True
            self._pool.submit(self._stop_containers, rec)
        elif rec.phase == "stopping" and not rec.busy:
            self._finish_stop(rec)

    def _check_containers(
        self, rec: _TaskRecord, docker_states: dict[str, tuple[str, int | None]]
    ) -> None:
        if docker_states is None:
            return  # Docker did not answer this tick: decide nothing
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
                self._begin_stop(
                    rec, "Essential container in task exited", "EssentialContainerExited"
                )
                self._count_failed_task(rec)
                return

    def _docker_states(self) -> dict[str, tuple[str, int | None]] | None:
        client = self.ctx.docker
        if client is None or not any(r.phase == "running" for r in list(self._tasks.values())):
            return {}
        try:
            found = client.api.containers(
                all=True, filters={"label": f"{CONTAINER_LABEL}={self.ctx.settings.home}"}
            )
        except Exception:
            log.exception("listing containers failed")
            return None
        out: dict[str, tuple[str, int | None]] = {}
        for c in found:
            match = _EXIT_CODE.search(c.get("Status", ""))
            out[c["Id"]] = (c.get("State", ""), int(match.group(1)) if match else None)
        return out

    def _fail_launch(self, rec: _TaskRecord, now: float) -> None:
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
            state = self._services.get(id(rec.service))
            self._event(
                rec.service,
                f"(service {rec.service.name}) was unable to start a task: (task {rec.task_id}) "
                f"stopped: {error}",
            )
            if state is not None:
                state.failures += 1
                state.backoff_until = now + min(2.0 ** (state.failures - 1), MAX_BACKOFF_SECONDS)
            self._count_failed_task(rec)

    def _count_failed_task(self, rec: _TaskRecord) -> None:
        """A task of a rolling deployment failed: the circuit breaker counts it."""
        for deployment in rec.service.deployments if rec.service is not None else []:
            if deployment["id"] == rec.deployment_id and deployment.get("rolloutState") in (
                "IN_PROGRESS",
                None,
            ):
                deployment["failedTasks"] = deployment.get("failedTasks", 0) + 1

    def _count_cluster_tasks(self, backend: Any) -> None:
        for name, cluster in backend.clusters.items():
            tasks = list(backend.tasks.get(name, {}).values())
            cluster.running_tasks_count = sum(1 for t in tasks if t.last_status == "RUNNING")
            cluster.pending_tasks_count = sum(1 for t in tasks if t.last_status == "PENDING")

    # docker work (pool threads; no backend lock held while Docker works) ------------------
    def _launch(self, rec: _TaskRecord) -> None:
        created: dict[str, str] = {}
        try:
            client = self.ctx.docker
            if client is None:
                raise _LaunchError(
                    "CannotStartContainerError: the sandbox runs without Docker Engine "
                    "(API-only mode)"
                )
            rec.task.pull_started_at = _now()
            images = {
                c["name"]: self._pull(client, c["image"])
                for c in rec.task_def.container_definitions
            }
            rec.task.pull_stopped_at = _now()
            for cdef in rec.task_def.container_definitions:
                container = client.containers.create(
                    **self._container_args(rec, cdef, images[cdef["name"]])
                )
                created[cdef["name"]] = container.id
            for name, cid in created.items():
                container = client.containers.get(cid)
                try:
                    container.start()
                except Exception as exc:
                    raise _LaunchError(
                        f"CannotStartContainerError: {_docker_message(exc)}"
                    ) from exc
                container.reload()
                self._collect_ports(rec, name, container.attrs)
            rec.containers = created
        except _LaunchError as exc:
            rec.launch_error = exc
            rec.containers = created
        except Exception as exc:
            log.exception("launching %s failed", rec.arn)
            rec.launch_error = _LaunchError(f"CannotCreateContainerError: {_docker_message(exc)}")
            rec.containers = created
        finally:
            rec.busy = False
            self._wake.set()

    def _pull(self, client: Any, image: str) -> str:
        """Pull ``image`` as the container instance role; return the reference to run."""
        host, path, tag = _split_image(image)
        settings = self.ctx.settings
        sandbox_hosts = {settings.registry_host, f"localhost:{settings.registry_port}"}
        if host and (_ECR_HOST.match(host) or host in sandbox_hosts):
            # ECR hostnames do not resolve offline: the sandbox registry serves them all.
            repo = f"{settings.registry_host}/{path}"
            principal = self.ctx.role_arn(INSTANCE_ROLE)
            if self.ctx.pull_denial_reason is not None:
                reason = self.ctx.pull_denial_reason(principal, path)
                if reason:
                    raise _LaunchError(
                        f"CannotPullContainerError: pull access denied for {image}: {reason}"
                    )
            auth = None
            if self.ctx.registry_credentials is not None:
                username, password = self.ctx.registry_credentials(principal)
                auth = {"username": username, "password": password}
            try:
                client.images.pull(repo, tag=tag, auth_config=auth)
            except Exception as exc:
                raise _LaunchError(f"CannotPullContainerError: {_docker_message(exc)}") from exc
            return f"{repo}{'@' if tag.startswith('sha256:') else ':'}{tag}"
        reference = (
            image if (":" in image.rsplit("/", 1)[-1] or "@" in image) else f"{image}:latest"
        )
        try:
            client.images.get(reference)
            return reference  # a local image (no registry host): nothing to pull
        except Exception:
            pass
        try:
            client.images.pull(f"{host}/{path}" if host else path, tag=tag)
        except Exception as exc:
            raise _LaunchError(f"CannotPullContainerError: {_docker_message(exc)}") from exc
        return reference

    def _container_args(self, rec: _TaskRecord, cdef: dict[str, Any], image: str) -> dict[str, Any]:
        td, task = rec.task_def, rec.task
        overrides = {
            o.get("name"): o for o in (task.overrides or {}).get("containerOverrides", []) or []
        }.get(cdef["name"], {})
        env = {e["name"]: e.get("value", "") for e in cdef.get("environment") or []}
        env.update({e["name"]: e.get("value", "") for e in overrides.get("environment") or []})
        labels = dict(self.ctx.container_labels)
        labels.update(cdef.get("dockerLabels") or {})
        labels.update(
            {
                "com.amazonaws.ecs.task-arn": task.task_arn,
                "com.amazonaws.ecs.container-name": cdef["name"],
                "com.amazonaws.ecs.cluster": rec.cluster,
                "com.amazonaws.ecs.task-definition-family": td.family,
                "com.amazonaws.ecs.task-definition-version": str(td.revision),
            }
        )
        # Only on loopback, on an ephemeral port: "host port 80" is the instance's, virtual.
        ports = {
            f"{int(pm['containerPort'])}/{pm.get('protocol') or 'tcp'}": (LOOPBACK, None)
            for pm in cdef.get("portMappings") or []
            if pm.get("containerPort")
        }
        name = _NAME_UNSAFE.sub("-", f"ecs-{td.family}-{td.revision}-{cdef['name']}-{task.id}")
        args: dict[str, Any] = {
            "image": image,
            "name": name,
            "detach": True,
            "labels": labels,
            "ports": ports,
            "environment": env,
            # ECS gives a container with cpu 0 the minimum of 2 shares, as Docker requires.
            "cpu_shares": max(int(cdef.get("cpu") or 0), 2),
        }
        if cdef.get("memory"):
            args["mem_limit"] = f"{int(cdef['memory'])}m"
        if cdef.get("memoryReservation"):
            args["mem_reservation"] = f"{int(cdef['memoryReservation'])}m"
        command = overrides.get("command") or cdef.get("command")
        if command:
            args["command"] = command
        if cdef.get("entryPoint"):
            args["entrypoint"] = cdef["entryPoint"]
        for key, arg in (
            ("workingDirectory", "working_dir"),
            ("user", "user"),
            ("hostname", "hostname"),
        ):
            if cdef.get(key):
                args[arg] = cdef[key]
        if cdef.get("readonlyRootFilesystem"):
            args["read_only"] = True
        return args

    def _collect_ports(self, rec: _TaskRecord, name: str, attrs: dict[str, Any]) -> None:
        published = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
        cdef = next(c for c in rec.task_def.container_definitions if c["name"] == name)
        for pm in cdef.get("portMappings") or []:
            cport = int(pm.get("containerPort") or 0)
            bindings = published.get(f"{cport}/{pm.get('protocol') or 'tcp'}") or []
            real = next((int(b["HostPort"]) for b in bindings if b.get("HostIp") == LOOPBACK), None)
            if real is None:
                continue
            if rec.task_def.network_mode == "host":
                virtual = cport
            else:  # bridge: a fixed hostPort is reserved on the instance; 0 means dynamic
                virtual = int(pm.get("hostPort") or 0) or real
            rec.ports[(name, cport)] = (virtual, real)

    def _stop_containers(self, rec: _TaskRecord) -> None:
        try:
            client = self.ctx.docker
            for cid in rec.containers.values():
                try:
                    container = client.containers.get(cid)
                    if container.status == "running":
                        container.stop(timeout=STOP_TIMEOUT_SECONDS)
                    container.reload()
                    for c in rec.task.containers:
                        if rec.containers.get(c.name) == cid and c.name not in rec.exit_codes:
                            rec.exit_codes[c.name] = container.attrs["State"].get("ExitCode")
                    container.remove(force=True)
                except Exception as exc:
                    if "No such container" not in str(exc) and "404" not in str(exc):
                        log.warning("stopping container %s: %s", cid, exc)
        finally:
            rec.busy = False
            self._wake.set()


def _shortfall(instance: Any, needs: dict[str, Any]) -> str | None:
    """Why a task does not fit on a container instance, in ECS's words, or None if it fits."""
    remaining = {r["name"]: r for r in instance.remaining_resources}
    used_ports = set(remaining.get("PORTS", {}).get("stringSetValue") or [])
    if needs.get("MEMORY", 0) > remaining.get("MEMORY", {}).get("integerValue", 0):
        return "MEMORY"
    if needs.get("CPU", 0) > remaining.get("CPU", {}).get("integerValue", 0):
        return "CPU"
    if any(str(port) in used_ports for port in needs.get("PORTS", []) if port):
        return "PORTS"
    return None


#: The agent that moto's patched ECS responses defer to (one sandbox per process).
_ACTIVE: dict[str, Any] = {}


def _install_response_patches() -> None:
    """CreateService keeps deploymentConfiguration and healthCheckGracePeriodSeconds; RunTask
    reports what it could not place.

    Class-level patches on moto's ECS responses, active only for the sandbox agent's backend.
    """
    from moto.ecs.responses import EC2ContainerServiceResponse as Responses

    if _ACTIVE.get("patched"):
        return
    _ACTIVE["patched"] = True
    original_create_service, original_run_task = Responses.create_service, Responses.run_task

    def ours(response: Any) -> EcsAgent | None:
        agent = _ACTIVE.get("agent")
        return agent if agent is not None and response.ecs_backend is agent.ctx.ecs() else None

    def create_service(response: Any) -> Any:
        result = original_create_service(response)
        agent = ours(response)
        if agent is not None:
            service = result.result["service"]
            config = response._get_param("deploymentConfiguration")
            agent.set_deployment_configuration(service, config)
            # moto drops it too (its UpdateService keeps it); DescribeServices reports it.
            grace = response._get_param("healthCheckGracePeriodSeconds")
            if grace is not None:
                service.health_check_grace_period_seconds = int(grace)
        return result

    def run_task(response: Any) -> Any:
        result = original_run_task(response)
        agent = ours(response)
        if agent is not None and len(result.result["tasks"]) < response._get_int_param("count", 1):
            result.result["failures"] = agent.run_task_failures(
                response._get_param("cluster", "default"), response._get_param("taskDefinition")
            )
        return result

    Responses.create_service = create_service
    Responses.run_task = run_task


def _split_image(image: str) -> tuple[str, str, str]:
    """``host/path:tag`` -> (host or "", path, tag or digest); tag defaults to latest."""
    host, rest = "", image
    first, _, remainder = image.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        host, rest = first, remainder
    if "@" in rest:
        path, digest = rest.split("@", 1)
        return host, path, digest
    path, sep, tag = rest.rpartition(":")
    if not sep:
        return host, rest, "latest"
    return host, path, tag


def _docker_message(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)
