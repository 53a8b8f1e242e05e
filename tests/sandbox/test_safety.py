"""Safety on the user's machine: proxies, file modes, stale pid files, what binds where.

One private sandbox for the module, started the way a learner behind a company proxy
would start it: HTTP_PROXY and friends point at a port that records whatever reaches it,
and the umask is 0, so any file the sandbox does not create owner-only shows it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.config import Config

from labkit.sandbox import lifecycle
from labkit.sandbox.context import Settings
from tests.conftest import require_data_plane
from tests.sandbox.helpers import serves_page, wait_for
from tests.sandbox.test_lifecycle import listening_sockets

pytestmark = pytest.mark.sandbox

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


class RecordingProxy:
    """A TCP port that keeps every byte sent to it and answers nothing useful."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.received: list[bytes] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


class ProxiedSandbox:
    def __init__(self, settings: Settings, proxy: RecordingProxy, cli_env: dict[str, str]):
        self.settings = settings
        self.proxy = proxy
        #: The environment of a learner's shell after `eval "$(labkit sandbox env)"`.
        self.cli_env = cli_env


def labkit_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labkit.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def sandbox_variables(settings: Settings) -> dict[str, str]:
    return {
        "LABKIT_SANDBOX_HOME": str(settings.home),
        "LABKIT_SANDBOX_API_PORT": str(settings.api_port),
        "LABKIT_SANDBOX_REGISTRY_PORT": str(settings.registry_port),
        "LABKIT_SANDBOX_LB_PORT": str(settings.lb_port),
    }


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedSandbox]:
    require_data_plane()
    proxy = RecordingProxy()
    settings = Settings.on_free_ports(tmp_path_factory.mktemp("proxied") / "home")
    saved = {name: os.environ.get(name) for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy")}
    for name in PROXY_VARIABLES:
        os.environ[name] = proxy.url
    # A user's own exception list, which `labkit sandbox env` must keep.
    os.environ["NO_PROXY"] = "intranet.example"
    os.environ.pop("no_proxy", None)
    old_umask = os.umask(0)
    try:
        lifecycle.up(settings)
    finally:
        os.umask(old_umask)
    try:
        shell = subprocess.run(
            ["bash", "-c", f'eval "$({sys.executable} -m labkit.cli sandbox env)" && env -0'],
            env={**os.environ, **sandbox_variables(settings)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stderr
        cli_env = dict(line.split("=", 1) for line in shell.stdout.split("\0") if "=" in line)
        yield ProxiedSandbox(settings, proxy, cli_env)
    finally:
        lifecycle.down(settings)
        proxy.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_sandbox_env_keeps_the_users_no_proxy_and_covers_loopback(proxied: ProxiedSandbox) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        hosts = proxied.cli_env[name].split(",")
        assert hosts[0] == "intranet.example"
        assert {"127.0.0.1", "localhost"} <= set(hosts)


def test_nothing_reaches_the_proxy_from_api_calls_login_push_and_tasks(
    proxied: ProxiedSandbox, sample_image: str, tmp_path: Path, untag_at_end: list[str]
) -> None:
    env = proxied.cli_env
    assert env["HTTP_PROXY"] == proxied.proxy.url  # the learner's proxy is still set
    # boto3 as a learner's script makes it, configured only by `labkit sandbox env`.
    session_env = {k: v for k, v in env.items() if k.startswith("AWS_") or "proxy" in k.lower()}
    saved = dict(os.environ)
    os.environ.update(session_env)
    # A new script's default session: one made earlier in this process cached other keys.
    boto3.DEFAULT_SESSION = None
    try:
        ecr = boto3.client("ecr")
        ecs = boto3.client("ecs")
        assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"
        uri = ecr.create_repository(repositoryName="behind-proxy")["repository"]["repositoryUri"]
        allow_instance_role_to_pull(ecr, "behind-proxy")
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        boto3.DEFAULT_SESSION = None
    user, password = base64.b64decode(token).decode().split(":", 1)

    # The stock docker CLI and the aws CLI, in that same shell environment.
    config = tmp_path / "docker-config"
    docker_env = {**env, "DOCKER_CONFIG": str(config)}
    login = subprocess.run(
        ["docker", "login", "-u", user, "--password-stdin", proxied.settings.registry_host],
        input=password,
        env=docker_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    untag_at_end.append(f"{uri}:v1")
    subprocess.run(["docker", "tag", sample_image, f"{uri}:v1"], check=True, env=docker_env)
    push = subprocess.run(
        ["docker", "push", f"{uri}:v1"], env=docker_env, capture_output=True, text=True, timeout=120
    )
    assert push.returncode == 0, push.stderr
    if shutil.which("aws"):
        aws_cli = subprocess.run(
            ["aws", "ecr", "describe-images", "--repository-name", "behind-proxy"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert aws_cli.returncode == 0, aws_cli.stderr
        assert json.loads(aws_cli.stdout)["imageDetails"][0]["imageTags"] == ["v1"]

    # labkit's own clients, with the proxy set and no NO_PROXY at all.
    from labkit.aws import connect
    from labkit.config import Backend, LabConfig

    saved = dict(os.environ)
    os.environ.update(sandbox_variables(proxied.settings))
    os.environ.pop("NO_PROXY", None)
    os.environ.pop("no_proxy", None)
    try:
        target = connect(LabConfig(backend=Backend.SANDBOX))
        clusters = target.client("ecs").list_clusters()["clusterArns"]
        assert [arn.rsplit("/", 1)[1] for arn in clusters] == ["ECSCluster"]
        status = labkit_cli("sandbox", "status", "--json", env=dict(os.environ))
        assert status.returncode == 0, status.stderr
    finally:
        os.environ.clear()
        os.environ.update(saved)

    # A task: the agent pulls with the registry's tokens and starts a container.
    task_def = ecs.register_task_definition(
        family="behind-proxy",
        containerDefinitions=[
            {
                "name": "web",
                "image": f"{uri}:v1",
                "memory": 64,
                "essential": True,
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs_direct = _client(proxied, "ecs")
    task_arn = ecs_direct.run_task(cluster="ECSCluster", taskDefinition=task_def)["tasks"][0][
        "taskArn"
    ]
    task = wait_for(lambda: _running(ecs_direct, task_arn), timeout=90)
    binding = task["containers"][0]["networkBindings"][0]
    assert serves_page(f"http://127.0.0.1:{binding['hostPort']}")
    ecs_direct.stop_task(cluster="ECSCluster", task=task_arn)

    assert proxied.proxy.connections == 0, proxied.proxy.received
    assert proxied.proxy.received == []


def allow_instance_role_to_pull(ecr: Any, repository: str) -> None:
    """The lab's step: the container instance role may pull (the agent pulls as it)."""
    statement = {
        "Sid": "pull",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:role/Ec2instanceRole"},
        "Action": [
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchCheckLayerAvailability",
        ],
    }
    ecr.set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )


def _client(proxied: ProxiedSandbox, service: str) -> Any:
    env = lifecycle.env(proxied.settings)
    return boto3.client(
        service,
        endpoint_url=proxied.settings.api_url,
        region_name=proxied.settings.region,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(proxies={}),
    )


def _running(ecs: Any, task_arn: str) -> dict | None:
    task = ecs.describe_tasks(cluster="ECSCluster", tasks=[task_arn])["tasks"][0]
    return task if task["lastStatus"] == "RUNNING" else None


def test_network_bindings_report_where_the_port_really_listens(
    proxied: ProxiedSandbox, sample_image: str, docker_client: Any, untag_at_end: list[str]
) -> None:
    ecr, ecs = _client(proxied, "ecr"), _client(proxied, "ecs")
    uri = ecr.create_repository(repositoryName="bindings")["repository"]["repositoryUri"]
    untag_at_end.append(f"{uri}:v1")
    allow_instance_role_to_pull(ecr, "bindings")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    docker_client.images.get(sample_image).tag(uri, "v1")
    docker_client.images.push(uri, tag="v1", auth_config={"username": user, "password": password})
    task_def = ecs.register_task_definition(
        family="bindings",
        containerDefinitions=[
            {
                "name": "web",
                "image": f"{uri}:v1",
                "memory": 64,
                "essential": True,
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    task_arn = ecs.run_task(cluster="ECSCluster", taskDefinition=task_def)["tasks"][0]["taskArn"]
    try:
        task = wait_for(lambda: _running(ecs, task_arn), timeout=90)
        binding = task["containers"][0]["networkBindings"][0]
        address, port = binding["bindIP"], binding["hostPort"]
        assert address == "127.0.0.1"
        # What Docker really published for the container, and who listens there.
        container = docker_client.containers.get(task["containers"][0]["runtimeId"])
        published = container.attrs["NetworkSettings"]["Ports"]["80/tcp"]
        assert [(b["HostIp"], int(b["HostPort"])) for b in published] == [(address, port)]
        listeners = {sock for sock in listening_sockets(_all_pids()) if sock[1] == port}
        assert listeners == {(address, port)}, listeners
        assert serves_page(f"http://{address}:{port}")
    finally:
        ecs.stop_task(cluster="ECSCluster", task=task_arn)


def _all_pids() -> set[int]:
    return {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}


def test_home_keys_and_config_are_owner_only(proxied: ProxiedSandbox) -> None:
    home = proxied.settings.home

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    # Started with umask 0: anything not created owner-only would be world-readable.
    assert mode(home) == 0o700
    for name in ("token.key", "ecr-token.key", "registry.yml", "sandbox.pid", "registry.pid"):
        assert mode(home / name) == 0o600, name
    # Pushed layers, logs, state: nothing in the home is open to other users.
    loose = [f"{p} {mode(p):o}" for p in [home, *home.rglob("*")] if mode(p) & 0o077]
    assert loose == []


# -- stale pid files ----------------------------------------------------------------------


@pytest.fixture()
def bystander() -> Iterator[subprocess.Popen]:
    """An unrelated process whose PID a stale pid file will name."""
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


def plant_stale_records(home: Path, pid: int) -> None:
    """What a crash and a reboot leave behind: records whose PID is now someone else's."""
    home.mkdir(parents=True, exist_ok=True)
    started = psutil.Process(pid).create_time()
    # An older kit's bare PID; a record of the sandbox (right PID and start time, but
    # another command line); a record of the registry whose start time is another's.
    (home / "sandbox.pid").write_text(str(pid))
    (home / "registry.pid").write_text(
        json.dumps(
            {
                "pid": pid,
                "started": started - 3600,
                "cmdline": ["docker-registry", "serve", str(home / "registry.yml")],
            }
        )
    )


def test_stale_pid_files_never_signal_another_process(
    tmp_path: Path, bystander: subprocess.Popen
) -> None:
    require_data_plane()
    settings = Settings.on_free_ports(tmp_path / "home")
    env = {**os.environ, **sandbox_variables(settings)}
    plant_stale_records(settings.home, bystander.pid)

    status = labkit_cli("sandbox", "status", env=env)
    assert status.returncode == 3
    assert f"names process {bystander.pid} (`sleep 300`" in status.stdout
    assert "left alone" in status.stdout

    down = labkit_cli("sandbox", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert "not running; nothing to stop" in down.stdout
    assert down.stdout.count(f"process {bystander.pid}") == 2  # the sandbox's and registry's
    assert bystander.poll() is None, "down signalled a process that is not the sandbox's"

    plant_stale_records(settings.home, bystander.pid)
    (settings.home / "sandbox.pid").write_text(
        json.dumps(
            {
                "pid": bystander.pid,
                "started": psutil.Process(bystander.pid).create_time(),
                "cmdline": [sys.executable, "-m", "labkit.sandbox"],
            }
        )
    )
    try:
        up = labkit_cli("sandbox", "up", env=env)
        assert up.returncode == 0, up.stderr
        assert "The sandbox is running" in up.stdout
        assert up.stdout.count("left alone") == 2, up.stdout
        assert bystander.poll() is None, "up signalled a process that is not the sandbox's"
        # The records now name the sandbox's own processes, and down stops exactly those.
        sandbox_pid = json.loads((settings.home / "sandbox.pid").read_text())["pid"]
        registry_pid = json.loads((settings.home / "registry.pid").read_text())["pid"]
        assert bystander.pid not in (sandbox_pid, registry_pid)
    finally:
        down = labkit_cli("sandbox", "down", env=env)
    assert "Stopped: sandbox process" in down.stdout
    assert "left alone" not in down.stdout
    assert bystander.poll() is None
    for pid in (sandbox_pid, registry_pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
