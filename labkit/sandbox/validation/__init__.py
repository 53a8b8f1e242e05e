"""The sandbox refuses what AWS refuses, and allows what AWS allows, before moto acts.

- :mod:`~labkit.sandbox.validation.ecs`: CreateService, UpdateService and
  RegisterTaskDefinition are checked as ECS checks them (roles, load balancers, service
  registries, Fargate, names, memory, counts, INACTIVE revisions and services);
  DescribeTasks reports the tasks it did not find as MISSING;
- a task definition named by its family alone is its highest ACTIVE revision, as in ECS
  (moto takes the highest revision, even a deregistered one);
- :mod:`~labkit.sandbox.validation.cloudmap`: CreatePrivateDnsNamespace refuses only a
  second namespace of the same name in a VPC, as Cloud Map does (moto refuses any second);
  CreateService, UpdateService, DeleteService, DeleteNamespace and GetOperation refuse
  what Cloud Map refuses (moto creates a service in a namespace that does not exist, with
  DNS records outside the API, deletes a namespace that still has services);
- :mod:`~labkit.sandbox.validation.elb`: a target group named where its ARN belongs, a
  target port outside 1..65535, an instance that does not exist;
- :mod:`~labkit.sandbox.validation.constraints`: the form of AWS's answer to a request
  member outside the API's enums and ranges.

Only API requests are checked (the response layer): the sandbox's own restore of saved
state goes straight to moto's backends. notebooks/docs/parity.md lists every rule and its test.
"""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend
from moto.ecs.exceptions import ClusterNotFoundException, TaskDefinitionNotFoundException
from moto.ecs.models import EC2ContainerServiceBackend
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.elbv2.responses import ELBV2Response
from moto.servicediscovery.responses import ServiceDiscoveryResponse

from labkit.sandbox.context import SandboxContext
from labkit.sandbox.validation.cloudmap import CLOUD_MAP_CHECKS, NamespaceRule
from labkit.sandbox.validation.ecs import (
    check_create_service,
    check_register_task_definition,
    check_update_service,
)
from labkit.sandbox.validation.elb import ELB_CHECKS

__all__ = ["AwsChecks"]

#: The checks moto's patched ECS responses defer to (one sandbox per process).
_ACTIVE: dict[str, Any] = {}


class AwsChecks:
    """Installs the checks for one sandbox's backends; :meth:`remove` takes them out."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.namespaces = NamespaceRule(ctx)

    def install(self) -> None:
        self.namespaces.install()
        _ACTIVE["checks"] = self
        _patch_ecs_responses()
        _patch_checked(ServiceDiscoveryResponse, CLOUD_MAP_CHECKS, "servicediscovery")
        _patch_checked(ELBV2Response, ELB_CHECKS, "elbv2")

    def remove(self) -> None:
        self.namespaces.remove()
        if _ACTIVE.get("checks") is self:
            del _ACTIVE["checks"]

    def create_service(self, response: Any) -> None:
        params = {
            name: response._get_param(name)
            for name in (
                "serviceName",
                "role",
                "loadBalancers",
                "serviceRegistries",
                "launchType",
                "desiredCount",
            )
        }
        name = response._get_param("taskDefinition")
        with self.ctx.lock:
            # A task definition that does not exist is moto's to refuse, as ECS does.
            task_definition = _task_definition_or_none(response.ecs_backend, name)
            account, region = response.current_account, response.region
            discovery = get_backend("servicediscovery")[account][region]
            elbv2 = get_backend("elbv2")[account][region]
            check_create_service(params, task_definition, discovery, elbv2)

    def update_service(self, response: Any) -> None:
        params = {name: response._get_param(name) for name in ("desiredCount", "taskDefinition")}
        ecs = response.ecs_backend
        with self.ctx.lock:
            # A missing cluster, service or task definition is moto's to refuse, as ECS does.
            try:
                cluster = ecs._get_cluster(response._get_param("cluster", "default"))
            except ClusterNotFoundException:
                return
            name = (response._get_param("service") or "").split("/")[-1]
            service = ecs.services.get(f"{cluster.name}:{name}")
            task_definition = _task_definition_or_none(ecs, params["taskDefinition"])
            check_update_service(service, params, task_definition)

    def register_task_definition(self, response: Any) -> None:
        params = {
            name: response._get_param(name)
            for name in (
                "family",
                "requiresCompatibilities",
                "networkMode",
                "cpu",
                "memory",
                "executionRoleArn",
                "containerDefinitions",
            )
        }
        check_register_task_definition(params)


def _task_definition_or_none(ecs: Any, name: str | None) -> Any | None:
    if not name:
        return None
    try:
        return ecs.describe_task_definition(name)
    except Exception:
        return None


def _patch_ecs_responses() -> None:
    """Check CreateService, RegisterTaskDefinition and UpdateService first, and add
    DescribeTasks' MISSING failures (class-level, once per process; only requests to the
    active sandbox's backend are checked)."""
    if _ACTIVE.get("patched"):
        return
    _ACTIVE["patched"] = True
    responses = EC2ContainerServiceResponse
    original_describe_tasks = responses.describe_tasks

    def ours(response: Any) -> AwsChecks | None:
        checks = _ACTIVE.get("checks")
        mine = checks is not None and response.ecs_backend is checks.ctx.backend("ecs")
        return checks if mine else None

    def checked_first(action: str, original: Any) -> Any:
        def checked(response: Any) -> Any:
            checks = ours(response)
            if checks is not None:
                getattr(checks, action)(response)  # raises ECS's error, or lets it through
            return original(response)

        return checked

    def describe_tasks(response: Any) -> Any:
        result = original_describe_tasks(response)
        if ours(response) is not None:
            result.result["failures"] = missing_tasks(
                response._get_param("tasks", []), result.result["tasks"], response
            )
        return result

    for action in ("create_service", "register_task_definition", "update_service"):
        setattr(responses, action, checked_first(action, getattr(responses, action)))
    _patch_family_lookup()
    responses.describe_tasks = describe_tasks


def missing_tasks(asked: list[str], found: list[Any], response: Any) -> list[dict[str, str]]:
    """DescribeTasks' failures: each task asked for and not found is MISSING, as in ECS."""
    ids = {task.task_arn.split("/")[-1] for task in found}
    cluster = (response._get_param("cluster") or "default").split("/")[-1]
    prefix = f"arn:aws:ecs:{response.region}:{response.current_account}:task/{cluster}/"
    return [
        {"arn": name if name.startswith("arn:") else prefix + name, "reason": "MISSING"}
        for name in asked
        if name.split("/")[-1] not in ids
    ]


def _patch_checked(responses: type, checks: dict[str, Any], service: str) -> None:
    """Run ``checks[action](backend, response)`` before moto's ``responses.<action>``, for
    requests to the active sandbox's ``service`` backend only (class-level, once each).
    A check raises AWS's error, or returns AWS's answer in moto's place, or None."""
    if _ACTIVE.get(f"patched-{service}"):
        return
    _ACTIVE[f"patched-{service}"] = True
    for action, check in checks.items():
        original = getattr(responses, action)

        def checked(response: Any, _check: Any = check, _original: Any = original) -> Any:
            checks_now = _ACTIVE.get("checks")
            backend = checks_now.ctx.backend(service) if checks_now is not None else None
            if backend is not None and getattr(response, f"{service}_backend") is backend:
                with checks_now.ctx.lock:
                    answer = _check(backend, response)
                if answer is not None:
                    return answer
            return _original(response)

        setattr(responses, action, checked)


def _patch_family_lookup() -> None:
    """A family name alone means its highest ACTIVE revision (DescribeTaskDefinition,
    UpdateService, RunTask…), as in ECS; only the active sandbox's backend is changed."""
    original = EC2ContainerServiceBackend.describe_task_definition

    def describe_task_definition(backend: Any, task_definition_str: str) -> Any:
        checks = _ACTIVE.get("checks")
        name = task_definition_str.split("/")[-1]
        if ":" in name or checks is None or backend is not checks.ctx.backend("ecs"):
            return original(backend, task_definition_str)
        active = [
            revision
            for revision, definition in backend.task_definitions.get(name, {}).items()
            if definition.status == "ACTIVE"
        ]
        if not active:
            raise TaskDefinitionNotFoundException()
        return backend.task_definitions[name][max(active)]

    EC2ContainerServiceBackend.describe_task_definition = describe_task_definition
