"""The lab's API calls: the sandbox vs. a bare moto server.

The sequence is the lab's calls from notebook 00 to 06, the ECS calls the sandbox
intercepts included: CreateService (behind the load balancer), RunTask, StopTask,
UpdateService and DeleteService. On the sandbox they have their real effects while the
sequence goes on: the agent pulls the image and starts containers, the load balancer
registers and health-checks targets. Only the ``docker push`` is left out (it is the push
row), so the image is pushed once before the rounds.

Both sides run in the same invocation, taking turns sequence by sequence (which side goes
first alternates too), so machine noise hits both. Each side has the same
pre-provisioned lab environment (``labkit.sandbox.environment.provision`` on bare moto).
Each sequence creates and deletes what it makes; before the next one starts (not timed),
the sandbox's containers and targets are gone, so sequences repeat identically.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import (
    POLL_EVERY,
    BenchSandbox,
    client_for,
    docker_client,
    ecr_login,
    http_status,
    proc_memory_mb,
    push,
    repository_policy,
    running_sandbox,
    task_definition,
    untag,
)
from benchmarks.polling import wait_for
from labkit.names import DEFAULT_REGION, LAB
from labkit.sandbox.context import free_port_block

#: The sequence runs this many times per sample; a sample is the mean of one sequence.
INNER = 3
#: The repository of the image the sequence's services and tasks run (pushed once).
IMAGE_REPOSITORY = "bench-ratio-image"
#: The ECS calls the sandbox answers with its own hooks and agent, not moto's alone.
INTERCEPTED = ("CreateService", "RunTask", "StopTask", "UpdateService", "DeleteService")
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

    def __init__(
        self,
        name: str,
        endpoint: str,
        region: str,
        home: Path | None = None,
        settle: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        #: Waits (not timed) until the last sequence's containers and targets are gone.
        self.settle = settle
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
        self.image = self.c["ecr"].describe_repositories(repositoryNames=[IMAGE_REPOSITORY])[
            "repositories"
        ][0]["repositoryUri"]
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
        """The lab's API calls but the push, creating and deleting what they make."""
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
        # Task 4: the service behind the load balancer, what the service page reads
        service = f"BENCHRATIO{self.round:04d}"
        family = f"bench-ratio-run-{self.round}"
        runnable = ecs.register_task_definition(**task_definition(family, self.image))[
            "taskDefinition"
        ]["taskDefinitionArn"]
        ecs.create_service(
            cluster=LAB.cluster,
            serviceName=service,
            taskDefinition=runnable,
            desiredCount=1,
            launchType="EC2",  # no role: ECS's service-linked role, as the lab's Task 4
            loadBalancers=[
                {
                    "targetGroupArn": self.tg_arn,
                    "containerName": LAB.container_name,
                    "containerPort": 80,
                }
            ],
        )
        ecs.describe_services(cluster=LAB.cluster, services=[service])
        ecs.list_services(cluster=LAB.cluster)
        ecs.list_tasks(cluster=LAB.cluster, serviceName=service)
        elbv2.describe_target_health(TargetGroupArn=self.tg_arn)
        # 05: a task of its own, stopped; the service scaled and rolled to a new revision
        task = ecs.run_task(cluster=LAB.cluster, taskDefinition=runnable, launchType="EC2")
        for started in task["tasks"]:
            ecs.stop_task(cluster=LAB.cluster, task=started["taskArn"], reason="benchmark")
        ecs.update_service(cluster=LAB.cluster, service=service, desiredCount=2)
        revision = ecs.register_task_definition(**task_definition(family, self.image))[
            "taskDefinition"
        ]["taskDefinitionArn"]
        ecs.update_service(cluster=LAB.cluster, service=service, taskDefinition=revision)
        ecs.describe_services(cluster=LAB.cluster, services=[service])
        # and a Cloud Map namespace
        sd = c["servicediscovery"]
        op = sd.create_private_dns_namespace(Name=f"bench{self.round}.local", Vpc=self.vpc_id)
        ns = sd.get_operation(OperationId=op["OperationId"])["Operation"]["Targets"]["NAMESPACE"]
        sd.get_namespace(Id=ns)
        sd.list_namespaces()
        # cleanup (notebook 06)
        ecs.update_service(cluster=LAB.cluster, service=service, desiredCount=0)
        ecs.delete_service(cluster=LAB.cluster, service=service, force=True)
        sd.delete_namespace(Id=ns)
        ecs.deregister_task_definition(taskDefinition=runnable)
        ecs.deregister_task_definition(taskDefinition=revision)
        ecs.deregister_task_definition(taskDefinition=arn)
        ecr.delete_repository(repositoryName=repo, force=True)

    def time_sequence(self) -> float:
        started = time.perf_counter()
        self.sequence()
        return time.perf_counter() - started


def time_round(sides: list[Side], first: int) -> dict[str, float]:
    """Each side's mean over :data:`INNER` sequences, the sides taking turns sequence by
    sequence (side ``first`` begins), each started with every side quiet (not timed): the
    sandbox's containers of one sequence must not stop while the other side is timed."""
    seconds = dict.fromkeys((side.name for side in sides), 0.0)
    for i in range(INNER):
        for k in range(len(sides)):
            side = sides[(first + i + k) % len(sides)]
            for each in sides:
                each.settle()
            seconds[side.name] += side.time_sequence()
    return {name: total / INNER for name, total in seconds.items()}


def push_image(box: BenchSandbox, docker: Any) -> None:
    """The sequence's image in the sandbox's registry (a repository of that name on moto)."""
    ecr = box.client("ecr")
    uri = ecr.create_repository(repositoryName=IMAGE_REPOSITORY)["repository"]["repositoryUri"]
    ecr.set_repository_policy(repositoryName=IMAGE_REPOSITORY, policyText=repository_policy())
    try:
        push(docker, uri, ecr_login(ecr))
    finally:
        untag(docker, uri)


def sandbox_quiet(box: BenchSandbox, docker: Any) -> Callable[[], None]:
    """Waits until the sandbox runs no container and the lab's target group is empty."""
    elbv2 = box.client("elbv2")
    _, tg_arn = box.lab_load_balancer()

    def settle() -> None:
        wait_for(lambda: not box.containers(docker), every=POLL_EVERY, what="the containers to go")
        wait_for(
            lambda: (
                not elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
            ),
            every=POLL_EVERY,
            what="the targets to be deregistered",
        )

    return settle


def run(rec: Recorder, options: Options) -> None:
    from labkit.sandbox.environment import provision

    docker = docker_client()
    with running_sandbox() as box, bare_moto() as (moto_url, moto_pid):
        provision({s: client_for(moto_url, DEFAULT_REGION, s) for s in PROVISIONED_BY})
        client_for(moto_url, DEFAULT_REGION, "ecr").create_repository(
            repositoryName=IMAGE_REPOSITORY
        )
        push_image(box, docker)
        sides = [
            Side(
                "sandbox",
                box.settings.api_url,
                box.settings.region,
                box.settings.home,
                settle=sandbox_quiet(box, docker),
            ),
            Side("moto", moto_url, DEFAULT_REGION),
        ]
        rounds = 0

        def once(warmup: bool) -> None:
            nonlocal rounds
            rounds += 1
            seconds = time_round(sides, first=rounds % 2)
            if not warmup:
                rec.add("api_sequence_sandbox", seconds["sandbox"])
                rec.add("api_sequence_moto", seconds["moto"])
                rec.add("api_ratio", seconds["sandbox"] / seconds["moto"])

        repeated(rec, options, BENCHMARK.default_repeat, once)
        sides[0].settle()
        rec.add("moto_hwm", proc_memory_mb(moto_pid)["VmHWM"])
        sandbox, moto = sides
        rec.note(
            "api_sequence_sandbox",
            f"{sandbox.calls // sandbox.round} API calls per sequence, "
            f"{', '.join(INTERCEPTED)} among them; a sample is the mean of {INNER}",
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
    title="the lab's API calls, ECS's intercepted ones included: sandbox vs. bare moto",
    rows=ROWS,
    run=run,
    default_repeat=7,
)
