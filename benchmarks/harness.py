"""Shared helpers: a throwaway sandbox on free ports, clients, probes, process memory.

Every sandbox a benchmark starts lives in a fresh temporary home (never ``~/.labkit``)
on free loopback ports, and is stopped (``lifecycle.down``: process, registry,
containers) and its home removed even when the benchmark fails.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.polling import wait_for
from labkit.names import LAB
from labkit.sandbox import lifecycle
from labkit.sandbox.context import CONTAINER_LABEL, Settings

#: The sample image, built once per run (Docker's cache makes rebuilds free).
SAMPLE_TAG = "labkit-bench-sample:latest"
INSTANCE_ROLE_ARN = "arn:aws:iam::123456789012:role/" + LAB.instance_role

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# temp dirs ------------------------------------------------------------------------------
@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# the sandbox -----------------------------------------------------------------------------
@dataclass
class BenchSandbox:
    settings: Settings
    status: lifecycle.SandboxStatus

    @property
    def pid(self) -> int:
        assert self.status.pid is not None
        return self.status.pid

    @property
    def registry_pid(self) -> int | None:
        from labkit.sandbox.processes import recorded_pid

        return recorded_pid(self.settings.home / "registry.pid")

    def client(self, service: str) -> Any:
        return client_for(self.settings.api_url, self.settings.region, service, self.settings.home)

    def lab_load_balancer(self) -> tuple[str, str]:
        """The lab NLB's loopback URL and the lab target group's ARN."""
        elbv2 = self.client("elbv2")
        lb = elbv2.describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0]
        tg = elbv2.describe_target_groups(Names=[LAB.target_group])["TargetGroups"][0]
        url = lifecycle.status(self.settings).load_balancers[lb["DNSName"]]
        return url, tg["TargetGroupArn"]

    def containers(self, docker_client: Any) -> list[Any]:
        # ignore_removed: one may go between Docker's list and its inspection.
        return docker_client.containers.list(
            filters={"label": f"{CONTAINER_LABEL}={self.settings.home}"}, ignore_removed=True
        )

    def child_env(self, state_dir: Path) -> dict[str, str]:
        """Environment for a process (``labkit run``) that should use this sandbox only."""
        env = lifecycle.env(self.settings)
        env.update(sandbox_variables(self.settings), LABKIT_STATE_DIR=str(state_dir))
        return env


def sandbox_variables(settings: Settings) -> dict[str, str]:
    """The variables that make ``labkit`` use the sandbox at ``settings`` (home, ports)."""
    return {
        "LABKIT_SANDBOX_HOME": str(settings.home),
        "LABKIT_SANDBOX_API_PORT": str(settings.api_port),
        "LABKIT_SANDBOX_REGISTRY_PORT": str(settings.registry_port),
        "LABKIT_SANDBOX_LB_PORT": str(settings.lb_port),
        "LABKIT_SANDBOX_REGION": settings.region,
    }


@contextmanager
def sandbox_home() -> Iterator[Settings]:
    """Settings for a sandbox in a fresh temp home; whatever runs there is stopped after."""
    with temp_dir("labkit-bench-home-") as home:
        settings = Settings.on_free_ports(home)
        try:
            yield settings
        finally:
            lifecycle.down(settings)


@contextmanager
def running_sandbox() -> Iterator[BenchSandbox]:
    """A sandbox up in a fresh temp home; always stopped (and its home removed) after."""
    with sandbox_home() as settings:
        status = lifecycle.up(settings)
        yield BenchSandbox(settings, status)


def client_for(endpoint: str, region: str, service: str, home: Path | None = None) -> Any:
    """A boto3 client for ``endpoint``: signed with the keys of the sandbox in ``home``,
    or with placeholder keys (a bare moto server takes any) when ``home`` is None."""
    import boto3
    from botocore.config import Config

    from labkit.sandbox.credentials import ensure_credentials

    if home is not None:
        credentials = ensure_credentials(home)
        key_id, secret = credentials.access_key_id, credentials.secret_access_key
    else:
        key_id, secret = "testing", "testing"
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


# probes -----------------------------------------------------------------------------------
#: The benchmarks' polling interval: timings are only as fine as this (20 Hz).
POLL_EVERY = 0.05


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status ``url`` answers with, or None when nothing answers."""
    try:
        with _opener.open(url, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# process memory -----------------------------------------------------------------------------
def proc_memory_mb(pid: int | None) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak so far) of ``pid`` in MB, from /proc/<pid>/status."""
    out: dict[str, float] = {}
    if not pid:
        return out
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


# docker and the lab's data path ----------------------------------------------------------------
def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=120)


def ensure_sample_image(client: Any) -> str:
    from labkit.images import build_sample_image

    build_sample_image(SAMPLE_TAG, client=client)
    return SAMPLE_TAG


def image_facts(client: Any, tag: str) -> str:
    """What the pushed image is, for the table: how it was built, its layers and size."""
    from labkit.images import LAB_SAMPLE_IMAGE, static_busybox

    image = client.images.get(tag)
    layers = len(image.attrs["RootFS"]["Layers"])
    base = "FROM scratch with the host's static busybox" if static_busybox() else "FROM busybox"
    return (
        f"the offline stand-in for {LAB_SAMPLE_IMAGE} (notebooks/sample-app, {base}), "
        f"{layers} layers, {image.attrs['Size'] / 1e6:.1f} MB"
    )


def ecr_login(ecr: Any) -> dict[str, str]:
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    return {"username": user, "password": password}


def push(client: Any, uri: str, auth: dict[str, str]) -> list[str]:
    """Tag the sample image as ``uri:latest`` and push it; returns the layer statuses.

    Statuses are ``Pushed``, ``Mounted from …`` or ``Layer already exists``: only the
    first means bytes really went up. Raises on any push error.
    """
    client.images.get(SAMPLE_TAG).tag(uri, "latest")
    statuses: dict[str, str] = {}
    for event in client.api.push(uri, tag="latest", auth_config=auth, stream=True, decode=True):
        if "error" in event:
            raise RuntimeError(f"push of {uri} failed: {event['error']}")
        if event.get("id") and event.get("status") and "progressDetail" in event:
            statuses[event["id"]] = event["status"]
    return sorted(set(statuses.values()))


def untag(client: Any, uri: str) -> None:
    try:
        client.images.remove(f"{uri}:latest", noprune=True)
    except Exception:  # already gone
        pass


def repository_policy() -> str:
    """Task 1's statement: the container instance role may pull."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": LAB.repository_statement,
                    "Effect": "Allow",
                    "Principal": {"AWS": [INSTANCE_ROLE_ARN]},
                    "Action": [
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
                    ],
                }
            ],
        }
    )


#: The sample app in the background, then sleep: killing the app (:data:`KILL_APP`) leaves
#: its container running but deaf, so only the load balancer's health checks can tell.
DEAF_LATER = {
    "entryPoint": ["/bin/busybox", "sh", "-c"],
    "command": [
        "/bin/busybox httpd -f -p 80 -h /www & echo $! > /httpd.pid; exec /bin/busybox sleep 3600"
    ],
}
KILL_APP = ["/bin/busybox", "sh", "-c", "kill $(/bin/busybox cat /httpd.pid)"]


def task_definition(family: str, image: str, **extra: Any) -> dict[str, Any]:
    container = {
        "name": LAB.container_name,
        "image": image,
        "memory": 128,
        "cpu": 0,
        "essential": True,
        "portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "tcp"}],
    }
    container.update(extra)
    return {"family": family, "containerDefinitions": [container]}


@dataclass
class LabService:
    """The lab's Tasks 1–3 done in a sandbox: a pushed image and a task definition."""

    box: BenchSandbox
    docker: Any
    uri: str
    task_definition_arn: str
    lb_url: str
    target_group_arn: str
    #: The same app, started so that it can die while its container runs on.
    deaf_later_arn: str = ""

    @classmethod
    def prepare(cls, box: BenchSandbox, docker: Any, repository: str = "bench-lab") -> LabService:
        ecr = box.client("ecr")
        uri = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
        ecr.set_repository_policy(repositoryName=repository, policyText=repository_policy())
        try:
            push(docker, uri, ecr_login(ecr))
        finally:
            untag(docker, uri)
        ecs = box.client("ecs")
        arn = ecs.register_task_definition(**task_definition(LAB.task_family, f"{uri}:latest"))[
            "taskDefinition"
        ]["taskDefinitionArn"]
        deaf = ecs.register_task_definition(
            **task_definition(LAB.task_family, f"{uri}:latest", **DEAF_LATER)
        )["taskDefinition"]["taskDefinitionArn"]
        url, tg = box.lab_load_balancer()
        return cls(box, docker, uri, arn, url, tg, deaf)

    def create_service(self, name: str, task_definition_arn: str = "") -> None:
        self.box.client("ecs").create_service(
            cluster=LAB.cluster,
            serviceName=name,
            taskDefinition=task_definition_arn or self.task_definition_arn,
            desiredCount=1,
            launchType="EC2",
            loadBalancers=[
                {
                    "targetGroupArn": self.target_group_arn,
                    "containerName": LAB.container_name,
                    "containerPort": 80,
                }
            ],
        )

    def serving(self) -> bool:
        return http_status(self.lb_url) == 200

    def delete_service(self, name: str) -> None:
        """Delete the service and wait until its containers and targets are gone."""
        ecs = self.box.client("ecs")
        try:
            ecs.update_service(cluster=LAB.cluster, service=name, desiredCount=0)
        finally:
            ecs.delete_service(cluster=LAB.cluster, service=name, force=True)
        wait_for(
            lambda: not self.box.containers(self.docker),
            every=POLL_EVERY,
            what="the service's containers to go",
        )
        elbv2 = self.box.client("elbv2")
        wait_for(
            lambda: (
                not elbv2.describe_target_health(TargetGroupArn=self.target_group_arn)[
                    "TargetHealthDescriptions"
                ]
            ),
            every=POLL_EVERY,
            what="its targets to be deregistered",
        )
        wait_for(
            lambda: not self.serving(), every=POLL_EVERY, what="the load balancer to stop serving"
        )

    def time_to_serving(self, timeout: float = 60) -> float:
        """Seconds until the page answers 200 through the load balancer (polled at 20 Hz)."""
        started = time.perf_counter()
        wait_for(
            self.serving,
            timeout=timeout,
            every=POLL_EVERY,
            what="HTTP 200 through the load balancer",
        )
        return time.perf_counter() - started

    def kill_and_time_recovery(self, timeout: float = 60) -> float:
        """docker kill the service's container; seconds until 200 again after an outage."""
        victims = wait_for(
            lambda: self.box.containers(self.docker), every=POLL_EVERY, what="the task's container"
        )
        victims[0].kill()
        killed = time.perf_counter()
        seen_down = False
        deadline = killed + timeout
        while time.perf_counter() < deadline:
            up = self.serving()
            if not up:
                seen_down = True
            elif seen_down:
                return time.perf_counter() - killed
            time.sleep(0.05)
        state = "never answered again" if seen_down else "never stopped answering"
        raise TimeoutError(f"after docker kill the page {state} within {timeout:.0f} s")

    def kill_app_and_time_replacement(self, service: str, timeout: float = 60) -> dict[str, float]:
        """Kill the app inside its still-running container (a :data:`DEAF_LATER` task).

        Seconds from the kill until its target is ``unhealthy`` (the time of the service event
        saying so: with no grace period the scheduler acts at once, so the state itself is
        often gone before a poll sees it), until the scheduler has stopped the task for
        failing its ELB health checks, and until the page answers 200 again.
        """
        ecs = self.box.client("ecs")
        victim = wait_for(
            lambda: self.box.containers(self.docker), every=POLL_EVERY, what="the task's container"
        )[0]
        task_arn = victim.labels["com.amazonaws.ecs.task-arn"]
        task_id = task_arn.split("/")[-1]
        killed_wall = time.time()
        killed = time.perf_counter()
        result = victim.exec_run(KILL_APP)
        if result.exit_code != 0:
            raise RuntimeError(f"killing the app failed: {result.output!r}")
        out: dict[str, float] = {}
        deadline = killed + timeout
        while time.perf_counter() < deadline and "serving" not in out:
            if "replaced" not in out:
                task = ecs.describe_tasks(cluster=LAB.cluster, tasks=[task_arn])["tasks"][0]
                if (task.get("stoppedReason") or "").startswith("Task failed ELB health checks"):
                    out["replaced"] = time.perf_counter() - killed
            elif self.serving():
                out["serving"] = time.perf_counter() - killed
            time.sleep(0.05)
        events = ecs.describe_services(cluster=LAB.cluster, services=[service])["services"][0][
            "events"
        ]
        for event in events:
            if f"(task {task_id})" in event["message"] and "is unhealthy in" in event["message"]:
                out["unhealthy"] = event["createdAt"].timestamp() - killed_wall
        if len(out) < 3:
            raise TimeoutError(f"the dead app was not replaced within {timeout:.0f} s: {out}")
        return out
