"""The lab's API calls (the ones that need no Docker): the sandbox vs. a bare moto server.

Both sides run in the same invocation, alternating round by round (which side goes
first alternates too), so machine noise hits both. Each side has the same
pre-provisioned lab environment (``labkit.sandbox.environment.provision`` on bare moto),
and each round creates and deletes what it makes, so rounds repeat identically.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import (
    POLL_EVERY,
    client_for,
    http_status,
    proc_memory_mb,
    repository_policy,
    running_sandbox,
    task_definition,
)
from benchmarks.polling import wait_for
from labkit.names import DEFAULT_REGION, LAB
from labkit.sandbox.context import free_port_block

#: The sequence runs this many times per sample; a sample is the mean of one sequence.
INNER = 3
PROVISIONED_BY = ("iam", "ec2", "ecs", "elbv2")
SERVICES = ("ecr", "ecs", "elbv2", "ec2", "iam", "sts", "servicediscovery")

ROWS = (
    RowSpec("api_sequence_sandbox", "lab API sequence, sandbox", "s"),
    RowSpec("api_sequence_moto", "lab API sequence, bare moto_server", "s"),
    RowSpec("api_ratio", "  ratio sandbox / bare moto (per round)", "x", 1.3),
    RowSpec("moto_hwm", "bare moto_server VmHWM after the same (memory baseline)", "MB"),
)


@contextmanager
def bare_moto() -> Iterator[tuple[str, int]]:
    """A bare moto server in a subprocess on a free port; its endpoint URL and pid."""
    port = free_port_block(1)
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bare_moto", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: process.poll() is not None or http_status(url + "/moto-api/") is not None,
            timeout=30,
            every=POLL_EVERY,
            what="the bare moto server",
        )
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {process.stderr.read().decode()[-500:]}")
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Side:
    """One endpoint's boto3 clients and the lab objects the sequence reads."""

    def __init__(self, name: str, endpoint: str, region: str, home: Path | None = None) -> None:
        self.name = name
        self.c = {s: client_for(endpoint, region, s, home) for s in SERVICES}
        self.calls = 0
        self.per_operation: dict[str, float] = {}
        self._started: dict[str, float] = {}
        for client in self.c.values():
            client.meta.events.register("before-call", self._before)
            client.meta.events.register("after-call", self._after)
        elbv2 = self.c["elbv2"]
        lb = elbv2.describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"][0]
        self.lb_arn = lb["LoadBalancerArn"]
        self.tg_arn = elbv2.describe_target_groups(Names=[LAB.target_group])["TargetGroups"][0][
            "TargetGroupArn"
        ]
        self.vpc_id = lb["VpcId"]
        self.round = 0
        self.calls = 0  # only the sequence's calls
        self.per_operation.clear()

    def _before(self, model: Any, **kwargs: Any) -> None:
        self.calls += 1
        self._started[model.name] = time.perf_counter()

    def _after(self, model: Any, **kwargs: Any) -> None:
        seconds = time.perf_counter() - self._started.pop(model.name, time.perf_counter())
        self.per_operation[model.name] = self.per_operation.get(model.name, 0.0) + seconds

    def sequence(self) -> None:
        """The lab's Docker-free API calls, creating and deleting what they make."""
        self.round += 1
        c = self.c
        ecr, ecs, elbv2 = c["ecr"], c["ecs"], c["elbv2"]
        repo = f"bench-ratio-{self.round}"
        # who am I, and the lab environment (notebook 00)
        c["sts"].get_caller_identity()
        c["iam"].get_role(RoleName=LAB.instance_role)
        ecs.describe_clusters(clusters=[LAB.cluster])
        ecs.list_container_instances(cluster=LAB.cluster)
        elbv2.describe_load_balancers(Names=[LAB.load_balancer])
        elbv2.describe_target_groups(Names=[LAB.target_group])
        elbv2.describe_listeners(LoadBalancerArn=self.lb_arn)
        # Task 1: the repository and its statement
        uri = ecr.create_repository(repositoryName=repo)["repository"]["repositoryUri"]
        ecr.set_repository_policy(repositoryName=repo, policyText=repository_policy())
        ecr.get_repository_policy(repositoryName=repo)
        ecr.describe_repositories(repositoryNames=[repo])
        # Task 2: log in (the push itself needs Docker), then look at the images
        ecr.get_authorization_token()
        ecr.describe_images(repositoryName=repo)
        # Task 3: the task definition
        arn = ecs.register_task_definition(**task_definition(f"bench-ratio-{self.round}", uri))[
            "taskDefinition"
        ]["taskDefinitionArn"]
        ecs.describe_task_definition(taskDefinition=arn)
        ecs.list_task_definitions(familyPrefix=f"bench-ratio-{self.round}")
        # Task 4: what the service page reads, and a Cloud Map namespace
        ecs.list_services(cluster=LAB.cluster)
        elbv2.describe_target_health(TargetGroupArn=self.tg_arn)
        sd = c["servicediscovery"]
        op = sd.create_private_dns_namespace(Name=f"bench{self.round}.local", Vpc=self.vpc_id)
        ns = sd.get_operation(OperationId=op["OperationId"])["Operation"]["Targets"]["NAMESPACE"]
        sd.get_namespace(Id=ns)
        sd.list_namespaces()
        # cleanup (notebook 06)
        sd.delete_namespace(Id=ns)
        ecs.deregister_task_definition(taskDefinition=arn)
        ecr.delete_repository(repositoryName=repo, force=True)

    def time_sequence(self) -> float:
        started = time.perf_counter()
        for _ in range(INNER):
            self.sequence()
        return (time.perf_counter() - started) / INNER


def run(rec: Recorder, options: Options) -> None:
    from labkit.sandbox.environment import provision

    with running_sandbox() as box, bare_moto() as (moto_url, moto_pid):
        provision({s: client_for(moto_url, DEFAULT_REGION, s) for s in PROVISIONED_BY})
        sides = [
            Side("sandbox", box.settings.api_url, box.settings.region, box.settings.home),
            Side("moto", moto_url, DEFAULT_REGION),
        ]
        rounds = 0

        def once(warmup: bool) -> None:
            nonlocal rounds
            rounds += 1
            order = sides if rounds % 2 else sides[::-1]
            seconds = {side.name: side.time_sequence() for side in order}
            if not warmup:
                rec.add("api_sequence_sandbox", seconds["sandbox"])
                rec.add("api_sequence_moto", seconds["moto"])
                rec.add("api_ratio", seconds["sandbox"] / seconds["moto"])

        repeated(rec, options, BENCHMARK.default_repeat, once)
        rec.add("moto_hwm", proc_memory_mb(moto_pid)["VmHWM"])
        sandbox, moto = sides
        rec.note(
            "api_sequence_sandbox",
            f"{sandbox.calls // sandbox.round} API calls per sequence; "
            f"a sample is the mean of {INNER}",
        )
        rec.note("api_ratio", "sandbox slower than bare moto most in: " + slowest_extra(*sides))


def slowest_extra(sandbox: Side, moto: Side, count: int = 4) -> str:
    """The operations where the sandbox spends the most extra time per sequence."""
    extra = {
        name: (seconds - moto.per_operation.get(name, 0.0)) / sandbox.round
        for name, seconds in sandbox.per_operation.items()
    }
    worst = sorted(extra.items(), key=lambda item: item[1], reverse=True)[:count]
    return ", ".join(f"{name} +{seconds * 1000:.1f} ms" for name, seconds in worst)


BENCHMARK = Benchmark(
    name="api_ratio",
    title="lab API calls: sandbox vs. bare moto",
    rows=ROWS,
    run=run,
    default_repeat=7,
    needs_docker=False,
)
