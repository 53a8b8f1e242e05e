"""Target and discovery registration: a running task joins its service's load balancing.

A service task that turns RUNNING is registered as a target of each of the service's target
groups (the virtual ``instance-id:hostPort``, whose real loopback address the load balancers
are told) and as a Cloud Map instance; both are undone when the task stops.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from labkit.sandbox.agent.table import TaskRecord, service_event
from labkit.sandbox.context import LOOPBACK, SandboxContext
from labkit.sandbox.loadbalancer import LoadBalancers

log = logging.getLogger(__name__)


@dataclass
class Registration:
    """Registers tasks with ELBv2 and Cloud Map, and tells the load balancers where they are."""

    ctx: SandboxContext
    lbs: LoadBalancers | None

    def publish(self, rec: TaskRecord, published: bool = True) -> None:
        """Tell the load balancers which loopback port each virtual host port is (or, with
        ``published`` False, that it is no more)."""
        if rec.instance is not None and self.lbs is not None:
            change = self.lbs.set_endpoint if published else self.lbs.remove_endpoint
            for virtual, real in rec.ports.values():
                change(rec.instance.ec2_instance_id, virtual, (LOOPBACK, real))

    def register(self, rec: TaskRecord) -> None:
        """Register a service's running task in its target groups and Cloud Map services."""
        service = rec.service
        if rec.instance is not None:
            backend = self.ctx.backend("elbv2")
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
                service_event(
                    service,
                    f"(service {service.name}) registered 1 targets in (target-group {tg_arn})",
                )
        sd = self.ctx.backend("servicediscovery")
        for registry in service.service_registries or []:
            arn = registry.get("registryArn", "")
            service_id = arn.split("/")[-1]
            real = _registry_port(rec, registry)
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

    def deregister(self, rec: TaskRecord) -> bool:
        """Remove the task from target groups and Cloud Map; True when targets must drain."""
        drained = False
        if rec.targets:
            backend = self.ctx.backend("elbv2")
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
                    service_event(
                        rec.service,
                        f"(service {rec.service.name}) deregistered {n} targets in "
                        f"(target-group {tg_arn})",
                    )
            drained = any(c.last_status == "RUNNING" for c in rec.task.containers)
            rec.targets = []
        if rec.registrations:
            sd = self.ctx.backend("servicediscovery")
            for service_id, instance_id in rec.registrations:
                with contextlib.suppress(Exception):
                    sd.deregister_instance(service_id, instance_id)
            rec.registrations = []
        return drained

    def idle(self, rec: TaskRecord) -> bool:
        """No connection through the load balancers is open to the task (it has drained)."""
        if self.lbs is None:
            return True
        addresses = [(LOOPBACK, real) for _virtual, real in rec.ports.values()]
        return not any(self.lbs.open_connections(address) for address in addresses)

    def targets_healthy(self, rec: TaskRecord) -> bool:
        if self.lbs is None:
            return True
        return all(self.lbs.target_state(*t) == "healthy" for t in rec.targets)

    def unhealthy_target(self, rec: TaskRecord) -> tuple[str, str, int, str] | None:
        """The first of the task's targets its health checks call ``unhealthy``, and why."""
        if self.lbs is None:
            return None
        for tg_arn, target_id, port in rec.targets:
            if self.lbs.target_state(tg_arn, target_id, port) == "unhealthy":
                why = self.lbs.failure_description(tg_arn, target_id, port)
                return tg_arn, target_id, port, why
        return None

    def endpoints(self, records: list[TaskRecord]) -> dict[str, dict[str, str]]:
        """Task ARN -> {"containerName:containerPort": "127.0.0.1:realPort"} for running tasks."""
        return {
            rec.arn: {
                f"{name}:{cport}": f"{LOOPBACK}:{real}"
                for (name, cport), (_virtual, real) in rec.ports.items()
            }
            for rec in records
            if rec.phase == "running"
        }


def _registry_port(rec: TaskRecord, registry: dict[str, Any]) -> int | None:
    name, cport = registry.get("containerName"), registry.get("containerPort")
    for (cname, port), (_virtual, real) in rec.ports.items():
        if (name is None or cname == name) and (cport is None or int(cport) == port):
            return real
    return None
