"""The sandbox NLB for real: listener sockets, health checks, forwarding, loopback only."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import (
    Lab,
    create_service,
    http_get,
    register,
    remove_service,
    serves_page,
    unique,
    wait_for,
    wait_stable,
)

pytestmark = pytest.mark.sandbox


def health(lab: Lab, tg_arn: str | None = None) -> dict[str, dict]:
    elbv2 = lab.client("elbv2")
    found = elbv2.describe_target_health(TargetGroupArn=tg_arn or lab.env["target_group_arn"])
    return {d["Target"]["Id"]: d["TargetHealth"] for d in found["TargetHealthDescriptions"]}


@pytest.fixture()
def side_server() -> Iterator[tuple[int, list[int]]]:
    """A plain HTTP server on loopback answering "side"; yields (port, hit counter)."""
    hits: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(1)
            body = b"side"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


def test_target_health_is_checked_for_real(lab: Lab) -> None:
    elbv2 = lab.client("elbv2")
    tg = lab.env["target_group_arn"]
    name = unique()
    create_service(lab, name, register(lab))
    try:
        instance = wait_for(lambda: next(iter(health(lab)), None), 30, 0.05)
        seen = {health(lab)[instance]["State"]}
        wait_for(lambda: seen.add(health(lab)[instance]["State"]) or "healthy" in seen, 20, 0.05)
        assert "initial" in seen or "healthy" in seen
        # A target no task answers for (another instance, a port nothing listens on): it
        # fails its checks, never healthy. (An instance that does not exist is refused.)
        reservations = lab.client("ec2").describe_instances()["Reservations"]
        idle = next(
            i["InstanceId"]
            for r in reservations
            for i in r["Instances"]
            if i["InstanceId"] != instance
        )
        elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": idle, "Port": 1}])
        bogus = wait_for(
            lambda: health(lab).get(idle, {}).get("State") == "unhealthy" and health(lab)[idle],
            10,
        )
        assert bogus["Reason"] == "Target.FailedHealthChecks"
        elbv2.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": idle, "Port": 1}])
        # Traffic still flows to the healthy task.
        assert serves_page(lab.lb_url)
        # Scaling to zero drains the task's target before its container stops.
        lab.client("ecs").update_service(cluster=lab.cluster, service=name, desiredCount=0)
        draining = wait_for(lambda: health(lab).get(instance, {}).get("State") == "draining", 10)
        assert draining
        assert health(lab)[instance]["Reason"] == "Target.DeregistrationInProgress"
        wait_for(lambda: instance not in health(lab), 20)
    finally:
        remove_service(lab, name)


def test_round_robin_over_healthy_targets(lab: Lab, side_server: tuple[int, list[int]]) -> None:
    port, hits = side_server
    elbv2 = lab.client("elbv2")
    tg = lab.env["target_group_arn"]
    name = unique()
    create_service(lab, name, register(lab))
    try:
        wait_stable(lab, name)
        # A loopback IP target is reachable as it is.
        elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": "127.0.0.1", "Port": port}])
        wait_for(lambda: health(lab).get("127.0.0.1", {}).get("State") == "healthy", 10)
        bodies = [http_get(lab.lb_url)[1] for _ in range(6)]
        assert bodies.count("side") == 3, bodies
        assert sum("<html" in b.lower() for b in bodies) == 3
        elbv2.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": "127.0.0.1", "Port": port}])
        time.sleep(0.2)
        assert all(serves_page(lab.lb_url) for _ in range(4))
    finally:
        remove_service(lab, name)


def test_listener_created_later_gets_the_next_loopback_port(
    lab: Lab, side_server: tuple[int, list[int]]
) -> None:
    port, _ = side_server
    elbv2, ec2 = lab.client("elbv2"), lab.client("ec2")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [lab.env["vpc_id"]]}])
    lb = elbv2.create_load_balancer(
        Name=f"extra{uuid.uuid4().hex[:6]}",
        Type="network",
        Subnets=[s["SubnetId"] for s in subnets["Subnets"][:2]],
    )["LoadBalancers"][0]
    tg = elbv2.create_target_group(
        Name=f"extra{uuid.uuid4().hex[:6]}", Protocol="TCP", Port=port, VpcId=lab.env["vpc_id"]
    )["TargetGroups"][0]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="TCP",
        Port=8080,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )["Listeners"][0]
    try:
        elbv2.register_targets(
            TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": "127.0.0.1", "Port": port}]
        )
        url = wait_for(lambda: lab.sandbox.load_balancers.urls().get(lb["DNSName"]), 5)
        assert url == f"http://127.0.0.1:{lab.settings.lb_port + 1}"
        assert wait_for(lambda: http_get(url) == (200, "side"), 10)
    finally:
        elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
        elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    # A deleted listener closes its socket.
    wait_for(lambda: lb["DNSName"] not in lab.sandbox.load_balancers.urls(), 5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", lab.settings.lb_port + 1), timeout=1).close()


def _listening_inodes() -> dict[str, str]:
    """inode -> "ip:port" for every TCP socket in LISTEN state (IPv4 and IPv6)."""
    out = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            if width == 8:
                ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1])
            else:
                raw = bytes.fromhex(address)
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                ip = socket.inet_ntop(socket.AF_INET6, raw)
            out[fields[9]] = f"{ip}:{int(port, 16)}"
    return out


def _process_tree(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def test_every_listening_socket_is_on_loopback(lab: Lab) -> None:
    name = unique()
    create_service(lab, name, register(lab))
    try:
        wait_stable(lab, name)
        listening = _listening_inodes()
        mine = []
        for pid in _process_tree(os.getpid()):
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue  # exited meanwhile
            for fd in fds:
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue  # closed meanwhile (the listing's own fd, for one)
                if link.startswith("socket:[") and link[8:-1] in listening:
                    mine.append(listening[link[8:-1]])
        ports = {int(a.rsplit(":", 1)[1]) for a in mine}
        for expected in (lab.settings.api_port, lab.settings.registry_port, lab.settings.lb_port):
            assert expected in ports, (expected, mine)
        assert all(a.startswith("127.") for a in mine), mine
        # Containers publish their ports on loopback only.
        for container in lab.containers():
            for bindings in container.attrs["NetworkSettings"]["Ports"].values():
                assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings)
    finally:
        remove_service(lab, name)


def test_api_only_mode_reports_why_tasks_cannot_start(tmp_path: Path) -> None:
    """With no Docker Engine the agent runs no container and says why, in service events."""
    import json

    from labkit.sandbox.agent import EcsAgent
    from labkit.sandbox.context import SandboxContext, Settings
    from labkit.sandbox.loadbalancer import LoadBalancers

    # Another account: moto keeps its backends apart from the lab sandbox's.
    settings = Settings(home=tmp_path, account_id="210987654321", lb_port=0)
    ctx = SandboxContext(settings=settings, docker=None)
    ec2, ecs = ctx.backend("ec2"), ctx.backend("ecs")
    image_id = next(iter(ec2.amis))
    instance = ec2.run_instances(image_id, 1, None, [], is_instance_type_default=True)
    lbs = LoadBalancers(ctx)
    agent = EcsAgent(ctx, lbs)
    agent.start()
    try:
        ecs.create_cluster("ECSCluster")
        ecs.register_container_instance("ECSCluster", instance.instances[0].id)
        td = ecs.register_task_definition(
            "ecs-demo",
            [{"name": "web", "image": "x:latest", "memory": 128, "portMappings": []}],
            [],
        )
        service = ecs.create_service("ECSCluster", "MYSERVICE1", 1, td.arn)
        wait_for(lambda: any("API-only mode" in e["message"] for e in service.events), 5)
        assert service.running_count == 0
        task = ecs.run_task("ECSCluster", td.arn, 1, None, "", None, "EC2")[0]
        wait_for(lambda: task.last_status == "STOPPED", 5)
        assert task.stopped_reason.startswith("CannotStartContainerError:")
        assert json.dumps(agent.endpoints()) == "{}"
    finally:
        agent.stop()
