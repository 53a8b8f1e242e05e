"""Failures in ECS's words (notebooks/docs/parity.md): what a learner will search for on a real
account.

Real pulls from the sandbox registry by the agent, real placement over the lab's two
container instances; each stopped task's ``stoppedReason`` and container ``reason``, and
each service event, is compared with the text ECS writes.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.sandbox.helpers import Lab, describe, messages, register, remove_service, wait_for

pytestmark = pytest.mark.sandbox

ACCOUNT = "123456789012"


def unique() -> str:
    return f"parity{uuid.uuid4().hex[:6]}"


def stopped_task(lab: Lab, image: str) -> dict[str, Any]:
    ecs = lab.client("ecs")
    td = register(lab, image=image, host_port=0)
    arn = ecs.run_task(cluster=lab.cluster, taskDefinition=td, launchType="EC2")["tasks"][0][
        "taskArn"
    ]

    def stopped() -> dict[str, Any] | None:
        task = ecs.describe_tasks(cluster=lab.cluster, tasks=[arn])["tasks"][0]
        return task if task["lastStatus"] == "STOPPED" else None

    return wait_for(stopped, 60)


def assert_reason(task: dict[str, Any], reason: str) -> None:
    assert task["stoppedReason"] == reason
    assert task["stopCode"] == "TaskFailedToStart"
    assert [c.get("reason") for c in task["containers"]] == [reason]


def test_missing_repository_stops_the_task_in_ecs_words(lab: Lab) -> None:
    host = lab.image_uri.split("/", 1)[0]
    repository = f"nosuch{uuid.uuid4().hex[:6]}"
    task = stopped_task(lab, f"{host}/{repository}:latest")
    assert_reason(
        task,
        f"CannotPullContainerError: Error response from daemon: repository {host}/{repository} "
        f"not found: name unknown: The repository with name '{repository}' does not exist in "
        f"the registry with id '{ACCOUNT}'",
    )


def test_missing_tag_stops_the_task_in_ecs_words(lab: Lab) -> None:
    repository = lab.image_uri.rsplit(":", 1)[0]
    task = stopped_task(lab, f"{repository}:v404")
    assert_reason(
        task,
        f"CannotPullContainerError: Error response from daemon: manifest for {repository}:v404 "
        "not found: manifest unknown: Requested image not found",
    )


def test_pull_refused_by_policy_stops_the_task_in_ecs_words(lab: Lab) -> None:
    ecr = lab.client("ecr")
    name = f"nopolicy{uuid.uuid4().hex[:6]}"
    uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    task = stopped_task(lab, f"{uri}:latest")
    reason = task["stoppedReason"]
    assert reason.startswith(
        "CannotPullContainerError: The task can\u2019t pull the image. Check that the role has "
        "the permissions to pull images from the registry. Error response from daemon: pull "
        f"access denied for {uri}, repository does not exist or may require 'docker login': "
        "denied: User: "
    )
    assert (
        f"is not authorized to perform: ecr:BatchGetImage on resource: "
        f"arn:aws:ecr:{lab.settings.region}:{ACCOUNT}:repository/{name}"
    ) in reason
    assert [c.get("reason") for c in task["containers"]] == [reason]


def test_service_whose_tasks_keep_failing_is_unable_to_consistently_start(lab: Lab) -> None:
    ecs = lab.client("ecs")
    name = unique()
    td = register(lab, image=lab.image_uri.rsplit(":", 1)[0] + ":v404", host_port=0)
    ecs.create_service(
        cluster=lab.cluster, serviceName=name, taskDefinition=td, desiredCount=1, launchType="EC2"
    )
    try:
        wanted = (
            f"(service {name}) is unable to consistently start tasks successfully. For more "
            "information, see the Troubleshooting section of the Amazon ECS Developer Guide."
        )
        wait_for(lambda: wanted in messages(lab, name), 60)
        # Once per run of failures, not once per failed task.
        assert messages(lab, name).count(wanted) == 1
    finally:
        remove_service(lab, name)


def test_service_whose_container_keeps_exiting_is_unable_to_consistently_start(
    lab: Lab,
) -> None:
    """Tasks that reach RUNNING but whose essential container exits at once count as failed
    starts too: the same event, once per run of failures, and the retries back off."""
    ecs = lab.client("ecs")
    name = unique()
    exits = ["/bin/busybox", "sh", "-c", "exit 1"]
    td = register(lab, host_port=0, entryPoint=exits)
    ecs.create_service(
        cluster=lab.cluster, serviceName=name, taskDefinition=td, desiredCount=1, launchType="EC2"
    )
    try:
        wanted = (
            f"(service {name}) is unable to consistently start tasks successfully. For more "
            "information, see the Troubleshooting section of the Amazon ECS Developer Guide."
        )
        wait_for(lambda: wanted in messages(lab, name), 90)

        def stopped_tasks() -> list[dict[str, Any]]:
            arns = ecs.list_tasks(cluster=lab.cluster, serviceName=name, desiredStatus="STOPPED")
            if not arns["taskArns"]:
                return []
            tasks = ecs.describe_tasks(cluster=lab.cluster, tasks=arns["taskArns"])["tasks"]
            return [t for t in tasks if t["lastStatus"] == "STOPPED"]

        # A run of failures goes on after the event: one more task starts and exits (after
        # a longer wait), and the event is still written once.
        wait_for(lambda: len(stopped_tasks()) >= 4, 60)
        assert messages(lab, name).count(wanted) == 1
        tasks = stopped_tasks()
        for task in tasks:
            assert task["startedAt"]  # each reached RUNNING before it stopped
            assert task["stoppedReason"] == "Essential container in task exited"
            assert task["stopCode"] == "EssentialContainerExited"
            assert task["containers"][0]["exitCode"] == 1
        # The retries back off (1, 2, 4 … s): the fourth task starts 4 s or more after the
        # third failed, so after the third started.
        starts = sorted(t["startedAt"] for t in tasks)
        assert (starts[3] - starts[2]).total_seconds() >= 4.0, starts
    finally:
        remove_service(lab, name)


@pytest.mark.parametrize(
    ("resources", "ending"),
    [
        ({"memory": 100_000}, "has insufficient memory available."),
        ({"cpu": 100_000}, "has insufficient CPU units available."),
    ],
)
def test_placement_events_name_the_missing_resource(
    lab: Lab, resources: dict[str, int], ending: str
) -> None:
    ecs = lab.client("ecs")
    name = unique()
    td = register(lab, host_port=0, **resources)
    ecs.create_service(
        cluster=lab.cluster, serviceName=name, taskDefinition=td, desiredCount=1, launchType="EC2"
    )
    try:
        wait_for(lambda: any("unable to place" in m for m in messages(lab, name)), 20)
        message = next(m for m in messages(lab, name) if "unable to place" in m)
        assert message.startswith(
            f"(service {name}) was unable to place a task because no container instance met "
            "all of its requirements. The closest matching (container-instance "
        )
        assert f") {ending} For more information, see the Troubleshooting section" in message
        assert describe(lab, name)["runningCount"] == 0
    finally:
        remove_service(lab, name)
