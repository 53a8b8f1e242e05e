"""Cloud Map's answers where moto's differ.

CreatePrivateDnsNamespace: one VPC may hold several namespaces.

moto refuses any second private namespace in a VPC (``ConflictingDomainExists``, an error
of Route 53's, not Cloud Map's). Cloud Map creates a Route 53 private hosted zone per
namespace, and a VPC may have many zones, only not two of one name; so the sandbox refuses
only a second namespace of the same name in the VPC, with Cloud Map's
``NamespaceAlreadyExists`` (which carries the existing namespace's id).

CreateService and UpdateService: a DNS record's ``Type`` must be one of the API's
(``MX`` is not) and its ``TTL`` within 0..2147483647, or Cloud Map answers ``InvalidInput``
in the form of :mod:`~labkit.sandbox.validation.constraints` (moto stored any).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.backends import get_backend
from moto.core.exceptions import JsonRESTError
from moto.servicediscovery.exceptions import (
    InvalidInput,
    NamespaceNotFound,
    ServiceNotFound,
)
from moto.servicediscovery.models import Operation

from labkit.sandbox.context import SandboxContext
from labkit.sandbox.validation.constraints import detected, enum_violation, range_violation

#: DnsRecord's Type and TTL, as the Cloud Map API reference (and botocore's model) has them.
RECORD_TYPES = ("SRV", "A", "AAAA", "CNAME")
TTL_RANGE = (0, 2147483647)


def _already_exists(namespace: Any, vpc: str) -> JsonRESTError:
    # Cloud Map's documented meaning; this wording is the sandbox's (see notebooks/docs/parity.md).
    error = JsonRESTError(
        "NamespaceAlreadyExists",
        f"The namespace {namespace.name} already exists in VPC {vpc}: use it "
        f"({namespace.id}), or choose another name.",
    )
    error.description = json.dumps(
        {
            "__type": "NamespaceAlreadyExists",
            "message": error.message,
            "NamespaceId": namespace.id,
            "CreatorRequestId": namespace.creator_request_id or "",
        }
    )
    return error


@dataclass
class NamespaceRule:
    """Shadows the servicediscovery backend's create_private_dns_namespace (this sandbox's
    backend object only)."""

    ctx: SandboxContext
    _original: Any = field(default=None, repr=False)

    def install(self) -> None:
        backend = self.ctx.backend("servicediscovery")
        self._original = backend.create_private_dns_namespace
        backend.create_private_dns_namespace = self._create_private_dns_namespace

    def remove(self) -> None:
        self.ctx.backend("servicediscovery").__dict__.pop("create_private_dns_namespace", None)

    def _create_private_dns_namespace(self, name: str, *args: Any, vpc: str, **kwargs: Any) -> str:
        backend = self.ctx.backend("servicediscovery")
        with self.ctx.lock:
            for namespace in list(backend.namespaces.values()):
                if namespace.vpc == vpc and namespace.name.rstrip(".") == name.rstrip("."):
                    raise _already_exists(namespace, vpc)
            # moto checks the VPC only: create under a VPC id no namespace has, then set it.
            placeholder = f"{vpc}/labkit-{uuid.uuid4().hex}"
            operation_id = self._original(name, *args, vpc=placeholder, **kwargs)
            for namespace in list(backend.namespaces.values()):
                if namespace.vpc == placeholder:
                    namespace.vpc = vpc
            return operation_id


def _params(response: Any) -> dict[str, Any]:
    return json.loads(response.body or "{}")


def check_dns_records(dns_config: Any, path: str) -> None:
    """Raise Cloud Map's ``InvalidInput`` for DNS records outside the API's enum or range.
    ``path`` is the request's path to ``DnsConfig`` as Cloud Map words it."""
    records = dns_config.get("DnsRecords") if isinstance(dns_config, dict) else None
    violations: list[str | None] = []
    for index, record in enumerate(records if isinstance(records, list) else [], start=1):
        if not isinstance(record, dict):
            continue
        member = f"{path}.dnsRecords.{index}.member"
        violations.append(enum_violation(record.get("Type"), f"{member}.type", RECORD_TYPES))
        violations.append(range_violation(record.get("TTL"), f"{member}.tTL", *TTL_RANGE))
    message = detected(violations)
    if message is not None:
        raise InvalidInput(message)


def check_create_service(backend: Any, response: Any) -> None:
    """Cloud Map checks the request against its API first; then it creates a service only
    in a namespace that exists, and takes Route 53 health checks (HealthCheckConfig) only
    in public DNS and HTTP namespaces."""
    params = _params(response)
    check_dns_records(params.get("DnsConfig"), "dnsConfig")
    namespace = backend.namespaces.get(params.get("NamespaceId") or "")
    if namespace is None:
        raise NamespaceNotFound(params.get("NamespaceId") or "")
    if params.get("HealthCheckConfig") is not None:
        # Documented rules (HealthCheckConfig reference); the wording is ours.
        if params.get("HealthCheckCustomConfig") is not None:
            raise InvalidInput(
                "Specify either HealthCheckConfig or HealthCheckCustomConfig, not both."
            )
        if namespace.type == "DNS_PRIVATE":
            raise InvalidInput(
                "HealthCheckConfig (a Route 53 health check) is for public DNS and HTTP "
                f"namespaces only; {namespace.name} is a private DNS namespace. For ECS "
                "tasks, use HealthCheckCustomConfig: ECS reports their health."
            )


def check_update_service(backend: Any, response: Any) -> None:
    """UpdateService's records are checked as CreateService's (before the service is
    looked up, as Cloud Map checks the request first)."""
    change = _params(response).get("Service")
    if isinstance(change, dict):
        check_dns_records(change.get("DnsConfig"), "service.dnsConfig")


def check_delete_service(backend: Any, response: Any) -> None:
    service_id = _params(response).get("Id") or ""
    if service_id not in backend.services:
        raise ServiceNotFound(service_id)  # moto deletes nothing and answers success


def check_delete_namespace(backend: Any, response: Any) -> None:
    namespace_id = _params(response).get("Id") or ""
    services = [s for s in list(backend.services.values()) if s.namespace_id == namespace_id]
    if namespace_id in backend.namespaces and services:
        # Cloud Map's code (DeleteNamespace reference); the wording is ours.
        names = ", ".join(sorted(s.name for s in services))
        raise JsonRESTError(
            "ResourceInUse",
            f"The namespace {namespace_id} still contains {len(services)} service(s) "
            f"({names}): delete them (servicediscovery delete_service) first.",
        )


def check_get_operation(backend: Any, response: Any) -> None:
    operation_id = _params(response).get("OperationId") or ""
    if operation_id not in backend.operations:
        # moto's message is empty; this is the API reference's meaning of the error.
        raise JsonRESTError("OperationNotFound", "No operation exists with the specified ID.")


class FailedOperation(Operation):
    """An operation that ended in FAIL, with Cloud Map's ErrorCode and ErrorMessage."""

    def __init__(self, operation_type: str, code: str, message: str) -> None:
        super().__init__(operation_type, targets={})
        self.status, self.error_code, self.error_message = "FAIL", code, message

    def to_json(self, short: bool = False) -> dict[str, Any]:
        answer = super().to_json(short)
        if not short:
            answer.update(ErrorCode=self.error_code, ErrorMessage=self.error_message)
        return answer


def check_private_namespace_vpc(backend: Any, response: Any) -> str | None:
    """A VPC that does not exist: Cloud Map accepts the request (it is asynchronous), and
    the operation ends in FAIL because Route 53 cannot associate its hosted zone with the
    VPC; no namespace is created. moto created one."""
    vpc = _params(response).get("Vpc") or ""
    ec2 = get_backend("ec2")[response.current_account][response.region]
    if vpc in ec2.vpcs:
        return None
    operation = FailedOperation(
        "CREATE_NAMESPACE",
        "CANNOT_CREATE_HOSTED_ZONE",
        # Route 53's answer, as Cloud Map reports it (quoted in aws/aws-app-mesh-examples#432).
        f"The VPC: {vpc} in region {response.region} that you provided is not authorized to "
        "make the association. (Service: AmazonRoute53; Status Code: 400; Error Code: "
        "InvalidVPCId)",
    )
    backend.operations[operation.id] = operation
    return json.dumps({"OperationId": operation.id})


#: Checks run before moto's ServiceDiscoveryResponse.<action> (see validation/__init__);
#: a check that returns a body answers the request in moto's place.
CLOUD_MAP_CHECKS = {
    "create_private_dns_namespace": check_private_namespace_vpc,
    "create_service": check_create_service,
    "update_service": check_update_service,
    "delete_service": check_delete_service,
    "delete_namespace": check_delete_namespace,
    "get_operation": check_get_operation,
}
