"""ECS and Cloud Map state that outlives the sandbox process, as it outlives a host on AWS.

A restarted sandbox starts a fresh moto, and looks like the same account because:

* the lab environment is provisioned with moto's random generator seeded from the sandbox
  home, so its ids come out the same every time;
* clusters, task definitions (every revision), Cloud Map namespaces and services (with
  their ids) and ECS services (with deploymentConfiguration and events) are saved to
  ``services.json`` (atomically, owner-only, when they change) and replayed through moto's
  own create calls at start;
* tasks are not kept: their containers went with the old process, so each service starts
  new ones, which register again: what ECS does when a host comes back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from labkit.files import write_private
from labkit.sandbox.context import SandboxContext, Ticker

log = logging.getLogger(__name__)

#: Seconds between two looks at whether the state changed (a SIGKILL loses at most this).
SAVE_EVERY_SECONDS = 0.5
#: The lab environment's cluster: provisioned at every start, never replayed.
_PROVISIONED_CLUSTERS = {"ECSCluster"}

_TASK_DEFINITION_FIELDS = (
    "volumes",
    "network_mode",
    "placement_constraints",
    "requires_compatibilities",
    "cpu",
    "memory",
    "task_role_arn",
    "execution_role_arn",
    "proxy_configuration",
    "inference_accelerators",
    "runtime_platform",
    "ipc_mode",
    "pid_mode",
    "ephemeral_storage",
)
_NAMESPACE_FIELDS = ("id", "name", "type", "vpc", "description", "creator_request_id")
#: Also the keyword arguments of moto's create_service.
_DISCOVERY_SERVICE_FIELDS = (
    "name",
    "namespace_id",
    "description",
    "creator_request_id",
    "dns_config",
    "health_check_config",
    "health_check_custom_config",
    "service_type",
)
#: Saved as they are; "cluster" is added (the attribute is cluster_name).
_SERVICE_FIELDS = (
    "name",
    "task_definition",
    "desired_count",
    "load_balancers",
    "service_registries",
    "launch_type",
    "scheduling_strategy",
    "deployment_controller",
    "deployment_configuration",
    "health_check_grace_period_seconds",
    "role_arn",
    "propagate_tags",
    "tags",
    "created_at",
    "events",
)


def seed_for(home: Path) -> int:
    """The seed that makes a sandbox home's environment ids the same at every start."""
    return int(hashlib.sha256(str(home).encode()).hexdigest()[:16], 16)


class SavedState:
    """Snapshots ECS and Cloud Map into ``services.json``; replays it into a fresh moto."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.path = ctx.settings.home / "services.json"
        self._last = ""
        self._ticker = Ticker("labkit-persist", SAVE_EVERY_SECONDS, self.save)

    # saving -------------------------------------------------------------------------------
    def start(self) -> None:
        """Save now and whenever the state changes, from a thread of its own."""
        self.save()
        self._ticker.start()

    def stop(self) -> None:
        if self._ticker.started:  # a start cut short must not overwrite what was saved
            self._ticker.stop(timeout=5)
            self.save()

    def save(self) -> None:
        with self.ctx.lock:
            text = json.dumps(self.snapshot(), indent=1, sort_keys=True, default=_jsonable)
        if text != self._last:
            write_private(self.path, text.encode())
            self._last = text

    def snapshot(self) -> dict[str, Any]:
        """What a restarted sandbox needs to re-create; call with ``ctx.lock`` held."""
        ecs, sd = self.ctx.backend("ecs"), self.ctx.backend("servicediscovery")
        clusters = [
            {"name": c.name, "tags": c.tags or []}
            for c in ecs.clusters.values()
            if c.name not in _PROVISIONED_CLUSTERS and c.status == "ACTIVE"
        ]
        task_definitions = []
        for family, revisions in ecs.task_definitions.items():
            for revision, td in sorted(revisions.items()):
                saved = {f: getattr(td, f, None) for f in _TASK_DEFINITION_FIELDS}
                saved.update(
                    family=family,
                    revision=revision,
                    container_definitions=td.container_definitions,
                    tags=td.tags or [],
                    status=td.status,
                )
                task_definitions.append(saved)
        namespaces = [
            dict(
                _fields(ns, _NAMESPACE_FIELDS),
                dns_properties=ns.dns_properties,
                tags=sd.tagger.list_tags_for_resource(ns.arn).get("Tags", []),
            )
            for ns in sd.namespaces.values()
        ]
        discovery_services = [
            dict(
                _fields(s, _DISCOVERY_SERVICE_FIELDS),
                id=s.id,
                tags=sd.tagger.list_tags_for_resource(s.arn).get("Tags", []),
            )
            for s in sd.services.values()
        ]
        services = [
            dict(_fields(s, _SERVICE_FIELDS), cluster=s.cluster_name)
            for s in ecs.services.values()
            if s.status == "ACTIVE"
        ]
        return {
            "clusters": clusters,
            "task_definitions": task_definitions,
            "namespaces": namespaces,
            "discovery_services": discovery_services,
            "services": services,
        }

    # restoring ----------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text())
        except ValueError:  # written atomically, so only a hand edit gets here
            log.warning("%s is not JSON; starting without it", self.path)
            return {}

    def restore_definitions(self, saved: dict[str, Any]) -> None:
        """Clusters, task definitions and Cloud Map: before the agent starts."""
        ecs, sd = self.ctx.backend("ecs"), self.ctx.backend("servicediscovery")
        for cluster in saved.get("clusters", []):
            ecs.create_cluster(cluster["name"], tags=cluster.get("tags") or None)
        for td in saved.get("task_definitions", []):
            kwargs = {f: td.get(f) for f in _TASK_DEFINITION_FIELDS}
            made = ecs.register_task_definition(
                td["family"], td["container_definitions"], tags=td.get("tags") or None, **kwargs
            )
            if made.revision != td["revision"]:  # a deleted revision left a gap: keep it
                revisions = ecs.task_definitions[td["family"]]
                del revisions[made.revision]
                made.revision = td["revision"]
                made.arn = f"{made.arn.rsplit(':', 1)[0]}:{made.revision}"
                revisions[made.revision] = made
            made.status = td.get("status") or "ACTIVE"
        for ns in saved.get("namespaces", []):
            self._restore_namespace(sd, ns)
        for service in saved.get("discovery_services", []):
            kwargs = {f: service.get(f) for f in _DISCOVERY_SERVICE_FIELDS}
            made = sd.create_service(tags=service.get("tags") or None, **kwargs)
            _rekey(sd.services, sd.tagger, made, service["id"], "service")

    def _restore_namespace(self, sd: Any, ns: dict[str, Any]) -> None:
        common = {
            "name": ns["name"],
            "creator_request_id": ns.get("creator_request_id"),
            "description": ns.get("description"),
            "tags": ns.get("tags") or None,
        }
        if ns["type"] == "DNS_PRIVATE":
            properties = {"DnsProperties": ns.get("dns_properties") or {}}
            sd.create_private_dns_namespace(vpc=ns["vpc"], properties=properties, **common)
        elif ns["type"] == "DNS_PUBLIC":
            properties = {"DnsProperties": ns.get("dns_properties") or {}}
            sd.create_public_dns_namespace(properties=properties, **common)
        else:
            sd.create_http_namespace(**common)
        made = next(n for n in sd.namespaces.values() if n.name == ns["name"])
        _rekey(sd.namespaces, sd.tagger, made, ns["id"], "namespace")

    def restore_services(self, saved: dict[str, Any]) -> list[str]:
        """ECS services, through the sandbox's agent: it starts their tasks afresh."""
        ecs = self.ctx.backend("ecs")
        restored = []
        for s in saved.get("services", []):
            try:
                service = ecs.create_service(
                    s["cluster"],
                    s["name"],
                    s["desired_count"],
                    s["task_definition"],
                    s.get("load_balancers") or [],
                    s.get("scheduling_strategy"),
                    s.get("tags") or None,
                    s.get("deployment_controller"),
                    s.get("launch_type"),
                    service_registries=s.get("service_registries") or [],
                    propagate_tags=s.get("propagate_tags") or "NONE",
                    role_arn=s.get("role_arn"),
                )
            except Exception as exc:  # one broken service must not stop the sandbox
                log.warning("service %s could not be restored: %s", s.get("name"), exc)
                continue
            service.deployment_configuration = s.get("deployment_configuration")
            if s.get("health_check_grace_period_seconds") is not None:
                service.health_check_grace_period_seconds = s["health_check_grace_period_seconds"]
            service.events[:0] = [_event_from_json(e) for e in s.get("events") or []]
            if s.get("created_at"):
                service.created_at = dt.datetime.fromisoformat(str(s["created_at"]))
            restored.append(s["name"])
        return restored


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name, None) for name in names}


def _rekey(table: dict[str, Any], tagger: Any, made: Any, saved_id: str, kind: str) -> None:
    """Give a re-created Cloud Map object back its old id (moto draws a new one)."""
    if made.id == saved_id:
        return
    tags = tagger.list_tags_for_resource(made.arn).get("Tags", [])
    with contextlib.suppress(Exception):
        tagger.delete_all_tags_for_resource(made.arn)
    del table[made.id]
    made.arn = made.arn.rsplit(f"{kind}/", 1)[0] + f"{kind}/{saved_id}"
    made.id = saved_id
    table[saved_id] = made
    if tags:
        tagger.tag_resource(made.arn, tags)


def _event_from_json(event: dict[str, Any]) -> dict[str, Any]:
    created = event.get("createdAt")
    if isinstance(created, str):
        event = dict(event, createdAt=dt.datetime.fromisoformat(created))
    return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
