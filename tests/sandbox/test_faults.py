"""Faults a classroom brings: killed containers, rolling updates under traffic, load,
ports already taken. Each test prints its figure (see the closing note of issue 5)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from labkit.errors import BackendError
from labkit.sandbox import lifecycle
from labkit.sandbox.context import Settings
from tests.sandbox.helpers import (
    Lab,
    create_service,
    describe,
    register,
    remove_service,
    running_tasks,
    serves_page,
    unique,
    wait_for,
    wait_stable,
    wait_steady_event,
)

pytestmark = pytest.mark.sandbox

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_service_returns_to_steady_state_after_each_of_repeated_kills(lab: Lab) -> None:
    name = unique()
    create_service(lab, name, register(lab))
    try:
        wait_stable(lab, name)
        recoveries = []
        for _ in range(4):
            victim = lab.containers(**{"com.amazonaws.ecs.container-name": "ecs-sample"})
            victim = [c for c in victim if c.status == "running"]
            assert len(victim) == 1
            killed = time.monotonic()
            victim[0].kill()
            wait_for(lambda: not serves_page(lab.lb_url) or None, timeout=10, every=0.05)
            wait_for(lambda: serves_page(lab.lb_url), timeout=30, every=0.05)
            recoveries.append(time.monotonic() - killed)
            wait_stable(lab, name)
        print(f"\nkill -> serving again, 4 kills: {[round(r, 2) for r in recoveries]} s")
        assert max(recoveries) < 10
    finally:
        remove_service(lab, name)


#: Each revision appends its number to the page it serves, so a response says who served it.
_MARKED_PAGE = {
    "entryPoint": ["/bin/busybox", "sh", "-c"],
    "command": [
        'echo "<!-- revision $REVISION -->" >> /www/index.html && '
        "exec /bin/busybox httpd -f -p 80 -h /www"
    ],
}
_REVISION = re.compile(r"<!-- revision (\d+) -->")
#: The rollout (two tasks replaced one at a time, each drained) must end within this.
ROLLOUT_TIMEOUT = 120.0


def _rollout_done(lab: Lab, name: str, second: str, old_tasks: list[str]) -> bool:
    """Only the new deployment, both its tasks running and healthy, the old ones gone."""
    ecs, elbv2 = lab.client("ecs"), lab.client("elbv2")
    service = describe(lab, name)
    if [(d["taskDefinition"], d["runningCount"]) for d in service["deployments"]] != [(second, 2)]:
        return False
    running = running_tasks(lab, name)
    if len(running) != 2 or {t["taskDefinitionArn"] for t in running} != {second}:
        return False
    old = ecs.describe_tasks(cluster=lab.cluster, tasks=old_tasks)["tasks"]
    if {t["lastStatus"] for t in old} != {"STOPPED"}:
        return False
    targets = elbv2.describe_target_health(TargetGroupArn=lab.env["target_group_arn"])
    states = [d["TargetHealth"]["State"] for d in targets["TargetHealthDescriptions"]]
    return states == ["healthy", "healthy"]  # the old targets' draining is over


def test_rolling_update_of_two_tasks_under_traffic_loses_no_request(lab: Lab) -> None:
    name = unique()
    first = register(lab, environment=[{"name": "REVISION", "value": "1"}], **_MARKED_PAGE)
    # Both tasks hold host port 80 of the two instances: at the ECS defaults (100/200) the
    # rollout would wait for room; a minimum of 50 % lets it replace one task at a time.
    config = {"minimumHealthyPercent": 50, "maximumPercent": 200}
    create_service(lab, name, first, count=2, deploymentConfiguration=config)
    # (seconds since the traffic began, the revision that answered 200, or None: a failure)
    results: list[tuple[float, str | None]] = []
    try:
        wait_steady_event(lab, name)  # both targets healthy
        old_tasks = [t["taskArn"] for t in running_tasks(lab, name)]
        assert len(old_tasks) == 2
        second = register(lab, environment=[{"name": "REVISION", "value": "2"}], **_MARKED_PAGE)
        stop = threading.Event()
        began = time.monotonic()

        def traffic() -> None:  # sequential requests, a new connection each
            while not stop.is_set():
                try:
                    with _opener.open(lab.lb_url, timeout=2) as response:
                        found = _REVISION.search(response.read().decode(errors="replace"))
                        ok = response.status == 200 and found is not None
                        results.append((time.monotonic() - began, found[1] if ok else None))
                except OSError:
                    results.append((time.monotonic() - began, None))

        client = threading.Thread(target=traffic)
        client.start()
        try:
            time.sleep(0.5)
            updated_at = time.monotonic() - began
            lab.client("ecs").update_service(
                cluster=lab.cluster, service=name, taskDefinition=second
            )
            wait_for(lambda: _rollout_done(lab, name, second, old_tasks), ROLLOUT_TIMEOUT, 0.2)
            done_at = time.monotonic() - began
            time.sleep(0.5)  # and a little after: only the new revision answers
        finally:
            stop.set()
            client.join(timeout=10)
    finally:
        remove_service(lab, name)
    failed = [at for at, revision in results if revision is None]
    before = [revision for at, revision in results if at < updated_at]
    during = [revision for at, revision in results if updated_at <= at < done_at]
    after = [revision for at, revision in results if at >= done_at]
    print(
        f"\n{len(results)} requests over a rolling update of 2 tasks "
        f"({done_at - updated_at:.1f} s from UpdateService to both new tasks serving and the "
        f"old ones drained): {len(failed)} failed; {during.count('1')} answered by revision 1 "
        f"and {during.count('2')} by revision 2 during the rollout"
    )
    assert not failed, f"requests failed at {[round(at, 2) for at in failed]} s"
    # The traffic really spanned the rollout: the old revision before, both during, the new
    # one after, and requests all along.
    assert before and set(before) == {"1"}, before
    assert {"1", "2"} <= set(during), during
    assert after and set(after) == {"2"}, after
    assert len(during) >= 50, len(during)


LOAD_SCRIPT = r"""
import json, sys, threading, time, http.client
host, port, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
latencies, errors, lock = [], [0], threading.Lock()
def one():
    t0 = time.perf_counter()
    try:
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/"); r = c.getresponse(); r.read(); c.close()
        ok = r.status == 200
    except OSError:
        ok = False
    with lock:
        if ok: latencies.append(time.perf_counter() - t0)
        else: errors[0] += 1
start = time.perf_counter(); threads = []
for i in range(int(rate * seconds)):
    # Open-loop: request i leaves at start + i / rate, whatever the others are doing.
    delay = start + i / rate - time.perf_counter()
    if delay > 0: time.sleep(delay)
    t = threading.Thread(target=one); t.start(); threads.append(t)
for t in threads: t.join(timeout=10)
latencies.sort()
pct = lambda p: round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)
print(json.dumps({"sent": len(threads), "ok": len(latencies), "errors": errors[0],
                  "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
                  "wall_s": round(time.perf_counter() - start, 2)}))
"""


def test_bounded_load_through_the_load_balancer(lab: Lab) -> None:
    name = unique()
    create_service(lab, name, register(lab), count=2)
    try:
        wait_stable(lab, name)
        wait_for(lambda: serves_page(lab.lb_url), timeout=30)
        port = int(lab.lb_url.rsplit(":", 1)[1].strip("/"))
        out = subprocess.run(
            [sys.executable, "-c", LOAD_SCRIPT, "127.0.0.1", str(port), "200", "10"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        report = json.loads(out.stdout)
    finally:
        remove_service(lab, name)
    print(f"\n200 req/s for 10 s through the NLB: {report}")
    assert report["sent"] == 2000
    assert report["errors"] <= 0.01 * report["sent"]


def test_task_containers_publish_ports_on_loopback_only(lab: Lab) -> None:
    name = unique()
    create_service(lab, name, register(lab), count=2)
    try:
        wait_stable(lab, name)
        bindings = []
        for container in lab.containers():
            container.reload()
            for published in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
                bindings += [b["HostIp"] for b in published or []]
    finally:
        remove_service(lab, name)
    assert bindings and set(bindings) == {"127.0.0.1"}, bindings


def test_a_taken_sandbox_port_is_a_clear_error_and_starts_nothing(tmp_path: Path) -> None:
    settings = Settings.on_free_ports(tmp_path / "home")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", settings.registry_port))
    squatter.listen()
    try:
        with pytest.raises(BackendError) as caught:
            lifecycle.up(settings)
    finally:
        squatter.close()
    message = str(caught.value)
    assert f"registry port 127.0.0.1:{settings.registry_port} is taken" in message
    assert "LABKIT_SANDBOX_REGISTRY_PORT" in message
    assert not lifecycle.status(settings).running
    assert not (settings.home / "sandbox.pid").exists()


def test_a_registry_that_never_answers_is_ecrs_server_error_after_one_timeout(
    lab: Lab,
) -> None:
    """A stuck registry process: DescribeImages fails in about one timeout (not one per
    retry) with ECR's ServerException saying what happened and what to do."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from labkit.sandbox.registry.client import RegistryClient
    from tests.conftest import silent_server

    sandbox = lab.sandbox
    ecr = boto3.client(  # as Sandbox.client, but one attempt: each attempt waits the timeout
        "ecr",
        endpoint_url=sandbox.settings.api_url,
        region_name=sandbox.settings.region,
        aws_access_key_id=sandbox.credentials.access_key_id,
        aws_secret_access_key=sandbox.credentials.secret_access_key,
        config=Config(retries={"max_attempts": 1}, proxies={}),
    )
    hooks = sandbox.registry.ecr_hooks
    kept = hooks.client
    with silent_server() as (port, accepted):
        hooks.client = RegistryClient(f"http://127.0.0.1:{port}", kept.signer, timeout_seconds=1)
        try:
            started = time.monotonic()
            with pytest.raises(ClientError) as failed:
                ecr.describe_images(repositoryName="sample")
            took = time.monotonic() - started
        finally:
            hooks.client = kept
    error = failed.value.response["Error"]
    print(f"DescribeImages failed after {took:.2f} s: {error}")
    assert error["Code"] == "ServerException"
    assert "did not answer within 1 s" in error["Message"]
    assert "labkit sandbox down" in error["Message"]
    assert took < 2.5 and len(accepted) == 1
    assert ecr.describe_images(repositoryName="sample")["imageDetails"] is not None  # back
