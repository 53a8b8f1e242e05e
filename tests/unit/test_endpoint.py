"""The endpoint backend against a bare moto_server process: the lab environment is found or
created with plain API calls, tagged, torn down; what the endpoint cannot serve is said
up front; loopback calls bypass any HTTP proxy."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from labkit import tasks, teardown
from labkit.backends import endpoint
from labkit.backends.endpoint import probes
from labkit.backends.endpoint.provisioning import CONTAINER_INSTANCE_COUNT
from labkit.errors import PrerequisiteError
from labkit.lab import Lab
from labkit.names import KIT_TAG_KEY, KIT_TAG_VALUE, LAB, has_kit_tag
from labkit.state import load_state
from tests.moto_server import moto_server_process, reset

REGION = "us-west-2"


@pytest.fixture(scope="module")
def endpoint_url() -> Iterator[str]:
    with moto_server_process() as url:
        yield url


@pytest.fixture
def lab(endpoint_url: str, monkeypatch: pytest.MonkeyPatch) -> Lab:
    reset(endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    return Lab.from_parameters(backend="endpoint")


def _client(url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION)


def _elb_tags(url: str, arn: str) -> list[dict[str, str]]:
    return _client(url, "elbv2").describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]


def test_bare_endpoint_gets_a_tagged_environment_and_a_truthful_task_table(
    lab: Lab, endpoint_url: str
) -> None:
    env = endpoint.ensure_environment(lab)

    assert env.complete and not env.missing
    iam = _client(endpoint_url, "iam")
    for role, service in ((LAB.instance_role, "ec2"), (LAB.service_role, "ecs")):
        got = iam.get_role(RoleName=role)["Role"]
        assert has_kit_tag(got["Tags"])
        trust = got["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert trust["Statement"][0]["Principal"]["Service"] == f"{service}.amazonaws.com"
    ecs = _client(endpoint_url, "ecs")
    cluster = ecs.describe_clusters(clusters=[LAB.cluster], include=["TAGS"])["clusters"][0]
    assert cluster["status"] == "ACTIVE" and has_kit_tag(cluster["tags"])
    instances = ecs.list_container_instances(cluster=LAB.cluster)["containerInstanceArns"]
    assert len(instances) == CONTAINER_INSTANCE_COUNT
    elbv2 = _client(endpoint_url, "elbv2")
    lb = elbv2.describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0]
    assert lb["Type"] == "network" and has_kit_tag(_elb_tags(endpoint_url, lb["LoadBalancerArn"]))
    tg = elbv2.describe_target_groups(Names=[LAB.target_group])["TargetGroups"][0]
    assert (tg["Protocol"], tg["Port"], tg["TargetType"]) == ("TCP", 80, "instance")
    assert has_kit_tag(_elb_tags(endpoint_url, tg["TargetGroupArn"]))
    listener = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]
    assert (listener["Protocol"], listener["Port"]) == ("TCP", 80)
    assert listener["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]

    caps = endpoint.capabilities(lab)  # probed by ensure_environment, read from the state
    assert caps.unserved == {2, 4, 5}
    assert "no registry to push to" in caps.support(2).reason
    assert "not a registry (HTTP 404)" in caps.support(2).reason
    assert "no image for a container to run" in caps.support(4).reason
    text = caps.describe()
    assert "✅ Task 1" in text and "❌ Task 2" in text and "✅ Task 3" in text
    assert "❌ Task 4" in text

    again = endpoint.ensure_environment(lab)  # re-running is safe and creates nothing
    assert again.created == [] and again.resources.keys() >= env.resources.keys()
    assert len(ecs.list_container_instances(cluster=LAB.cluster)["containerInstanceArns"]) == 2


def test_require_says_up_front_what_the_endpoint_cannot_serve(lab: Lab) -> None:
    with pytest.raises(PrerequisiteError, match="not at .* yet"):
        tasks.require(lab, 1)  # nothing provisioned: notebook 00 first
    endpoint.ensure_environment(lab)
    tasks.require(lab, 1)
    with pytest.raises(PrerequisiteError) as raised:
        tasks.require(lab, 2)
    error = raised.value
    assert "cannot be done on this endpoint" in error.what
    assert "no registry to push to" in error.why.lower()
    assert "Tasks 1, 3 work here" in error.fix and "03_task3" in error.fix
    # Task 3 needs Task 1 only: Task 2, which this endpoint cannot serve, is skipped.
    with pytest.raises(PrerequisiteError, match=r"Task 1 \(repository"):
        tasks.require(lab, 3)
    with pytest.raises(PrerequisiteError, match="Task 4 .* cannot be done"):
        tasks.require(lab, 4)


def test_capabilities_are_probed_once_and_kept_across_kernels(lab: Lab, endpoint_url: str):
    endpoint.ensure_environment(lab)
    saved = load_state()[endpoint.STATE_KEY]  # a new kernel: only the state file remembers
    assert list(saved) == [f"{endpoint_url}|{REGION}"]
    cached = endpoint.capabilities(lab)
    assert cached.unserved == {2, 4, 5} and cached.container_instances == 2
    teardown.teardown(lab)
    assert load_state().get(endpoint.STATE_KEY) == {}


def test_teardown_removes_only_the_kits_and_is_safe_to_repeat(lab: Lab, endpoint_url: str):
    iam = _client(endpoint_url, "iam")
    iam.create_role(RoleName="someone-elses-role", AssumeRolePolicyDocument="{}")
    ecs = _client(endpoint_url, "ecs")
    ecs.create_cluster(clusterName="SomeoneElsesCluster")
    endpoint.ensure_environment(lab)
    elbv2 = _client(endpoint_url, "elbv2")
    vpc = lab.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    elbv2.create_target_group(Name="someone-elses-tg", Protocol="TCP", Port=81, VpcId=vpc["VpcId"])

    report = teardown.teardown(lab)
    assert report is not None and report.ok, report.describe()
    assert {"IAM role Ec2instanceRole", "ECS cluster ECSCluster"} <= set(report.deleted)
    again = teardown.teardown(lab)
    assert again is not None and again.ok and again.deleted == []

    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["someone-elses-role"]
    active = [
        c["clusterName"]
        for c in ecs.describe_clusters(clusters=[LAB.cluster, "SomeoneElsesCluster"])["clusters"]
        if c["status"] == "ACTIVE"
    ]
    assert active == ["SomeoneElsesCluster"]
    assert [t["TargetGroupName"] for t in elbv2.describe_target_groups()["TargetGroups"]] == [
        "someone-elses-tg"
    ]
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    ec2 = _client(endpoint_url, "ec2")
    states = [
        i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
    ]
    assert states and set(states) == {"terminated"}


def test_no_default_vpc_gets_a_tagged_vpc_that_teardown_removes(lab: Lab, endpoint_url: str):
    ec2 = _client(endpoint_url, "ec2")
    for vpc in ec2.describe_vpcs()["Vpcs"]:  # an endpoint without a default VPC
        for subnet in ec2.describe_subnets()["Subnets"]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        ec2.delete_vpc(VpcId=vpc["VpcId"])

    env = endpoint.ensure_environment(lab)
    assert env.complete, env.describe()
    vpc = ec2.describe_vpcs()["Vpcs"]
    assert len(vpc) == 1 and has_kit_tag(vpc[0]["Tags"])
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc[0]["VpcId"]]}])
    zones = {s["AvailabilityZone"] for s in subnets["Subnets"]}
    assert len(zones) == 2 and all(has_kit_tag(s["Tags"]) for s in subnets["Subnets"])

    report = teardown.teardown(lab)
    assert report.ok, report.describe()
    assert ec2.describe_vpcs()["Vpcs"] == [] and ec2.describe_subnets()["Subnets"] == []


def test_someone_elses_environment_is_used_and_never_changed(lab: Lab, endpoint_url: str):
    """A provider's untagged cluster and application load balancer: the kit adds no
    container instance to the one and no listener to the other, and says why."""
    ecs = _client(endpoint_url, "ecs")
    ecs.create_cluster(clusterName=LAB.cluster)
    ec2 = _client(endpoint_url, "ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    elbv2 = _client(endpoint_url, "elbv2")
    elbv2.create_load_balancer(  # no Type: moto builds an application load balancer
        Name=LAB.load_balancer, Subnets=[s["SubnetId"] for s in subnets["Subnets"][:2]]
    )

    env = endpoint.ensure_environment(lab)
    assert LAB.cluster not in env.kit_owned and LAB.load_balancer not in env.kit_owned
    assert env.container_instances == 0 and "not the kit's" in env.container_detail
    assert not env.listener and "not the kit's to change" in env.listener_detail
    lb = elbv2.describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0]
    assert elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == []
    reason = endpoint.capabilities(lab).support(4).reason
    assert "no container instances" in reason and "no TCP listener" in reason

    report = teardown.teardown(lab)
    assert report.ok, report.describe()
    assert elbv2.describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"]
    assert ecs.describe_clusters(clusters=[LAB.cluster])["clusters"][0]["status"] == "ACTIVE"
    assert any("not tagged by the kit" in s for s in report.skipped)


def test_a_tcp_listener_refused_is_reported_not_raised(lab: Lab, endpoint_url: str) -> None:
    """moto refuses TCP on what it builds as an application load balancer."""
    ec2 = _client(endpoint_url, "ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    _client(endpoint_url, "elbv2").create_load_balancer(
        Name=LAB.load_balancer,
        Subnets=[s["SubnetId"] for s in subnets["Subnets"][:2]],
        Tags=[{"Key": KIT_TAG_KEY, "Value": KIT_TAG_VALUE}],
    )
    env = endpoint.ensure_environment(lab)
    assert not env.listener
    assert "refused TCP" in env.listener_detail and "application" in env.listener_detail
    assert "no TCP listener" in endpoint.capabilities(lab).support(4).reason
    assert teardown.teardown(lab).ok


class _Registry(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(401 if self.path == "/v2/" else 404)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_registry_behind_the_endpoints_token_is_found(lab: Lab, monkeypatch) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    registry = f"http://127.0.0.1:{server.server_port}"
    real = lab.ecr.get_authorization_token

    def token(**kwargs: Any) -> dict[str, Any]:  # as an emulator with a registry answers
        reply = real(**kwargs)
        reply["authorizationData"][0]["proxyEndpoint"] = registry
        return reply

    monkeypatch.setattr(lab.ecr, "get_authorization_token", token)
    try:
        found = probes._probe_registry(lab)
    finally:
        server.shutdown()
    assert found == (registry, "", "")  # its token names this registry, not AWS's


def test_an_endpoint_naming_aws_registry_but_serving_v2_gets_task_2_on_its_port() -> None:
    caps = probes.EndpointCapabilities(
        "http://127.0.0.1:4566",
        "us-west-2",
        ecr_api=True,
        registry="http://127.0.0.1:4566",
        named_registry="123456789012.dkr.ecr.us-west-2.amazonaws.com",
    )
    support = caps.support(2)
    assert support.served
    assert "123456789012.dkr.ecr.us-west-2.amazonaws.com, which does not resolve" in support.reason
    assert "pushes to 127.0.0.1:4566/REPOSITORY-NAME" in support.reason
    uri = "123456789012.dkr.ecr.us-west-2.amazonaws.com/myrepo"
    assert probes.push_address_on(caps, uri) == "127.0.0.1:4566/myrepo"
    assert probes.push_address_on(caps, "127.0.0.1:4566/myrepo") == "127.0.0.1:4566/myrepo"
    # Without a registry there is nowhere else to push: the URI stays, and Task 2 is refused.
    bare = probes.EndpointCapabilities("http://127.0.0.1:5000", "us-west-2", ecr_api=True)
    assert probes.push_address_on(bare, uri) == uri and not bare.support(2).served


def test_loopback_endpoint_calls_bypass_http_proxies(lab: Lab, monkeypatch) -> None:
    """HTTP(S)_PROXY without NO_PROXY (a company proxy) must not get the signed calls."""
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(5)
    proxy.settimeout(0.5)
    address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, address)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    fresh = Lab.from_parameters(backend="endpoint")
    try:
        assert fresh.identity["account"] == "123456789012"
        with pytest.raises(socket.timeout):
            proxy.accept()  # nothing ever connected to the proxy
    finally:
        proxy.close()


def test_discover_instances_works_through_aws_endpoint_url(lab: Lab, endpoint_url: str) -> None:
    """Also on the "aws" backend with AWS_ENDPOINT_URL: no host prefix for a local endpoint."""
    aws_lab = Lab.from_parameters(backend="aws", region=REGION)
    sd = aws_lab.servicediscovery
    operation = sd.create_http_namespace(Name="labkit-probe")["OperationId"]
    namespace = sd.get_operation(OperationId=operation)["Operation"]["Targets"]["NAMESPACE"]
    service = sd.create_service(Name="web", NamespaceId=namespace)["Service"]
    sd.register_instance(
        ServiceId=service["Id"], InstanceId="one", Attributes={"AWS_INSTANCE_IPV4": "10.0.0.9"}
    )
    found = sd.discover_instances(NamespaceName="labkit-probe", ServiceName="web")["Instances"]
    assert [i["Attributes"]["AWS_INSTANCE_IPV4"] for i in found] == ["10.0.0.9"]


def test_labkit_cleanup_and_status_on_an_endpoint(lab: Lab, endpoint_url: str, capsys) -> None:
    from labkit.cli import main

    endpoint.ensure_environment(lab)
    lab.ecr.create_repository(repositoryName=LAB.repository, tags=lab.tags())
    assert main(["status", "-p", "backend", "endpoint"]) == 0
    status = capsys.readouterr().out
    assert "Ready for the lab." in status and "❌ Task 2" in status
    for _ in range(2):  # a second run finds nothing and still succeeds
        assert main(["cleanup", "-p", "backend", "endpoint"]) == 0
    out = capsys.readouterr().out
    assert "repository myrepo" in out and "IAM role ecsServiceRole" in out
    assert out.count("Nothing tagged as the kit's is left.") == 2
    assert _client(endpoint_url, "iam").list_roles()["Roles"] == []
    assert _client(endpoint_url, "ecr").describe_repositories()["repositories"] == []
