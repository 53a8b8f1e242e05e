"""More learner mistakes, answered as ECR, ECS, ELB and Cloud Map answer them
(notebooks/docs/parity.md).

Plain boto3 against the session's sandbox process: each refused call gets AWS's error code
and (where AWS words it) AWS's message, and creates or changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from labkit.names import LAB

pytestmark = pytest.mark.sandbox

CONTAINER = {
    "name": "web",
    "image": "busybox:latest",
    "memory": 128,
    "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def refused(call: Callable[..., Any], **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]


def revisions(ecs: Any, family: str) -> list[str]:
    return ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]


# -- ECR --------------------------------------------------------------------------------


def test_ecr_names_duplicates_and_missing_things(aws: Callable[[str], Any]) -> None:
    ecr = aws("ecr")
    for bad in ("MyRepo", "my repo"):
        assert refused(ecr.create_repository, repositoryName=bad)["Code"] == (
            "InvalidParameterException"
        )
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert "MyRepo" not in names and "my repo" not in names

    name = unique("sweep")
    ecr.create_repository(repositoryName=name)
    try:
        error = refused(ecr.create_repository, repositoryName=name)
        assert error["Code"] == "RepositoryAlreadyExistsException"
        assert error["Message"] == (
            f"The repository with name '{name}' already exists in the registry with id "
            "'123456789012'"
        )
        error = refused(ecr.get_repository_policy, repositoryName=name)
        assert error["Code"] == "RepositoryPolicyNotFoundException"
        missing = {"imageTag": "nope"}
        error = refused(ecr.describe_images, repositoryName=name, imageIds=[missing])
        assert error["Code"] == "ImageNotFoundException"
        reply = ecr.batch_get_image(repositoryName=name, imageIds=[missing])
        assert reply["images"] == []
        assert reply["failures"][0]["failureCode"] == "ImageNotFound"
        assert reply["failures"][0]["failureReason"] == "Requested image not found"
    finally:
        ecr.delete_repository(repositoryName=name)


def repository_policy(action: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": action}],
        }
    )


def test_a_policy_naming_an_action_ecr_does_not_have_is_refused(
    aws: Callable[[str], Any],
) -> None:
    ecr = aws("ecr")
    name = unique("sweep")
    ecr.create_repository(repositoryName=name)
    try:
        for action in ("ecr:Pull", "ecr:Fetch*"):
            error = refused(
                ecr.set_repository_policy, repositoryName=name, policyText=repository_policy(action)
            )
            assert (error["Code"], error["Message"]) == (
                "InvalidParameterException",
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
                "'Invalid repository policy provided'",
            )
        error = refused(ecr.get_repository_policy, repositoryName=name)
        assert error["Code"] == "RepositoryPolicyNotFoundException"  # nothing stored

        # A wildcard that matches ECR actions is stored, and a refusal leaves it as it was.
        kept = repository_policy("ecr:BatchGet*")
        ecr.set_repository_policy(repositoryName=name, policyText=kept)
        refused(
            ecr.set_repository_policy, repositoryName=name, policyText=repository_policy("ecr:Pull")
        )
        stored = ecr.get_repository_policy(repositoryName=name)["policyText"]
        assert json.loads(stored) == json.loads(kept)
    finally:
        ecr.delete_repository(repositoryName=name, force=True)


# -- ECS: RegisterTaskDefinition ---------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "request_", "message"),
    [
        ("family", {"family": "my family"}, "Family contains invalid characters."),
        (
            "container_name",
            {"containerDefinitions": [dict(CONTAINER, name="my web")]},
            "Container.name contains invalid characters.",
        ),
        (
            "duplicate_container",
            {"containerDefinitions": [CONTAINER, CONTAINER]},
            "Container names must be unique within a Task Definition.",
        ),
        (
            "reservation_over_task_memory",
            {
                "memory": "128",
                "containerDefinitions": [
                    {"name": "web", "image": "busybox", "memoryReservation": 256}
                ],
            },
            "The sum of all container 'memoryReservation' values cannot be greater than the "
            "value of the task 'memory'.",
        ),
        (
            "reservation_over_hard_limit",
            {"containerDefinitions": [dict(CONTAINER, memoryReservation=256)]},
            None,
        ),
        (
            "http_protocol",
            {
                "containerDefinitions": [
                    dict(CONTAINER, portMappings=[{"containerPort": 80, "protocol": "http"}])
                ]
            },
            None,
        ),
        (
            "no_memory",
            {"containerDefinitions": [{"name": "web", "image": "busybox"}]},
            "Invalid setting for container 'web'. At least one of 'memory' or "
            "'memoryReservation' must be specified.",
        ),
    ],
)
def test_task_definition_refused_as_ecs_refuses_it(
    aws: Callable[[str], Any], case: str, request_: dict[str, Any], message: str | None
) -> None:
    ecs = aws("ecs")
    family = unique("sweep")
    call = {"family": family, "containerDefinitions": [CONTAINER], **request_}
    error = refused(ecs.register_task_definition, **call)
    assert error["Code"] == "ClientException", case
    if message is not None:
        assert error["Message"] == message
    assert revisions(ecs, family) == [] and revisions(ecs, "my family") == []


def test_a_valid_task_definition_with_reservations_is_registered(
    aws: Callable[[str], Any],
) -> None:
    ecs = aws("ecs")
    family = unique("sweep")
    container = dict(CONTAINER, memory=256, memoryReservation=128)
    ecs.register_task_definition(family=family, memory="256", containerDefinitions=[container])
    assert len(revisions(ecs, family)) == 1


# -- ECS: services and tasks -------------------------------------------------------------


@pytest.fixture(scope="module")
def definitions(aws: Callable[[str], Any]) -> dict[str, str]:
    """An ACTIVE revision and a deregistered (INACTIVE) one."""
    ecs = aws("ecs")
    family = unique("sweep")
    active = ecs.register_task_definition(family=family, containerDefinitions=[CONTAINER])
    gone = ecs.register_task_definition(family=family, containerDefinitions=[CONTAINER])
    inactive = gone["taskDefinition"]["taskDefinitionArn"]
    ecs.deregister_task_definition(taskDefinition=inactive)
    return {"active": active["taskDefinition"]["taskDefinitionArn"], "inactive": inactive}


def service_names(ecs: Any) -> list[str]:
    return [a.split("/")[-1] for a in ecs.list_services(cluster=LAB.cluster)["serviceArns"]]


def test_create_service_refuses_a_negative_count_and_an_inactive_revision(
    aws: Callable[[str], Any], definitions: dict[str, str]
) -> None:
    ecs = aws("ecs")
    call = {"cluster": LAB.cluster, "launchType": "EC2"}
    name = unique("sweep")
    error = refused(
        ecs.create_service, serviceName=name, taskDefinition=definitions["active"],
        desiredCount=-1, **call,
    )  # fmt: skip
    assert error["Code"] == "InvalidParameterException"
    error = refused(
        ecs.create_service, serviceName=name, taskDefinition=definitions["inactive"],
        desiredCount=0, **call,
    )  # fmt: skip
    assert (error["Code"], error["Message"]) == ("ClientException", "TaskDefinition is inactive")
    error = refused(
        ecs.create_service, serviceName=f"my {name}", taskDefinition=definitions["active"],
        desiredCount=0, **call,
    )  # fmt: skip
    assert error["Code"] == "InvalidParameterException"
    assert name not in service_names(ecs) and f"my {name}" not in service_names(ecs)
    error = refused(
        ecs.create_service, serviceName=name, taskDefinition=definitions["active"],
        desiredCount=0, cluster="NoSuchCluster",
    )  # fmt: skip
    assert (error["Code"], error["Message"]) == ("ClusterNotFoundException", "Cluster not found.")


def test_update_and_delete_service_answer_as_ecs(
    aws: Callable[[str], Any], definitions: dict[str, str]
) -> None:
    ecs = aws("ecs")
    name = unique("sweep")
    ecs.create_service(
        cluster=LAB.cluster, serviceName=name, taskDefinition=definitions["active"],
        desiredCount=0, launchType="EC2",
    )  # fmt: skip
    update = {"cluster": LAB.cluster, "service": name}
    error = refused(ecs.update_service, desiredCount=-2, **update)
    assert error["Code"] == "InvalidParameterException"
    error = refused(ecs.update_service, taskDefinition=definitions["inactive"], **update)
    assert (error["Code"], error["Message"]) == ("ClientException", "TaskDefinition is inactive")
    error = refused(ecs.update_service, cluster=LAB.cluster, service=unique("nosuch"))
    assert (error["Code"], error["Message"]) == ("ServiceNotFoundException", "Service not found.")
    described = ecs.describe_services(**{"cluster": LAB.cluster, "services": [name]})
    service = described["services"][0]
    assert service["desiredCount"] == 0
    assert service["taskDefinition"] == definitions["active"]

    # Scaled above 0, it is deleted only with force.
    ecs.update_service(desiredCount=1, **update)
    error = refused(ecs.delete_service, **update)
    assert (error["Code"], error["Message"]) == (
        "InvalidParameterException",
        "The service cannot be stopped while it is scaled above 0.",
    )
    assert ecs.describe_services(cluster=LAB.cluster, services=[name])["services"][0]["status"] == (
        "ACTIVE"
    )
    ecs.delete_service(force=True, **update)
    # A deleted service cannot be updated (moto updated it, INACTIVE, to desiredCount 1).
    error = refused(ecs.update_service, desiredCount=1, **update)
    assert error["Code"] == "ServiceNotActiveException"
    service = ecs.describe_services(cluster=LAB.cluster, services=[name])["services"][0]
    assert (service["status"], service["desiredCount"]) == ("INACTIVE", 0)


def test_unknown_tasks_and_services_answer_as_ecs(aws: Callable[[str], Any]) -> None:
    ecs = aws("ecs")
    task_id = uuid.uuid4().hex
    # moto answered StopTask with an HTTP 500.
    error = refused(ecs.stop_task, cluster=LAB.cluster, task=task_id)
    assert (error["Code"], error["Message"]) == (
        "InvalidParameterException",
        "The referenced task was not found.",
    )
    reply = ecs.describe_tasks(cluster=LAB.cluster, tasks=[task_id])
    assert reply["tasks"] == []
    assert [(f["arn"].split("/")[-1], f["reason"]) for f in reply["failures"]] == [
        (task_id, "MISSING")
    ]
    name = unique("nosuch")
    error = refused(ecs.list_tasks, cluster=LAB.cluster, serviceName=name)
    assert (error["Code"], error["Message"]) == ("ServiceNotFoundException", "Service not found.")
    reply = ecs.describe_services(cluster=LAB.cluster, services=[name])
    assert reply["services"] == [] and reply["failures"][0]["reason"] == "MISSING"


# -- ELB ---------------------------------------------------------------------------------


def test_a_target_group_name_where_its_arn_belongs(aws: Callable[[str], Any]) -> None:
    elbv2 = aws("elbv2")
    error = refused(elbv2.describe_target_health, TargetGroupArn=LAB.target_group)
    assert (error["Code"], error["Message"]) == (
        "ValidationError",
        f"'{LAB.target_group}' is not a valid target group ARN.",
    )
    arn = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/nope/0123456789abcdef"
    error = refused(elbv2.describe_target_health, TargetGroupArn=arn)
    assert error["Code"] == "TargetGroupNotFound"


@pytest.fixture()
def target_group(aws: Callable[[str], Any]) -> Iterator[str]:
    """An instance target group of the learner's own, in the default VPC."""
    elbv2, ec2 = aws("elbv2"), aws("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    arn = elbv2.create_target_group(
        Name=unique("sweep"), Protocol="HTTP", Port=80, VpcId=vpc["VpcId"]
    )["TargetGroups"][0]["TargetGroupArn"]
    yield arn
    elbv2.delete_target_group(TargetGroupArn=arn)


def registered(elbv2: Any, arn: str) -> list[Any]:
    return elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]


def test_register_targets_refuses_a_port_out_of_range_and_unknown_instances(
    aws: Callable[[str], Any], target_group: str
) -> None:
    elbv2, ec2 = aws("elbv2"), aws("ec2")
    reservations = ec2.describe_instances()["Reservations"]
    instance = reservations[0]["Instances"][0]["InstanceId"]  # a container instance of the lab

    error = refused(
        elbv2.register_targets, TargetGroupArn=target_group,
        Targets=[{"Id": instance, "Port": 80}, {"Id": instance, "Port": 70000}],
    )  # fmt: skip
    assert (error["Code"], error["Message"]) == (
        "ValidationError",
        "1 validation error detected: Value '70000' at 'targets.2.member.port' failed to "
        "satisfy constraint: Member must have value less than or equal to 65535",
    )
    missing = "i-0123456789abcdef0"
    error = refused(
        elbv2.register_targets, TargetGroupArn=target_group,
        Targets=[{"Id": instance, "Port": 80}, {"Id": missing, "Port": 80}],
    )  # fmt: skip
    assert (error["Code"], error["Message"]) == (
        "InvalidTarget",
        f"The following instances do not exist: '{missing}'",
    )
    error = refused(
        elbv2.register_targets, TargetGroupArn=target_group, Targets=[{"Id": "10.0.0.7"}]
    )
    assert (error["Code"], error["Message"]) == (
        "ValidationError",
        "Instance ID '10.0.0.7' is not valid",
    )
    assert registered(elbv2, target_group) == []  # the valid target in each call was not kept

    # Below the minimum, botocore refuses before sending (as for a learner on AWS); sent
    # anyway, the sandbox answers as ELB does.
    with pytest.raises(ParamValidationError):
        elbv2.register_targets(TargetGroupArn=target_group, Targets=[{"Id": instance, "Port": 0}])
    unchecked = aws("elbv2", config=Config(parameter_validation=False))
    error = refused(
        unchecked.register_targets, TargetGroupArn=target_group,
        Targets=[{"Id": instance, "Port": 0}],
    )  # fmt: skip
    assert error["Message"] == (
        "1 validation error detected: Value '0' at 'targets.1.member.port' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1"
    )
    assert registered(elbv2, target_group) == []

    elbv2.register_targets(TargetGroupArn=target_group, Targets=[{"Id": instance, "Port": 65535}])
    assert [t["Target"] for t in registered(elbv2, target_group)] == [
        {"Id": instance, "Port": 65535}
    ]


# -- Cloud Map ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def namespace(aws: Callable[[str], Any]) -> dict[str, str]:
    sd, ec2 = aws("servicediscovery"), aws("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    name = unique("sweep") + ".local"
    operation = sd.create_private_dns_namespace(Name=name, Vpc=vpc["VpcId"])["OperationId"]
    found = sd.get_operation(OperationId=operation)["Operation"]
    return {"id": found["Targets"]["NAMESPACE"], "name": name}


SRV = {"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "SRV", "TTL": 10}]}


def discovery_names(sd: Any) -> list[str]:
    return [s["Name"] for s in sd.list_services()["Services"]]


def test_cloud_map_service_in_a_missing_namespace_or_with_route53_health_checks(
    aws: Callable[[str], Any], namespace: dict[str, str]
) -> None:
    sd = aws("servicediscovery")
    name = unique("sweep")
    error = refused(sd.create_service, Name=name, NamespaceId="ns-nosuchnamespace1", DnsConfig=SRV)
    assert error["Code"] == "NamespaceNotFound"
    route53_check = {"Type": "HTTP", "ResourcePath": "/"}
    error = refused(
        sd.create_service, Name=name, NamespaceId=namespace["id"], DnsConfig=SRV,
        HealthCheckConfig=route53_check,
    )  # fmt: skip
    assert error["Code"] == "InvalidInput"
    error = refused(
        sd.create_service, Name=name, NamespaceId=namespace["id"], DnsConfig=SRV,
        HealthCheckConfig=route53_check, HealthCheckCustomConfig={"FailureThreshold": 1},
    )  # fmt: skip
    assert error["Code"] == "InvalidInput"
    assert name not in discovery_names(sd)


def test_cloud_map_dns_records_outside_the_api_are_refused(
    aws: Callable[[str], Any], namespace: dict[str, str]
) -> None:
    sd = aws("servicediscovery")
    name = unique("sweep")
    mx = {"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "MX", "TTL": 10}]}
    error = refused(sd.create_service, Name=name, NamespaceId=namespace["id"], DnsConfig=mx)
    assert (error["Code"], error["Message"]) == (
        "InvalidInput",
        "1 validation error detected: Value 'MX' at 'dnsConfig.dnsRecords.1.member.type' "
        "failed to satisfy constraint: Member must satisfy enum value set: [SRV, A, AAAA, CNAME]",
    )
    long_ttl = {"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "SRV", "TTL": 2**31}]}
    error = refused(sd.create_service, Name=name, NamespaceId=namespace["id"], DnsConfig=long_ttl)
    assert (error["Code"], error["Message"]) == (
        "InvalidInput",
        "1 validation error detected: Value '2147483648' at 'dnsConfig.dnsRecords.1.member.tTL' "
        "failed to satisfy constraint: Member must have value less than or equal to 2147483647",
    )
    assert name not in discovery_names(sd)

    service = sd.create_service(Name=name, NamespaceId=namespace["id"], DnsConfig=SRV)["Service"]
    try:
        change = {"DnsConfig": {"DnsRecords": [{"Type": "SRV", "TTL": 2**31}]}}
        error = refused(sd.update_service, Id=service["Id"], Service=change)
        assert error["Code"] == "InvalidInput"
        assert "'service.dnsConfig.dnsRecords.1.member.tTL'" in error["Message"]
        records = sd.get_service(Id=service["Id"])["Service"]["DnsConfig"]["DnsRecords"]
        assert records == SRV["DnsRecords"]
    finally:
        sd.delete_service(Id=service["Id"])


def test_a_namespace_with_services_is_not_deleted(
    aws: Callable[[str], Any], namespace: dict[str, str]
) -> None:
    sd = aws("servicediscovery")
    service = sd.create_service(Name=unique("sweep"), NamespaceId=namespace["id"], DnsConfig=SRV)
    error = refused(sd.delete_namespace, Id=namespace["id"])
    assert error["Code"] == "ResourceInUse"
    assert sd.get_namespace(Id=namespace["id"])["Namespace"]["Name"] == namespace["name"]
    assert service["Service"]["Name"] in discovery_names(sd)

    sd.delete_service(Id=service["Service"]["Id"])
    error = refused(sd.delete_service, Id=service["Service"]["Id"])
    assert error["Code"] == "ServiceNotFound"
    operation = sd.delete_namespace(Id=namespace["id"])["OperationId"]
    assert sd.get_operation(OperationId=operation)["Operation"]["Status"] == "SUCCESS"
    error = refused(sd.get_operation, OperationId="abcdefghijklmnopqrstuvwxyz012345")
    assert (error["Code"], error["Message"]) == (
        "OperationNotFound",
        "No operation exists with the specified ID.",
    )


def test_a_private_namespace_in_a_vpc_that_does_not_exist_fails_its_operation(
    aws: Callable[[str], Any],
) -> None:
    sd = aws("servicediscovery")
    name = unique("sweep") + ".local"
    vpc = "vpc-0123456789abcdef0"
    operation_id = sd.create_private_dns_namespace(Name=name, Vpc=vpc)["OperationId"]
    operation = sd.get_operation(OperationId=operation_id)["Operation"]
    assert (operation["Status"], operation["ErrorCode"]) == ("FAIL", "CANNOT_CREATE_HOSTED_ZONE")
    assert operation["ErrorMessage"].startswith(
        f"The VPC: {vpc} in region us-west-2 that you provided is not authorized to make the "
        "association."
    )
    assert "NAMESPACE" not in operation.get("Targets", {})
    assert name not in [n["Name"] for n in sd.list_namespaces()["Namespaces"]]
