"""The lab's pre-provisioned environment, created in the sandbox at ``up``.

In the lab these exist before the learner starts: cluster ``ECSCluster`` with EC2
container instances, roles ``Ec2instanceRole`` and ``ecsServiceRole``, the default VPC,
the network load balancer ``Myloadbalancer`` with target group ``myTargetgroup`` and a
TCP 80 listener. Nothing from the learner's tasks is created here.
"""

from __future__ import annotations

import json
from typing import Any

from labkit.names import LAB
from labkit.names import role_trust_policy as _trust_policy

#: Container instances in ECSCluster: two, so two tasks that each want host port 80 fit.
CONTAINER_INSTANCE_COUNT = 2


# The instance role may log in to ECR but holds no permission on any repository: the
# learner's repository policy statement (Task 1) is what lets its pulls through.
_INSTANCE_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecs:RegisterContainerInstance",
                "ecs:DeregisterContainerInstance",
                "ecs:DiscoverPollEndpoint",
                "ecs:Poll",
                "ecs:StartTelemetrySession",
                "ecs:Submit*",
            ],
            "Resource": "*",
        }
    ],
}


def provision(clients: dict[str, Any]) -> dict[str, str]:
    """Create the lab environment through the API; returns the ARNs and ids it made.

    ``clients`` maps service names (iam, ec2, ecs, elbv2) to boto3 clients pointed at
    the sandbox. Idempotent enough for a fresh moto: it is only called once per process.
    """
    iam, ec2, ecs, elbv2 = clients["iam"], clients["ec2"], clients["ecs"], clients["elbv2"]

    instance_role = iam.create_role(
        RoleName=LAB.instance_role, AssumeRolePolicyDocument=_trust_policy("ec2.amazonaws.com")
    )["Role"]
    iam.put_role_policy(
        RoleName=LAB.instance_role,
        PolicyName="ecs-container-instance",
        PolicyDocument=json.dumps(_INSTANCE_ROLE_POLICY),
    )
    iam.create_instance_profile(InstanceProfileName=LAB.instance_role)
    iam.add_role_to_instance_profile(
        InstanceProfileName=LAB.instance_role, RoleName=LAB.instance_role
    )
    service_role = iam.create_role(
        RoleName=LAB.service_role, AssumeRolePolicyDocument=_trust_policy("ecs.amazonaws.com")
    )["Role"]

    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "Subnets"
    ]
    subnets = sorted(subnets, key=lambda s: s["AvailabilityZone"])[:2]
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    cluster = ecs.create_cluster(clusterName=LAB.cluster)["cluster"]
    instance_ids = []
    for index in range(CONTAINER_INSTANCE_COUNT):
        subnet = subnets[index % len(subnets)]
        instance = ec2.run_instances(
            ImageId=image_id,
            InstanceType="t3.small",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet["SubnetId"],
            IamInstanceProfile={"Name": LAB.instance_role},
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "Name", "Value": f"ECS Instance - {LAB.cluster}"}],
                }
            ],
        )["Instances"][0]
        instance_ids.append(instance["InstanceId"])
        identity = {
            "instanceId": instance["InstanceId"],
            "region": subnet["AvailabilityZone"][:-1],
            "availabilityZone": subnet["AvailabilityZone"],
            "instanceType": "t3.small",
            "privateIp": instance.get("PrivateIpAddress", ""),
        }
        ecs.register_container_instance(
            cluster=LAB.cluster,
            instanceIdentityDocument=json.dumps(identity),
        )

    lb = elbv2.create_load_balancer(
        Name=LAB.load_balancer,
        Type="network",
        Scheme="internet-facing",
        Subnets=[s["SubnetId"] for s in subnets],
    )["LoadBalancers"][0]
    tg = elbv2.create_target_group(
        Name=LAB.target_group,
        Protocol="TCP",
        Port=80,
        VpcId=vpc["VpcId"],
        TargetType="instance",
        HealthCheckProtocol="TCP",
        HealthCheckIntervalSeconds=10,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=2,
    )["TargetGroups"][0]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="TCP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )["Listeners"][0]

    return {
        "cluster_arn": cluster["clusterArn"],
        "instance_role_arn": instance_role["Arn"],
        "service_role_arn": service_role["Arn"],
        "vpc_id": vpc["VpcId"],
        "instance_ids": ",".join(instance_ids),
        "load_balancer_arn": lb["LoadBalancerArn"],
        "load_balancer_dns": lb["DNSName"],
        "target_group_arn": tg["TargetGroupArn"],
        "listener_arn": listener["ListenerArn"],
    }
