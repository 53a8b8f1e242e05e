"""The sandbox as a Mac with Docker Desktop would run it, recreated on Linux.

No registry binary (``LABKIT_REGISTRY_BINARY=none``) and no static busybox
(``LABKIT_BUSYBOX=none``); the engine holds ``registry:2`` and
``amazon/amazon-ecs-sample`` (built offline, see ``desktop_conditions``), so the kit takes
the path a Mac user's first pulls lead to: the registry runs as a container.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.polling import wait_for
from labkit.runner import NOTEBOOK_DIR
from labkit.sandbox import lifecycle
from labkit.sandbox.context import CONTAINER_LABEL, Settings
from labkit.sandbox.registry_runner import ROLE_LABEL
from tests.conftest import client_factory
from tests.sandbox.desktop_conditions import (
    MAC_CONDITIONS,
    STAND_IN_LABEL,
    ensure_registry_image,
    ensure_sample_image,
)
from tests.sandbox.helpers import http_get

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def desktop_engine(docker_client: Any) -> Any:
    """The engine with ``registry:2`` and the sample image, as after a Mac's first pulls."""
    ensure_registry_image(docker_client)
    ensure_sample_image(docker_client)
    return docker_client


@pytest.fixture
def mac_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in MAC_CONDITIONS.items():
        monkeypatch.setenv(key, value)  # the sandbox process inherits them


def registry_containers(client: Any, home: Path) -> list[Any]:
    return client.containers.list(
        all=True, filters={"label": [f"{CONTAINER_LABEL}={home}", f"{ROLE_LABEL}=registry"]}
    )


def push_sample(client: Any, settings: Settings, repository: str, tag: str) -> str:
    """``docker tag`` + ``login`` + ``push`` as the learner does; returns the pushed digest."""
    import base64

    ecr = client_factory(settings)("ecr")
    uri = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    client.images.get("amazon/amazon-ecs-sample:latest").tag(uri, tag=tag)
    auth = {"username": user, "password": password}
    digest = ""
    for event in client.images.push(uri, tag=tag, stream=True, decode=True, auth_config=auth):
        assert "error" not in event, event
        digest = event.get("aux", {}).get("Digest", digest)
    assert digest.startswith("sha256:")
    return digest


def listed_digests(settings: Settings, repository: str) -> set[str]:
    ecr = client_factory(settings)("ecr")
    return {
        i["imageDigest"] for i in ecr.describe_images(repositoryName=repository)["imageDetails"]
    }


def test_registry_container_push_restart_and_sigkill(
    tmp_path: Path, desktop_engine: Any, mac_conditions: None
) -> None:
    client = desktop_engine
    settings = Settings.on_free_ports(tmp_path / "home")
    try:
        lifecycle.up(settings)
        [registry] = registry_containers(client, settings.home)
        # Loopback only, on the sandbox's registry port.
        bindings = registry.attrs["HostConfig"]["PortBindings"]["5000/tcp"]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(settings.registry_port)}]
        digest = push_sample(client, settings, "desktop", "v1")
        assert listed_digests(settings, "desktop") == {digest}
        # The registry's files in the home are the learner's, not root's.
        stored = list((settings.home / "registry").rglob("*"))
        assert stored and {p.stat().st_uid for p in stored} == {os.getuid()}

        lifecycle.down(settings)
        assert registry_containers(client, settings.home) == []
        lifecycle.up(settings)
        assert listed_digests(settings, "desktop") == {digest}  # images kept

        os.kill(lifecycle.status(settings).pid, signal.SIGKILL)
        time.sleep(0.5)
        assert len(registry_containers(client, settings.home)) == 1  # left behind, for now
        lifecycle.up(settings)
        [fresh] = registry_containers(client, settings.home)
        assert fresh.id != registry.id  # the leftover went; no orphan next to the new one
        assert listed_digests(settings, "desktop") == {digest}
        # And Docker pulls it back through the container registry, token auth and all.
        uri = f"{settings.registry_host}/desktop"
        client.images.remove(f"{uri}:v1")
        assert push_sample(client, settings, "desktop-2", "v1") != ""
    finally:
        lifecycle.down(settings)
    assert registry_containers(client, settings.home) == []


def test_sample_stand_in_builds_from_a_busybox_image(
    desktop_engine: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No host busybox (a Mac): the stand-in is built FROM a busybox image Docker holds."""
    from labkit.images import build_sample_image

    client = desktop_engine
    base = "labkit-test-busybox:latest"  # stands in for Docker Hub's busybox image
    shutil.copy("/bin/busybox", tmp_path / "busybox")
    (tmp_path / "Dockerfile").write_text(
        f"FROM scratch\nCOPY busybox /bin/busybox\nLABEL {STAND_IN_LABEL}=busybox\n"
    )
    client.images.build(path=str(tmp_path), tag=base, rm=True)
    monkeypatch.setenv("LABKIT_BUSYBOX", "none")
    monkeypatch.setenv("LABKIT_SAMPLE_BASE_IMAGE", base)
    tag = "labkit-test-desktop-sample:latest"
    build_sample_image(tag, client=client)
    container = client.containers.run(
        tag, detach=True, ports={"80/tcp": ("127.0.0.1", None)}, labels={STAND_IN_LABEL: "run"}
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        status, body = wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/", timeout=1), 10, ignoring=(OSError,)
        )
        assert status == 200 and "<html" in body.lower()
    finally:
        container.remove(force=True)


# -- the whole lab, as a learner in the docker group without root -------------------------


@pytest.fixture
def docker_group_user() -> Iterator[str]:
    """A throwaway user in the ``docker`` group (removed afterwards); needs root here."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating a throwaway docker-group user needs root and useradd")
    name = f"labkit-learner-{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "-m", "-G", "docker", "-s", "/bin/sh", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)  # only this user's
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


def _python_for(user: str) -> tuple[str, str]:
    """A Python the user may run, and a PYTHONPATH with the kit and its dependencies.

    The venv's interpreter may live where only root can read (pyenv under /root); the
    system's Python of the same minor version runs the same installed packages.
    """
    import site
    import sysconfig

    candidate = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}")
    candidates = [p for p in (sys.executable, candidate, "/usr/bin/python3") if p]
    for python in candidates:
        ok = subprocess.run(
            ["runuser", "-u", user, "--", python, "-c", "import sys; print(sys.version)"],
            capture_output=True,
            text=True,
        )
        if ok.returncode == 0 and ok.stdout.startswith(
            f"{sys.version_info.major}.{sys.version_info.minor}."
        ):
            packages = sysconfig.get_paths()["purelib"]
            extra = [p for p in site.getsitepackages() if p != packages]
            return python, os.pathsep.join([str(ROOT), packages, *extra])
    pytest.skip("no Python of this minor version that the throwaway user may run")


def test_whole_lab_as_a_docker_group_user_on_the_container_path(
    desktop_engine: Any, docker_group_user: str
) -> None:
    import tempfile

    user = docker_group_user
    entry = pwd.getpwnam(user)
    # Not under pytest's tmp_path: its parents are root's alone.
    work = Path(tempfile.mkdtemp(prefix="labkit-learner-"))
    os.chmod(work, 0o755)
    settings = Settings.on_free_ports(work / "sandbox-home")
    for folder in (work, work / "state", work / "runs"):
        folder.mkdir(exist_ok=True)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    # The learner's own copy of the notebooks: Task 3 writes my-task-definition.json there.
    notebooks = work / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, notebooks, ignore=shutil.ignore_patterns("my-task-*"))
    for path in [notebooks, *notebooks.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    python, pythonpath = _python_for(user)
    # The user's aws CLI (pipx or pip puts it beside their Python): the kit's awscli, run
    # by the Python this user may run; Task 2's typed lines call it.
    tools = work / "bin"
    tools.mkdir()
    (tools / "aws").write_text(
        f"#!{python}\nimport sys\nfrom awscli.clidriver import main\nsys.exit(main())\n"
    )
    os.chmod(tools, 0o755)
    os.chmod(tools / "aws", 0o755)
    env = {
        "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin",
        "HOME": entry.pw_dir,
        "USER": user,
        "PYTHONPATH": pythonpath,
        "LABKIT_SANDBOX_HOME": str(settings.home),
        "LABKIT_SANDBOX_API_PORT": str(settings.api_port),
        "LABKIT_SANDBOX_REGISTRY_PORT": str(settings.registry_port),
        "LABKIT_SANDBOX_LB_PORT": str(settings.lb_port),
        "LABKIT_STATE_DIR": str(work / "state"),
        "LABKIT_BACKEND": "sandbox",
        "LABKIT_STRICT": "1",
        **MAC_CONDITIONS,
    }
    as_user = ["runuser", "-u", user, "--", "env", *[f"{k}={v}" for k, v in env.items()]]
    started = time.monotonic()
    try:
        run = subprocess.run(
            [
                *as_user,
                python,
                "-m",
                "labkit.cli",
                "run",
                "--until",
                "04",
                "--notebooks",
                str(notebooks),
                "-q",
                "-o",
                str(work / "runs"),
            ],
            cwd=str(work),
            capture_output=True,
            text=True,
            timeout=900,
        )
        print(f"labkit run --until 04 as {user}: {time.monotonic() - started:.1f} s")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        [registry] = registry_containers(desktop_engine, settings.home)
        assert registry.attrs["Config"]["User"] == f"{entry.pw_uid}:{entry.pw_gid}"
        # The page came back through the load balancer the lab created.
        status = lifecycle.status(settings)
        [url] = status.load_balancers.values()
        code, body = http_get(url, timeout=5)
        assert code == 200 and "<html" in body.lower()
        owners = {p.stat().st_uid for p in (settings.home / "registry").rglob("*")}
        assert owners == {entry.pw_uid}
    finally:
        subprocess.run(
            [*as_user, python, "-m", "labkit.cli", "sandbox", "down"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(work, ignore_errors=True)
    assert registry_containers(desktop_engine, settings.home) == []
