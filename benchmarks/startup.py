"""Cold starts: ``labkit sandbox up`` on a fresh temp home, against a bare ``moto_server``.

Each round starts a bare ``python -m moto.server`` (process start → first HTTP 200 on an
STS ``GetCallerIdentity`` call) and a sandbox (``lifecycle.up`` → every part answering;
and, polled meanwhile, → the API's health route answering), then stops both. Which side
goes first alternates, and the ratio is taken per round, so a loaded machine slows both
sides of one ratio alike.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import urlsplit

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import POLL_EVERY, http_status, sandbox_home, tcp_answers
from benchmarks.polling import wait_for
from labkit.sandbox import lifecycle
from labkit.sandbox.context import LOOPBACK, free_port_block

ROWS = (
    RowSpec("sandbox_up", "sandbox up (fresh home) → every part answering", "s", 3.0),
    RowSpec("sandbox_api_answers", "  of which: up → the API answers", "s"),
    RowSpec("sandbox_ready_inside", "  of which: the sandbox's own start (ready_seconds)", "s"),
    RowSpec("moto_server_cold", "bare moto_server: process start → first API 200", "s"),
    RowSpec("startup_ratio", "  ratio sandbox up / bare moto_server (per round)", "x", 3.0),
    RowSpec("sandbox_down", "sandbox down (process, registry, containers)", "s"),
)

#: STS GetCallerIdentity, as boto3 would send it; bare moto checks no signature.
_STS_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
_STS_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0"
)
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _sts_status(url: str) -> int | None:
    request = urllib.request.Request(
        url + "/",
        data=_STS_BODY,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": _STS_AUTHORIZATION,
            "X-Amz-Date": "20260101T000000Z",
        },
    )
    try:
        with _opener.open(request, timeout=2) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def moto_server_cold_start() -> float:
    """Seconds from starting ``python -m moto.server`` to its first 200 on an API call."""
    port = free_port_block(1)
    url = f"http://{LOOPBACK}:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: process.poll() is not None or _sts_status(url) == 200,
            timeout=30,
            every=POLL_EVERY,
            what="the bare moto server",
        )
        seconds = time.perf_counter() - started
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {process.returncode}")
        return seconds
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def sandbox_cold_start() -> tuple[float, float | None, float | None, float]:
    """(up → all answer, up → API answers, ready_seconds, down) for one fresh sandbox."""
    with sandbox_home() as settings:
        api_answered: list[float] = []
        done = threading.Event()

        def watch_api(started: float) -> None:
            while not done.is_set():
                if http_status(settings.api_url + "/_labkit/health", timeout=0.5) == 200:
                    api_answered.append(time.perf_counter() - started)
                    return
                time.sleep(POLL_EVERY / 2)

        started = time.perf_counter()
        watcher = threading.Thread(target=watch_api, args=(started,), daemon=True)
        watcher.start()
        try:
            status = lifecycle.up(settings)
            wait_for(
                lambda: _all_answer(status),
                timeout=30,
                every=POLL_EVERY,
                what="every sandbox part to answer",
            )
            up = time.perf_counter() - started
        finally:
            done.set()
            watcher.join(timeout=5)
        started = time.perf_counter()
        lifecycle.down(settings)
        down = time.perf_counter() - started
    return up, (api_answered or [None])[0], status.ready_seconds, down


def run(rec: Recorder, options: Options) -> None:
    rounds = 0

    def once(warmup: bool) -> None:
        nonlocal rounds
        rounds += 1
        if rounds % 2:
            moto = moto_server_cold_start()
            up, api, ready, down = sandbox_cold_start()
        else:
            up, api, ready, down = sandbox_cold_start()
            moto = moto_server_cold_start()
        if warmup:
            return
        rec.add("sandbox_up", up)
        if api is not None:
            rec.add("sandbox_api_answers", api)
        if ready is not None:
            rec.add("sandbox_ready_inside", ready)
        rec.add("moto_server_cold", moto)
        rec.add("startup_ratio", up / moto)
        rec.add("sandbox_down", down)

    repeated(rec, options, BENCHMARK.default_repeat, once)


BENCHMARK = Benchmark(
    name="startup",
    title="sandbox up and down, against a bare moto_server's cold start",
    rows=ROWS,
    run=run,
    default_repeat=5,
    needs_docker=False,
)
