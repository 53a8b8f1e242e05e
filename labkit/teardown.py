"""The one teardown: notebook 06, ``labkit cleanup`` and ``labkit reset``.

Driven by the lab's names (``lab.names``, ``lab.repository_name``, ``lab.service_name``),
in dependency order: ECS services (their tasks hold targets and Cloud Map instances) →
Cloud Map services → namespace → task definitions → repository (and its images) → local
image tags → the backend's own lab environment: in AWS the kit's CloudFormation stack
(only if the kit created it), on an endpoint what notebook 00 created there, in the
sandbox nothing (it is built in).

A resource is the lab's when it carries the kit's tag, or when it has one of the lab's
names and was created after the lab began (the learner's own calls need not tag
anything; see :attr:`Lab.began_at`). Anything else is reported and left alone. A step
that fails is recorded and the others still run. Safe to re-run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from labkit import ecr, ecs, taskdef
from labkit.backends import endpoint
from labkit.backends.aws import provisioning
from labkit.backends.aws.access import access_denied_explained
from labkit.backends.report import TeardownReport
from labkit.config import Backend, has_kit_tag
from labkit.errors import BackendError, LabkitError
from labkit.lab import Lab, describe_services, find_kit_services, service_arns

__all__ = ["TeardownReport", "leftovers", "teardown"]

#: Clocks differ: a resource created up to this long before the lab began still counts.
CLOCK_SKEW = timedelta(minutes=2)
_NOT_OURS = "no kit tag, created before this lab began"


def teardown(
    lab: Lab,
    *,
    delete_environment: bool = True,
    raise_on_failure: bool = False,
    timeout_s: float | None = None,
) -> TeardownReport:
    """Delete everything the lab created, in dependency order; print and return a report.

    ``delete_environment=False`` (``labkit reset``) keeps the backend's lab environment
    (the AWS stack, the endpoint's cluster and roles) for the next run. Each wait gives
    up after ``timeout_s``: by default 3 minutes, in AWS 30 (draining an NLB target
    alone takes 5 by default, and CloudFormation minutes more).
    """
    lab.identity  # noqa: B018 — no credentials, no sandbox: say so before any step runs
    report = TeardownReport(lab.region)
    in_aws = lab.backend is Backend.AWS
    timeout_s = timeout_s or (provisioning.STACK_TIMEOUT_S if in_aws else 180)
    poll_s = 10.0 if in_aws else 1.0
    steps: list[tuple[str, Callable[[], None]]] = [
        ("ECS services", lambda: _services(lab, report, timeout_s, poll_s)),
        ("Cloud Map", lambda: _discovery(lab, report, timeout_s, poll_s)),
        ("task definitions", lambda: _task_definitions(lab, report)),
        ("ECR repository", lambda: _repository(lab, report)),
    ]
    if delete_environment and in_aws:
        session = lab.target.session
        remove_stack = partial(provisioning.remove_stack, session, report, timeout_s, poll_s)
        steps.append(("lab environment stack", remove_stack))
        steps.append(("listing leftovers", lambda: _aws_leftovers(session, report)))
    elif delete_environment and lab.backend is Backend.ENDPOINT:
        steps.append(
            ("lab environment", lambda: endpoint.remove_environment(lab, report, timeout_s))
        )
    for what, step in steps:
        try:
            with access_denied_explained():
                step()
        except LabkitError as exc:
            report.fail(f"{what}: {exc.what} {exc.fix}")
        except (ClientError, BotoCoreError) as exc:
            report.fail(f"{what}: {exc}")
    if not report.deleted:
        print("Nothing to delete: the kit has no resources here.")
    if not report.errors:
        lab.forget_lab_began()  # what is made from now on belongs to the next lab
    lab.forget_service_name()  # the next lab draws a fresh service number
    print(report.describe())
    if raise_on_failure and not report.ok:
        raise BackendError(
            "The teardown did not remove everything the kit created.",
            why="; ".join(report.errors + report.leftovers) or "see the report above",
            fix="Re-run this cell in a few minutes; anything still listed, delete by hand "
            "(the report gives each ARN).",
        )
    return report


# ------------------------------------------------------------------------ whose is it
def _is_lab_made(lab: Lab, tags: Any, created: datetime | None) -> bool:
    """Tagged as the kit's, or created since the lab began (it has the lab's name)."""
    if has_kit_tag(tags):
        return True
    began = lab.began_at
    return began is not None and created is not None and created >= began - CLOCK_SKEW


def _wait(client: Any, waiter: str, timeout_s: float, poll_s: float, **params: Any) -> bool:
    """Run one of boto3's waiters for at most ``timeout_s``; False if it gave up."""
    config = {"Delay": poll_s, "MaxAttempts": max(1, math.ceil(timeout_s / poll_s))}
    try:
        client.get_waiter(waiter).wait(WaiterConfig=config, **params)
    except WaiterError as exc:
        failures = (exc.last_response or {}).get("failures", [])
        return bool(failures) and all(f.get("reason") == "MISSING" for f in failures)
    return True


# ------------------------------------------------------------------------ the steps
def _services(lab: Lab, report: TeardownReport, timeout_s: float, poll_s: float) -> None:
    names, client = lab.names, lab.ecs
    deleted: list[str] = []
    tasks: list[str] = []
    # No services when the cluster is gone (a second cleanup in AWS).
    for service in describe_services(lab, service_arns(lab)):
        name = service["serviceName"]
        if service["status"] != "ACTIVE":
            continue
        lab_named = name == lab.service_name or name.startswith(names.service_prefix)
        if not (
            has_kit_tag(service.get("tags"))
            or (lab_named and _is_lab_made(lab, None, service.get("createdAt")))
        ):
            if lab_named:
                report.leave(f"ECS service {name}", _NOT_OURS)
            continue
        tasks += client.list_tasks(cluster=names.cluster, serviceName=name)["taskArns"]
        # Scale to zero first so tasks drain from the target group before deletion.
        if service.get("desiredCount", 0) > 0:
            client.update_service(cluster=names.cluster, service=name, desiredCount=0)
        client.delete_service(cluster=names.cluster, service=name, force=True)
        deleted.append(name)
        report.done(f"ECS service {name} (and its tasks)")
    for name in deleted:
        if not _wait(
            client, "services_inactive", timeout_s, poll_s, cluster=names.cluster, services=[name]
        ):
            report.fail(f"ECS service {name} was still draining at the timeout")
    for start in range(0, len(tasks), 100):  # DescribeTasks takes at most 100
        batch = tasks[start : start + 100]
        if not _wait(
            client, "tasks_stopped", timeout_s, poll_s, cluster=names.cluster, tasks=batch
        ):
            report.fail(f"tasks still running at the timeout: {', '.join(batch)}")


def _discovery(lab: Lab, report: TeardownReport, timeout_s: float, poll_s: float) -> None:
    sd = lab.servicediscovery
    for namespace in ecs.namespaces(lab):
        for service in ecs.discovery_services(lab, namespace["Id"]):
            what = f"Cloud Map service {service['Name']}"
            tags = sd.list_tags_for_resource(ResourceARN=service["Arn"]).get("Tags", [])
            if not _is_lab_made(lab, tags, service.get("CreateDate")):
                report.leave(what, _NOT_OURS)
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

            if ecs.poll_until(deleted, timeout_s, poll_s):
                report.done(what)
            else:
                report.fail(f"{what} still has instances")
        what = f"Cloud Map namespace {namespace['Name']}"
        tags = sd.list_tags_for_resource(ResourceARN=namespace["Arn"]).get("Tags", [])
        if not _is_lab_made(lab, tags, namespace.get("CreateDate")):
            report.leave(what, _NOT_OURS)
            continue
        try:
            operation = sd.delete_namespace(Id=namespace["Id"])["OperationId"]
        except sd.exceptions.ResourceInUse:
            report.leave(what, "it still has services that are not the lab's")
            continue
        status = ecs.wait_for_operation(lab, operation, timeout_s, poll_s)["Status"]
        if status == "SUCCESS":
            report.done(what)
        elif status == "FAIL":
            report.fail(f"deleting {what} failed")
        else:
            report.fail(f"{what} still deleting at the timeout")


def _task_definitions(lab: Lab, report: TeardownReport) -> None:
    done: list[str] = []
    for definition in taskdef.revisions(lab):
        revision = f"task definition {definition['family']}:{definition['revision']}"
        if not _is_lab_made(lab, definition["tags"], definition.get("registeredAt")):
            report.leave(revision, _NOT_OURS)
            continue
        lab.ecs.deregister_task_definition(taskDefinition=definition["taskDefinitionArn"])
        done.append(definition["taskDefinitionArn"])
        report.done(revision)
    # AWS keeps INACTIVE revisions listed until they are deleted too.
    for start in range(0, len(done), 10):
        try:
            lab.ecs.delete_task_definitions(taskDefinitions=done[start : start + 10])
        except (ClientError, BotoCoreError):
            pass  # some emulators lack the call; deregistered is enough to stop its use


def _repository(lab: Lab, report: TeardownReport) -> None:
    repo = ecr.find_repository(lab)
    if repo is None:
        return
    what = f"ECR repository {repo['repositoryName']}"
    tags = lab.ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags", [])
    if not _is_lab_made(lab, tags, repo.get("createdAt")):
        report.leave(what, _NOT_OURS)
        return
    lab.ecr.delete_repository(repositoryName=repo["repositoryName"], force=True)
    report.done(f"{what} and its images")
    _local_tags(repo["repositoryUri"], report)


def _local_tags(uri: str, report: TeardownReport) -> None:
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


def _aws_leftovers(session: Any, report: TeardownReport) -> None:
    report.leftovers = provisioning.kit_tagged_leftovers(session)
    report.leftovers_checked = True


# ------------------------------------------------------------------------ what is left
def leftovers(lab: Lab) -> dict[str, Any]:
    """Resources with the lab's names that still exist, tagged or not (empty after a full
    teardown, unless someone made look-alikes by hand; those it leaves alone)."""
    found: dict[str, Any] = {}
    if ecr.find_repository(lab) is not None:
        found["repository"] = lab.repository_name
    services = [s["serviceName"] for s in find_kit_services(lab)]
    if services:
        found["services"] = services
    if ecs.find_namespace(lab) is not None:
        found["namespace"] = lab.names.namespace
    active = lab.ecs.list_task_definitions(familyPrefix=lab.names.task_family, status="ACTIVE")
    if active["taskDefinitionArns"]:
        found["task definitions"] = [a.rsplit("/", 1)[-1] for a in active["taskDefinitionArns"]]
    return found
