"""Cold starts, as a reader would time them: ``labkit sandbox up`` against ``moto_server``.

Each round runs two commands, each on free loopback ports, and stops both after:

* the baseline, ``moto_server -H 127.0.0.1 -p PORT``: from starting the command to its
  first HTTP 200 answer to an STS ``GetCallerIdentity`` request;
* ``labkit sandbox up`` on a fresh temp home (``LABKIT_SANDBOX_HOME`` and the port
  variables): from starting the command to every part answering (the API's health route,
  the registry, every load balancer listener); also, polled meanwhile, to the API's first
  answer, and the sandbox's own ``ready_seconds``.

Both are polled every :data:`POLL_STARTUP` seconds. Which side goes first alternates, and
the ratio is taken per round, so a loaded machine slows both sides of one ratio alike. The
README gives the same two measurements as shell lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import http_status, sandbox_home, sandbox_variables, tcp_answers
from benchmarks.polling import wait_for
from labkit.sandbox import lifecycle
from labkit.sandbox.context import LOOPBACK, free_port_block

ROWS = (
    RowSpec("sandbox_up", "`labkit sandbox up` (fresh home) → every part answering", "s", 3.0),
    RowSpec("sandbox_api_answers", "  of which: → the API answers", "s"),
    RowSpec("sandbox_ready_inside", "  of which: the sandbox's own start (ready_seconds)", "s"),
    RowSpec("moto_server_cold", "`moto_server -H 127.0.0.1 -p PORT` → first STS 200", "s"),
    RowSpec("startup_ratio", "  ratio sandbox up / moto_server (per round)", "x", 3.0),
    RowSpec("sandbox_down", "sandbox down (process, registry, containers)", "s"),
)

#: Both sides are polled this often (seconds): fine enough for a 0.4 s baseline.
POLL_STARTUP = 0.01

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


def command(script: str, module: str) -> list[str]:
    """The console script a reader types (beside this Python), else ``python -m module``."""
    beside = Path(sys.executable).parent / script
    if beside.exists():
        return [str(beside)]
    found = shutil.which(script)
    return [found] if found else [sys.executable, "-m", module]


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def moto_server_cold_start() -> float:
    """Seconds from starting ``moto_server`` to its first 200 on STS GetCallerIdentity."""
    port = free_port_block(1)
    url = f"http://{LOOPBACK}:{port}"
    argv = [*command("moto_server", "moto.server"), "-H", LOOPBACK, "-p", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(
            lambda: process.poll() is not None or _sts_status(url) == 200,
            timeout=30,
            every=POLL_STARTUP,
            what="moto_server's first answer",
        )
        seconds = time.perf_counter() - started
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {process.returncode}")
        return seconds
    finally:
        _stop(process)


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
                time.sleep(POLL_STARTUP)

        argv = [*command("labkit", "labkit.cli"), "sandbox", "up"]
        started = time.perf_counter()
        watcher = threading.Thread(target=watch_api, args=(started,), daemon=True)
        watcher.start()
        try:
            up = subprocess.run(
                argv,
                env=dict(os.environ, **sandbox_variables(settings)),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if up.returncode != 0:
                raise RuntimeError(f"labkit sandbox up exited {up.returncode}: {up.stderr[-400:]}")
            status = lifecycle.status(settings)
            wait_for(
                lambda: _all_answer(status),
                timeout=30,
                every=POLL_STARTUP,
                what="every sandbox part to answer",
            )
            seconds = time.perf_counter() - started
        finally:
            done.set()
            watcher.join(timeout=5)
        started = time.perf_counter()
        lifecycle.down(settings)
        down = time.perf_counter() - started
    return seconds, (api_answered or [None])[0], status.ready_seconds, down


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
    rec.note(
        "moto_server_cold",
        f"`{' '.join(command('moto_server', 'moto.server'))} -H 127.0.0.1 -p PORT`, polled "
        f"every {POLL_STARTUP * 1000:.0f} ms with STS GetCallerIdentity",
    )
    rec.note(
        "sandbox_up",
        f"`{' '.join(command('labkit', 'labkit.cli'))} sandbox up` with LABKIT_SANDBOX_HOME a "
        "fresh folder and free ports; timed until it returns and every part answers",
    )


BENCHMARK = Benchmark(
    name="startup",
    title="`labkit sandbox up` against `moto_server`, both cold",
    rows=ROWS,
    run=run,
    default_repeat=5,
    needs_docker=False,
)
