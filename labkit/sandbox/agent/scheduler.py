"""The service scheduler: each service keeps ``desiredCount`` tasks, as ECS's scheduler does.

* it replaces tasks whose essential container exits, and tasks whose target stays
  ``unhealthy`` past ``healthCheckGracePeriodSeconds`` ("Task failed ELB health checks in
  (target-group ...)");
* it rolls to a new task definition within the service's ``deploymentConfiguration``
  (minimum healthy and maximum percent, ECS defaults 100/200); the circuit breaker fails,
  and may roll back, a deployment whose tasks keep failing;
* placement uses moto's resource accounting per container instance (CPU, memory, host
  ports) and spreads over instances, so two tasks that want host port 80 land on different
  container instances;
* it writes service events the way ECS words them.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from dataclasses import dataclass
from typing import Any

from moto.core.utils import utcnow

from labkit.sandbox.agent.registration import Registration
from labkit.sandbox.agent.table import (
    ServiceState,
    TaskRecord,
    TaskTable,
    active_instances,
    service_event,
    shortfall,
)
from labkit.sandbox.agent.tasks import TaskLifecycle
from labkit.sandbox.context import SandboxContext

#: At most this often, the same placement failure is written again as a service event.
PLACEMENT_EVENT_SECONDS = 30.0
#: ECS's deploymentConfiguration defaults for a replica service.
DEFAULT_MINIMUM_HEALTHY_PERCENT = 100
DEFAULT_MAXIMUM_PERCENT = 200

_SCHEDULER = "ServiceSchedulerInitiated"


@dataclass
class Scheduler:
    """Reconciles every service of moto's ecs backend with the tasks in the table."""

    ctx: SandboxContext
    table: TaskTable
    lifecycle: TaskLifecycle
    registration: Registration

    def track_services(self, ecs: Any) -> None:
        """A state for every service moto has, and none for one it no longer has."""
        services = list(ecs.services.values())
        for service in services:
            self.service_state(service)
        for key, state in list(self.table.services.items()):
            if state.service not in services:
                del self.table.services[key]

    def service_state(self, service: Any) -> ServiceState:
        state = self.table.state_of(service)
        if state is None or state.service is not service:
            state = ServiceState(service=service)
            if service.deployments:
                state.primary_id = service.deployments[0]["id"]
            self.table.services[id(service)] = state
            self._normalize_task_definition(service)
        return state

    @staticmethod
    def set_deployment_configuration(service: Any, config: dict[str, Any] | None) -> None:
        """Keep CreateService's deploymentConfiguration (moto drops it) with ECS's defaults."""
        merged = {
            "maximumPercent": DEFAULT_MAXIMUM_PERCENT,
            "minimumHealthyPercent": DEFAULT_MINIMUM_HEALTHY_PERCENT,
        }
        merged.update(getattr(service, "deployment_configuration", None) or {})
        merged.update({k: v for k, v in (config or {}).items() if v is not None})
        service.deployment_configuration = merged

    def _normalize_task_definition(self, service: Any) -> None:
        # UpdateService may name the task definition "family:rev"; ECS reports the ARN.
        if service.task_definition and not service.task_definition.startswith("arn:"):
            with contextlib.suppress(Exception):  # not found: keep the name as given
                td = self.ctx.backend("ecs").describe_task_definition(service.task_definition)
                service.task_definition = td.arn

    def refresh_deployments(self, state: ServiceState, force: bool = False) -> None:
        """A new PRIMARY deployment when the task definition changed (or on force)."""
        service = state.service
        self._normalize_task_definition(service)
        if not service.deployments:
            return
        primary = service.deployments[0]
        if primary["taskDefinition"] != service.task_definition or force:
            now = utcnow()
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
            state.reset_backoff()
        primary = service.deployments[0]
        if primary["desiredCount"] != service.desired_count:
            primary["desiredCount"] = service.desired_count
            state.steady = False

    def update_counts(self, state: ServiceState) -> None:
        """The service's and each deployment's running and pending counts."""
        service = state.service
        tasks = self.table.service_tasks(service)
        service.running_count = sum(1 for r in tasks if r.phase == "running")
        service.pending_count = sum(1 for r in tasks if r.phase == "launching")
        for deployment in service.deployments:
            mine = [r for r in tasks if r.deployment_id == deployment["id"]]
            running = sum(1 for r in mine if r.phase == "running")
            pending = sum(1 for r in mine if r.phase == "launching")
            if (running, pending) != (deployment["runningCount"], deployment["pendingCount"]):
                deployment["runningCount"], deployment["pendingCount"] = running, pending
                deployment["updatedAt"] = utcnow()
            if deployment["status"] != "PRIMARY":
                deployment["desiredCount"] = len(mine)

    def reconcile(self, now: float) -> None:
        for state in list(self.table.services.values()):
            self._reconcile_service(state, now)

    def _reconcile_service(self, state: ServiceState, now: float) -> None:
        service = state.service
        name = service.name
        self.refresh_deployments(state)
        self._stop_unhealthy_targets(state, now)
        tasks = self.table.service_tasks(service)
        if service.status != "ACTIVE" or service.desired_count == 0:
            self._stop(state, [r for r in tasks if r.live])
        primary_id = state.primary_id
        desired = service.desired_count if service.status == "ACTIVE" else 0
        primary = [r for r in tasks if r.live and r.deployment_id == primary_id]
        old = [r for r in tasks if r.live and r.deployment_id != primary_id]

        # Too many: stop the newest (pending ones first).
        if len(primary) > desired:
            excess = sorted(primary, key=lambda r: (r.phase == "running", r.task.created_at))
            stopped = excess[: len(primary) - desired]
            self._stop(state, stopped)
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

        # Old deployments: stop what minimumHealthyPercent allows; unhealthy ones first, but
        # not one whose first health checks are still running (it is about to serve).
        if old and not failed:
            healthy = [r for r in primary + old if self._healthy(r)]
            spare = max(len(healthy) - min_healthy, 0)
            victims = [r for r in old if not self._healthy(r) and not self._checking(r)]
            victims += [r for r in old if self._healthy(r)][:spare]
            self._stop(state, victims)
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
                    service_event(
                        service, f"(service {name}) has started {len(started)} tasks: {ids}."
                    )
                    state.steady = False
                    primary += started
                if unplaced:  # ECS waits for room (an old task leaving, an instance joining)
                    self._placement_event(state, unplaced, now)

        self._check_circuit_breaker(state)

        # Drained deployments leave the list.
        live_ids = {r.deployment_id for r in self.table.service_tasks(service)}
        service.deployments[1:] = [d for d in service.deployments[1:] if d["id"] in live_ids]
        self.update_counts(state)

        # Steady: one deployment, all desired tasks running, their targets healthy.
        tasks = self.table.service_tasks(service)
        steady = (
            service.status == "ACTIVE"
            and len(service.deployments) == 1
            and service.running_count == desired
            and service.pending_count == 0
            and all(r.phase == "running" and self.registration.targets_healthy(r) for r in tasks)
        )
        if steady and not state.steady:
            state.steady = True
            state.last_placement = ("", 0.0)
            deployment = service.deployments[0]
            if deployment.get("rolloutState") == "IN_PROGRESS":
                deployment["rolloutState"] = "COMPLETED"
                deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."
                completed = f"(deployment {deployment['id']}) deployment completed."
                service_event(service, f"(service {name}) {completed}")
            if deployment.get("rolloutState") == "COMPLETED":
                state.last_completed = (deployment["id"], deployment["taskDefinition"])
            service_event(service, f"(service {name}) has reached a steady state.")
        elif not steady and service.running_count != desired:
            state.steady = False

    def _stop(self, state: ServiceState, records: list[TaskRecord], reason: str = "") -> None:
        """Stop the service's tasks (a scaling activity unless ``reason`` says otherwise)."""
        if not records:
            return
        reason = reason or f"Scaling activity initiated by (deployment {state.primary_id})"
        for rec in records:
            self.lifecycle.begin_stop(rec, reason, _SCHEDULER)
        ids = " ".join(f"(task {r.task_id})" for r in records)
        service = state.service
        service_event(
            service, f"(service {service.name}) has stopped {len(records)} running tasks: {ids}."
        )

    def _healthy(self, rec: TaskRecord) -> bool:
        """Counts toward minimumHealthyPercent: running, and healthy in its target groups."""
        if not (rec.live and rec.phase == "running"):
            return False
        if rec.service is not None and rec.service.load_balancers and not rec.targets:
            return False  # not registered (yet, or its port never came up): not serving
        return self.registration.targets_healthy(rec)

    def _checking(self, rec: TaskRecord) -> bool:
        """Running and registered, with no target that failed its checks (yet)."""
        running = rec.live and rec.phase == "running" and bool(rec.targets)
        return running and self.registration.unhealthy_target(rec) is None

    def _check_circuit_breaker(self, state: ServiceState) -> None:
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
        service_event(
            service,
            f"(service {service.name}) (deployment {deployment['id']}) deployment failed: "
            "tasks failed to start.",
        )
        if breaker.get("rollback") and state.last_completed:
            good_id, good_td = state.last_completed
            rollback = f"rolling back to deployment {good_id}."
            service_event(service, f"(service {service.name}) {rollback}")
            service.task_definition = good_td
            self.refresh_deployments(state, force=True)

    def _placement_event(self, state: ServiceState, message: str, now: float) -> None:
        last_message, last_at = state.last_placement
        if message != last_message or now - last_at >= PLACEMENT_EVENT_SECONDS:
            state.last_placement = (message, now)
            service_event(state.service, message)

    def _stop_unhealthy_targets(self, state: ServiceState, now: float) -> None:
        """Stop each task whose target is unhealthy past the grace period, in ECS's words.

        ECS ignores ELB health for ``healthCheckGracePeriodSeconds`` (default 0) after a task
        starts, then stops a task whose target is ``unhealthy`` (never one still ``initial``);
        the service then starts a replacement. ECS starts the replacement first where
        ``maximumPercent`` leaves room; the sandbox stops first, then replaces.
        """
        service = state.service
        grace = float(getattr(service, "health_check_grace_period_seconds", None) or 0)
        for rec in self.table.service_tasks(service):
            if rec.phase != "running" or rec.task.desired_status == "STOPPED":
                continue
            if now - rec.running_since < grace:
                continue
            unhealthy = self.registration.unhealthy_target(rec)
            if unhealthy is None:
                continue
            tg_arn, target_id, port, why = unhealthy
            service_event(
                service,
                f"(service {service.name}) (task {rec.task_id}) (instance {target_id}) "
                f"(port {port}) is unhealthy in (target-group {tg_arn}) due to (reason {why}).",
            )
            self._stop(state, [rec], f"Task failed ELB health checks in (target-group {tg_arn})")

    def _place_service_task(self, state: ServiceState) -> tuple[TaskRecord | None, str]:
        service = state.service
        backend = self.ctx.backend("ecs")
        td = backend.describe_task_definition(service.task_definition)
        needs = backend._calculate_task_resource_requirements(td)
        instances = active_instances(backend, service.cluster_name)
        fits = [ci for ci in instances if shortfall(ci, needs) is None]
        if not fits:
            return None, _placement_failure(service.name, instances, needs)
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
        rec = self.lifecycle.adopt(task)
        rec.service, rec.deployment_id = service, state.primary_id
        return rec, ""


def _placement_failure(name: str, instances: list[Any], needs: dict[str, Any]) -> str:
    head = (
        f"(service {name}) was unable to place a task because no container instance "
        "met all of its requirements."
    )
    tail = (
        " For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
    )
    if not instances:
        return f"{head} Reason: No Container Instances were found in your cluster.{tail}"
    closest = instances[0]
    why = {
        "PORTS": "is already using a port required by your task.",
        "MEMORY": "has insufficient memory available.",
        "CPU": "has insufficient CPU units available.",
    }[shortfall(closest, needs) or "CPU"]
    return f"{head} The closest matching (container-instance {closest.id}) {why}{tail}"
