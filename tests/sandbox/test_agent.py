"""The sandbox ECS agent for real: services become containers behind the load balancer.

These tests run one in-process sandbox (moto API, real registry, agent, load balancers) on
free loopback ports and drive it only through boto3, the Docker SDK and plain HTTP.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.sandbox

INSTANCE_ROLE_ARN = "arn:aws:iam::123456789012:role/Ec2instanceRole"
_LAB: dict[str, Any] = {}


class Lab:
    """An in-process sandbox plus what the tests need to reach it."""

    def __init__(self, sandbox: Any, image_uri: str, docker: Any) -> None:
        self.sandbox = sandbox
        self.settings = sandbox.settings
        self.image_uri = image_uri
        self.docker = docker
        self.env = sandbox.environment
        self.cluster = "ECSCluster"

    def client(self, service: str) -> Any:
        from botocore.config import Config

        return (
            self.sandbox.client(service)
            if service != "servicediscovery"
            else (
                __import__("boto3").client(
                    service,
                    endpoint_url=self.settings.api_url,
                    region_name=self.settings.region,
                    aws_access_key_id="labkit-sandbox",
                    aws_secret_access_key="labkit-sandbox-secret",
                    # Cloud Map's data-plane host prefix does not resolve locally.
                    config=Config(inject_host_prefix=False),
                )
            )
        )

    @property
    def lb_url(self) -> str:
        urls = json.loads(http_get(f"{self.settings.api_url}/_labkit/status")[1])["load_balancers"]
        return urls[self.env["load_balancer_dns"]]

    def containers(self, **labels: str) -> list[Any]:
        wanted = [f"labkit.sandbox.home={self.settings.home}"]
        wanted += [f"{k}={v}" for k, v in labels.items()]
        return self.docker.containers.list(all=True, filters={"label": wanted})


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def wait_for(check: Callable[[], Any], timeout: float = 60.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # not yet reachable
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s; last result: {last!r}")


def serves_page(url: str) -> bool:
    try:
        status, body = http_get(url, timeout=1.0)
    except OSError:
        return False
    return status == 200 and "<html" in body.lower()


def _start_lab(tmp_home: Any) -> Lab:
    import docker as docker_sdk

    from labkit.images import build_sample_image
    from labkit.sandbox.context import Settings
    from labkit.sandbox.server import Sandbox
    from tests.conftest import require_data_plane, sandbox_settings

    require_data_plane()
    base: Settings = sandbox_settings(tmp_home)
    sandbox = Sandbox(
        Settings(
            home=tmp_home, **{k: getattr(base, k) for k in ("api_port", "registry_port", "lb_port")}
        )
    )
    sandbox.start()
    client = docker_sdk.from_env(timeout=120)
    build_sample_image("labkit-test-sample:latest", client=client)
    ecr = sandbox.client("ecr")
    repo = ecr.create_repository(repositoryName="sample")["repository"]
    ecr.set_repository_policy(
        repositoryName="sample",
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "my_repository_statement",
                        "Effect": "Allow",
                        "Principal": {"AWS": INSTANCE_ROLE_ARN},
                        "Action": ["ecr:*"],
                    }
                ],
            }
        ),
    )
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    uri = repo["repositoryUri"]
    client.images.get("labkit-test-sample:latest").tag(uri, "latest")
    client.images.push(uri, tag="latest", auth_config={"username": user, "password": password})
    client.images.remove(f"{uri}:latest")  # so the agent's pull really pulls
    return Lab(sandbox, f"{uri}:latest", client)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One in-process sandbox for these tests; at the end the agent must leave no container."""
    if "lab" not in _LAB:
        _LAB["lab"] = _start_lab(tmp_path_factory.mktemp("agent-home"))
        _LAB["users"] = 0
    _LAB["users"] += 1
    lab = _LAB["lab"]
    yield lab
    _LAB["users"] -= 1
    if _LAB["users"] == 0:
        _LAB.pop("lab")
        lab.sandbox.agent.stop()
        left = lab.containers()
        lab.sandbox.stop()
        assert left == [], f"the agent left containers behind: {left}"


# helpers over the API ------------------------------------------------------------------------
def register(lab: Lab, image: str | None = None, host_port: int = 80, **extra: Any) -> str:
    cdef = {
        "name": "ecs-sample",
        "image": image or lab.image_uri,
        "memory": 128,
        "cpu": 0,
        "essential": True,
        "portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}],
    }
    cdef.update(extra)
    ecs = lab.client("ecs")
    td = ecs.register_task_definition(family="ecs-demo", containerDefinitions=[cdef])
    return td["taskDefinition"]["taskDefinitionArn"]


def create_service(lab: Lab, name: str, td_arn: str, count: int = 1, **extra: Any) -> dict:
    ecs = lab.client("ecs")
    return ecs.create_service(
        cluster=lab.cluster,
        serviceName=name,
        taskDefinition=td_arn,
        desiredCount=count,
        launchType="EC2",
        role="ecsServiceRole",
        loadBalancers=[
            {
                "targetGroupArn": lab.env["target_group_arn"],
                "containerName": "ecs-sample",
                "containerPort": 80,
            }
        ],
        **extra,
    )["service"]


def describe(lab: Lab, name: str) -> dict:
    return lab.client("ecs").describe_services(cluster=lab.cluster, services=[name])["services"][0]


def running_tasks(lab: Lab, name: str) -> list[dict]:
    ecs = lab.client("ecs")
    arns = ecs.list_tasks(cluster=lab.cluster, serviceName=name)["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=lab.cluster, tasks=arns)["tasks"]
    return [t for t in tasks if t["lastStatus"] == "RUNNING"]


def messages(lab: Lab, name: str) -> list[str]:
    return [e["message"] for e in describe(lab, name)["events"]]


def remove_service(lab: Lab, name: str) -> None:
    """Scale to 0 and delete, as the lab's cleanup does; wait until its containers are gone."""
    ecs = lab.client("ecs")
    arns = ecs.list_tasks(cluster=lab.cluster, serviceName=name)["taskArns"]
    ecs.update_service(cluster=lab.cluster, service=name, desiredCount=0)
    ecs.delete_service(cluster=lab.cluster, service=name)
    for arn in arns:
        wait_for(lambda: not lab.containers(**{"com.amazonaws.ecs.task-arn": arn}), 30)  # noqa: B023
    wait_for(lambda: not ecs.list_tasks(cluster=lab.cluster, serviceName=name)["taskArns"], 30)


def wait_steady_event(lab: Lab, name: str) -> None:
    steady = f"(service {name}) has reached a steady state."
    wait_for(lambda: messages(lab, name)[0] == steady, 30)


def wait_stable(lab: Lab, name: str, delay: float = 0.5, attempts: int = 120) -> None:
    lab.client("ecs").get_waiter("services_stable").wait(
        cluster=lab.cluster,
        services=[name],
        WaiterConfig={"Delay": delay, "MaxAttempts": attempts},
    )


def unique(prefix: str = "MYSERVICE") -> str:
    return f"{prefix}{uuid.uuid4().int % 100000}"


# tests ---------------------------------------------------------------------------------------
def test_service_serves_the_page_through_the_load_balancer(lab: Lab) -> None:
    td = register(lab)
    timings = []
    for _ in range(3):
        name = unique()
        t0 = time.monotonic()
        create_service(lab, name, td)
        try:
            wait_for(lambda: serves_page(lab.lb_url), 60, every=0.05)  # noqa: B023
            timings.append(time.monotonic() - t0)
            wait_stable(lab, name)
            wait_steady_event(lab, name)  # written once the target is healthy
            events = messages(lab, name)
            assert any(
                m.startswith(f"(service {name}) has started 1 tasks: (task ") for m in events
            )
            assert (
                f"(service {name}) registered 1 targets in (target-group "
                f"{lab.env['target_group_arn']})" in events
            )
            (task,) = running_tasks(lab, name)
            assert task["group"] == f"service:{name}"
            binding = task["containers"][0]["networkBindings"][0]
            assert (binding["containerPort"], binding["hostPort"]) == (80, 80)
        finally:
            remove_service(lab, name)
    print(
        f"\ncreate-service -> first HTTP 200: {[round(t, 2) for t in timings]} "
        f"median {statistics.median(timings):.2f}s"
    )


def test_killed_container_is_replaced_and_serves_again(lab: Lab) -> None:
    name = unique()
    create_service(lab, name, register(lab))
    try:
        wait_stable(lab, name)
        timings = []
        for _ in range(3):
            (task,) = running_tasks(lab, name)
            (container,) = lab.containers(**{"com.amazonaws.ecs.task-arn": task["taskArn"]})
            t0 = time.monotonic()
            container.kill()
            wait_for(
                lambda: (
                    running_tasks(lab, name)
                    and running_tasks(lab, name)[0]["taskArn"] != task["taskArn"]  # noqa: B023
                ),
                30,
                0.05,
            )
            wait_for(lambda: serves_page(lab.lb_url), 30, every=0.05)
            timings.append(time.monotonic() - t0)
            old = lab.client("ecs").describe_tasks(cluster=lab.cluster, tasks=[task["taskArn"]])
            stopped = old["tasks"][0]
            assert stopped["lastStatus"] == "STOPPED"
            assert stopped["stoppedReason"] == "Essential container in task exited"
            assert stopped["stopCode"] == "EssentialContainerExited"
            wait_stable(lab, name)
        print(
            f"\nkill -> serving again: {[round(t, 2) for t in timings]} "
            f"median {statistics.median(timings):.2f}s"
        )
    finally:
        remove_service(lab, name)


def test_third_task_cannot_place_on_two_instances_with_host_port_80(lab: Lab) -> None:
    name = unique()
    create_service(lab, name, register(lab), count=3)
    try:
        wait_for(lambda: len(running_tasks(lab, name)) == 2, 60)
        wait_for(lambda: any("was unable to place a task" in m for m in messages(lab, name)), 10)
        message = next(m for m in messages(lab, name) if "was unable to place" in m)
        assert message.startswith(
            f"(service {name}) was unable to place a task because no container instance met "
            "all of its requirements. The closest matching (container-instance "
        )
        assert "is already using a port required by your task." in message
        service = describe(lab, name)
        assert (service["desiredCount"], service["runningCount"]) == (3, 2)
        instances = {t["containerInstanceArn"] for t in running_tasks(lab, name)}
        assert len(instances) == 2
        # Scaling back to two makes the service steady again.
        lab.client("ecs").update_service(cluster=lab.cluster, service=name, desiredCount=2)
        wait_stable(lab, name)
    finally:
        remove_service(lab, name)


def test_rolling_update_to_a_new_revision(lab: Lab) -> None:
    name = unique()
    first = register(lab)
    create_service(lab, name, first)
    try:
        wait_stable(lab, name)
        (old_task,) = running_tasks(lab, name)
        second = register(lab, environment=[{"name": "REVISION", "value": "2"}])
        ecs = lab.client("ecs")
        ecs.update_service(cluster=lab.cluster, service=name, taskDefinition=second)
        service = describe(lab, name)
        assert [d["status"] for d in service["deployments"]] == ["PRIMARY", "ACTIVE"]
        assert service["deployments"][0]["taskDefinition"] == second
        wait_stable(lab, name)
        (new_task,) = running_tasks(lab, name)
        assert new_task["taskDefinitionArn"] == second
        # Start before stop: the new task went to the other instance (host port 80 is free).
        assert new_task["containerInstanceArn"] != old_task["containerInstanceArn"]
        old = ecs.describe_tasks(cluster=lab.cluster, tasks=[old_task["taskArn"]])["tasks"][0]
        assert old["lastStatus"] == "STOPPED"
        assert old["stoppedReason"].startswith("Scaling activity initiated by (deployment ")
        events = messages(lab, name)
        assert (
            f"(service {name}) has stopped 1 running tasks: "
            f"(task {old_task['taskArn'].split('/')[-1]})." in events
        )
        assert any(m.startswith(f"(service {name}) deregistered 1 targets in") for m in events)
        (container,) = lab.containers(**{"com.amazonaws.ecs.task-arn": new_task["taskArn"]})
        assert "REVISION=2" in container.attrs["Config"]["Env"]
        assert serves_page(lab.lb_url)
    finally:
        remove_service(lab, name)


def test_delete_service_stops_its_containers(lab: Lab) -> None:
    name = unique()
    create_service(lab, name, register(lab), count=2)
    wait_stable(lab, name)
    arns = [t["taskArn"] for t in running_tasks(lab, name)]
    assert len(lab.containers(**{"com.amazonaws.ecs.cluster": lab.cluster})) == 2
    ecs = lab.client("ecs")
    ecs.delete_service(cluster=lab.cluster, service=name, force=True)
    wait_for(lambda: not lab.containers(**{"com.amazonaws.ecs.cluster": lab.cluster}), 30)
    tasks = ecs.describe_tasks(cluster=lab.cluster, tasks=arns)["tasks"]
    assert {t["lastStatus"] for t in tasks} == {"STOPPED"}
    assert ecs.list_tasks(cluster=lab.cluster, serviceName=name)["taskArns"] == []


def test_run_task_goes_pending_running_stopped(lab: Lab) -> None:
    ecs = lab.client("ecs")
    td = register(lab, host_port=0)
    task = ecs.run_task(cluster=lab.cluster, taskDefinition=td, launchType="EC2")["tasks"][0]
    assert task["lastStatus"] == "PENDING"
    arn = task["taskArn"]
    running = wait_for(
        lambda: [
            t
            for t in ecs.describe_tasks(cluster=lab.cluster, tasks=[arn])["tasks"]
            if t["lastStatus"] == "RUNNING"
        ],
        30,
    )[0]
    binding = running["containers"][0]["networkBindings"][0]
    assert binding["hostPort"] > 1024  # dynamic host port: the real loopback one
    assert serves_page(f"http://127.0.0.1:{binding['hostPort']}")
    stopped = ecs.stop_task(cluster=lab.cluster, task=arn, reason="done")["task"]
    assert stopped["desiredStatus"] == "STOPPED"
    wait_for(
        lambda: (
            ecs.describe_tasks(cluster=lab.cluster, tasks=[arn])["tasks"][0]["lastStatus"]
            == "STOPPED"
        ),
        30,
    )
    final = ecs.describe_tasks(cluster=lab.cluster, tasks=[arn])["tasks"][0]
    assert (final["stoppedReason"], final["stopCode"]) == ("done", "UserInitiated")
    assert not lab.containers(**{"com.amazonaws.ecs.task-arn": arn})


def test_pull_refused_without_repository_policy(lab: Lab) -> None:
    ecr = lab.client("ecr")
    repo = ecr.create_repository(repositoryName=f"nopolicy{uuid.uuid4().hex[:6]}")["repository"]
    name = unique()
    create_service(lab, name, register(lab, image=f"{repo['repositoryUri']}:latest"))
    try:
        wait_for(lambda: any("CannotPullContainerError" in m for m in messages(lab, name)), 30)
        ecs = lab.client("ecs")
        arns = ecs.list_tasks(cluster=lab.cluster, serviceName=name, desiredStatus="STOPPED")
        task = ecs.describe_tasks(cluster=lab.cluster, tasks=arns["taskArns"][:1])["tasks"][0]
        assert task["stoppedReason"].startswith("CannotPullContainerError:")
        assert "not authorized to perform: ecr:BatchGetImage" in task["stoppedReason"]
        # Backing off, not spinning: few attempts within a few seconds.
        time.sleep(3)
        attempts = ecs.list_tasks(cluster=lab.cluster, serviceName=name, desiredStatus="STOPPED")
        assert len(attempts["taskArns"]) <= 4
    finally:
        remove_service(lab, name)


def test_service_discovery_registers_the_task(lab: Lab) -> None:
    sd = lab.client("servicediscovery")
    ns_name = f"ns{uuid.uuid4().hex[:6]}.local"
    sd.create_private_dns_namespace(Name=ns_name, Vpc=lab.env["vpc_id"])
    ns = next(n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == ns_name)
    registry = sd.create_service(
        Name="web",
        NamespaceId=ns["Id"],
        DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]},
    )["Service"]
    name = unique()
    create_service(lab, name, register(lab), serviceRegistries=[{"registryArn": registry["Arn"]}])
    try:
        wait_stable(lab, name)
        (task,) = running_tasks(lab, name)
        found = sd.discover_instances(NamespaceName=ns_name, ServiceName="web")["Instances"]
        assert [i["InstanceId"] for i in found] == [task["taskArn"].split("/")[-1]]
        attrs = found[0]["Attributes"]
        assert attrs["AWS_INSTANCE_IPV4"] == "127.0.0.1"
        assert serves_page(f"http://127.0.0.1:{attrs['AWS_INSTANCE_PORT']}")
        remove_service(lab, name)
        assert sd.discover_instances(NamespaceName=ns_name, ServiceName="web")["Instances"] == []
    finally:
        if describe(lab, name)["status"] == "ACTIVE":
            remove_service(lab, name)


def test_rolling_update_without_room_stops_then_starts(lab: Lab) -> None:
    """Two tasks on two instances, both on host port 80: no room to start first."""
    name = unique()
    create_service(lab, name, register(lab), count=2)
    try:
        wait_stable(lab, name)
        old = {t["taskArn"] for t in running_tasks(lab, name)}
        second = register(lab, environment=[{"name": "REVISION", "value": "3"}])
        lab.client("ecs").update_service(cluster=lab.cluster, service=name, taskDefinition=second)
        wait_stable(lab, name)
        wait_steady_event(lab, name)
        tasks = running_tasks(lab, name)
        assert len(tasks) == 2
        assert {t["taskDefinitionArn"] for t in tasks} == {second}
        assert not old & {t["taskArn"] for t in tasks}
        assert len(describe(lab, name)["deployments"]) == 1
        assert serves_page(lab.lb_url)
    finally:
        remove_service(lab, name)
