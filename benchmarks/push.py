"""docker push of the sample image to the sandbox registry, a fresh repository each time."""

from __future__ import annotations

import itertools
import time

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import docker_client, ecr_login, push, running_sandbox, untag

ROWS = (
    RowSpec("push", "docker push of the sample image (fresh repository)", "s", 2.0),
    RowSpec("push_login", "  GetAuthorizationToken before it (reference)", "s"),
)


def run(rec: Recorder, options: Options) -> None:
    docker = docker_client()
    counter = itertools.count(1)
    with running_sandbox() as box:
        ecr = box.client("ecr")

        def once(warmup: bool) -> None:
            name = f"bench-push-{next(counter)}"
            uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
            try:
                started = time.perf_counter()
                auth = ecr_login(ecr)
                login = time.perf_counter() - started
                started = time.perf_counter()
                statuses = push(docker, uri, auth)
                seconds = time.perf_counter() - started
            finally:
                untag(docker, uri)
            if statuses != ["Pushed"]:
                # Mounted or already-existing layers did not really upload.
                rec.note("push", f"layer statuses seen: {', '.join(statuses)}")
            if not warmup:
                rec.add("push", seconds)
                rec.add("push_login", login)

        repeated(rec, options, BENCHMARK.default_repeat, once)


BENCHMARK = Benchmark(
    name="push",
    title="image push",
    rows=ROWS,
    run=run,
    default_repeat=5,
)
