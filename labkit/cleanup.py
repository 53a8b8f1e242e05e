"""Notebook 06 / ``labkit cleanup``: remove what the lab created, and nothing else.

Dependency order: the service (its tasks hold targets and Cloud Map instances) →
Cloud Map service → namespace → task definitions → repository (and its images) →
local image tags. A resource is the lab's when it carries the kit's tag, or when it has
one of the lab's names and was created after the lab began (the learner's own calls
need not tag anything; see :attr:`Lab.began_at`). Anything else is reported and left
alone. Safe to re-run: missing resources are skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from labkit.config import has_kit_tag
from labkit.lab import Lab


@dataclass
class CleanupReport:
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"🧹 Deleted {len(self.deleted)}:"] + [f"   - {d}" for d in self.deleted]
        if self.skipped:
            lines += [f"⏭️  Left alone {len(self.skipped)}:"] + [f"   - {s}" for s in self.skipped]
        return "\n".join(lines)

    def done(self, what: str) -> None:
        self.deleted.append(what)
        print(f"🗑️  {what}")

    def leave(self, what: str) -> None:
        self.skipped.append(what)
        print(f"⏭️  {what}")


#: Clocks differ: a resource created up to this long before the lab began still counts.
CLOCK_SKEW = timedelta(minutes=2)


def _is_lab_made(lab: Lab, tags: Any, created: datetime | None) -> bool:
    """Tagged as the kit's, or created since the lab began (it has the lab's name)."""
    if has_kit_tag(tags):
        return True
    began = lab.began_at
    return began is not None and created is not None and created >= began - CLOCK_SKEW


_NOT_OURS = "no kit tag, created before this lab began"


def _wait(predicate, timeout: float, interval: float = 2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _services(lab: Lab, report: CleanupReport, timeout: float) -> None:
    from labkit import ecs

    names = lab.names
    arns = ecs.service_arns(lab)  # none when the cluster is gone (a second cleanup in AWS)
    for start in range(0, len(arns), 10):
        for service in lab.ecs.describe_services(
            cluster=names.cluster, services=arns[start : start + 10], include=["TAGS"]
        )["services"]:
            name = service["serviceName"]
            if service["status"] != "ACTIVE":
                continue
            is_lab_service = name == lab.service_name or name.startswith(names.service_prefix)
            if not (
                has_kit_tag(service.get("tags"))
                or (is_lab_service and _is_lab_made(lab, None, service.get("createdAt")))
            ):
                if is_lab_service:
                    report.leave(f"ECS service {name} ({_NOT_OURS})")
                continue
            lab.ecs.update_service(cluster=names.cluster, service=name, desiredCount=0)
            lab.ecs.delete_service(cluster=names.cluster, service=name, force=True)

            def gone(name: str = name) -> bool:
                try:
                    tasks = lab.ecs.list_tasks(
                        cluster=names.cluster, serviceName=name, desiredStatus="RUNNING"
                    )
                except lab.ecs.exceptions.ServiceNotFoundException:
                    return True  # already fully deleted
                return not tasks["taskArns"]

            _wait(gone, timeout)
            report.done(f"ECS service {name} (and its tasks)")
    ecs.forget_service_name(lab)


def _discovery(lab: Lab, report: CleanupReport, timeout: float) -> None:
    from labkit import ecs

    sd = lab.servicediscovery
    namespace = ecs.find_namespace(lab)
    if namespace is None:
        return
    ns_tags = sd.list_tags_for_resource(ResourceARN=namespace["Arn"]).get("Tags", [])
    filters = [{"Name": "NAMESPACE_ID", "Values": [namespace["Id"]], "Condition": "EQ"}]
    for page in sd.get_paginator("list_services").paginate(Filters=filters):
        for service in page["Services"]:
            tags = sd.list_tags_for_resource(ResourceARN=service["Arn"]).get("Tags", [])
            if not _is_lab_made(lab, tags, service.get("CreateDate")):
                report.leave(f"Cloud Map service {service['Name']} ({_NOT_OURS})")
                continue
            # ECS deregisters its tasks; whatever is left belongs to our service.
            for instance in sd.list_instances(ServiceId=service["Id"]).get("Instances", []):
                sd.deregister_instance(ServiceId=service["Id"], InstanceId=instance["Id"])

            def deleted(service_id: str = service["Id"]) -> bool:
                try:
                    sd.delete_service(Id=service_id)
                    return True
                except sd.exceptions.ResourceInUse:
                    return False

            if _wait(deleted, timeout):
                report.done(f"Cloud Map service {service['Name']}")
            else:
                report.leave(f"Cloud Map service {service['Name']} (still has instances)")
    if not _is_lab_made(lab, ns_tags, namespace.get("CreateDate")):
        report.leave(f"namespace {namespace['Name']} ({_NOT_OURS})")
        return
    try:
        operation = sd.delete_namespace(Id=namespace["Id"])["OperationId"]
    except sd.exceptions.ResourceInUse:
        report.leave(f"namespace {namespace['Name']} (still has services)")
        return

    def finished() -> bool:
        status = sd.get_operation(OperationId=operation)["Operation"]["Status"]
        return status in ("SUCCESS", "FAIL")

    _wait(finished, timeout)
    report.done(f"private DNS namespace {namespace['Name']}")


def _task_definitions(lab: Lab, report: CleanupReport) -> None:
    family = lab.names.task_family
    arns: list[str] = []
    paginator = lab.ecs.get_paginator("list_task_definitions")
    for page in paginator.paginate(familyPrefix=family, status="ACTIVE"):
        arns += page["taskDefinitionArns"]
    for arn in arns:
        reply = lab.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        revision = f"{family}:{reply['taskDefinition']['revision']}"
        if reply["taskDefinition"]["family"] != family:
            continue
        if not _is_lab_made(lab, reply.get("tags"), reply["taskDefinition"].get("registeredAt")):
            report.leave(f"task definition {revision} ({_NOT_OURS})")
            continue
        lab.ecs.deregister_task_definition(taskDefinition=arn)
        try:  # AWS keeps INACTIVE revisions until deleted; some emulators lack the call
            lab.ecs.delete_task_definitions(taskDefinitions=[arn])
        except Exception:  # noqa: S110 — deregistered is enough to stop it being used
            pass
        report.done(f"task definition {revision}")


def _repository(lab: Lab, report: CleanupReport) -> str | None:
    from labkit import ecr

    repo = ecr.find_repository(lab)
    if repo is None:
        return None
    tags = lab.ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags", [])
    if not _is_lab_made(lab, tags, repo.get("createdAt")):
        report.leave(f"repository {repo['repositoryName']} ({_NOT_OURS})")
        return None
    lab.ecr.delete_repository(repositoryName=repo["repositoryName"], force=True)
    report.done(f"repository {repo['repositoryName']} and its images")
    return repo["repositoryUri"]


def _local_tags(uri: str, report: CleanupReport) -> None:
    """Remove local tags ``<repository URI>:*`` (labkit and the lab's docker tag made them)."""
    try:
        from labkit.images import docker_client

        client = docker_client()
    except Exception:  # no Docker: nothing local to remove
        return
    for image in client.images.list(name=uri):
        for tag in image.tags:
            if tag.rsplit(":", 1)[0] == uri:
                client.images.remove(tag, noprune=True)
                report.done(f"local image tag {tag}")


def cleanup(lab: Lab, timeout: float = 180) -> CleanupReport:
    """Delete everything the kit created, in dependency order; print and return a report."""
    report = CleanupReport()
    _services(lab, report, timeout)
    _discovery(lab, report, timeout)
    _task_definitions(lab, report)
    uri = _repository(lab, report)
    if uri:
        _local_tags(uri, report)
    if not report.deleted:
        print("Nothing to delete: the kit has no resources here.")
    lab.forget_lab_began()  # what is made from now on belongs to the next lab
    return report


def leftovers(lab: Lab) -> dict[str, Any]:
    """Resources with the lab's names that still exist, tagged or not (empty after a full
    cleanup, unless someone made look-alikes by hand; those cleanup leaves alone)."""
    from labkit import ecr, ecs

    found: dict[str, Any] = {}
    if ecr.find_repository(lab) is not None:
        found["repository"] = lab.repository_name
    services = [s["serviceName"] for s in ecs.find_kit_services(lab)]
    if services:
        found["services"] = services
    if ecs.find_namespace(lab) is not None:
        found["namespace"] = lab.names.namespace
    active = lab.ecs.list_task_definitions(familyPrefix=lab.names.task_family, status="ACTIVE")
    if active["taskDefinitionArns"]:
        found["task definitions"] = [a.rsplit("/", 1)[-1] for a in active["taskDefinitionArns"]]
    return found
