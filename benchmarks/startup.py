"""``labkit sandbox up`` on a fresh temp home until every part answers, then ``down``."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import POLL_EVERY, http_status, sandbox_home, tcp_answers
from benchmarks.polling import wait_for
from labkit.sandbox import lifecycle

ROWS = (
    RowSpec("sandbox_up", "sandbox up (fresh home) → every part answering", "s", 3.0),
    RowSpec("sandbox_ready_inside", "  of which the sandbox's own start (ready_seconds)", "s"),
    RowSpec("sandbox_down", "sandbox down (process, registry, containers)", "s"),
)


def _all_answer(status: lifecycle.SandboxStatus) -> bool:
    """The API, the registry (401 asking for a token) and every NLB listener answer."""
    if http_status(status.api_url + "/_labkit/health") != 200:
        return False
    if http_status(f"http://{status.registry}/v2/") not in (200, 401):
        return False
    for url in status.load_balancers.values():
        parts = urlsplit(url)
        if not tcp_answers(parts.hostname or "127.0.0.1", parts.port or 80):
            return False
    return bool(status.load_balancers)


def run(rec: Recorder, options: Options) -> None:
    def once(warmup: bool) -> None:
        with sandbox_home() as settings:
            started = time.perf_counter()
            status = lifecycle.up(settings)
            wait_for(
                lambda: _all_answer(status),
                timeout=30,
                every=POLL_EVERY,
                what="every sandbox part to answer",
            )
            up = time.perf_counter() - started
            started = time.perf_counter()
            lifecycle.down(settings)
            down = time.perf_counter() - started
        if not warmup:
            rec.add("sandbox_up", up)
            if status.ready_seconds is not None:
                rec.add("sandbox_ready_inside", status.ready_seconds)
            rec.add("sandbox_down", down)

    repeated(rec, options, BENCHMARK.default_repeat, once)


BENCHMARK = Benchmark(
    name="startup",
    title="sandbox up and down",
    rows=ROWS,
    run=run,
    default_repeat=5,
    needs_docker=False,
)
