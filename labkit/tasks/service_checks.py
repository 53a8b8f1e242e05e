"""Task 4's checks of the ECS service (Exercise 4.3): what is wrong with it, and what
each of ECS's create_service refusals means (one error code, many causes).

Split from :mod:`labkit.tasks.task4`, which holds the exercises themselves.
"""

from __future__ import annotations

from typing import Any

from labkit import ecs
from labkit.display import balancing_name, short_arn
from labkit.lab import Lab, service_arns
from labkit.tasks.exercise import Verdict


def _answer_text(answer: Any) -> str:
    return str(answer)[:120]


def discovery_config_verdict(lab: Lab, service_id: str, where: str) -> Verdict | None:
    """SRV records with TTL 10 (step 42), else what is wrong; None when right."""
    details = lab.servicediscovery.get_service(Id=service_id)["Service"]
    records = (details.get("DnsConfig") or {}).get("DnsRecords") or []
    ttl = lab.names.discovery_ttl_seconds
    recreate = (
        "A Cloud Map service's records are fixed once made here: delete it "
        f"(sd.delete_service(Id={service_id!r})) and run the exercise cell again."
    )
    kinds = [r.get("Type") for r in records]
    if "SRV" not in kinds:
        return Verdict.wrong(
            f"{where} has {', '.join(map(str, kinds)) or 'no'} DNS records, not SRV",
            "The tasks use bridge networking: they share their instance's IP address and "
            "get their own host port, so a name must give address AND port: an SRV record "
            f"(A records are for awsvpc tasks with their own IP). {recreate}",
        )
    srv = next(r for r in records if r.get("Type") == "SRV")
    if srv.get("TTL") != ttl:
        return Verdict.wrong(
            f"{where}'s SRV record has TTL {srv.get('TTL')} s, not {ttl} s",
            f"Step 42 sets TTL: {ttl} seconds: how long resolvers may cache the answer, so "
            f"a replaced task is found again within {ttl} s. {recreate}",
        )
    return None


def _service_missing(lab: Lab) -> Verdict:
    names = (short_arn(arn) for arn in service_arns(lab))
    others = [name for name in names if name != lab.service_name]
    if others:
        return Verdict.wrong(
            f"service {lab.service_name} does not exist in {lab.names.cluster} "
            f"(found: {', '.join(sorted(others))})",
            f"Name the service exactly {lab.service_name} (lab.service_name, step 37): "
            "the kit and the later notebooks look for that name.",
        )
    return Verdict.wrong(
        f"service {lab.service_name} does not exist in {lab.names.cluster} yet",
        "Write the create_service call in Exercise 4.3's cell and run it (q3.hint(2) lists "
        "every value).",
    )


def _recreate(lab: Lab) -> str:
    return (
        "That cannot be changed on an existing service: delete it "
        f"(ecs.delete_service(cluster={lab.names.cluster!r}, service={lab.service_name!r}, "
        "force=True)), wait until it is gone, and run the cell again."
    )


def _service_verdict(lab: Lab, service: dict[str, Any]) -> Verdict | None:
    """What is wrong with the service's configuration (None when it is the wizard's)."""
    names = lab.names
    name = service["serviceName"]
    launch_type = service.get("launchType")
    if launch_type != "EC2":
        return Verdict.wrong(
            f"{name} has launch type {launch_type or 'none (a capacity provider)'}, not EC2",
            "Step 37 chooses the EC2 launch type: the tasks run on the cluster's container "
            f"instances. {_recreate(lab)}",
        )
    balancers = service.get("loadBalancers") or []
    if not balancers:
        return Verdict.wrong(
            f"{name} has no load balancer",
            "Steps 39–40 add it to the load balancer: loadBalancers=[{'targetGroupArn': "
            "<myTargetgroup's ARN>, 'containerName': 'ecs-sample', 'containerPort': 80}]. "
            + _recreate(lab),
        )
    group_arn = ecs.target_group(lab)["TargetGroupArn"]
    balancer = balancers[0]
    if balancer.get("targetGroupArn") != group_arn:
        return Verdict.wrong(
            f"{name} sends traffic from target group "
            f"{balancing_name(balancer.get('targetGroupArn'))}, "
            f"not {names.target_group}",
            f"Look up {names.target_group}'s ARN with "
            f"elbv2.describe_target_groups(Names=[{names.target_group!r}]) (step 52). "
            + _recreate(lab),
        )
    if (balancer.get("containerName"), balancer.get("containerPort")) != (
        names.container_name,
        80,
    ):
        return Verdict.wrong(
            f"{name}'s load balancer sends to container {balancer.get('containerName')!r} "
            f"port {balancer.get('containerPort')}, not {names.container_name!r} port 80",
            f"The container is {names.container_name!r} (the task definition's name) and it "
            f"listens on port 80 (its portMappings). {_recreate(lab)}",
        )
    registries = service.get("serviceRegistries") or []
    if not registries:
        return Verdict.wrong(
            f"{name} has no service registry (service discovery is off)",
            "Step 41 enables service discovery: serviceRegistries=[{'registryArn': <your "
            "discovery service's Arn>, 'containerName': 'ecs-sample', 'containerPort': 80}]. "
            + _recreate(lab),
        )
    registry_id = short_arn(registries[0].get("registryArn"))
    try:
        wrong = discovery_config_verdict(lab, registry_id, "its discovery service")
    except lab.servicediscovery.exceptions.ServiceNotFound:
        wrong = Verdict.wrong(
            f"{name}'s service registry {registry_id} does not exist",
            "Use the Arn of the discovery service of Exercise 4.2. " + _recreate(lab),
        )
    if wrong is not None:
        return wrong
    # Step 37 asks for 1; notebook 05 scales it later, so any count of 1 or more is fine.
    if (service.get("desiredCount") or 0) < 1:
        return Verdict.wrong(
            f"{name} asks for {service.get('desiredCount')} tasks, not 1",
            "Step 37: Number of tasks 1. Change it in place: "
            f"ecs.update_service(cluster={names.cluster!r}, service={name!r}, desiredCount=1).",
        )
    role = short_arn(service.get("roleArn") or "")
    if role and role != names.service_linked_role:
        # Only an endpoint that does not check (moto) gets here: ECS refuses the call.
        return Verdict.wrong(
            f"{name} uses the service role {role}, which ECS refuses for a service with "
            "service discovery",
            f"Leave role out: ECS then acts as its service-linked role "
            f"{names.service_linked_role} (step 39's {names.service_role} is what the console "
            "of the guide's day chose). " + _recreate(lab),
        )
    return None


def service_running(lab: Lab) -> Verdict:
    service = ecs.find_service(lab)
    if service is None:
        return _service_missing(lab)
    wrong = _service_verdict(lab, service)
    if wrong is not None:
        return wrong
    if service["runningCount"] < 1:
        return Verdict.wrong(
            f"{service['serviceName']} runs no task yet ({service['pendingCount']} pending)"
            + ecs.last_stop_note(lab),
            ecs.stopped_reason_hint(lab)
            or "Wait for a steady state (the wait cell; minutes on AWS, seconds here), then "
            "check again. The Events view says what ECS is doing.",
        )
    return Verdict.ok(_service_summary(lab, service))


def service_answer(lab: Lab, answer: Any) -> Verdict:
    service = ecs.require_service(lab)
    arn = answer.get("serviceArn") if isinstance(answer, dict) else answer
    if arn == service["serviceArn"]:
        return Verdict.ok(_service_summary(lab, service))
    return Verdict.wrong(
        f"service_arn is {_answer_text(arn)!r}, not your service's ARN",
        "create_service answers {'service': {...}}: keep response['service']['serviceArn'].",
    )


def _service_summary(lab: Lab, service: dict[str, Any]) -> str:
    return (
        f"{service['serviceName']}: EC2, {short_arn(service['taskDefinition'])}, "
        f"{service['runningCount']}/{service['desiredCount']} running, behind "
        f"{lab.names.target_group} (ecs-sample:80), discovery on, as ECS's service-linked role"
    )


#: ECS's InvalidParameterException messages for create_service, each with its cause.
CREATE_SERVICE_CAUSES: tuple[tuple[str, str], ...] = (
    (
        "not idempotent",
        "A service of this name is already ACTIVE in the cluster (an earlier run of this "
        "cell). ECS never makes a second one, nor changes the existing one here (that is "
        "update_service). Nothing changed: the check looks at the service that exists.",
    ),
    (
        "service linked role",
        "Leave role out: a service with service discovery must use ECS's service-linked "
        "role AWSServiceRoleForECS (step 39's ecsServiceRole was the console of its day).",
    ),
    (
        "IAM roles are only valid",
        "A role is only for a service with a load balancer; here leave role out altogether.",
    ),
    (
        "Container Name can not be blank",
        "Each loadBalancers and serviceRegistries entry names the container: "
        "containerName='ecs-sample' (the task definition's).",
    ),
    (
        "does not exist in the task definition",
        "containerName must be the task definition's container: 'ecs-sample' (step 31).",
    ),
    (
        "did not have a container port",
        "containerPort must be one the container maps: 80 (its portMappings, step 31).",
    ),
    (
        "does not have an associated load balancer",
        "That target group has no load balancer: use myTargetgroup's ARN (step 52).",
    ),
    (
        "target group",
        "The target group ARN is not right: look it up by name, "
        "elbv2.describe_target_groups(Names=['myTargetgroup']).",
    ),
    (
        "'containerName' and 'containerPort' must be specified",
        "A bridge task's registry needs the container and port the SRV record points at: "
        "containerName 'ecs-sample', containerPort 80 in serviceRegistries too.",
    ),
    (
        "SRV",
        "Bridge tasks share their instance's IP: the discovery service needs SRV records "
        "(address and port). A records cannot be changed to SRV: delete that discovery "
        "service and make it again (Exercise 4.2).",
    ),
    (
        "does not support launch_type",
        "The task definition is EC2-only (bridge networking, step 28): launchType='EC2'.",
    ),
)


def explain_create_service(exc: BaseException) -> str | None:
    """The cause of one of ECS's create_service refusals, from its message."""
    error = getattr(exc, "response", {}).get("Error", {})
    if error.get("Code") != "InvalidParameterException":
        return None
    lowered = str(error.get("Message", "")).lower()
    for needle, meaning in CREATE_SERVICE_CAUSES:
        if needle.lower() in lowered:
            return meaning
    return "ECS refused a value; its message names the parameter (compare with q3.hint(2))."
