"""The lab-environment CloudFormation template: cfn-lint, its shape, and a deploy on moto.

No test here calls real AWS: moto's in-process ``mock_aws`` stands in for CloudFormation,
EC2, ECS, IAM, ELBv2, Auto Scaling and SSM.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import boto3
from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode_str

from labkit.backends import aws as aws_account
from labkit.names import KIT_TAG_KEY, KIT_TAG_VALUE, LAB

REGION = "us-west-2"
ECS_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"

# What moto 5.2.5 cannot do with this template, and what the moto variant changes:
# - Listener: moto's CloudFormation creates every AWS::ElasticLoadBalancingV2::LoadBalancer
#   as type "application" (it ignores Type: network), then rejects the TCP listener.
#   The variant drops the listener; its properties are checked statically below.
# - PublicRouteTable, DefaultRoute, SubnetA/BRouteTable: moto cannot delete an
#   AWS::EC2::RouteTable through CloudFormation, so DeleteStack fails on the VPC
#   ("has dependencies"). The variant drops them (and the ASG's DependsOn on the route).
# Created but partly ignored by moto (checked statically instead): Tags on the ECS
# cluster, load balancer and target group; TargetGroupAttributes; the managed policy
# attached to ecsServiceRole (moto does not load AWS managed policies by default).
# Left behind by moto on DeleteStack: the ASG's EC2 instance and the internet gateway.
MOTO_UNSUPPORTED = (
    "Listener",
    "PublicRouteTable",
    "DefaultRoute",
    "SubnetARouteTable",
    "SubnetBRouteTable",
)


def template() -> dict[str, Any]:
    """The packaged template as plain data (intrinsics such as !Ref kept as dicts)."""
    data, matches = decode_str(aws_account.load_template())
    assert not matches, matches
    return json.loads(json.dumps(data, default=str))


def moto_variant() -> str:
    """The template minus what moto cannot create or delete (see MOTO_UNSUPPORTED)."""
    data = template()
    for name in MOTO_UNSUPPORTED:
        del data["Resources"][name]
    data["Resources"]["AutoScalingGroup"]["DependsOn"] = ["Cluster"]
    data["Outputs"] = {
        k: v
        for k, v in data["Outputs"].items()
        if not any(name in json.dumps(v) for name in MOTO_UNSUPPORTED)
    }
    return json.dumps(data)


def tag_value(tags: list[dict[str, Any]] | None) -> Any:
    return {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags or []}.get(
        KIT_TAG_KEY
    )


# --------------------------------------------------------------------------- static
def test_cfn_lint_reports_nothing() -> None:
    matches = lint(aws_account.load_template(), config=ManualArgs(regions=[REGION]))
    assert [str(m) for m in matches] == []


def test_lab_names_and_load_balancing_match_the_lab() -> None:
    res = template()["Resources"]
    assert res["Cluster"]["Properties"]["ClusterName"] == LAB.cluster
    assert res["Ec2instanceRole"]["Properties"]["RoleName"] == LAB.instance_role
    assert res["EcsServiceRole"]["Properties"]["RoleName"] == LAB.service_role
    lb = res["Myloadbalancer"]["Properties"]
    assert (lb["Name"], lb["Type"], lb["Scheme"]) == (
        LAB.load_balancer,
        "network",
        "internet-facing",
    )
    assert len(lb["Subnets"]) == 2
    tg = res["MyTargetgroup"]["Properties"]
    assert (tg["Name"], tg["Protocol"], tg["Port"], tg["TargetType"]) == (
        LAB.target_group,
        "TCP",
        80,
        "instance",
    )
    listener = res["Listener"]["Properties"]
    assert (listener["Protocol"], listener["Port"]) == ("TCP", 80)
    assert listener["DefaultActions"] == [
        {"Type": "forward", "TargetGroupArn": {"Ref": "MyTargetgroup"}}
    ]


def test_subnets_are_public_and_in_two_availability_zones() -> None:
    res = template()["Resources"]
    zones = [
        res[s]["Properties"]["AvailabilityZone"]["Fn::Select"][0]
        for s in ("PublicSubnetA", "PublicSubnetB")
    ]
    assert sorted(zones) == [0, 1]
    assert all(
        res[s]["Properties"]["MapPublicIpOnLaunch"] for s in ("PublicSubnetA", "PublicSubnetB")
    )


def test_ami_comes_from_the_public_ssm_parameter() -> None:
    param = template()["Parameters"]["EcsAmiId"]
    assert param["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert param["Default"] == ECS_AMI_PARAMETER


def test_instance_types_match_the_price_table() -> None:
    # The cost guard must be able to price every size the template accepts.
    allowed = template()["Parameters"]["InstanceType"]["AllowedValues"]
    for instance_type in allowed:
        assert aws_account.estimate_cost(REGION, instance_type).hourly_usd > 0
    assert template()["Parameters"]["InstanceType"]["Default"] == "t3.micro"
    # As many container instances as the sandbox and the notebooks have, and the estimate
    # prices the template's default count.
    count = template()["Parameters"]["DesiredInstances"]["Default"]
    assert count == 2 == aws_account.estimate_cost(REGION).instance_count


def test_instance_role_has_no_repository_permissions() -> None:
    role = template()["Resources"]["Ec2instanceRole"]["Properties"]
    assert "ManagedPolicyArns" not in role  # the ECS managed policy grants ECR pulls
    actions = [
        action
        for policy in role["Policies"]
        for st in policy["PolicyDocument"]["Statement"]
        for action in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    ]
    assert [a for a in actions if a.startswith("ecr:")] == ["ecr:GetAuthorizationToken"]
    assert not [a for a in actions if a in ("*", "ecr:*")]


def test_every_taggable_resource_carries_the_kit_tag() -> None:
    data = template()
    assert data["Parameters"]["KitTagValue"]["Default"] == KIT_TAG_VALUE
    untaggable = {
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::Route",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::IAM::InstanceProfile",
        "AWS::ElasticLoadBalancingV2::Listener",
        "AWS::EC2::LaunchTemplate",  # tags go to its instances and volumes instead
    }
    for name, res in data["Resources"].items():
        if res["Type"] in untaggable:
            continue
        assert tag_value(res["Properties"].get("Tags")) == {"Ref": "KitTagValue"}, name
    specs = data["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"][
        "TagSpecifications"
    ]
    assert {s["ResourceType"] for s in specs} == {"instance", "volume"}
    assert all(tag_value(s["Tags"]) == {"Ref": "KitTagValue"} for s in specs)


def test_auto_scaling_group_is_deleted_before_the_cluster() -> None:
    # ECS refuses to delete a cluster with registered container instances.
    assert "Cluster" in template()["Resources"]["AutoScalingGroup"]["DependsOn"]


# --------------------------------------------------------------------------- moto deploy
def test_template_deploys_on_moto(session: boto3.Session) -> None:
    cfn = session.client("cloudformation")
    cfn.create_stack(
        StackName="labkit-template-test",
        TemplateBody=moto_variant(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName="labkit-template-test")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    cluster = session.client("ecs").describe_clusters(clusters=[LAB.cluster])["clusters"][0]
    assert cluster["status"] == "ACTIVE"
    assert outputs["ClusterArn"] == cluster["clusterArn"]

    iam = session.client("iam")
    role = iam.get_role(RoleName=LAB.instance_role)["Role"]
    assert tag_value(role.get("Tags")) == KIT_TAG_VALUE
    assert iam.list_attached_role_policies(RoleName=LAB.instance_role)["AttachedPolicies"] == []
    inline = iam.get_role_policy(
        RoleName=LAB.instance_role, PolicyName="ecs-agent-without-repository-access"
    )["PolicyDocument"]
    if isinstance(inline, str):  # moto 5.2.5 returns the Python repr of the document
        inline = ast.literal_eval(inline)
    ecr_actions = [
        a
        for st in inline["Statement"]
        for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
        if a.startswith("ecr:")
    ]
    assert ecr_actions == ["ecr:GetAuthorizationToken"]
    profile = iam.get_instance_profile(InstanceProfileName=LAB.instance_role)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [LAB.instance_role]
    service_role = iam.get_role(RoleName=LAB.service_role)["Role"]
    trust = service_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
    assert trust == "ecs.amazonaws.com"

    elbv2 = session.client("elbv2")
    lb = elbv2.describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing"
    assert lb["LoadBalancerArn"] == outputs["LoadBalancerArn"]
    assert len(lb["AvailabilityZones"]) == 2
    tg = elbv2.describe_target_groups(Names=[LAB.target_group])["TargetGroups"][0]
    assert (tg["Protocol"], tg["Port"], tg["TargetType"]) == ("TCP", 80, "instance")
    assert tg["VpcId"] == outputs["VpcId"]

    ec2 = session.client("ec2")
    subnets = ec2.describe_subnets(SubnetIds=outputs["SubnetIds"].split(","))["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert all(tag_value(s["Tags"]) == KIT_TAG_VALUE for s in subnets)

    # The Auto Scaling group launched two container instances (as notebook 05 says) from
    # the AMI that the public SSM parameter names (moto ships those), with the kit tag.
    asg = session.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[outputs["AutoScalingGroupName"]]
    )["AutoScalingGroups"][0]
    assert asg["DesiredCapacity"] == 2 and len(asg["Instances"]) == 2
    instance = ec2.describe_instances(InstanceIds=[asg["Instances"][0]["InstanceId"]])[
        "Reservations"
    ][0]["Instances"][0]
    ami = session.client("ssm").get_parameter(Name=ECS_AMI_PARAMETER)["Parameter"]["Value"]
    assert instance["ImageId"] == ami
    assert instance["InstanceType"] == "t3.micro"
    assert tag_value(instance["Tags"]) == KIT_TAG_VALUE
