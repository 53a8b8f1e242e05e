"""labkit.backends.aws against moto: find-or-provision, the cost guard, age, teardown, IAM.

No test calls real AWS. Everything is read back through boto3 from moto's in-process
backends, so a test fails when the state is wrong, not only when a call raises. moto
cannot deploy the whole template (see MOTO_UNSUPPORTED in test_cfn_template.py), so
provisioning here uses that file's moto variant through ``provision(template_body=...)``.
The teardown is the one of notebook 06 (:mod:`labkit.teardown`), on a Lab in moto's account.
"""

from __future__ import annotations

import importlib.util
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from labkit import teardown as lab_teardown
from labkit.backends import aws as aa
from labkit.backends.aws.access import RESOURCES, _policy_allows
from labkit.backends.report import TeardownReport
from labkit.errors import BackendError, InputError, PrerequisiteError
from labkit.lab import Lab
from labkit.names import KIT_TAG_KEY, KIT_TAG_VALUE, LAB

REGION = "us-west-2"
TAG = {"Key": KIT_TAG_KEY, "Value": KIT_TAG_VALUE}
ECS_TAG = {"key": KIT_TAG_KEY, "value": KIT_TAG_VALUE}

# Load the sibling module by path: works whether or not tests/unit is a package.
_spec = importlib.util.spec_from_file_location(
    "labkit_test_cfn_template", Path(__file__).with_name("test_cfn_template.py")
)
assert _spec and _spec.loader
_cfn_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cfn_tests)
MOTO_TEMPLATE: str = _cfn_tests.moto_variant()


class CallLog:
    """Every AWS operation the session's clients send, in order: ("ecs", "DeleteService")."""

    def __init__(self, session: boto3.Session) -> None:
        self.calls: list[tuple[str, str]] = []
        # Clients copy the session's handlers when created: register before any client.
        session.events.register("before-call", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.endpoint_prefix, model.name))

    def mutating(self) -> list[tuple[str, str]]:
        reads = ("Describe", "List", "Get", "Discover")
        return [c for c in self.calls if not c[1].startswith(reads)]


def stacks(session: boto3.Session) -> list[dict[str, Any]]:
    summaries = session.client("cloudformation").list_stacks()["StackSummaries"]
    return [s for s in summaries if s["StackStatus"] != "DELETE_COMPLETE"]


def provision(session: boto3.Session, **kwargs: Any) -> aa.LabEnvironment:
    return aa.provision(session, template_body=MOTO_TEMPLATE, **kwargs)


def aws_lab() -> Lab:
    """The learner's Lab in moto's account (the ``session`` fixture's)."""
    return Lab.from_parameters(backend="aws", region=REGION)


def teardown(lab: Lab | None = None, **kwargs: Any) -> TeardownReport:
    return lab_teardown.teardown(lab or aws_lab(), **kwargs)


def provider_environment(session: boto3.Session) -> None:
    """What the lab provider pre-creates, by hand and without the kit's tag."""
    session.client("ecs").create_cluster(clusterName=LAB.cluster)
    iam = session.client("iam")
    for role, service in ((LAB.instance_role, "ec2"), (LAB.service_role, "ecs")):
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": f"{service}.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    ec2 = session.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    elbv2 = session.client("elbv2")
    elbv2.create_load_balancer(Name=LAB.load_balancer, Subnets=subnets, Type="network")
    elbv2.create_target_group(
        Name=LAB.target_group, Protocol="TCP", Port=80, VpcId=vpc["VpcId"], TargetType="instance"
    )


# --------------------------------------------------------------------------- cost
def test_estimate_counts_instances_volumes_nlb_and_public_addresses() -> None:
    est = aa.estimate_cost("us-west-2")
    # Two container instances by default (notebook 05 places tasks on both).
    expected = 2 * 0.0104 + 2 * 30 * 0.080 / 730 + 0.0225 + 4 * 0.005
    assert est.hourly_usd == pytest.approx(expected)
    assert est.instance_count == 2
    one = aa.estimate_cost("us-west-2", instance_count=1).hourly_usd
    assert one == pytest.approx(0.0104 + 30 * 0.080 / 730 + 0.0225 + 3 * 0.005)
    assert est.daily_usd == pytest.approx(expected * 24)
    assert est.region_in_table
    text = est.describe()
    assert "APPROXIMATE" in text and aa.PRICES_AS_OF in text and "/day" in text
    assert aa.estimate_cost("us-west-2", "t3.small", 2).hourly_usd > 2 * 0.0104 * 2


def test_estimate_for_an_unknown_region_is_an_upper_bound() -> None:
    est = aa.estimate_cost("me-south-1")
    assert not est.region_in_table
    assert "not in the kit's price table" in est.describe()
    known = [aa.estimate_cost(r).hourly_usd for r in ("us-east-1", "eu-central-1", "sa-east-1")]
    assert est.hourly_usd >= max(known)


@pytest.mark.parametrize("kwargs", [{"instance_type": "m5.24xlarge"}, {"instance_count": 5}])
def test_estimate_refuses_what_the_template_cannot_build(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        aa.estimate_cost(REGION, **kwargs)


# --------------------------------------------------------------------------- cost guard
def test_without_confirmation_nothing_is_created(session: boto3.Session) -> None:
    log = CallLog(session)
    with pytest.raises(PrerequisiteError) as info:
        provision(session)
    message = str(info.value)
    assert (
        "confirm_cost=True" in message
        and "per hour" in message
        and "Nothing was created" in message
    )
    assert stacks(session) == []
    assert session.client("ecs").list_clusters()["clusterArns"] == []
    assert log.mutating() == []  # not one create call went out


def test_a_truthy_string_is_not_a_confirmation(session: boto3.Session) -> None:
    with pytest.raises(InputError):
        provision(session, confirm_cost="yes")  # type: ignore[arg-type]
    assert stacks(session) == []


# --------------------------------------------------------------------------- find or provision
def test_empty_account_has_no_environment(session: boto3.Session) -> None:
    assert aa.find_environment(session) is None


def test_provision_creates_a_tagged_stack_and_finds_it(session: boto3.Session) -> None:
    env = provision(session, confirm_cost=True)
    assert env.created_by_kit and env.complete, env.describe()
    assert env.stack_name == aa.STACK_NAME
    assert set(env.resources) == {
        LAB.cluster,
        LAB.instance_role,
        LAB.service_role,
        LAB.load_balancer,
        LAB.target_group,
    }
    stack = session.client("cloudformation").describe_stacks(StackName=aa.STACK_NAME)["Stacks"][0]
    assert TAG in stack["Tags"]
    assert env.vpc_id == {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["VpcId"]
    assert {"ParameterKey": "CreateServiceRole", "ParameterValue": "true"} in stack["Parameters"]
    role = session.client("iam").get_role(RoleName=LAB.instance_role)["Role"]
    assert TAG in role["Tags"]
    assert "ready for the lab" in env.describe().lower()


def test_second_provision_reuses_the_stack(session: boto3.Session) -> None:
    first = provision(session, confirm_cost=True)
    log = CallLog(session)
    again = provision(session, confirm_cost=False)  # nothing new: no confirmation needed
    assert again.stack_id == first.stack_id
    assert ("cloudformation", "CreateStack") not in log.calls
    assert len(stacks(session)) == 1


def test_provider_environment_is_used_as_is_and_never_touched(session: boto3.Session) -> None:
    provider_environment(session)
    env = aa.find_environment(session)
    assert env is not None and env.complete and not env.created_by_kit
    assert provision(session) == env  # complete already: no cost, no stack
    assert stacks(session) == []

    report = teardown()
    assert any("not created by the kit" in s for s in report.skipped)
    assert (
        session.client("ecs").describe_clusters(clusters=[LAB.cluster])["clusters"][0]["status"]
        == "ACTIVE"
    )
    assert session.client("iam").get_role(RoleName=LAB.instance_role)["Role"]
    assert session.client("elbv2").describe_load_balancers(Names=[LAB.load_balancer])


def test_partial_foreign_environment_is_refused(session: boto3.Session) -> None:
    session.client("ecs").create_cluster(clusterName=LAB.cluster)
    with pytest.raises(PrerequisiteError) as info:
        provision(session, confirm_cost=True)
    assert LAB.cluster in str(info.value) and "did not create" in str(info.value)
    assert stacks(session) == []


def test_existing_ecs_service_role_is_reused_not_replaced(session: boto3.Session) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam = session.client("iam")
    iam.create_role(RoleName=LAB.service_role, AssumeRolePolicyDocument=json.dumps(trust))
    env = provision(session, confirm_cost=True)
    assert env.complete
    stack = session.client("cloudformation").describe_stacks(StackName=aa.STACK_NAME)["Stacks"][0]
    assert {"ParameterKey": "CreateServiceRole", "ParameterValue": "false"} in stack["Parameters"]
    teardown()
    # The learner's own role survives teardown (get_role raises if it was deleted).
    assert TAG not in iam.get_role(RoleName=LAB.service_role)["Role"].get("Tags", [])


# --------------------------------------------------------------------------- age and cost
def test_age_and_cost_so_far(session: boto3.Session) -> None:
    assert aa.environment_age_and_cost(session) is None
    env = provision(session, confirm_cost=True)
    assert env.created_at is not None
    age = aa.environment_age_and_cost(session, now=env.created_at + timedelta(hours=10))
    assert age is not None
    assert age.age == timedelta(hours=10)
    assert age.cost_so_far_usd == pytest.approx(10 * aa.estimate_cost(REGION).hourly_usd)
    assert "10 h 0 min" in age.describe() and "teardown" in age.describe()


# --------------------------------------------------------------------------- teardown
def learner_resources(session: boto3.Session, tagged: bool) -> dict[str, str]:
    """What the notebooks create in Tasks 1-4, tagged by the kit or not."""
    tags, ecs_tags = ([TAG], [ECS_TAG]) if tagged else ([], [])
    ecr = session.client("ecr")
    ecr.create_repository(repositoryName=LAB.repository, tags=tags)
    ecs = session.client("ecs")
    td = ecs.register_task_definition(
        family=LAB.task_family,
        containerDefinitions=[{"name": LAB.container_name, "image": "x", "memory": 128}],
        tags=ecs_tags,
    )["taskDefinition"]["taskDefinitionArn"]
    sd = session.client("servicediscovery")
    vpc = session.client("ec2").describe_vpcs()["Vpcs"][0]["VpcId"]
    sd.create_private_dns_namespace(Name=LAB.namespace, Vpc=vpc, Tags=tags)
    ns = sd.list_namespaces()["Namespaces"][0]
    sd_service = sd.create_service(
        Name="MYSERVICE42",
        NamespaceId=ns["Id"],
        DnsConfig={"DnsRecords": [{"Type": "A", "TTL": LAB.discovery_ttl_seconds}]},
        Tags=tags,
    )["Service"]
    sd.register_instance(
        ServiceId=sd_service["Id"],
        InstanceId="task-1",
        Attributes={"AWS_INSTANCE_IPV4": "10.0.0.9"},
    )
    ecs.create_service(
        cluster=LAB.cluster,
        serviceName="MYSERVICE42",
        taskDefinition=td,
        desiredCount=1,
        tags=ecs_tags,
        serviceRegistries=[{"registryArn": sd_service["Arn"]}],
    )
    return {"task_definition": td, "namespace": ns["Id"], "sd_service": sd_service["Id"]}


def test_teardown_deletes_in_dependency_order(session: boto3.Session) -> None:
    provision(session, confirm_cost=True)
    made = learner_resources(session, tagged=True)
    # moto's instances never run an ECS agent: register one as the agent would.
    instance_id = session.client("ec2").describe_instances()["Reservations"][0]["Instances"][0][
        "InstanceId"
    ]
    session.client("ecs").register_container_instance(
        cluster=LAB.cluster, instanceIdentityDocument=json.dumps({"instanceId": instance_id})
    )
    lab = aws_lab()
    log = CallLog(lab.target.session)
    report = teardown(lab)

    order = [
        ("ecs", "UpdateService"),
        ("ecs", "DeleteService"),
        ("servicediscovery", "DeregisterInstance"),
        ("servicediscovery", "DeleteService"),
        ("servicediscovery", "DeleteNamespace"),
        ("ecs", "DeregisterTaskDefinition"),
        ("api.ecr", "DeleteRepository"),
        ("ecs", "DeregisterContainerInstance"),
        ("cloudformation", "DeleteStack"),
    ]
    mutating = [c for c in log.mutating() if c in order]
    assert mutating == order, log.mutating()

    ecs = session.client("ecs")
    svc = ecs.describe_services(cluster=LAB.cluster, services=["MYSERVICE42"])["services"]
    assert svc, "DescribeServices no longer finds MYSERVICE42 (AWS keeps it, INACTIVE)"
    assert all(s["status"] == "INACTIVE" for s in svc)
    # Deregistered, then deleted: moto forgets it at once, AWS shows DELETE_IN_PROGRESS.
    assert ecs.list_task_definitions(familyPrefix=LAB.task_family)["taskDefinitionArns"] == []
    with pytest.raises(ClientError):
        ecs.describe_task_definition(taskDefinition=made["task_definition"])
    with pytest.raises(ClientError):
        session.client("ecr").describe_repositories(repositoryNames=[LAB.repository])
    assert session.client("servicediscovery").list_namespaces()["Namespaces"] == []
    assert stacks(session) == [] and report.stack_deleted
    with pytest.raises(ClientError):
        session.client("iam").get_role(RoleName=LAB.instance_role)
    assert report.errors == [], report.describe()

    # Leftovers are exactly what the tagging API still reports. moto leaves the Auto
    # Scaling group's instance and the internet gateway behind on DeleteStack (real
    # CloudFormation deletes both), which is what this check exists to surface.
    still = session.client("resourcegroupstaggingapi").get_resources(
        TagFilters=[{"Key": KIT_TAG_KEY, "Values": [KIT_TAG_VALUE]}]
    )["ResourceTagMappingList"]
    assert report.leftovers == sorted(m["ResourceARN"] for m in still)
    assert any(":instance/" in arn for arn in report.leftovers)
    assert not report.ok and "Still tagged" in report.describe()


def test_teardown_never_touches_untagged_learner_resources(
    session: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    provision(session, confirm_cost=True)
    made = learner_resources(session, tagged=False)
    # Same family, tagged: the kit's own revision goes, the untagged one stays.
    ecs = session.client("ecs")
    ours = ecs.register_task_definition(
        family=LAB.task_family,
        containerDefinitions=[{"name": LAB.container_name, "image": "x", "memory": 128}],
        tags=[ECS_TAG],
    )["taskDefinition"]["taskDefinitionArn"]
    # A family that merely starts with "ecs-demo" is not the lab's.
    other = ecs.register_task_definition(
        family=LAB.task_family + "2",
        containerDefinitions=[{"name": "x", "image": "x", "memory": 128}],
        tags=[ECS_TAG],
    )["taskDefinition"]["taskDefinitionArn"]

    # All of it predates the lab (untagged look-alikes made by hand before labkit ran).
    monkeypatch.setattr(lab_teardown, "CLOCK_SKEW", timedelta(0))
    lab = aws_lab()
    time.sleep(0.01)
    lab.identity  # noqa: B018 — the lab begins now
    report = teardown(lab, delete_environment=False)

    def status(arn: str) -> str:
        try:
            return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"]
        except ClientError:
            return "DELETED"

    assert status(made["task_definition"]) == "ACTIVE"
    assert status(other) == "ACTIVE"
    assert status(ours) != "ACTIVE"
    svc = ecs.describe_services(cluster=LAB.cluster, services=["MYSERVICE42"])["services"][0]
    assert (svc["status"], svc["desiredCount"]) == ("ACTIVE", 1)
    assert session.client("ecr").describe_repositories(repositoryNames=[LAB.repository])
    sd = session.client("servicediscovery")
    assert [n["Id"] for n in sd.list_namespaces()["Namespaces"]] == [made["namespace"]]
    assert sd.list_instances(ServiceId=made["sd_service"])["Instances"]
    assert len(stacks(session)) == 1  # delete_stack=False
    skipped = "\n".join(report.skipped)
    for what in ("ECS service MYSERVICE42", "ECR repository", "Cloud Map namespace", "ecs-demo:1"):
        assert what in skipped


def test_teardown_on_an_empty_account_is_a_no_op(session: boto3.Session) -> None:
    report = teardown()
    assert report.ok and report.deleted == [] and report.leftovers == []
    assert "Nothing tagged as the kit's is left." in report.describe()


# --------------------------------------------------------------------------- IAM
def denied(message: str, code: str = "AccessDeniedException") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "CreateService")


def test_access_denied_names_the_action_and_the_policy_file() -> None:
    err = aa.explain_access_denied(
        denied(
            "User: arn:aws:iam::111122223333:user/learner is not authorized to perform: "
            "ecs:CreateService on resource: arn:aws:ecs:us-west-2:111122223333:service/"
            "ECSCluster/MYSERVICE1 because no identity-based policy allows the "
            "ecs:CreateService action"
        )
    )
    assert isinstance(err, BackendError)
    assert "ecs:CreateService" in err.what
    assert aa.POLICY_PATH in err.fix and "includes ecs:CreateService" in err.why


def test_access_denied_for_an_action_outside_the_policy() -> None:
    err = aa.explain_access_denied(
        denied("not authorized to perform: s3:PutObject", code="AccessDenied")
    )
    assert err is not None and "s3:PutObject" in err.what and "includes" not in err.why


def test_other_errors_are_not_access_denied() -> None:
    assert aa.explain_access_denied(denied("boom", code="ThrottlingException")) is None
    assert aa.explain_access_denied(ValueError("x")) is None
    with pytest.raises(BackendError), aa.access_denied_explained("ecs:CreateService"):
        raise denied("", code="UnauthorizedOperation")


def test_learner_policy_is_valid_small_enough_and_accepted_by_iam(session: boto3.Session) -> None:
    text = (RESOURCES / "iam/learner-policy.json").read_text()
    # Managed policies are limited to 6,144 characters, whitespace excluded.
    assert len("".join(text.split())) <= 6144
    arn = session.client("iam").create_policy(PolicyName="labkit-learner", PolicyDocument=text)[
        "Policy"
    ]["Arn"]
    assert arn.endswith(":policy/labkit-learner")


def test_learner_policy_allows_every_call_the_kit_makes(session: boto3.Session) -> None:
    log = CallLog(session)
    lab = aws_lab()
    lab_log = CallLog(lab.target.session)
    provision(session, confirm_cost=True)
    learner_resources(session, tagged=True)
    aa.environment_age_and_cost(session)
    teardown(lab)
    log.calls += lab_log.calls
    prefixes = {"api.ecr": "ecr", "tagging": "tag", "elasticloadbalancing": "elasticloadbalancing"}
    # RegisterInstance stands in for ECS, which registers tasks with its own role.
    calls = [c for c in log.calls if c != ("servicediscovery", "RegisterInstance")]
    actions = {f"{prefixes.get(svc, svc)}:{op}" for svc, op in calls}
    missing = sorted(a for a in actions if not _policy_allows(a))
    assert missing == []
    assert "cloudformation:CreateStack" in actions and "tag:GetResources" in actions
