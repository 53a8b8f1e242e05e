"""The sandbox ECS agent for real: services become containers behind the load balancer.

These tests run one in-process sandbox (moto API, real registry, agent, load balancers) on
free loopback ports and drive it only through boto3, the Docker SDK and plain HTTP.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

import pytest

from tests.sandbox.helpers import (
    Lab,
    create_service,
    describe,
    messages,
    register,
    remove_service,
    running_tasks,
    serves_page,
    unique,
    wait_for,
    wait_stable,
    wait_steady_event,
)

pytestmark = pytest.mark.sandbox

TASK_ARN = "com.amazonaws.ecs.task-arn"


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
        # It served between kills: it never counts as a service unable to start tasks.
        assert not any("consistently" in m for m in messages(lab, name))
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
    # busybox httpd runs as PID 1 without a SIGTERM handler, so SIGTERM does nothing: the
    # agent sends SIGKILL once the grace period is over, and ECS reports 128 + 9.
    assert final["containers"][0]["exitCode"] == 137
    assert not lab.containers(**{"com.amazonaws.ecs.task-arn": arn})


def test_stop_task_sends_sigterm_first_and_reports_the_exit_code(lab: Lab) -> None:
    ecs = lab.client("ecs")
    # A shell that exits with 3 on SIGTERM: the code shows the signal arrived, and in time.
    script = "trap 'exit 3' TERM; while true; do /bin/busybox sleep 0.05; done"
    td = register(lab, host_port=0, entryPoint=["/bin/busybox", "sh", "-c", script])
    arn = ecs.run_task(cluster=lab.cluster, taskDefinition=td, launchType="EC2")["tasks"][0][
        "taskArn"
    ]

    def status() -> dict:
        return ecs.describe_tasks(cluster=lab.cluster, tasks=[arn])["tasks"][0]

    wait_for(lambda: status()["lastStatus"] == "RUNNING", 30)
    ecs.stop_task(cluster=lab.cluster, task=arn, reason="done")
    final = wait_for(lambda: status() if status()["lastStatus"] == "STOPPED" else None, 30)
    assert final["containers"][0]["exitCode"] == 3
    assert not lab.containers(**{"com.amazonaws.ecs.task-arn": arn})


def test_a_task_stopped_while_its_image_is_pulled_starts_no_container(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    ecs = lab.client("ecs")
    td = register(lab, host_port=0)
    runtime = lab.sandbox.agent.lifecycle.runtime
    pulled, release = threading.Event(), threading.Event()
    real_pull = runtime._pull

    def pull_then_hold(client: Any, image: str) -> str:  # the real pull, held at its end
        reference = real_pull(client, image)
        pulled.set()
        release.wait(30)
        return reference

    monkeypatch.setattr(runtime, "_pull", pull_then_hold)
    since = int(time.time()) - 1
    arn = ecs.run_task(cluster=lab.cluster, taskDefinition=td, launchType="EC2")["tasks"][0][
        "taskArn"
    ]
    try:
        assert pulled.wait(30), "the agent never pulled the task's image"
        ecs.stop_task(cluster=lab.cluster, task=arn, reason="stopped during the pull")
    finally:
        release.set()

    def status() -> dict:
        return ecs.describe_tasks(cluster=lab.cluster, tasks=[arn])["tasks"][0]

    final = wait_for(lambda: status() if status()["lastStatus"] == "STOPPED" else None, 30)
    assert final["stoppedReason"] == "stopped during the pull"
    assert final["containers"][0]["lastStatus"] == "STOPPED"
    assert "exitCode" not in final["containers"][0]
    created = lab.docker.api.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"type": "container", "event": "create", "label": f"{TASK_ARN}={arn}"},
        decode=True,
    )
    assert not list(created), "a container was created for a task already stopped"


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
        DnsConfig={"DnsRecords": [{"Type": "SRV", "TTL": 10}]},  # bridge mode: ECS wants SRV
    )["Service"]
    name = unique()
    entry = {"registryArn": registry["Arn"], "containerName": "ecs-sample", "containerPort": 80}
    create_service(lab, name, register(lab), serviceRegistries=[entry])
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


def _serving_during(lab: Lab, until: Any, timeout: float) -> tuple[float, int, int]:
    """Poll the load balancer until ``until()``; (seconds, pages served, requests failed)."""
    t0, served, failed = time.monotonic(), 0, 0
    while not until():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not done after {timeout}s")
        if serves_page(lab.lb_url):
            served += 1
        else:
            failed += 1
        time.sleep(0.1)
    return time.monotonic() - t0, served, failed


def test_deployment_configuration_defaults_and_updates(lab: Lab) -> None:
    name = unique()
    create_service(lab, name, register(lab))
    try:
        config = describe(lab, name)["deploymentConfiguration"]
        assert (config["minimumHealthyPercent"], config["maximumPercent"]) == (100, 200)
        lab.client("ecs").update_service(
            cluster=lab.cluster,
            service=name,
            deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 150},
        )
        config = describe(lab, name)["deploymentConfiguration"]
        assert (config["minimumHealthyPercent"], config["maximumPercent"]) == (50, 150)
        # 100/100: no task may stop before a new one runs, none may start before one stops.
        ecs = lab.client("ecs")
        wait_steady_event(lab, name)
        ecs.update_service(
            cluster=lab.cluster,
            service=name,
            taskDefinition=register(lab, environment=[{"name": "REVISION", "value": "5"}]),
            deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 100},
        )
        wait_for(lambda: any("unable to stop or start" in m for m in messages(lab, name)), 10)
        assert messages(lab, name)[0] == (
            f"(service {name}) was unable to stop or start tasks during a deployment because "
            "of the service deployment configuration. Update the minimumHealthyPercent or "
            "maximumPercent value and try again."
        )
    finally:
        remove_service(lab, name)


def test_rollout_with_defaults_and_no_room_waits_with_the_placement_event(lab: Lab) -> None:
    """100/200, two tasks on two instances, both on host port 80: ECS cannot place, waits."""
    name = unique()
    create_service(lab, name, register(lab), count=2)
    try:
        wait_steady_event(lab, name)  # both targets healthy: both count toward the minimum
        old = {t["taskArn"] for t in running_tasks(lab, name)}
        second = register(lab, environment=[{"name": "REVISION", "value": "3"}])
        t0 = time.monotonic()
        lab.client("ecs").update_service(cluster=lab.cluster, service=name, taskDefinition=second)
        wait_for(lambda: any("unable to place" in m for m in messages(lab, name)), 20)
        print(f"\n100/200 rollout: placement event after {time.monotonic() - t0:.2f}s")
        message = next(m for m in messages(lab, name) if "unable to place" in m)
        assert message.startswith(
            f"(service {name}) was unable to place a task because no container instance met "
            "all of its requirements. The closest matching (container-instance "
        )
        assert "is already using a port required by your task." in message
        time.sleep(5)  # and it keeps waiting: nothing old is stopped, nothing new runs
        service = describe(lab, name)
        primary, active = service["deployments"]
        assert (primary["status"], primary["taskDefinition"]) == ("PRIMARY", second)
        assert (primary["runningCount"], primary["rolloutState"]) == (0, "IN_PROGRESS")
        assert (active["status"], active["runningCount"]) == ("ACTIVE", 2)
        assert {t["taskArn"] for t in running_tasks(lab, name)} == old
        assert serves_page(lab.lb_url)
        # Lowering the minimum lets the same rollout finish.
        lab.client("ecs").update_service(
            cluster=lab.cluster,
            service=name,
            deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 200},
        )
        wait_stable(lab, name)
        assert {t["taskDefinitionArn"] for t in running_tasks(lab, name)} == {second}
    finally:
        remove_service(lab, name)


def test_rollout_with_minimum_healthy_50_replaces_one_task_at_a_time(lab: Lab) -> None:
    name = unique()
    create_service(
        lab,
        name,
        register(lab),
        count=2,
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 200},
    )
    try:
        wait_steady_event(lab, name)
        old = {t["taskArn"] for t in running_tasks(lab, name)}
        second = register(lab, environment=[{"name": "REVISION", "value": "4"}])
        ecs = lab.client("ecs")
        ecs.update_service(cluster=lab.cluster, service=name, taskDefinition=second)

        def rolled_out() -> bool:
            service = describe(lab, name)
            return (
                len(service["deployments"]) == 1
                and service["deployments"][0]["rolloutState"] == "COMPLETED"
            )

        seconds, served, failed = _serving_during(lab, rolled_out, 120)
        print(f"\n50/200 rollout of 2 tasks: {seconds:.2f}s; pages {served}, failed {failed}")
        assert failed == 0, "the service must keep serving while it rolls"
        tasks = running_tasks(lab, name)
        assert len(tasks) == 2 and not old & {t["taskArn"] for t in tasks}
        assert {t["taskDefinitionArn"] for t in tasks} == {second}
        assert len({t["containerInstanceArn"] for t in tasks}) == 2
        events = messages(lab, name)
        # One old task stopped, one new started, then the other: never both old at once.
        stops = [m for m in reversed(events) if "has stopped 1 running tasks" in m]
        starts = [m for m in reversed(events) if "has started 1 tasks" in m]
        assert len(stops) >= 2 and len(starts) >= 2
        order = [m for m in reversed(events) if m in stops[-2:] or m in starts[-2:]]
        assert ["stopped" in m for m in order] == [True, False, True, False]
    finally:
        remove_service(lab, name)


def test_circuit_breaker_fails_the_deployment_and_rolls_back(lab: Lab) -> None:
    name = unique()
    first = register(lab)
    create_service(
        lab,
        name,
        first,
        deploymentConfiguration={
            "minimumHealthyPercent": 100,
            "maximumPercent": 200,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        },
    )
    try:
        wait_steady_event(lab, name)  # the deployment completed: one to roll back to
        (good,) = running_tasks(lab, name)
        # The new revision's app exits at once: every task of it fails.
        broken = register(lab, entryPoint=["/bin/busybox", "false"])
        ecs = lab.client("ecs")
        ecs.update_service(cluster=lab.cluster, service=name, taskDefinition=broken)
        failed_id = describe(lab, name)["deployments"][0]["id"]
        wait_for(lambda: any("deployment failed" in m for m in messages(lab, name)), 60)
        events = messages(lab, name)
        assert (
            f"(service {name}) (deployment {failed_id}) deployment failed: tasks failed to start."
            in events
        )
        assert any(m.startswith(f"(service {name}) rolling back to deployment ") for m in events)
        wait_steady_event(lab, name)
        service = describe(lab, name)
        assert service["taskDefinition"] == first
        assert service["deployments"][0]["rolloutState"] == "COMPLETED"
        (task,) = running_tasks(lab, name)
        assert task["taskDefinitionArn"] == first
        assert good["taskArn"] != task["taskArn"]  # a rollback is a new deployment
        assert serves_page(lab.lb_url)
    finally:
        remove_service(lab, name)


def test_circuit_breaker_without_rollback_marks_the_deployment_failed(lab: Lab) -> None:
    name = unique()
    create_service(
        lab,
        name,
        register(lab),
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": False},
        },
    )
    try:
        wait_steady_event(lab, name)  # the deployment completed: one to roll back to
        (good,) = running_tasks(lab, name)
        broken = register(lab, entryPoint=["/bin/busybox", "false"])
        ecs = lab.client("ecs")
        ecs.update_service(cluster=lab.cluster, service=name, taskDefinition=broken)
        wait_for(lambda: describe(lab, name)["deployments"][0]["rolloutState"] == "FAILED", 60)
        primary = describe(lab, name)["deployments"][0]
        assert primary["rolloutStateReason"] == (
            "ECS deployment circuit breaker: tasks failed to start."
        )
        assert primary["failedTasks"] >= 3
        time.sleep(2)  # no more launches; the old task keeps serving
        assert [t["taskArn"] for t in running_tasks(lab, name)] == [good["taskArn"]]
        assert describe(lab, name)["deployments"][0]["failedTasks"] == primary["failedTasks"]
        assert serves_page(lab.lb_url)
    finally:
        remove_service(lab, name)


def test_run_task_that_cannot_place_reports_failures(lab: Lab) -> None:
    ecs = lab.client("ecs")
    instances = set(ecs.list_container_instances(cluster=lab.cluster)["containerInstanceArns"])
    port80 = register(lab)
    reply = ecs.run_task(cluster=lab.cluster, taskDefinition=port80, count=3, launchType="EC2")
    arns = [t["taskArn"] for t in reply["tasks"]]
    try:
        assert len(arns) == 2  # one per instance: each has one port 80
        assert {f["arn"] for f in reply["failures"]} == instances
        assert {f["reason"] for f in reply["failures"]} == {"RESOURCE:PORTS"}
        huge = register(lab, memory=10**6)
        reply = ecs.run_task(cluster=lab.cluster, taskDefinition=huge, launchType="EC2")
        assert reply["tasks"] == []
        assert {(f["arn"], f["reason"]) for f in reply["failures"]} == {
            (arn, "RESOURCE:MEMORY") for arn in instances
        }
        greedy = register(lab, host_port=0, cpu=10**6)
        reply = ecs.run_task(cluster=lab.cluster, taskDefinition=greedy, launchType="EC2")
        assert {f["reason"] for f in reply["failures"]} == {"RESOURCE:CPU"}
    finally:
        for arn in arns:
            ecs.stop_task(cluster=lab.cluster, task=arn)
        for arn in arns:
            wait_for(lambda: not lab.containers(**{"com.amazonaws.ecs.task-arn": arn}), 30)  # noqa: B023
