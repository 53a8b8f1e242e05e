"""docker push of the offline stand-in sample image to the sandbox registry, layers really
uploaded.

The image is not ``amazon/amazon-ecs-sample``: it is the kit's offline stand-in for it
(``labkit.images.build_sample_image``: ``notebooks/sample-app``'s page served by busybox),
built once per run. The table's note names it, with its layers and size.

A fresh repository in the same sandbox is not enough: Docker Engine remembers which
repositories of a registry hold a layer and mounts it from there ("Mounted from …")
instead of uploading. So each round pushes to a fresh repository in a fresh sandbox
(a new registry on a new port, which Docker has never seen), as a learner's first push
does. Starting that sandbox is not timed; a round whose layers were not all "Pushed"
is not counted (the table notes it).
"""

from __future__ import annotations

import itertools
import time

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import (
    SAMPLE_TAG,
    docker_client,
    ecr_login,
    image_facts,
    push,
    running_sandbox,
    untag,
)

ROWS = (
    RowSpec("push", "docker push of the offline stand-in image (fresh registry)", "s", 2.0),
    RowSpec("push_login", "  GetAuthorizationToken before it (reference)", "s"),
)


def run(rec: Recorder, options: Options) -> None:
    docker = docker_client()
    counter = itertools.count(1)

    def once(warmup: bool) -> None:
        with running_sandbox() as box:
            ecr = box.client("ecr")
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
            rec.note("push", f"round not counted, layer statuses: {', '.join(statuses)}")
            return
        if not warmup:
            rec.add("push", seconds)
            rec.add("push_login", login)

    repeated(rec, options, BENCHMARK.default_repeat, once)
    rec.note("push", f"pushed {SAMPLE_TAG}: {image_facts(docker, SAMPLE_TAG)}")


BENCHMARK = Benchmark(
    name="push",
    title="image push",
    rows=ROWS,
    run=run,
    default_repeat=5,
)
