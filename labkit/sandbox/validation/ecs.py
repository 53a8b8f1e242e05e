"""What ECS checks before it creates a service or registers a task definition.

moto accepts these calls as long as they parse; ECS refuses the ones below, with these
codes and (where ECS's wording is known) these messages. notebooks/docs/parity.md lists each rule,
where its message comes from, and the test that shows it. The checks read moto's objects
only: they raise before anything is created.
"""

from __future__ import annotations

import re
from typing import Any

from moto.ecs.exceptions import EcsClientException, ECSException, InvalidParameterException

#: What ECS answers to ``role`` where the service needs its service-linked role.
SLR_REQUIRED = "You cannot specify an IAM role for services that require a service linked role."
ROLE_WITHOUT_LOAD_BALANCER = (
    "IAM roles are only valid for services configured to use load balancers."
)
#: Network modes whose Cloud Map registrations must name a container and port (and use SRV).
_PORT_MODES = ("bridge", "host")

#: Fargate's task sizes: CPU units -> the memory (MiB) each allows.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

#: Family and container names: up to 255 letters, numbers, hyphens and underscores.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
#: What ECS answers for a task definition revision that was deregistered.
TASK_DEFINITION_INACTIVE = "TaskDefinition is inactive"
_ECR_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")
_VCPU = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*vcpu\s*$", re.IGNORECASE)
_GB = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*gb\s*$", re.IGNORECASE)


def check_create_service(
    params: dict[str, Any],
    task_definition: Any | None,
    discovery: Any | None,
    elbv2: Any | None = None,
) -> None:
    """Raise ECS's error for a CreateService that ECS refuses; return when it accepts it.

    ``params`` is the request (camelCase, as sent); ``task_definition`` the moto
    TaskDefinition it names (None when it names none); ``discovery`` and ``elbv2`` moto's
    Cloud Map and ELB backends, to read the registries and target groups it names.
    """
    role = params.get("role")
    balancers = params.get("loadBalancers") or []
    registries = params.get("serviceRegistries") or []
    mode = getattr(task_definition, "network_mode", None)
    launch_type = params.get("launchType")
    name = params.get("serviceName")
    if name and not _NAME.match(name):
        # The API reference's constraint; ECS's own wording is not documented.
        raise InvalidParameterException(
            f"Invalid service name '{name}': up to 255 letters (uppercase and lowercase), "
            "numbers, underscores, and hyphens are allowed."
        )
    check_desired_count(params.get("desiredCount"))
    if task_definition is not None and task_definition.status == "INACTIVE":
        raise EcsClientException(TASK_DEFINITION_INACTIVE)
    if task_definition is not None and launch_type:
        if launch_type not in (task_definition.compatibilities or ["EC2"]):
            raise InvalidParameterException(
                f"Task definition does not support launch_type {launch_type}."
            )
    if role:
        # Service discovery, awsvpc and several target groups need the service-linked role.
        if registries or mode == "awsvpc" or len(balancers) > 1:
            raise InvalidParameterException(SLR_REQUIRED)
        if not balancers:
            raise InvalidParameterException(ROLE_WITHOUT_LOAD_BALANCER)
    if elbv2 is not None:
        for balancer in balancers:
            if balancer.get("targetGroupArn"):  # a Classic Load Balancer is named instead
                _check_target_group(balancer["targetGroupArn"], elbv2)
    if task_definition is None:
        return
    for balancer in balancers:
        _check_container_port(task_definition, balancer.get("containerName"), balancer)
    for registry in registries:
        if mode in _PORT_MODES:
            if not registry.get("containerName") or registry.get("containerPort") is None:
                raise InvalidParameterException(
                    f"When specifying '{mode}' for networkMode, values for 'containerName' and "
                    "'containerPort' must be specified from the task definition."
                )
            _check_container_port(task_definition, registry["containerName"], registry)
            _check_srv_records(registry.get("registryArn") or "", mode, discovery)


def check_desired_count(count: Any) -> None:
    """ECS refuses a negative desiredCount (its wording is not documented: ours)."""
    if count is not None and int(count) < 0:
        raise InvalidParameterException(
            f"desiredCount must be 0 or more (it was {count}): it is how many tasks "
            "the service keeps running."
        )


def check_update_service(service: Any | None, params: dict[str, Any], task_definition: Any) -> None:
    """Raise ECS's error for an UpdateService that ECS refuses (a missing service, cluster
    or task definition is moto's to refuse). ``service`` is the moto service, if any."""
    if service is not None and service.status != "ACTIVE":
        # ECS's code; its wording is not documented (see notebooks/docs/parity.md).
        raise ECSException(
            "ServiceNotActiveException",
            f"Service {service.name} was not ACTIVE (it is {service.status}): a deleted service "
            "cannot be updated. Create it again with create_service.",
        )
    check_desired_count(params.get("desiredCount"))
    if task_definition is not None and task_definition.status == "INACTIVE":
        raise EcsClientException(TASK_DEFINITION_INACTIVE)


def _check_container_port(task_definition: Any, name: str | None, target: dict[str, Any]) -> None:
    if not name:
        raise InvalidParameterException("Container Name can not be blank.")
    definitions = {c.get("name"): c for c in task_definition.container_definitions}
    container = definitions.get(name)
    if container is None:
        raise InvalidParameterException(
            f"The container {name} does not exist in the task definition."
        )
    port = target.get("containerPort")
    if port is None:
        return
    mapped = {int(m.get("containerPort") or 0) for m in container.get("portMappings") or []}
    if int(port) not in mapped:
        raise InvalidParameterException(
            f"The container {name} did not have a container port {port} defined."
        )


def _check_target_group(arn: str, elbv2: Any) -> None:
    group = elbv2.target_groups.get(arn)
    if group is None:
        # ECS's wording for an unknown target group is not documented
        # (see notebooks/docs/parity.md).
        raise InvalidParameterException(
            f"The target group with targetGroupArn {arn} does not exist."
        )
    if not group.load_balancer_arns:
        raise InvalidParameterException(
            f"The target group with targetGroupArn {arn} does not have an associated load balancer."
        )


def _check_srv_records(registry_arn: str, mode: str, discovery: Any | None) -> None:
    service = None
    if discovery is not None:
        service = discovery.services.get(registry_arn.rsplit("/", 1)[-1])
    if service is None:
        return  # ECS's wording for an unknown registry is not known; moto decides
    records = [r.get("Type") for r in (service.dns_config or {}).get("DnsRecords") or []]
    if records and "SRV" not in records:
        # ECS's own wording is not documented (see notebooks/docs/parity.md): this names the fix.
        raise InvalidParameterException(
            f"The service registry {registry_arn} has {'/'.join(records)} records only; a task "
            f"definition with networkMode '{mode}' needs a Cloud Map service with SRV records "
            "(they carry the port as well as the address)."
        )


def check_register_task_definition(params: dict[str, Any]) -> None:
    """Raise ECS's ClientException for a task definition ECS refuses (any launch type:
    names, memory, port protocols), or Fargate cannot run."""
    _check_names_and_memory(params)
    if "FARGATE" not in (params.get("requiresCompatibilities") or []):
        return
    if (params.get("networkMode") or "bridge") != "awsvpc":
        raise EcsClientException("Fargate only supports network mode \u2018awsvpc\u2019.")
    for field in ("cpu", "memory"):
        if not params.get(field):
            raise EcsClientException(
                f"Fargate requires that '{field}' be defined at the task level."
            )
    cpu, memory = _cpu_units(params["cpu"]), _memory_mib(params["memory"])
    if cpu not in FARGATE_SIZES:
        raise EcsClientException(
            "Invalid 'cpu' setting for task. For more information, see the Troubleshooting "
            "section of the Amazon ECS Developer Guide."
        )
    if memory not in FARGATE_SIZES[cpu]:
        raise EcsClientException("No Fargate configuration exists for given values.")
    images = [c.get("image") or "" for c in params.get("containerDefinitions") or []]
    if not params.get("executionRoleArn") and any(is_ecr_image(i) for i in images):
        raise EcsClientException(
            "Fargate requires task definition to have execution role ARN to support ECR images."
        )


def is_ecr_image(image: str) -> bool:
    """An image in an ECR private registry (the sandbox serves those hostnames)."""
    return bool(_ECR_IMAGE.match(image))


def _cpu_units(value: Any) -> int | None:
    text = str(value)
    match = _VCPU.match(text)
    if match:
        return int(float(match.group(1)) * 1024)
    return int(text) if text.strip().isdigit() else None


def _memory_mib(value: Any) -> int | None:
    text = str(value)
    match = _GB.match(text)
    if match:
        return int(float(match.group(1)) * 1024)
    text = text.lower().removesuffix("mib").removesuffix("mb").strip()
    return int(text) if text.isdigit() else None


def _check_names_and_memory(params: dict[str, Any]) -> None:
    family = params.get("family")
    if family and not _NAME.match(family):
        raise EcsClientException("Family contains invalid characters.")
    containers = params.get("containerDefinitions") or []
    names: set[str] = set()
    reserved = 0
    for container in containers:
        name = container.get("name")
        if name and not _NAME.match(name):
            raise EcsClientException("Container.name contains invalid characters.")
        if name in names:
            raise EcsClientException("Container names must be unique within a Task Definition.")
        names.add(name)
        memory, reservation = container.get("memory"), container.get("memoryReservation")
        if memory is not None and reservation is not None and int(reservation) > int(memory):
            # ECS's rule (the ContainerDefinition reference); the wording is ours.
            raise EcsClientException(
                f"Invalid setting for container '{name}'. 'memoryReservation' ({reservation} "
                f"MiB) must be less than or equal to 'memory' ({memory} MiB), its hard limit."
            )
        reserved += int(reservation if reservation is not None else memory or 0)
        for mapping in container.get("portMappings") or []:
            protocol = mapping.get("protocol")
            if protocol is not None and protocol not in ("tcp", "udp"):
                # The API's enum is tcp | udp; the wording is ours (see notebooks/docs/parity.md).
                raise EcsClientException(
                    f"Invalid protocol '{protocol}' in a portMapping of container '{name}': "
                    "use 'tcp' or 'udp' (HTTP is a protocol of the load balancer's listener)."
                )
    task_memory = _memory_mib(params["memory"]) if params.get("memory") else None
    if task_memory is not None and reserved > task_memory:
        raise EcsClientException(
            "The sum of all container 'memoryReservation' values cannot be greater than "
            "the value of the task 'memory'."
        )
