"""Target health as an NLB sees it, and what ECS does about it: through boto3, Docker and HTTP.

- the check reaches the application, not just the port Docker publishes;
- only healthy targets get traffic; ``initial`` ones none; all unhealthy: fail open;
- a task whose target stays unhealthy past the grace period is stopped and replaced;
- two tasks on one container instance keep their own targets (dynamic host ports).
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox.helpers import (
    Lab,
    create_service,
    describe,
    http_get,
    messages,
    register,
    remove_service,
    running_tasks,
    serves_page,
    unique,
    wait_for,
    wait_stable,
)

pytestmark = pytest.mark.sandbox

#: The sample image's busybox: the app, or a stand-in that never listens.
SLEEP = {"entryPoint": ["/bin/busybox"], "command": ["sleep", "3600"]}
#: httpd in the background, then sleep: killing httpd leaves the container running, deaf.
DEAF_LATER = {
    "entryPoint": ["/bin/busybox", "sh", "-c"],
    "command": [
        "/bin/busybox httpd -f -p 80 -h /www & echo $! > /httpd.pid; exec /bin/busybox sleep 3600"
    ],
}
#: Run in that container: the app stops listening.
KILL_APP = ["/bin/busybox", "sh", "-c", "kill $(/bin/busybox cat /httpd.pid)"]


def targets(lab: Lab, tg_arn: str | None = None) -> list[dict[str, Any]]:
    found = lab.client("elbv2").describe_target_health(
        TargetGroupArn=tg_arn or lab.env["target_group_arn"]
    )
    return found["TargetHealthDescriptions"]


def target_of(lab: Lab, task: dict[str, Any]) -> dict[str, Any] | None:
    """The lab target group's entry for ``task`` (its instance and host port)."""
    ci = lab.client("ecs").describe_container_instances(
        cluster=lab.cluster, containerInstances=[task["containerInstanceArn"]]
    )["containerInstances"][0]
    port = task["containers"][0]["networkBindings"][0]["hostPort"]
    for t in targets(lab):
        if t["Target"]["Id"] == ci["ec2InstanceId"] and t["Target"]["Port"] == port:
            return t
    return None


def only_task(lab: Lab, name: str) -> dict[str, Any]:
    return wait_for(lambda: (running_tasks(lab, name) or [None])[0], 60)


def answers_200(url: str) -> bool:
    try:
        return http_get(url, timeout=1.0)[0] == 200
    except OSError:
        return False


# the check reaches the application -----------------------------------------------------------
@pytest.mark.parametrize(
    "why, extra",
    [
        ("a container running sleep", SLEEP),
        (
            "a task definition whose containerPort is not the app's",
            {"portMappings": [{"hostPort": 0, "containerPort": 8080, "protocol": "tcp"}]},
        ),
    ],
)
def test_a_port_nothing_listens_on_is_unhealthy(lab: Lab, why: str, extra: dict) -> None:
    container_port = extra.get("portMappings", [{"containerPort": 80}])[0]["containerPort"]
    td = register(lab, host_port=0, **extra)
    name = unique()
    lab.client("ecs").create_service(
        cluster=lab.cluster,
        serviceName=name,
        taskDefinition=td,
        desiredCount=1,
        launchType="EC2",
        healthCheckGracePeriodSeconds=600,  # keep the task, so its target can be watched
        loadBalancers=[
            {
                "targetGroupArn": lab.env["target_group_arn"],
                "containerName": "ecs-sample",
                "containerPort": container_port,
            }
        ],
    )
    try:
        task = only_task(lab, name)
        # Docker publishes the port, and its proxy accepts a connect even so.
        states: set[str] = set()

        def unhealthy() -> dict[str, Any] | None:
            entry = target_of(lab, task)
            if entry:
                states.add(entry["TargetHealth"]["State"])
            return entry if entry and entry["TargetHealth"]["State"] == "unhealthy" else None

        entry = wait_for(unhealthy, 20)
        assert "healthy" not in states, (why, states)
        health = entry["TargetHealth"]
        assert health["Reason"] == "Target.FailedHealthChecks", health
        assert "nothing in the container listens" in health["Description"], health
        # Its only target fails its checks: the NLB fails open to it, and nothing answers.
        assert not answers_200(lab.lb_url)
        # A real app beside it turns healthy and gets every connection.
        real = unique()
        create_service(lab, real, register(lab, host_port=0))
        try:
            wait_stable(lab, real)
            # Its target turns healthy two checks later (initial targets get nothing).
            assert wait_for(lambda: serves_page(lab.lb_url), 10)
            assert all(serves_page(lab.lb_url) for _ in range(6))
            assert target_of(lab, task)["TargetHealth"]["State"] == "unhealthy"
        finally:
            remove_service(lab, real)
        # Within its grace period the scheduler leaves the task alone.
        assert running_tasks(lab, name)[0]["taskArn"] == task["taskArn"]
    finally:
        remove_service(lab, name)


# routing: healthy only, initial none, all unhealthy fail open --------------------------------
def _server(body: str, health_status: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            status = health_status if self.path == "/health" else 200
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def sick_and_well() -> Iterator[tuple[int, int]]:
    """Two loopback web servers: "sick" fails GET /health (503), "well" passes it."""
    sick, well = _server("sick", 503), _server("well", 200)
    try:
        yield sick.server_address[1], well.server_address[1]
    finally:
        for server in (sick, well):
            server.shutdown()
            server.server_close()


def test_only_healthy_targets_get_traffic_and_all_unhealthy_fail_open(
    lab: Lab, sick_and_well: tuple[int, int]
) -> None:
    sick, well = sick_and_well
    elbv2, ec2 = lab.client("elbv2"), lab.client("ec2")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [lab.env["vpc_id"]]}])
    lb = elbv2.create_load_balancer(
        Name=f"hc{uuid.uuid4().hex[:6]}",
        Type="network",
        Subnets=[s["SubnetId"] for s in subnets["Subnets"][:2]],
    )["LoadBalancers"][0]
    tg = elbv2.create_target_group(
        Name=f"hc{uuid.uuid4().hex[:6]}",
        Protocol="TCP",
        Port=80,
        VpcId=lab.env["vpc_id"],
        HealthCheckProtocol="HTTP",
        HealthCheckPath="/health",
        HealthyThresholdCount=3,
        UnhealthyThresholdCount=2,
    )["TargetGroups"][0]
    tg_arn = tg["TargetGroupArn"]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="TCP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )["Listeners"][0]

    def state(port: int) -> str | None:
        for t in targets(lab, tg_arn):
            if t["Target"]["Port"] == port:
                return t["TargetHealth"]["State"]
        return None

    def bodies(n: int = 4) -> list[str]:
        out = []
        for _ in range(n):
            try:
                out.append(http_get(url, timeout=1.0)[1])
            except OSError:
                out.append("(no answer)")
        return out

    try:
        url = wait_for(lambda: lab.sandbox.load_balancers.urls().get(lb["DNSName"]), 5)
        # An initial target gets no traffic, even alone.
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "127.0.0.1", "Port": sick}])
        assert state(sick) == "initial"
        assert not answers_200(url)
        assert state(sick) == "initial"
        # Every target unhealthy: the NLB fails open, and the sick one serves.
        wait_for(lambda: state(sick) == "unhealthy", 10)
        sick_health = targets(lab, tg_arn)[0]["TargetHealth"]
        assert sick_health["Reason"] == "Target.ResponseCodeMismatch"
        assert sick_health["Description"].startswith("Health checks failed with these codes: [503]")
        assert bodies() == ["sick"] * 4
        # A healthy target: it alone gets traffic; the unhealthy one none.
        elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": "127.0.0.1", "Port": well}])
        wait_for(lambda: state(well) == "healthy", 10)
        assert bodies(6) == ["well"] * 6
        assert state(sick) == "unhealthy"
    finally:
        elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
        elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elbv2.delete_target_group(TargetGroupArn=tg_arn)


# ECS replaces a task that fails its ELB health checks -----------------------------------------
def test_task_whose_app_stops_listening_is_replaced_in_ecs_words(lab: Lab) -> None:
    tg = lab.env["target_group_arn"]
    name = unique()
    create_service(
        lab, name, register(lab, host_port=0, **DEAF_LATER), healthCheckGracePeriodSeconds=2
    )
    try:
        assert describe(lab, name)["healthCheckGracePeriodSeconds"] == 2
        wait_stable(lab, name)
        assert wait_for(lambda: serves_page(lab.lb_url), 10)
        task = only_task(lab, name)
        (container,) = lab.containers(**{"com.amazonaws.ecs.task-arn": task["taskArn"]})
        # The app dies; its container (and so the task) keeps running.
        killed = container.exec_run(KILL_APP)
        assert killed.exit_code == 0, killed.output
        assert container.reload() or container.status == "running"
        ecs = lab.client("ecs")

        def stopped() -> dict[str, Any] | None:
            found = ecs.describe_tasks(cluster=lab.cluster, tasks=[task["taskArn"]])["tasks"][0]
            return found if found["desiredStatus"] == "STOPPED" else None

        old = wait_for(stopped, 20)
        assert old["stoppedReason"] == f"Task failed ELB health checks in (target-group {tg})"
        assert old["stopCode"] == "ServiceSchedulerInitiated"
        events = messages(lab, name)
        unhealthy = next(m for m in events if "is unhealthy in" in m)
        assert unhealthy.startswith(f"(service {name}) (task {task['taskArn'].split('/')[-1]}) ")
        assert f"is unhealthy in (target-group {tg}) due to (reason Health checks failed)" in (
            unhealthy
        )
        # A new task takes its place and the page answers again.
        new = wait_for(
            lambda: [t for t in running_tasks(lab, name) if t["taskArn"] != task["taskArn"]], 30
        )
        assert len(new) == 1
        assert wait_for(lambda: serves_page(lab.lb_url), 20)
    finally:
        remove_service(lab, name)


def test_grace_period_counts_from_task_start(lab: Lab) -> None:
    grace = 4
    name = unique()
    create_service(
        lab, name, register(lab, host_port=0, **SLEEP), healthCheckGracePeriodSeconds=grace
    )
    try:
        task = only_task(lab, name)
        started = time.monotonic()
        wait_for(
            lambda: (
                (target_of(lab, task) or {}).get("TargetHealth", {}).get("State") == "unhealthy"
            ),
            15,
        )
        # Unhealthy, yet still running: the scheduler ignores ELB health within the grace.
        assert time.monotonic() - started < grace - 1
        assert running_tasks(lab, name)[0]["taskArn"] == task["taskArn"]
        ecs = lab.client("ecs")
        old = wait_for(
            lambda: [
                t
                for t in ecs.describe_tasks(cluster=lab.cluster, tasks=[task["taskArn"]])["tasks"]
                if t["desiredStatus"] == "STOPPED"
            ],
            15,
        )[0]
        assert old["stoppedReason"].startswith("Task failed ELB health checks in (target-group ")
        assert (old["stoppingAt"] - old["startedAt"]).total_seconds() >= grace - 0.5
    finally:
        remove_service(lab, name)


# targets are instance and port ---------------------------------------------------------------
def test_two_tasks_on_one_instance_keep_their_own_targets(lab: Lab) -> None:
    ecs = lab.client("ecs")
    instances = ecs.list_container_instances(cluster=lab.cluster)["containerInstanceArns"]
    count = len(instances) + 1  # so one instance runs two tasks
    name = unique()
    create_service(lab, name, register(lab, host_port=0), count=count)
    try:
        wait_stable(lab, name)
        found = wait_for(
            lambda: (
                len(targets(lab)) == count
                and all(t["TargetHealth"]["State"] == "healthy" for t in targets(lab))
                and targets(lab)
            ),
            20,
        )
        keys = [(t["Target"]["Id"], t["Target"]["Port"]) for t in found]
        ids = [k[0] for k in keys]
        shared = next(i for i in ids if ids.count(i) == 2)
        assert len(set(keys)) == count, keys
        # Stop one of the two tasks on the shared instance: the other keeps its target.
        tasks = running_tasks(lab, name)
        on_shared = [
            t for t in tasks if (target_of(lab, t) or {}).get("Target", {}).get("Id") == shared
        ]
        assert len(on_shared) == 2
        victim, keeper = on_shared
        keeper_port = keeper["containers"][0]["networkBindings"][0]["hostPort"]
        ecs.stop_task(cluster=lab.cluster, task=victim["taskArn"], reason="test")
        wait_for(
            lambda: (
                ecs.describe_tasks(cluster=lab.cluster, tasks=[victim["taskArn"]])["tasks"][0][
                    "lastStatus"
                ]
                == "STOPPED"
            ),
            20,
        )
        kept = [
            t
            for t in targets(lab)
            if (t["Target"]["Id"], t["Target"]["Port"]) == (shared, keeper_port)
        ]
        assert kept and kept[0]["TargetHealth"]["State"] == "healthy"
        assert all(serves_page(lab.lb_url) for _ in range(count * 2))
    finally:
        remove_service(lab, name)
