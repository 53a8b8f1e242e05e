"""The lab environment on an endpoint: each piece found by its lab name, or created.

An emulator given as ``AWS_ENDPOINT_URL`` starts empty: no roles, no ``ECSCluster``, no load
balancer. Notebook 00 finds the lab's pieces there by name or creates the missing ones with
plain API calls, each carrying the kit's tag so that the teardown removes exactly that.
Pieces without the kit's tag are used as they are and never changed: the kit adds no
listener to someone else's load balancer and no container instance to someone else's cluster.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from labkit.backends.lookup import (
    error_code,
    error_text,
    find_cluster,
    find_load_balancer,
    find_role,
    find_target_group,
)
from labkit.backends.report import TeardownReport
from labkit.config import (
    KIT_TAG_KEY,
    KIT_TAG_VALUE,
    NOTEBOOKS,
    Backend,
    has_kit_tag,
    role_trust_policy,
)
from labkit.lab import Lab

#: Container instances the kit registers in a cluster it created (notebook 05 uses two).
CONTAINER_INSTANCE_COUNT = 2
#: The VPC the kit creates when the endpoint has no default VPC.
VPC_NAME = "labkit-ecs-lab"
VPC_CIDR = "10.0.0.0/16"
#: The lab's roles (their attribute of ``LabNames``) and the service that assumes each.
ROLE_SERVICES = {"instance_role": "ec2.amazonaws.com", "service_role": "ecs.amazonaws.com"}
LISTENER = "listener :80"


@dataclass
class EndpointEnvironment:
    """The lab's pre-provisioned pieces on an endpoint: what exists, whose, what is missing."""

    endpoint_url: str
    region: str
    #: Lab name -> ARN or id, for every piece that exists.
    resources: dict[str, str] = field(default_factory=dict)
    #: Lab names whose resource carries the kit's tag (the kit made it; cleanup removes it).
    kit_owned: set[str] = field(default_factory=set)
    #: What this call created, in order.
    created: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    load_balancer_dns: str = ""
    listener: bool = False
    listener_detail: str = ""
    container_instances: int = 0
    container_detail: str = ""

    @property
    def complete(self) -> bool:
        """The pieces every task relies on: roles, cluster, load balancer, target group."""
        return not self.missing

    def describe(self) -> str:
        out = [f"Lab environment at {self.endpoint_url} ({self.region}):"]
        for name, arn in self.resources.items():
            whose = "the kit's" if name in self.kit_owned else "not the kit's, used as is"
            out.append(f"  found    {name:<22} {arn}  ({whose})")
        for name in self.missing:
            out.append(f"  MISSING  {name}")
        out.append(
            f"  container instances: {self.container_instances}"
            + (f" ({self.container_detail})" if self.container_detail else "")
        )
        if not self.listener and self.listener_detail:
            out.append(f"  no TCP listener on port 80: {self.listener_detail}")
        if self.created:
            out.append(
                f"Created {len(self.created)} (tagged {KIT_TAG_KEY}={KIT_TAG_VALUE}; "
                f"{NOTEBOOKS[6]} removes them): " + ", ".join(self.created)
            )
        else:
            out.append("Created nothing: everything was already there.")
        out.append("Ready for the lab." if self.complete else "Not ready for the lab yet.")
        return "\n".join(out)


def kit_vpc(ec2: Any) -> dict[str, Any] | None:
    # Checked here, not with a tag filter: an emulator that ignores filters must not make
    # the default VPC look like the kit's.
    for vpc in ec2.describe_vpcs()["Vpcs"]:
        tags = {t["Key"]: t["Value"] for t in vpc.get("Tags", [])}
        if has_kit_tag(vpc.get("Tags")) and tags.get("Name") == VPC_NAME:
            return vpc
    return None


class _Builder:
    """Finds (and with ``create``) makes each piece; fills an :class:`EndpointEnvironment`."""

    def __init__(self, lab: Lab, create: bool) -> None:
        self.lab = lab
        self.names = lab.names
        self.create = create
        self.env = EndpointEnvironment(lab.target.endpoint_url or "", lab.region)

    def _found(self, name: str, arn: str, owned: bool) -> None:
        self.env.resources[name] = arn
        if owned:
            self.env.kit_owned.add(name)

    def _made(self, name: str, arn: str, what: str) -> None:
        self._found(name, arn, True)
        self.env.created.append(what)

    def _elb_owned(self, arn: str) -> bool:
        described = self.lab.elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
        return bool(described) and has_kit_tag(described[0].get("Tags"))

    def _ec2_tags(self, resource_type: str, name: str) -> dict[str, Any]:
        return {
            "ResourceType": resource_type,
            "Tags": [*self.lab.tags(), {"Key": "Name", "Value": name}],
        }

    def roles(self) -> None:
        iam = self.lab.iam
        for attribute, service in ROLE_SERVICES.items():
            name = getattr(self.names, attribute)
            role = find_role(iam, name)
            if role is not None:
                # Some emulators leave the tags out of GetRole's answer.
                tags = role.get("Tags") or iam.list_role_tags(RoleName=name).get("Tags", [])
                self._found(name, role["Arn"], has_kit_tag(tags))
            elif not self.create:
                self.env.missing.append(name)
            else:
                role = iam.create_role(
                    RoleName=name,
                    AssumeRolePolicyDocument=role_trust_policy(service),
                    Description=f"The lab's {name}, created by the ECS Lab Kit on this endpoint",
                    Tags=self.lab.tags(),
                )["Role"]
                self._made(name, role["Arn"], f"IAM role {name}")

    def cluster(self) -> None:
        name = self.names.cluster
        cluster = find_cluster(self.lab.ecs, name)
        if cluster is not None:
            self._found(name, cluster["clusterArn"], has_kit_tag(cluster.get("tags")))
        elif not self.create:
            self.env.missing.append(name)
        else:
            cluster = self.lab.ecs.create_cluster(clusterName=name, tags=self.lab.tags("key"))
            self._made(name, cluster["cluster"]["clusterArn"], f"ECS cluster {name}")

    # -- network -----------------------------------------------------------------------
    def _subnets_by_zone(self, vpc_id: str) -> list[dict[str, Any]]:
        """One subnet per Availability Zone (an NLB takes at most one per zone), two at most."""
        subnets = self.lab.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        by_zone: dict[str, dict[str, Any]] = {}
        for subnet in sorted(subnets["Subnets"], key=lambda s: s["AvailabilityZone"]):
            by_zone.setdefault(subnet["AvailabilityZone"], subnet)
        return list(by_zone.values())[:2]

    def network(self, load_balancer: dict[str, Any] | None) -> None:
        """The lab's VPC and two subnets: the load balancer's, the default VPC, or the kit's."""
        ec2 = self.lab.ec2
        if load_balancer is not None:
            self.env.vpc_id = load_balancer.get("VpcId", "")
            zones = load_balancer.get("AvailabilityZones", [])
            self.env.subnet_ids = [z["SubnetId"] for z in zones if z.get("SubnetId")]
            return
        default = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if default:
            self.env.vpc_id = default[0]["VpcId"]
            self.env.subnet_ids = [s["SubnetId"] for s in self._subnets_by_zone(self.env.vpc_id)]
            if self.env.subnet_ids:
                return
        vpc = kit_vpc(ec2)
        if vpc is None and not self.create:
            self.env.missing.append(f"VPC {VPC_NAME}")
            return
        if vpc is None:
            vpc = ec2.create_vpc(
                CidrBlock=VPC_CIDR, TagSpecifications=[self._ec2_tags("vpc", VPC_NAME)]
            )["Vpc"]
            self.env.created.append(f"VPC {VPC_NAME} ({vpc['VpcId']}): no default VPC here")
        self._found(f"VPC {VPC_NAME}", vpc["VpcId"], True)
        self.env.vpc_id = vpc["VpcId"]
        subnets = self._subnets_by_zone(vpc["VpcId"])
        if len(subnets) < 2 and self.create:
            zones = [
                z["ZoneName"]
                for z in ec2.describe_availability_zones()["AvailabilityZones"]
                if z.get("State", "available") == "available"
            ] or [f"{self.lab.region}a", f"{self.lab.region}b"]
            taken = {s["AvailabilityZone"] for s in subnets}
            for index, zone in enumerate(z for z in zones[:2] if z not in taken):
                subnet = ec2.create_subnet(
                    VpcId=vpc["VpcId"],
                    CidrBlock=f"10.0.{len(subnets) + index}.0/24",
                    AvailabilityZone=zone,
                    TagSpecifications=[self._ec2_tags("subnet", f"{VPC_NAME}-{zone}")],
                )["Subnet"]
                self.env.created.append(f"subnet {subnet['SubnetId']} ({zone})")
            subnets = self._subnets_by_zone(vpc["VpcId"])
        self.env.subnet_ids = [s["SubnetId"] for s in subnets]

    # -- load balancing ------------------------------------------------------------------
    def load_balancing(self) -> None:
        elbv2, names = self.lab.elbv2, self.names
        lb = find_load_balancer(elbv2, names.load_balancer)
        self.network(lb)
        if lb is not None:
            arn = lb["LoadBalancerArn"]
            self._found(names.load_balancer, arn, self._elb_owned(arn))
        elif self.create and self.env.subnet_ids:
            lb = elbv2.create_load_balancer(
                Name=names.load_balancer,
                Type="network",
                Scheme="internet-facing",
                Subnets=self.env.subnet_ids,
                Tags=self.lab.tags(),
            )["LoadBalancers"][0]
            self._made(names.load_balancer, lb["LoadBalancerArn"], f"NLB {names.load_balancer}")
        else:
            self.env.missing.append(names.load_balancer)
        self.env.load_balancer_dns = lb.get("DNSName", "") if lb else ""

        tg = find_target_group(elbv2, names.target_group)
        if tg is not None:
            arn = tg["TargetGroupArn"]
            self._found(names.target_group, arn, self._elb_owned(arn))
        elif self.create and self.env.vpc_id:
            tg = elbv2.create_target_group(
                Name=names.target_group,
                Protocol="TCP",
                Port=80,
                VpcId=self.env.vpc_id,
                TargetType="instance",
                HealthCheckProtocol="TCP",
                Tags=self.lab.tags(),
            )["TargetGroups"][0]
            arn = tg["TargetGroupArn"]
            self._made(names.target_group, arn, f"target group {names.target_group}")
        else:
            self.env.missing.append(names.target_group)
        if lb is not None and tg is not None:
            self.listener(lb, tg)
        else:
            self.env.listener_detail = "no load balancer and target group to join"

    def listener(self, lb: dict[str, Any], tg: dict[str, Any]) -> None:
        elbv2 = self.lab.elbv2
        arn = lb["LoadBalancerArn"]
        listeners = elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
        on_80 = [listener for listener in listeners if listener.get("Port") == 80]
        if on_80:
            self._found(LISTENER, on_80[0]["ListenerArn"], self._elb_owned(arn))
            protocol = on_80[0].get("Protocol", "")
            self.env.listener = protocol in ("TCP", "TCP_UDP", "TLS")
            if not self.env.listener:
                self.env.listener_detail = f"port 80 listens with {protocol}, not TCP"
            return
        if not self.create or self.names.load_balancer not in self.env.kit_owned:
            self.env.listener_detail = (
                f"{self.names.load_balancer} has none on port 80 and is not the kit's to change"
            )
            return
        request = {
            "LoadBalancerArn": arn,
            "Protocol": "TCP",
            "Port": 80,
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
        }
        try:
            try:
                reply = elbv2.create_listener(**request, Tags=self.lab.tags())
            except ClientError as exc:
                if "tag" not in error_text(exc).lower():
                    raise
                reply = elbv2.create_listener(**request)  # a listener goes with its (kit) LB
        except ClientError as exc:
            detail = f"CreateListener refused TCP on port 80 ({error_text(exc)})"
            if lb.get("Type") == "application":
                detail += f"; {self.names.load_balancer} is an application load balancer here"
            self.env.listener_detail = detail
            return
        self.env.listener = True
        arn = reply["Listeners"][0]["ListenerArn"]
        self._made(LISTENER, arn, f"TCP listener on port 80 → {self.names.target_group}")

    # -- container instances -------------------------------------------------------------
    def _active_instances(self) -> list[str]:
        reply = self.lab.ecs.list_container_instances(cluster=self.names.cluster, status="ACTIVE")
        return reply["containerInstanceArns"]

    def _image_id(self) -> str:
        ec2 = self.lab.ec2
        for filters in ([{"Name": "name", "Values": ["amzn2-ami-ecs-hvm-*"]}], []):
            images = ec2.describe_images(Owners=["amazon"], Filters=filters)["Images"]
            if images:
                return sorted(images, key=lambda i: i.get("CreationDate", ""))[-1]["ImageId"]
        return ""

    def container_instances(self) -> None:
        cluster = self.names.cluster
        if cluster not in self.env.resources:
            self.env.container_detail = f"no cluster {cluster}"
            return
        have = len(self._active_instances())
        self.env.container_instances = have
        if have >= CONTAINER_INSTANCE_COUNT or not self.create:
            return
        if cluster not in self.env.kit_owned:
            if not have:
                self.env.container_detail = f"{cluster} is not the kit's, so it adds none"
            return
        try:
            image_id = self._image_id()
        except (ClientError, BotoCoreError) as exc:
            self.env.container_detail = f"no EC2 API to start instances ({error_text(exc)})"
            return
        if not image_id:
            self.env.container_detail = "the endpoint offers no machine image to start one from"
            return
        for index in range(have, CONTAINER_INSTANCE_COUNT):
            subnets = self.env.subnet_ids
            subnet = subnets[index % len(subnets)] if subnets else None
            problem = self._one_container_instance(image_id, subnet)
            if problem:
                self.env.container_detail = problem
                break
        self.env.container_instances = len(self._active_instances())

    def _one_container_instance(self, image_id: str, subnet: str | None) -> str:
        """Start a tagged EC2 instance and register it; on failure remove it, say why."""
        ec2 = self.lab.ec2
        run: dict[str, Any] = {
            "ImageId": image_id,
            "InstanceType": "t3.small",
            "MinCount": 1,
            "MaxCount": 1,
            "TagSpecifications": [
                self._ec2_tags("instance", f"ECS Instance - {self.names.cluster}")
            ],
        }
        if subnet:
            run["SubnetId"] = subnet
        try:
            instance = ec2.run_instances(**run)["Instances"][0]
        except (ClientError, BotoCoreError) as exc:
            return f"RunInstances failed ({error_text(exc)})"
        zone = instance.get("Placement", {}).get("AvailabilityZone") or f"{self.lab.region}a"
        identity = {
            "instanceId": instance["InstanceId"],
            "region": self.lab.region,
            "availabilityZone": zone,
            "instanceType": instance.get("InstanceType", "t3.small"),
            "privateIp": instance.get("PrivateIpAddress", ""),
            "accountId": self.lab.account_id,
        }
        try:
            self.lab.ecs.register_container_instance(
                cluster=self.names.cluster, instanceIdentityDocument=json.dumps(identity)
            )
        except (ClientError, BotoCoreError) as exc:
            ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])  # nothing half-done
            return f"RegisterContainerInstance is not served here ({error_text(exc)})"
        self.env.created.append(f"container instance on EC2 {instance['InstanceId']}")
        return ""


def find_environment(lab: Lab, *, create_missing: bool = False) -> EndpointEnvironment:
    """What of the lab environment exists at the endpoint; with ``create_missing``, the
    missing pieces are made (safe to re-run: pieces are found by their lab names)."""
    if lab.backend is not Backend.ENDPOINT:
        raise ValueError(
            f"labkit.backends.endpoint serves the endpoint backend, not {lab.backend.value}"
        )
    builder = _Builder(lab, create_missing)
    builder.roles()
    builder.cluster()
    builder.load_balancing()
    builder.container_instances()
    return builder.env


# ------------------------------------------------------------------------ removal
def remove_environment(lab: Lab, report: TeardownReport, timeout_s: float = 180) -> None:
    """Remove the kit-tagged pieces of the lab environment, then list what is still the kit's.

    Order: the load balancer (its listeners go with it) → target group → the kit's
    container instances and EC2 instances → cluster → roles → the kit's VPC. Anything
    without the kit's tag is listed and left alone. Safe to re-run.
    """
    teardown = _Teardown(lab, report, timeout_s)
    for step in (
        teardown.load_balancing,
        teardown.instances,
        teardown.cluster,
        teardown.roles,
        teardown.network,
    ):
        try:
            step()
        except (ClientError, BotoCoreError) as exc:
            report.fail(f"{step.__name__}: {error_text(exc)}")
    try:
        report.leftovers = leftovers(lab)
        report.leftovers_checked = True
    except (ClientError, BotoCoreError) as exc:
        report.fail(f"listing leftovers: {error_text(exc)}")


def _kit_instances(ec2: Any) -> list[str]:
    """The ids of the kit's EC2 instances that are not terminated."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": f"tag:{KIT_TAG_KEY}", "Values": [KIT_TAG_VALUE]}]
    )
    return sorted(
        instance["InstanceId"]
        for instance in pages.search("Reservations[].Instances[]")
        if has_kit_tag(instance.get("Tags"))
        and instance.get("State", {}).get("Name") not in ("terminated", "shutting-down")
    )


class _Teardown:
    """Deletes each piece :func:`find_environment` finds to be the kit's, and says so."""

    def __init__(self, lab: Lab, report: TeardownReport, timeout_s: float) -> None:
        self.lab, self.names, self.report, self.timeout_s = lab, lab.names, report, timeout_s
        self.env = find_environment(lab)

    def _kits(self, name: str, what: str) -> str:
        """The ARN of piece ``name`` if it is the kit's; one that is not is left (and listed)."""
        if name in self.env.resources and name not in self.env.kit_owned:
            self.report.leave(what, "not tagged by the kit")
        return self.env.resources[name] if name in self.env.kit_owned else ""

    def load_balancing(self) -> None:
        elbv2, names, report = self.lab.elbv2, self.names, self.report
        arn = self._kits(names.load_balancer, f"load balancer {names.load_balancer}")
        if arn:
            for listener in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]:
                elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
            elbv2.delete_load_balancer(LoadBalancerArn=arn)
            config = {"Delay": 1, "MaxAttempts": max(1, int(self.timeout_s))}
            try:
                elbv2.get_waiter("load_balancers_deleted").wait(
                    LoadBalancerArns=[arn], WaiterConfig=config
                )
            except WaiterError:
                report.fail(f"load balancer {names.load_balancer} still there")
            report.done(f"load balancer {names.load_balancer} (and its listeners)")
        arn = self._kits(names.target_group, f"target group {names.target_group}")
        deadline = time.monotonic() + self.timeout_s
        while arn:  # no waiter: a target group stays in use until its load balancer is gone
            try:
                elbv2.delete_target_group(TargetGroupArn=arn)
                report.done(f"target group {names.target_group}")
                return
            except ClientError as exc:
                if error_code(exc) != "ResourceInUse":
                    raise
            if time.monotonic() >= deadline:
                report.fail(f"target group {names.target_group} still in use")
                return
            time.sleep(1)

    def instances(self) -> None:
        ecs, cluster, report = self.lab.ecs, self.names.cluster, self.report
        kit_instances = _kit_instances(self.lab.ec2)
        arns = (
            ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
            if cluster in self.env.resources
            else []
        )
        described = (
            ecs.describe_container_instances(cluster=cluster, containerInstances=arns)
            if arns
            else {}
        )
        for instance in described.get("containerInstances", []):
            short = instance["containerInstanceArn"].rsplit("/", 1)[-1]
            if instance.get("ec2InstanceId") not in kit_instances:
                report.leave(f"container instance {short}", "not on a kit's EC2 instance")
                continue
            ecs.deregister_container_instance(
                cluster=cluster, containerInstance=instance["containerInstanceArn"], force=True
            )
            report.done(f"container instance {short}")
        if kit_instances:
            self.lab.ec2.terminate_instances(InstanceIds=kit_instances)
            report.done(f"EC2 instances {', '.join(kit_instances)} (terminated)")

    def cluster(self) -> None:
        name = self.names.cluster
        if not self._kits(name, f"ECS cluster {name}"):
            return
        try:
            self.lab.ecs.delete_cluster(cluster=name)
        except ClientError as exc:  # it still holds services or instances that are not the kit's
            self.report.fail(f"ECS cluster {name} not deleted: {error_text(exc)}")
            return
        self.report.done(f"ECS cluster {name}")

    def roles(self) -> None:
        iam = self.lab.iam
        for attribute in ROLE_SERVICES:
            name = getattr(self.names, attribute)
            if not self._kits(name, f"IAM role {name}"):
                continue
            # IAM deletes a role only once nothing hangs on it.
            for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
            for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
            profiles = iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]
            for profile in profiles:
                iam.remove_role_from_instance_profile(
                    InstanceProfileName=profile["InstanceProfileName"], RoleName=name
                )
            iam.delete_role(RoleName=name)
            self.report.done(f"IAM role {name}")

    def network(self) -> None:
        ec2, report = self.lab.ec2, self.report
        vpc = kit_vpc(ec2)
        if vpc is None:
            return
        vpc_id = vpc["VpcId"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        for subnet in subnets["Subnets"]:
            if not has_kit_tag(subnet.get("Tags")):
                report.leave(f"subnet {subnet['SubnetId']}", "not tagged by the kit")
                continue
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
            report.done(f"subnet {subnet['SubnetId']}")
        try:
            ec2.delete_vpc(VpcId=vpc_id)
        except ClientError as exc:  # something that is not the kit's still lives in it
            report.fail(f"VPC {vpc_id} not deleted: {error_text(exc)}")
            return
        report.done(f"VPC {VPC_NAME} ({vpc_id})")


def leftovers(lab: Lab) -> list[str]:
    """Everything of the lab environment still at the endpoint that carries the kit's tag."""
    env = find_environment(lab)
    left = [f"{name} {env.resources[name]}" for name in sorted(env.kit_owned)]
    vpc = kit_vpc(lab.ec2)
    if vpc is not None and f"VPC {VPC_NAME}" not in env.kit_owned:
        left.append(f"VPC {VPC_NAME} {vpc['VpcId']}")
    return left + [f"EC2 instance {i}" for i in _kit_instances(lab.ec2)]
