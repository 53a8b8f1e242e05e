"""The agent's pulls leave no image references behind, and take none of the learner's.

Each sandbox run has its own registry port, so each run's pulls create new
``127.0.0.1:PORT/repo:tag`` references in the learner's Docker Engine. When the sandbox
stops, the agent untags those its pulls created, and nothing else: not a reference that
existed before its pull (the learner's ``docker tag``), not one re-pointed since.
"""

from __future__ import annotations

import base64
import io
import logging
import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.conftest import untag
from tests.sandbox.helpers import Lab, start_lab, wait_for
from tests.sandbox.test_safety import allow_instance_role_to_pull

pytestmark = pytest.mark.sandbox

SAMPLE = "labkit-test-sample:latest"  # what start_lab builds and pushes


def test_stopping_untags_what_the_agent_pulled_and_nothing_else(tmp_path: Path) -> None:
    lab = start_lab(tmp_path / "home")
    docker_client = lab.docker
    made_here: list[str] = []  # references this test tagged itself: removed at the end
    repositories: list[str] = []  # its repositories: its pushes left digest references there
    stopped = False
    try:
        pulled = lab.image_uri  # start_lab untagged it after its push: only the agent makes it
        assert image_id(docker_client, pulled) is None
        learners = push_sample(lab, f"learners-{uuid.uuid4().hex[:6]}")
        made_here.append(learners)  # tagged before the agent pulls it: the learner's
        retagged = push_sample(lab, f"retagged-{uuid.uuid4().hex[:6]}")
        same = push_sample(lab, f"same-{uuid.uuid4().hex[:6]}")
        repositories += [r.rsplit(":", 1)[0] for r in (learners, retagged, same)]
        docker_client.images.remove(retagged)  # so the agent's pull creates it
        docker_client.images.remove(same)
        sample_id = docker_client.images.get(SAMPLE).id

        task_arn = run_task(lab, [pulled, learners, retagged, same])
        wait_for(lambda: last_status(lab, task_arn) == "RUNNING", 90)
        assert image_id(docker_client, pulled) == sample_id
        assert image_id(docker_client, retagged) == sample_id
        # Meanwhile the learner points one of the agent's references at another image...
        other_id = build_other_image(docker_client, retagged)
        made_here.append(retagged)
        # ... and tags the very image the agent pulled under another (Task 2's step 22
        # after a catch-up): the same image id, but now the learner's tag too.
        docker_client.images.get(SAMPLE).tag(same)
        made_here.append(same)

        lab.sandbox.stop()
        stopped = True

        assert image_id(docker_client, pulled) is None, "the agent's pulled tag stayed"
        assert image_id(docker_client, learners) == sample_id, "the learner's tag was removed"
        assert image_id(docker_client, retagged) == other_id, "a re-pointed tag was removed"
        assert image_id(docker_client, same) == sample_id, "the learner's re-tag was removed"
        assert image_id(docker_client, SAMPLE) == sample_id
    finally:
        if not stopped:
            lab.sandbox.stop()
        if image_id(docker_client, lab.image_uri) is not None:
            made_here.append(lab.image_uri)  # this test's sandbox pulled it: no leftover on failure
        # The re-pointed tag left its push's digest reference on the sample image.
        made_here += [
            digest
            for digest in docker_client.images.get(SAMPLE).attrs.get("RepoDigests") or []
            if digest.split("@", 1)[0] in repositories
        ]
        untag(docker_client, made_here)


def test_an_image_a_container_still_uses_stays_and_the_log_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lab = start_lab(tmp_path / "home")
    docker_client = lab.docker
    made_here: list[str] = []
    users_container = None
    stopped = False
    try:
        # An image known by one reference only, so untagging it would delete the image.
        source = f"labkit-test-inuse:{uuid.uuid4().hex[:8]}"
        made_here.append(source)
        build_other_image(docker_client, source)
        pulled = push_sample(lab, f"inuse-{uuid.uuid4().hex[:6]}", source=source)
        made_here.append(pulled)
        untag(docker_client, [source, pulled])
        assert image_id(docker_client, pulled) is None

        task_arn = run_task(lab, [pulled])
        wait_for(lambda: last_status(lab, task_arn) == "RUNNING", 90)
        # The learner makes a container of the agent's image (created, never started).
        users_container = docker_client.containers.create(pulled, command=["true"])

        with caplog.at_level(logging.WARNING, logger="labkit.sandbox.agent.images"):
            lab.sandbox.stop()
        stopped = True

        assert image_id(docker_client, pulled) == users_container.image.id, "forced away"
        assert f"leaving image {pulled}" in caplog.text
        assert "container" in caplog.text  # Docker's 409: a container uses it
    finally:
        if not stopped:
            lab.sandbox.stop()
        if users_container is not None:
            users_container.remove(force=True)
        untag(docker_client, made_here)


def image_id(docker_client: Any, reference: str) -> str | None:
    try:
        return docker_client.images.get(reference).id
    except docker.errors.ImageNotFound:
        return None


def push_sample(lab: Lab, repository: str, source: str = SAMPLE) -> str:
    """A repository the instance role may pull, holding ``source``; its local tag."""
    ecr = lab.client("ecr")
    uri = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
    allow_instance_role_to_pull(ecr, repository)
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    lab.docker.images.get(source).tag(uri, "latest")
    lab.docker.images.push(uri, tag="latest", auth_config={"username": user, "password": password})
    return f"{uri}:latest"


def run_task(lab: Lab, images: list[str]) -> str:
    """One task with a container per image (no ports): the agent pulls each."""
    containers = [
        {"name": f"c{i}", "image": image, "memory": 64, "essential": True}
        for i, image in enumerate(images)
    ]
    ecs = lab.client("ecs")
    td = ecs.register_task_definition(family="images", containerDefinitions=containers)
    arn = td["taskDefinition"]["taskDefinitionArn"]
    return ecs.run_task(cluster=lab.cluster, taskDefinition=arn, launchType="EC2")["tasks"][0][
        "taskArn"
    ]


def last_status(lab: Lab, task_arn: str) -> str:
    task = lab.client("ecs").describe_tasks(cluster=lab.cluster, tasks=[task_arn])["tasks"][0]
    assert task["lastStatus"] != "STOPPED", task.get("stoppedReason")
    return task["lastStatus"]


def build_other_image(docker_client: Any, reference: str) -> str:
    """Build a different image (the sample plus a label) tagged ``reference``; its id."""
    dockerfile = f"FROM {SAMPLE}\nLABEL labkit.test=retagged-{uuid.uuid4().hex}\n"
    # rm/forcerm: the classic builder otherwise keeps its intermediate container
    image, _ = docker_client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=reference, rm=True, forcerm=True
    )
    return image.id
