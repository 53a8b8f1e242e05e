"""The lab environment on an AWS-compatible endpoint (backend ``endpoint``).

Another emulator given as ``AWS_ENDPOINT_URL`` starts empty: no roles, no ``ECSCluster``,
no load balancer. Notebook 00 finds the lab's pieces there by name or creates the
missing ones with plain API calls. That is free (an emulator bills nothing), so no cost
confirmation is asked, and everything created carries the kit's tag so that notebook 06
(``labkit cleanup``) removes exactly that. Pieces that exist without the kit's tag are
used as they are and never changed: the kit adds no listener to someone else's load
balancer and no container instance to someone else's cluster.

Emulators differ in what they serve beyond the API (a registry to push to, containers
that really run, a load balancer that carries traffic). :class:`EndpointCapabilities`
holds what was probed, once per endpoint and region, and decides which of the lab's
tasks can be done there; :func:`require_served` turns that into one clear message at the
top of a notebook instead of a failure half-way through it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from labkit.aws import AwsTarget, is_loopback
from labkit.backends.report import TeardownReport
from labkit.config import (
    KIT_TAG_KEY,
    KIT_TAG_VALUE,
    NOTEBOOKS,
    Backend,
    LabNames,
    has_kit_tag,
    load_state,
    role_trust_policy,
    save_state,
)
from labkit.errors import PrerequisiteError


class Lab(Protocol):
    """What this module uses of a :class:`labkit.lab.Lab` (typed here so that this module
    does not import ``labkit.lab``, which calls :func:`require_served`)."""

    names: LabNames
    ecr: Any
    ecs: Any
    ec2: Any
    elbv2: Any
    iam: Any
    servicediscovery: Any

    @property
    def backend(self) -> Backend: ...
    @property
    def target(self) -> AwsTarget: ...
    @property
    def region(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    def tags(self, style: str = "Key") -> list[dict[str, str]]: ...


#: Container instances the kit registers in a cluster it created (notebook 05 uses two).
CONTAINER_INSTANCE_COUNT = 2
#: The VPC the kit creates when the endpoint has no default VPC.
VPC_NAME = "labkit-ecs-lab"
VPC_CIDR = "10.0.0.0/16"
#: How long one probe of the data plane (an HTTP GET, a DNS lookup) may take.
PROBE_TIMEOUT_S = 3.0
#: The state-file key under which probed capabilities are kept across kernels.
STATE_KEY = "endpoint_capabilities"

TASK_TITLES: dict[int, str] = {
    1: "repository and permission statement",
    2: "pull, tag and push the image",
    3: "task definition",
    4: "service behind the load balancer",
    5: "operating the service",
}

_ROLE_SERVICES = {"instance_role": "ec2.amazonaws.com", "service_role": "ecs.amazonaws.com"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip(": ")
    return f"{exc.__class__.__name__}: {exc}"


def _aws_name(host: str) -> bool:
    """True for real AWS's DNS names: nothing at a local endpoint answers there."""
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


# ------------------------------------------------------------------------ capabilities
@dataclass(frozen=True)
class TaskSupport:
    """Whether one lab task can be done on this endpoint, and why not."""

    task: int
    title: str
    served: bool
    reason: str

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.task]


@dataclass(frozen=True)
class EndpointCapabilities:
    """What an endpoint serves beyond its API, probed once; decides which tasks work there.

    Each part holds a fact and, when the part is missing, why (in words a learner can
    check). ``registry`` is the registry's address (empty: none), ``load_balancer_address``
    what the load balancer's DNS name resolves to (empty: it leads nowhere from here).
    """

    endpoint_url: str
    region: str
    ecr_api: bool = False
    ecr_detail: str = ""
    registry: str = ""
    registry_detail: str = ""
    container_instances: int = 0
    container_detail: str = ""
    listener: bool = False
    listener_detail: str = ""
    load_balancer_address: str = ""
    load_balancer_detail: str = ""
    cloud_map: bool = False
    cloud_map_detail: str = ""
    probed_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointCapabilities:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def _service_gaps(self) -> list[str]:
        gaps = []
        if not self.registry:
            gaps.append("no registry, so no image for a container to run")
        if self.container_instances < 1:
            gaps.append(f"no container instances ({self.container_detail})")
        if not self.listener:
            gaps.append(f"no TCP listener on the load balancer ({self.listener_detail})")
        if not self.cloud_map:
            gaps.append(f"no Cloud Map for service discovery ({self.cloud_map_detail})")
        if not self.load_balancer_address:
            gaps.append(f"no page to open: {self.load_balancer_detail}")
        return gaps

    def support(self, task: int) -> TaskSupport:
        """Task 1–4 of the lab, or 5 for notebook 05 (which needs Task 4's service)."""
        title = TASK_TITLES[task]
        if task == 1:
            if self.ecr_api:
                return TaskSupport(1, title, True, "the ECR API stores the repository and policy")
            return TaskSupport(1, title, False, f"no ECR API ({self.ecr_detail})")
        if task == 2:
            if self.registry:
                return TaskSupport(2, title, True, f"a registry answers at {self.registry}")
            return TaskSupport(2, title, False, f"no registry to push to: {self.registry_detail}")
        if task == 3:
            return TaskSupport(3, title, True, "RegisterTaskDefinition is an API call only")
        gaps = self._service_gaps()
        if not gaps:
            return TaskSupport(task, title, True, "registry, containers and load balancer")
        if task == 5:
            return TaskSupport(5, title, False, "it operates Task 4's service: " + "; ".join(gaps))
        return TaskSupport(4, title, False, "; ".join(gaps))

    def tasks(self) -> tuple[TaskSupport, ...]:
        return tuple(self.support(n) for n in TASK_TITLES)

    @property
    def unserved(self) -> frozenset[int]:
        return frozenset(t.task for t in self.tasks() if not t.served)

    def rows(self) -> list[list[str]]:
        return [
            [f"Task {t.task}" if t.task < 5 else "Notebook 05", t.title, "✅" if t.served else "❌"]
            + [t.reason]
            for t in self.tasks()
        ]

    def describe(self) -> str:
        out = [f"What {self.endpoint_url} ({self.region}) can serve of this lab:"]
        for task, title, mark, reason in self.rows():
            out.append(f"  {mark} {task:<11} {title:<36} {reason}")
        return "\n".join(out)


def _get(url: str) -> tuple[int, dict[str, str]]:
    """GET ``url``: status and headers (an HTTP error status is an answer too)."""
    handlers = [urllib.request.ProxyHandler({})] if is_loopback(url) else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=PROBE_TIMEOUT_S) as reply:
            return reply.status, dict(reply.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {})


def _probe_registry(lab: Lab) -> tuple[str, str]:
    """The address of a registry behind this endpoint's ECR, or ``("", why not)``."""
    endpoint = lab.target.endpoint_url or ""
    candidates: list[str] = []
    notes: list[str] = []
    try:
        data = lab.ecr.get_authorization_token()["authorizationData"]
        proxy = data[0].get("proxyEndpoint", "") if data else ""
    except (ClientError, BotoCoreError) as exc:
        proxy = ""
        notes.append(f"GetAuthorizationToken failed ({_message(exc)})")
    if proxy:
        host = urllib.parse.urlsplit(proxy).hostname or ""
        if _aws_name(host):
            notes.append(f"its login token is for {proxy}, real AWS's registry, not this one's")
        else:
            candidates.append(proxy)
    if endpoint and endpoint not in candidates:
        candidates.append(endpoint)
    for base in candidates:
        url = base.rstrip("/") + "/v2/"
        try:
            status, headers = _get(url)
        except (OSError, ValueError) as exc:
            notes.append(f"{url} did not answer ({exc.__class__.__name__})")
            continue
        # The distribution API sends this header on /v2/, with 200 or 401 alike.
        if any(k.lower() == "docker-distribution-api-version" for k in headers):
            return base, ""
        notes.append(f"{url} is not a registry (HTTP {status})")
    return "", "; ".join(notes) or "no registry address was found"


def _resolve(host: str) -> str:
    """The first address ``host`` resolves to within the probe timeout, else ""."""
    found: list[str] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, 80, proto=socket.IPPROTO_TCP)[0][4][0])
        except OSError:
            pass

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(PROBE_TIMEOUT_S)
    return found[0] if found else ""


def _probe_load_balancer(dns: str, name: str) -> tuple[str, str]:
    if not dns:
        return "", f"there is no load balancer {name} yet"
    if _aws_name(dns):
        return "", f"its DNS name {dns} is in real AWS's namespace, where this endpoint is not"
    address = _resolve(dns)
    if not address:
        return "", f"its DNS name {dns} does not resolve here"
    return address, ""


def _probe_cloud_map(lab: Lab) -> tuple[bool, str]:
    try:
        lab.servicediscovery.list_namespaces(MaxResults=1)
    except (ClientError, BotoCoreError) as exc:
        return False, _message(exc)
    return True, ""


def _probe_ecr_api(lab: Lab) -> tuple[bool, str]:
    try:
        lab.ecr.describe_repositories(maxResults=1)
    except (ClientError, BotoCoreError) as exc:
        return False, _message(exc)
    return True, ""


def _state_key(lab: Lab) -> str:
    return f"{lab.target.endpoint_url}|{lab.region}"


_CACHE: dict[str, EndpointCapabilities] = {}


def _remember(lab: Lab, capabilities: EndpointCapabilities) -> None:
    _CACHE[_state_key(lab)] = capabilities
    state = load_state()
    state.setdefault(STATE_KEY, {})[_state_key(lab)] = capabilities.to_dict()
    save_state(state)


def _forget(lab: Lab) -> None:
    _CACHE.pop(_state_key(lab), None)
    state = load_state()
    if state.get(STATE_KEY, {}).pop(_state_key(lab), None) is not None:
        save_state(state)


def probe(lab: Lab, environment: EndpointEnvironment | None = None) -> EndpointCapabilities:
    """Probe what the endpoint serves (a few read-only calls, a GET, a DNS lookup)."""
    env = environment or find_environment(lab)
    ecr_api, ecr_detail = _probe_ecr_api(lab)
    registry, registry_detail = _probe_registry(lab)
    address, lb_detail = _probe_load_balancer(env.load_balancer_dns, lab.names.load_balancer)
    cloud_map, cloud_map_detail = _probe_cloud_map(lab)
    return EndpointCapabilities(
        endpoint_url=lab.target.endpoint_url or "",
        region=lab.region,
        ecr_api=ecr_api,
        ecr_detail=ecr_detail,
        registry=registry,
        registry_detail=registry_detail,
        container_instances=env.container_instances,
        container_detail=env.container_detail
        or ("none registered" if not env.container_instances else ""),
        listener=env.listener,
        listener_detail=env.listener_detail,
        load_balancer_address=address,
        load_balancer_detail=lb_detail,
        cloud_map=cloud_map,
        cloud_map_detail=cloud_map_detail,
        probed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def capabilities(lab: Lab, refresh: bool = False) -> EndpointCapabilities:
    """The endpoint's capabilities: probed once (notebook 00), then read from the cache."""
    key = _state_key(lab)
    if not refresh:
        if key in _CACHE:
            return _CACHE[key]
        saved = load_state().get(STATE_KEY, {}).get(key)
        if saved:
            _CACHE[key] = EndpointCapabilities.from_dict(saved)
            return _CACHE[key]
    found = probe(lab)
    _remember(lab, found)
    return found


# ------------------------------------------------------------------------ environment
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
    notes: list[str] = field(default_factory=list)
    capabilities: EndpointCapabilities | None = None

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
        out += [f"  note     {n}" for n in self.notes]
        if self.created:
            out.append(
                f"Created {len(self.created)} (tagged {KIT_TAG_KEY}={KIT_TAG_VALUE}; "
                f"{NOTEBOOKS[6]} removes them): " + ", ".join(self.created)
            )
        else:
            out.append("Created nothing: everything was already there.")
        out.append("Ready for the lab." if self.complete else "Not ready for the lab yet.")
        return "\n".join(out)


class _Environment:
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

    # -- roles -------------------------------------------------------------------------
    def roles(self) -> None:
        iam = self.lab.iam
        for attribute, service in _ROLE_SERVICES.items():
            name = getattr(self.names, attribute)
            try:
                role = iam.get_role(RoleName=name)["Role"]
                tags = role.get("Tags") or iam.list_role_tags(RoleName=name).get("Tags", [])
                self._found(name, role["Arn"], has_kit_tag(tags))
                continue
            except ClientError as exc:
                if _code(exc) != "NoSuchEntity":
                    raise
            if not self.create:
                self.env.missing.append(name)
                continue
            role = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=role_trust_policy(service),
                Description=f"The lab's {name}, created by the ECS Lab Kit on this endpoint",
                Tags=self.lab.tags(),
            )["Role"]
            self._made(name, role["Arn"], f"IAM role {name}")

    # -- cluster -----------------------------------------------------------------------
    def cluster(self) -> None:
        name = self.names.cluster
        clusters = self.lab.ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"]
        active = [c for c in clusters if c.get("status") == "ACTIVE"]
        if active:
            self._found(name, active[0]["clusterArn"], has_kit_tag(active[0].get("tags")))
            return
        if not self.create:
            self.env.missing.append(name)
            return
        cluster = self.lab.ecs.create_cluster(clusterName=name, tags=self.lab.tags("key"))
        self._made(name, cluster["cluster"]["clusterArn"], f"ECS cluster {name}")

    # -- network -----------------------------------------------------------------------
    def _load_balancer(self) -> dict[str, Any] | None:
        try:
            lbs = self.lab.elbv2.describe_load_balancers(Names=[self.names.load_balancer])
        except ClientError as exc:
            if _code(exc) != "LoadBalancerNotFound":
                raise
            return None
        return lbs["LoadBalancers"][0] if lbs["LoadBalancers"] else None

    def _target_group(self) -> dict[str, Any] | None:
        try:
            tgs = self.lab.elbv2.describe_target_groups(Names=[self.names.target_group])
        except ClientError as exc:
            if _code(exc) != "TargetGroupNotFound":
                raise
            return None
        return tgs["TargetGroups"][0] if tgs["TargetGroups"] else None

    def _elb_owned(self, arn: str) -> bool:
        described = self.lab.elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
        return bool(described) and has_kit_tag(described[0].get("Tags"))

    def _subnets_by_zone(self, vpc_id: str) -> list[dict[str, Any]]:
        """One subnet per Availability Zone (an NLB takes at most one per zone), two at most."""
        subnets = self.lab.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        by_zone: dict[str, dict[str, Any]] = {}
        for subnet in sorted(subnets["Subnets"], key=lambda s: s["AvailabilityZone"]):
            by_zone.setdefault(subnet["AvailabilityZone"], subnet)
        return list(by_zone.values())[:2]

    def _kit_vpc(self) -> dict[str, Any] | None:
        for vpc in self.lab.ec2.describe_vpcs()["Vpcs"]:
            tags = {t["Key"]: t["Value"] for t in vpc.get("Tags", [])}
            if has_kit_tag(vpc.get("Tags")) and tags.get("Name") == VPC_NAME:
                return vpc
        return None

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
        vpc = self._kit_vpc()
        if vpc is None:
            if not self.create:
                self.env.missing.append(f"VPC {VPC_NAME}")
                return
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

    def _ec2_tags(self, resource_type: str, name: str) -> dict[str, Any]:
        return {
            "ResourceType": resource_type,
            "Tags": [*self.lab.tags(), {"Key": "Name", "Value": name}],
        }

    # -- load balancing ------------------------------------------------------------------
    def load_balancing(self) -> None:
        elbv2, names = self.lab.elbv2, self.names
        lb = self._load_balancer()
        self.network(lb)
        if lb is None and self.create and self.env.subnet_ids:
            lb = elbv2.create_load_balancer(
                Name=names.load_balancer,
                Type="network",
                Scheme="internet-facing",
                Subnets=self.env.subnet_ids,
                Tags=self.lab.tags(),
            )["LoadBalancers"][0]
            self._made(names.load_balancer, lb["LoadBalancerArn"], f"NLB {names.load_balancer}")
        elif lb is not None:
            arn = lb["LoadBalancerArn"]
            self._found(names.load_balancer, arn, self._elb_owned(arn))
        if lb is None:
            self.env.missing.append(names.load_balancer)
        else:
            self.env.load_balancer_dns = lb.get("DNSName", "")

        tg = self._target_group()
        if tg is None and self.create and self.env.vpc_id:
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
        elif tg is not None:
            arn = tg["TargetGroupArn"]
            self._found(names.target_group, arn, self._elb_owned(arn))
        if tg is None:
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
            self._found("listener :80", on_80[0]["ListenerArn"], self._elb_owned(arn))
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
                if "tag" not in _message(exc).lower():
                    raise
                reply = elbv2.create_listener(**request)  # a listener goes with its (kit) LB
        except ClientError as exc:
            detail = f"CreateListener refused TCP on port 80 ({_message(exc)})"
            if lb.get("Type") == "application":
                detail += f"; {self.names.load_balancer} is an application load balancer here"
            self.env.listener_detail = detail
            return
        self.env.listener = True
        self.env.created.append(f"TCP listener on port 80 → {self.names.target_group}")
        self.env.resources["listener :80"] = reply["Listeners"][0]["ListenerArn"]
        self.env.kit_owned.add("listener :80")

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
            self.env.container_detail = f"no EC2 API to start instances ({_message(exc)})"
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
            return f"RunInstances failed ({_message(exc)})"
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
            return f"RegisterContainerInstance is not served here ({_message(exc)})"
        self.env.created.append(f"container instance on EC2 {instance['InstanceId']}")
        return ""


def _build(lab: Lab, create: bool) -> EndpointEnvironment:
    builder = _Environment(lab, create)
    builder.roles()
    builder.cluster()
    builder.load_balancing()
    builder.container_instances()
    return builder.env


def _require_endpoint(lab: Lab) -> None:
    if lab.backend is not Backend.ENDPOINT:
        raise ValueError(
            f"labkit.backends.endpoint serves the endpoint backend, not {lab.backend.value}"
        )


def find_environment(lab: Lab) -> EndpointEnvironment:
    """What of the lab environment exists at the endpoint (read-only)."""
    _require_endpoint(lab)
    return _build(lab, create=False)


def ensure_environment(lab: Lab) -> EndpointEnvironment:
    """Find the lab environment at the endpoint, create what is missing, probe what it serves.

    Safe to re-run: pieces are found by their lab names and only missing ones are made.
    """
    _require_endpoint(lab)
    env = _build(lab, create=True)
    env.capabilities = probe(lab, env)
    _remember(lab, env.capabilities)
    return env


# ------------------------------------------------------------------------ guard rails
def unserved_tasks(lab: Lab) -> frozenset[int]:
    """The tasks this backend cannot serve (none outside the endpoint backend)."""
    if lab.backend is not Backend.ENDPOINT:
        return frozenset()
    return capabilities(lab).unserved


def require_served(lab: Lab, task: int) -> None:
    """Before a task's notebook: say up front if the endpoint cannot serve it (or is not set up)."""
    if lab.backend is not Backend.ENDPOINT or task not in TASK_TITLES:
        return
    clusters = lab.ecs.describe_clusters(clusters=[lab.names.cluster])["clusters"]
    if not any(c.get("status") == "ACTIVE" for c in clusters):
        raise PrerequisiteError(
            f"The lab environment is not at {lab.target.endpoint_url} yet.",
            why=f"There is no cluster {lab.names.cluster}: the endpoint starts empty.",
            fix=f"Run {NOTEBOOKS[0]} first: it creates the lab environment there (free).",
        )
    caps = capabilities(lab)
    support = caps.support(task)
    if support.served:
        return
    served = [t for t in caps.tasks() if t.served and t.task < 5]
    later = [t for t in served if t.task > task]
    go_on = f"; or go on with {later[0].notebook}" if later else ""
    raise PrerequisiteError(
        f"{'Task ' + str(task) if task < 5 else 'Notebook 05'} ({support.title}) cannot be "
        f"done on this endpoint ({caps.endpoint_url}); nothing was changed.",
        why=support.reason[:1].upper() + support.reason[1:] + ".",
        fix="Tasks " + ", ".join(str(t.task) for t in served) + " work here. For this one use "
        'the offline sandbox (backend = "sandbox", the default, which has a registry, real '
        f"containers and a load balancer) or real AWS{go_on}.",
    )


# ------------------------------------------------------------------------ teardown
def remove_environment(lab: Lab, report: TeardownReport, timeout_s: float = 180) -> None:
    """The teardown's last endpoint step: remove what :func:`ensure_environment` created
    (the kit-tagged pieces), and only that; then list what is still the kit's.

    Order: the load balancer (its listeners go with it) → target group → the kit's
    container instances and EC2 instances → cluster → roles → the kit's VPC. Anything
    without the kit's tag is listed and left alone. Safe to re-run.
    """
    _require_endpoint(lab)
    steps = (
        _teardown_load_balancing,
        _teardown_instances,
        _teardown_cluster,
        _teardown_roles,
        _teardown_network,
    )
    for step in steps:
        try:
            step(lab, report, timeout_s)
        except (ClientError, BotoCoreError) as exc:
            report.fail(f"{step.__name__.removeprefix('_teardown_')}: {_message(exc)}")
    try:
        report.leftovers = leftovers(lab)
        report.leftovers_checked = True
    except (ClientError, BotoCoreError) as exc:
        report.fail(f"listing leftovers: {_message(exc)}")
    _forget(lab)


def _teardown_load_balancing(lab: Lab, report: TeardownReport, timeout_s: float) -> None:
    builder = _Environment(lab, create=False)
    elbv2, names = lab.elbv2, lab.names
    lb = builder._load_balancer()
    if lb is not None:
        arn = lb["LoadBalancerArn"]
        if builder._elb_owned(arn):
            for listener in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]:
                elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
            elbv2.delete_load_balancer(LoadBalancerArn=arn)
            config = {"Delay": 1, "MaxAttempts": max(1, int(timeout_s))}
            try:
                elbv2.get_waiter("load_balancers_deleted").wait(
                    LoadBalancerArns=[arn], WaiterConfig=config
                )
            except WaiterError:
                report.fail(f"load balancer {names.load_balancer} still there")
            report.done(f"load balancer {names.load_balancer} (and its listeners)")
        else:
            report.leave(f"load balancer {names.load_balancer}", "not tagged by the kit")
    tg = builder._target_group()
    if tg is None:
        return
    if not builder._elb_owned(tg["TargetGroupArn"]):
        report.leave(f"target group {names.target_group}", "not tagged by the kit")
        return
    deadline = time.monotonic() + timeout_s
    while True:  # no waiter: a target group stays in use until its load balancer is gone
        try:
            elbv2.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
            report.done(f"target group {names.target_group}")
            return
        except ClientError as exc:
            if _code(exc) != "ResourceInUse":
                raise
        if time.monotonic() >= deadline:
            report.fail(f"target group {names.target_group} still in use")
            return
        time.sleep(1)


def _kit_instances(lab: Lab) -> dict[str, dict[str, Any]]:
    """The kit's EC2 instances that are not terminated, by id."""
    found = {}
    reply = lab.ec2.describe_instances(
        Filters=[{"Name": f"tag:{KIT_TAG_KEY}", "Values": [KIT_TAG_VALUE]}]
    )
    for reservation in reply["Reservations"]:
        for instance in reservation["Instances"]:
            state = instance.get("State", {}).get("Name")
            if has_kit_tag(instance.get("Tags")) and state not in ("terminated", "shutting-down"):
                found[instance["InstanceId"]] = instance
    return found


def _teardown_instances(lab: Lab, report: TeardownReport, timeout_s: float) -> None:
    ecs, cluster = lab.ecs, lab.names.cluster
    kit_instances = _kit_instances(lab)
    clusters = ecs.describe_clusters(clusters=[cluster])["clusters"]
    if any(c.get("status") == "ACTIVE" for c in clusters):
        arns = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
        described = (
            ecs.describe_container_instances(cluster=cluster, containerInstances=arns)[
                "containerInstances"
            ]
            if arns
            else []
        )
        for instance in described:
            short = instance["containerInstanceArn"].rsplit("/", 1)[-1]
            if instance.get("ec2InstanceId") not in kit_instances:
                report.leave(f"container instance {short}", "not on a kit's EC2 instance")
                continue
            ecs.deregister_container_instance(
                cluster=cluster, containerInstance=instance["containerInstanceArn"], force=True
            )
            report.done(f"container instance {short}")
    if kit_instances:
        lab.ec2.terminate_instances(InstanceIds=sorted(kit_instances))
        report.done(f"EC2 instances {', '.join(sorted(kit_instances))} (terminated)")


def _teardown_cluster(lab: Lab, report: TeardownReport, timeout_s: float) -> None:
    name = lab.names.cluster
    clusters = lab.ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"]
    active = [c for c in clusters if c.get("status") == "ACTIVE"]
    if not active:
        return
    if not has_kit_tag(active[0].get("tags")):
        report.leave(f"ECS cluster {name}", "not tagged by the kit")
        return
    try:
        lab.ecs.delete_cluster(cluster=name)
    except ClientError as exc:  # it still holds services or instances that are not the kit's
        report.fail(f"ECS cluster {name} not deleted: {_message(exc)}")
        return
    report.done(f"ECS cluster {name}")


def _teardown_roles(lab: Lab, report: TeardownReport, timeout_s: float) -> None:
    iam = lab.iam
    for attribute in _ROLE_SERVICES:
        name = getattr(lab.names, attribute)
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if _code(exc) == "NoSuchEntity":
                continue
            raise
        tags = role.get("Tags") or iam.list_role_tags(RoleName=name).get("Tags", [])
        if not has_kit_tag(tags):
            report.leave(f"IAM role {name}", "not tagged by the kit")
            continue
        # IAM deletes a role only once nothing hangs on it.
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for policy in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
            iam.remove_role_from_instance_profile(
                InstanceProfileName=profile["InstanceProfileName"], RoleName=name
            )
        iam.delete_role(RoleName=name)
        report.done(f"IAM role {name}")


def _teardown_network(lab: Lab, report: TeardownReport, timeout_s: float) -> None:
    ec2 = lab.ec2
    vpc = _Environment(lab, create=False)._kit_vpc()
    if vpc is None:
        return
    vpc_id = vpc["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    for subnet in subnets:
        if not has_kit_tag(subnet.get("Tags")):
            report.leave(f"subnet {subnet['SubnetId']}", "not tagged by the kit")
            continue
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        report.done(f"subnet {subnet['SubnetId']}")
    try:
        ec2.delete_vpc(VpcId=vpc_id)
    except ClientError as exc:  # something that is not the kit's still lives in it
        report.fail(f"VPC {vpc_id} not deleted: {_message(exc)}")
        return
    report.done(f"VPC {VPC_NAME} ({vpc_id})")


def leftovers(lab: Lab) -> list[str]:
    """Everything of the lab environment still at the endpoint that carries the kit's tag."""
    _require_endpoint(lab)
    env = find_environment(lab)
    left = [f"{name} {env.resources[name]}" for name in sorted(env.kit_owned)]
    vpc = _Environment(lab, create=False)._kit_vpc()
    if vpc is not None and f"VPC {VPC_NAME}" not in env.kit_owned:
        left.append(f"VPC {VPC_NAME} {vpc['VpcId']}")
    left += [f"EC2 instance {i}" for i in sorted(_kit_instances(lab))]
    return left
