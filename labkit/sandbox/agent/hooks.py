"""Moto hooks: where moto's ECS (and Cloud Map) API answers the way ECS does, with the agent.

* moto's own task auto-advance is switched off: the agent sets each task's status;
* tasks from RunTask/StartTask start PENDING; RunTask without container instances, a second
  ACTIVE service of a name and a second Cloud Map service of a name are refused as AWS
  refuses them; RunTask reports what it could not place as ``failures`` (``RESOURCE:PORTS``);
* StopTask only asks a task to stop (the agent drains and stops it), and refuses an unknown
  task as ECS does; ListTasks filters on RUNNING and serviceName (an unknown service is
  ServiceNotFoundException); ListServices leaves out deleted services;
* CreateService and UpdateService keep ``deploymentConfiguration`` and
  ``healthCheckGracePeriodSeconds`` (moto drops them) and start a new deployment;
  CreateService without ``role`` reports ECS's service-linked role, created in IAM on first
  use. (What ECS refuses is refused before, by :mod:`labkit.sandbox.validation`.)

The backend hooks are instance attributes of this sandbox's backends; the response hooks
are class-level, and defer to the active agent only for its own backend.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.utils import utcnow
from moto.ecs.exceptions import InvalidParameterException, ServiceNotFoundException
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api import state_manager

from labkit.names import LAB, role_trust_policy
from labkit.sandbox.agent.scheduler import Scheduler
from labkit.sandbox.agent.table import TaskTable, active_instances, shortfall
from labkit.sandbox.context import SandboxContext, shadow, unshadow

_ECS_HOOKS = (
    "run_task",
    "start_task",
    "stop_task",
    "list_tasks",
    "create_service",
    "update_service",
    "delete_service",
    "list_services",
)

#: The service ECS's service-linked role is linked to.
ECS_PRINCIPAL = "ecs.amazonaws.com"

#: The hooks moto's patched ECS responses defer to (one sandbox per process).
_ACTIVE: dict[str, Any] = {}


@dataclass
class MotoHooks:
    """Installs and removes the agent's hooks in moto's ecs and servicediscovery backends."""

    ctx: SandboxContext
    table: TaskTable
    scheduler: Scheduler
    wake: threading.Event
    _originals: dict[str, Any] = field(default_factory=dict)

    def install(self) -> None:
        # The agent sets task.last_status itself; moto must not advance it on Describe.
        state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
        with self.ctx.lock:
            self._originals = shadow(self.ctx.backend("ecs"), self, _ECS_HOOKS)
            discovery = self.ctx.backend("servicediscovery")
            self._originals["discovery_create_service"] = discovery.create_service
            discovery.create_service = self._create_discovery_service
        _ACTIVE["hooks"] = self
        _install_response_hooks()

    def remove(self) -> None:
        unshadow(self.ctx.backend("ecs"), _ECS_HOOKS)
        self.ctx.backend("servicediscovery").__dict__.pop("create_service", None)
        self._originals.clear()
        if _ACTIVE.get("hooks") is self:
            del _ACTIVE["hooks"]

    def _pending(self, tasks: list[Any]) -> list[Any]:
        # moto creates tasks RUNNING; nothing runs yet, so they are PENDING until it does.
        for task in tasks:
            task.last_status = "PENDING"
            task.created_at = utcnow()
            task.connectivity = "CONNECTED"
        self.wake.set()
        return tasks

    def _run_task(self, cluster_str: str, *args: Any, **kwargs: Any) -> list[Any]:
        with self.ctx.lock:
            backend = self.ctx.backend("ecs")
            cluster = backend._get_cluster(cluster_str)
            fargate = "FARGATE" in (args[5:6] or [kwargs.get("launch_type")])
            if not fargate and not active_instances(backend, cluster.name):
                # moto raises a bare Exception (HTTP 500); ECS answers with this.
                raise InvalidParameterException(
                    "No Container Instances were found in your cluster."
                )
            return self._pending(self._originals["run_task"](cluster_str, *args, **kwargs))

    def run_task_failures(self, cluster_str: str, task_definition: str) -> list[dict[str, str]]:
        """What RunTask answers for tasks it could not place: per instance, ECS's reason."""
        with self.ctx.lock:
            backend = self.ctx.backend("ecs")
            cluster = backend._get_cluster(cluster_str)
            needs = backend._calculate_task_resource_requirements(
                backend.describe_task_definition(task_definition)
            )
            return [
                {"arn": ci.container_instance_arn, "reason": f"RESOURCE:{why}"}
                for ci in active_instances(backend, cluster.name)
                if (why := shortfall(ci, needs))
            ]

    def set_deployment_configuration(self, service: Any, config: dict[str, Any] | None) -> None:
        with self.ctx.lock:
            self.scheduler.set_deployment_configuration(service, config)
        self.wake.set()

    def _start_task(self, *args: Any, **kwargs: Any) -> list[Any]:
        with self.ctx.lock:
            return self._pending(self._originals["start_task"](*args, **kwargs))

    def _stop_task(self, cluster_str: str, task_str: str, reason: str) -> Any:
        # ECS answers StopTask with desiredStatus STOPPED while the task is still running;
        # the agent drains and stops it, then frees its resources (moto frees them at once).
        backend = self.ctx.backend("ecs")
        with self.ctx.lock:
            cluster = backend._get_cluster(cluster_str)
            task_id = task_str.split("/")[-1]
            for arn, task in backend.tasks.get(cluster.name, {}).items():
                if arn.endswith(task_id):
                    if task.desired_status != "STOPPED":
                        task.desired_status = "STOPPED"
                        task.stopped_reason = reason or "Task stopped by user"
                        task.stop_code = "UserInitiated"
                        task.stopping_at = utcnow()
                    if arn not in self.table.tasks and task.last_status != "STOPPED":
                        task.last_status = "STOPPED"
                    self.wake.set()
                    return task
        # moto raises a bare Exception (HTTP 500); ECS answers with this.
        raise InvalidParameterException("The referenced task was not found.")

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
        if service_name:
            backend = self.ctx.backend("ecs")
            cluster = backend._get_cluster(cluster_str or "default")
            if f"{cluster.name}:{service_name.split('/')[-1]}" not in backend.services:
                raise ServiceNotFoundException()  # as ECS answers (moto lists nothing)
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
        backend = self.ctx.backend("ecs")
        inactive = {s.arn for s in list(backend.services.values()) if s.status == "INACTIVE"}
        return [arn for arn in arns if arn not in inactive]

    def _create_service(self, *args: Any, **kwargs: Any) -> Any:
        cluster_str = kwargs.get("cluster_str", args[0] if args else "default")
        name = kwargs.get("service_name", args[1] if len(args) > 1 else "")
        with self.ctx.lock:
            # ECS keeps one ACTIVE service per name in a cluster; moto would replace it.
            backend = self.ctx.backend("ecs")
            cluster = backend._get_cluster(cluster_str)
            existing = backend.services.get(f"{cluster.name}:{name}")
            if existing is not None and existing.status != "INACTIVE":
                raise InvalidParameterException("Creation of service was not idempotent.")
            service = self._originals["create_service"](*args, **kwargs)
            if not service.role_arn or service.role_arn.endswith(f"/{LAB.service_linked_role}"):
                # Without a role, ECS acts as its service-linked role (made on first use;
                # a restored service finds it again in a fresh IAM).
                service.role_arn = ensure_service_linked_role(self.ctx)
            elif not service.role_arn.startswith("arn:"):
                # ECS answers with the role's ARN, whichever way it was named.
                service.role_arn = f"arn:aws:iam::{self.ctx.account_id}:role/{service.role_arn}"
            self.scheduler.set_deployment_configuration(service, None)
            self.scheduler.service_state(service)
        self.wake.set()
        return service

    def _create_discovery_service(self, name: str, namespace_id: str, *args: Any, **kwargs: Any):
        # Cloud Map refuses a second service of the same name in a namespace.
        for existing in list(self.ctx.backend("servicediscovery").services.values()):
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
            backend = self.ctx.backend("ecs")
            before = backend._get_service(props.get("cluster", "default"), props["service"])
            old_ids = [d.get("id") for d in before.deployments]
            config = props.pop("deployment_configuration", None)
            service = self._originals["update_service"](props)
            if config:
                self.scheduler.set_deployment_configuration(service, config)
            # moto rewrites the primary deployment's id on force: undo, we add a new one.
            if force and service.deployments and old_ids:
                service.deployments[0]["id"] = old_ids[0]
            state = self.scheduler.service_state(service)
            self.scheduler.refresh_deployments(state, force=force)
            self.scheduler.update_counts(state)
        self.wake.set()
        return service

    def _delete_service(self, *args: Any, **kwargs: Any) -> Any:
        with self.ctx.lock:
            service = self._originals["delete_service"](*args, **kwargs)
            service.desired_count = 0
        self.wake.set()
        return service


def ensure_service_linked_role(ctx: SandboxContext) -> str:
    """The ARN of ECS's service-linked role, created in IAM the first time, as ECS does."""
    from moto.backends import get_backend
    from moto.utilities.utils import get_partition

    iam = get_backend("iam")[ctx.account_id][get_partition(ctx.region)]
    name = LAB.service_linked_role
    role = next((r for r in list(iam.roles.values()) if r.name == name), None)
    if role is None:
        role = iam.create_role(
            name,
            role_trust_policy(ECS_PRINCIPAL),
            f"/aws-service-role/{ECS_PRINCIPAL}/",
            permissions_boundary=None,
            description="Role to enable Amazon ECS to manage your cluster.",
            tags=[],
            max_session_duration=None,
            linked_service=ECS_PRINCIPAL,
        )
    return role.arn


def _install_response_hooks() -> None:
    """CreateService keeps deploymentConfiguration and healthCheckGracePeriodSeconds; RunTask
    reports what it could not place (class-level, once per process)."""
    if _ACTIVE.get("patched"):
        return
    _ACTIVE["patched"] = True
    responses = EC2ContainerServiceResponse
    original_create_service, original_run_task = responses.create_service, responses.run_task

    def ours(response: Any) -> MotoHooks | None:
        hooks = _ACTIVE.get("hooks")
        mine = hooks is not None and response.ecs_backend is hooks.ctx.backend("ecs")
        return hooks if mine else None

    def create_service(response: Any) -> Any:
        result = original_create_service(response)
        hooks = ours(response)
        if hooks is not None:
            service = result.result["service"]
            hooks.set_deployment_configuration(
                service, response._get_param("deploymentConfiguration")
            )
            # moto drops it too (its UpdateService keeps it); DescribeServices reports it.
            grace = response._get_param("healthCheckGracePeriodSeconds")
            if grace is not None:
                service.health_check_grace_period_seconds = int(grace)
        return result

    def run_task(response: Any) -> Any:
        result = original_run_task(response)
        hooks = ours(response)
        if hooks is not None and len(result.result["tasks"]) < response._get_int_param("count", 1):
            result.result["failures"] = hooks.run_task_failures(
                response._get_param("cluster", "default"), response._get_param("taskDefinition")
            )
        return result

    responses.create_service = create_service
    responses.run_task = run_task
