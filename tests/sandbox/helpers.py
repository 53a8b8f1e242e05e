"""Shared by the in-process sandbox tests: the ``Lab`` handle and helpers over the API."""

from __future__ import annotations

import base64
import functools
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from benchmarks import polling

INSTANCE_ROLE_ARN = "arn:aws:iam::123456789012:role/Ec2instanceRole"


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
        if service != "servicediscovery":
            return self.sandbox.client(service)
        import boto3
        from botocore.config import Config

        from labkit.sandbox import lifecycle

        env = lifecycle.env(self.settings)  # the sandbox's own keys: it refuses any others
        return boto3.client(
            service,
            endpoint_url=self.settings.api_url,
            region_name=self.settings.region,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            # Cloud Map's data-plane host prefix does not resolve locally.
            config=Config(inject_host_prefix=False),
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


#: Until the deadline, an exception from the check means "not yet" (an endpoint still starting).
wait_for = functools.partial(polling.wait_for, ignoring=(Exception,))


def serves_page(url: str) -> bool:
    try:
        status, body = http_get(url, timeout=1.0)
    except OSError:
        return False
    return status == 200 and "<html" in body.lower()


def start_lab(tmp_home: Any) -> Lab:
    import docker as docker_sdk

    from labkit.images import build_sample_image
    from labkit.sandbox.context import Settings
    from labkit.sandbox.server import Sandbox
    from tests.conftest import require_data_plane

    require_data_plane()
    sandbox = Sandbox(Settings.on_free_ports(tmp_home))
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
