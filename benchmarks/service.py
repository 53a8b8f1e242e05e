"""CreateService to the first HTTP 200 through the NLB; docker kill to HTTP 200 again; an app
that dies inside its running container: target unhealthy, task replaced, HTTP 200 again.

Traffic goes only to healthy targets (as on an NLB), so each figure includes the health
checks a new target must pass: the lab's target group wants 2 in a row, and the sandbox
checks every second (AWS: every HealthCheckIntervalSeconds, 10 s in the lab).
"""

from __future__ import annotations

import itertools

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import POLL_EVERY, LabService, docker_client, running_sandbox
from benchmarks.polling import wait_for

ROWS = (
    RowSpec("service_first_200", "CreateService → first HTTP 200 through the NLB", "s", 3.0),
    RowSpec("kill_to_200", "docker kill of the task's container → HTTP 200 again", "s", 10.0),
    RowSpec("dead_app_unhealthy", "app dies in its running container → target unhealthy", "s", 5.0),
    RowSpec("dead_app_replaced", "app dies → task stopped for failed ELB health checks", "s", 5.0),
    RowSpec("dead_app_to_200", "app dies → replacement serves HTTP 200", "s", 10.0),
)


def run(rec: Recorder, options: Options) -> None:
    docker = docker_client()
    counter = itertools.count(1)
    with running_sandbox() as box:
        lab = LabService.prepare(box, docker)

        def once(warmup: bool) -> None:
            name = f"MYSERVICE{next(counter):04d}"
            wait_for(
                lambda: not lab.serving(), every=POLL_EVERY, what="the load balancer to be idle"
            )
            lab.create_service(name)
            try:
                first = lab.time_to_serving()
                if not warmup:
                    rec.add("service_first_200", first)
                recovery = lab.kill_and_time_recovery()
                if not warmup:
                    rec.add("kill_to_200", recovery)
            finally:
                lab.delete_service(name)
            name = f"MYSERVICE{next(counter):04d}"
            wait_for(
                lambda: not lab.serving(), every=POLL_EVERY, what="the load balancer to be idle"
            )
            lab.create_service(name, lab.deaf_later_arn)
            try:
                lab.time_to_serving()
                times = lab.kill_app_and_time_replacement(name)
                if not warmup:
                    rec.add("dead_app_unhealthy", times["unhealthy"])
                    rec.add("dead_app_replaced", times["replaced"])
                    rec.add("dead_app_to_200", times["serving"])
            finally:
                lab.delete_service(name)

        repeated(rec, options, BENCHMARK.default_repeat, once)


BENCHMARK = Benchmark(
    name="service",
    title="service and recovery through the load balancer",
    rows=ROWS,
    run=run,
    default_repeat=5,
)
