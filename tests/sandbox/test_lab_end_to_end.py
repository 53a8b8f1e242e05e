"""The lab's data path for real: push → task definition → service → load balancer → page.

Driven only through boto3, the docker SDK and plain HTTP, as a learner's code would be.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.polling import wait_for
from labkit.sandbox import lifecycle
from tests.conftest import untag

pytestmark = pytest.mark.sandbox

REPO = "e2e-webapp"
INSTANCE_ROLE = "arn:aws:iam::123456789012:role/Ec2instanceRole"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str) -> tuple[int, str] | None:
    try:
        with _opener.open(url, timeout=2) as response:
            return response.status, response.read().decode()
    except OSError:
        return None


def policy_for_instance_role() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "my_repository_statement",
                    "Effect": "Allow",
                    "Principal": {"AWS": [INSTANCE_ROLE]},
                    "Action": [
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
                    ],
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def pushed_image(aws: Any, sample_image: str, docker_client: Any) -> Iterator[str]:
    ecr = aws("ecr")
    uri = ecr.create_repository(repositoryName=REPO)["repository"]["repositoryUri"]
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    docker_client.images.get(sample_image).tag(uri, "latest")
    docker_client.images.push(
        uri, tag="latest", auth_config={"username": user, "password": password}
    )
    yield f"{uri}:latest"
    untag(docker_client, [f"{uri}:latest"])  # tagged here, so the agent's pulls leave it


@pytest.fixture(scope="module")
def task_definition(aws: Any, pushed_image: str) -> str:
    return aws("ecs").register_task_definition(
        family="e2e-demo",
        containerDefinitions=[
            {
                "name": "ecs-sample",
                "image": pushed_image,
                "memory": 128,
                "cpu": 0,
                "essential": True,
                "portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "tcp"}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]


def service_events(ecs: Any, name: str) -> list[str]:
    service = ecs.describe_services(cluster="ECSCluster", services=[name])["services"][0]
    return [event["message"] for event in service["events"]]


def lab_load_balancer(aws: Any, sandbox: Any) -> tuple[str, str]:
    elbv2 = aws("elbv2")
    lb = elbv2.describe_load_balancers(Names=["Myloadbalancer"])["LoadBalancers"][0]
    tg = elbv2.describe_target_groups(Names=["myTargetgroup"])["TargetGroups"][0]
    url = lifecycle.status(sandbox.settings).load_balancers[lb["DNSName"]]
    return url, tg["TargetGroupArn"]


def test_repository_policy_gates_the_pull_and_the_page_comes_back_through_the_nlb(
    aws: Any, sandbox: Any, task_definition: str, docker_client: Any
) -> None:
    ecs, ecr = aws("ecs"), aws("ecr")
    url, tg_arn = lab_load_balancer(aws, sandbox)
    name = "MYSERVICE4242"

    # Without the Task 1 statement the container instance role may not pull.
    ecs.create_service(
        cluster="ECSCluster",
        serviceName=name,
        taskDefinition=task_definition,
        desiredCount=1,
        launchType="EC2",
        loadBalancers=[
            {"targetGroupArn": tg_arn, "containerName": "ecs-sample", "containerPort": 80}
        ],
    )
    try:

        def stopped_with_pull_error() -> list[dict]:
            arns = ecs.list_tasks(cluster="ECSCluster", serviceName=name, desiredStatus="STOPPED")[
                "taskArns"
            ]
            if not arns:
                return []
            tasks = ecs.describe_tasks(cluster="ECSCluster", tasks=arns)["tasks"]
            return [t for t in tasks if "CannotPullContainerError" in t.get("stoppedReason", "")]

        refused = wait_for(
            stopped_with_pull_error, what="a task stopped by CannotPullContainerError"
        )
        assert "ecr:BatchGetImage" in refused[0]["stoppedReason"]
        assert fetch(url) is None or fetch(url)[0] != 200

        # With it, the service reaches a steady state and the page comes back.
        ecr.set_repository_policy(repositoryName=REPO, policyText=policy_for_instance_role())
        started = time.monotonic()
        page = wait_for(
            lambda: (fetch(url) or (0, ""))[0] == 200 and fetch(url),
            timeout=90,
            what="the page through the load balancer",
        )
        print(f"\npolicy set -> first HTTP 200 through the NLB: {time.monotonic() - started:.2f} s")
        assert "Your application is now running on a container in Amazon ECS" in page[1]
        ecs.get_waiter("services_stable").wait(
            cluster="ECSCluster", services=[name], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        wait_for(
            lambda: any(
                f"(service {name}) has reached a steady state." in m
                for m in service_events(ecs, name)
            ),
            what="the steady-state event",
        )
        health = aws("elbv2").describe_target_health(TargetGroupArn=tg_arn)
        states = [d["TargetHealth"]["State"] for d in health["TargetHealthDescriptions"]]
        assert states == ["healthy"]

        # A killed container is replaced by the scheduler and the page comes back.
        running = ecs.list_tasks(cluster="ECSCluster", serviceName=name, desiredStatus="RUNNING")[
            "taskArns"
        ]
        assert len(running) == 1
        victims = docker_client.containers.list(
            filters={"label": f"labkit.sandbox.home={sandbox.home}"}
        )
        assert len(victims) == 1
        victims[0].kill()
        killed = time.monotonic()
        wait_for(
            lambda: fetch(url) is None or fetch(url)[0] != 200,
            timeout=15,
            every=0.05,
            what="the page to stop",
        )
        wait_for(
            lambda: [
                a
                for a in ecs.list_tasks(
                    cluster="ECSCluster", serviceName=name, desiredStatus="RUNNING"
                )["taskArns"]
                if a not in running
            ],
            what="the replacement task",
        )
        wait_for(lambda: (fetch(url) or (0, ""))[0] == 200, timeout=60, what="the page again")
        print(f"container killed -> serving again: {time.monotonic() - killed:.2f} s")

        # Deleting the statement makes new pulls fail again.
        ecr.delete_repository_policy(repositoryName=REPO)
        before = {
            t
            for t in ecs.list_tasks(
                cluster="ECSCluster", serviceName=name, desiredStatus="STOPPED"
            )["taskArns"]
        }
        ecs.update_service(cluster="ECSCluster", service=name, desiredCount=2)
        wait_for(
            lambda: [t for t in stopped_with_pull_error() if t["taskArn"] not in before],
            what="a new pull refused",
        )
    finally:
        ecs.update_service(cluster="ECSCluster", service=name, desiredCount=0)
        ecs.delete_service(cluster="ECSCluster", service=name, force=True)

    wait_for(
        lambda: (
            not docker_client.containers.list(
                filters={"label": f"labkit.sandbox.home={sandbox.home}"}
            )
        ),
        timeout=30,
        what="the service's containers to go",
    )
    wait_for(
        lambda: (
            not aws("elbv2").describe_target_health(TargetGroupArn=tg_arn)[
                "TargetHealthDescriptions"
            ]
        ),
        timeout=30,
        what="its targets to be deregistered",
    )
