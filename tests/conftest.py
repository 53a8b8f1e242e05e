"""Shared pytest fixtures: a real sandbox process on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from labkit.sandbox import lifecycle
from labkit.sandbox.context import Settings, free_port_block


def free_port() -> int:
    """One free port on loopback."""
    return free_port_block(1)


@contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers: ``(port,
    accepted connections)``. A stuck process looks like this to its clients."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:  # closed: the test is over
                return

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        # shutdown wakes the accept() that close() alone leaves blocked on Linux
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join(5)
        for connection in accepted:
            connection.close()


def require_data_plane() -> None:
    """Skip where Docker or the registry is missing, except in CI, where it must fail."""
    import docker

    from labkit.sandbox.registry_runner import find_registry_binary, registry_image

    missing = []
    client = None
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception:
        client = None
        missing.append("a running Docker Engine")
    if find_registry_binary() is None:
        # Without the host binary the registry runs as a container of registry:2.
        try:
            assert client is not None
            client.images.get(registry_image())
        except Exception:
            missing.append(f"docker-registry or the {registry_image()} image")
    if missing:
        message = "needs " + " and ".join(missing) + " (bash .ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def client_factory(settings: Settings) -> Callable[[str], Any]:
    env = lifecycle.env(settings)

    def make(service: str, **kwargs: Any) -> Any:
        return boto3.client(
            service,
            endpoint_url=settings.api_url,
            region_name=settings.region,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            **kwargs,
        )

    return make


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lifecycle.SandboxStatus]:
    """One real sandbox process for the session; stopped (and checked empty) at the end."""
    require_data_plane()
    settings = Settings.on_free_ports(tmp_path_factory.mktemp("sandbox-home"))
    status = lifecycle.up(settings)
    status.settings = settings  # type: ignore[attr-defined]
    try:
        yield status
    finally:
        lifecycle.down(settings)


@pytest.fixture(scope="session")
def aws(sandbox: lifecycle.SandboxStatus) -> Callable[[str], Any]:
    """``aws("ecr")`` → a boto3 client pointed at the session sandbox."""
    return client_factory(sandbox.settings)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def docker_client() -> Any:
    require_data_plane()
    import docker

    return docker.from_env(timeout=120)


@pytest.fixture()
def untag_at_end(docker_client: Any) -> Iterator[list[str]]:
    """The test appends each local image reference it tags (or pulls anew); they are untagged
    when it ends, so runs leave no ``127.0.0.1:PORT/...`` tags. Only those: nothing else."""
    made: list[str] = []
    yield made
    untag(docker_client, made)


def untag(docker_client: Any, references: list[str]) -> None:
    """``docker rmi`` each reference a test made (no force; one already gone is fine)."""
    import warnings

    import docker.errors

    for reference in references:
        try:
            docker_client.images.remove(reference)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:  # e.g. a container still uses it: leave it
            warnings.warn(f"left the test's image tag {reference}: {exc}", stacklevel=1)


@pytest.fixture(scope="session")
def sample_image(docker_client: Any) -> str:
    """The offline sample image, built once: returns its local tag."""
    from labkit.images import build_sample_image

    tag = "labkit-test-sample:latest"
    build_sample_image(tag, client=docker_client)
    return tag


@contextmanager
def private_lab_env(
    tmp_path_factory: pytest.TempPathFactory, *, strict: bool
) -> Iterator[dict[str, str]]:
    """Point labkit, and every kernel or server it starts, at a sandbox of our own.

    Its own home, state dir and free ports travel as environment variables, so notebook
    00 or ``labkit run`` starts it where the test looks; it is stopped, and the
    environment restored, afterwards. ``strict`` makes a failed check fail the run.
    """
    settings = Settings.on_free_ports(tmp_path_factory.mktemp("sandbox-home"))
    env = {
        "LABKIT_SANDBOX_HOME": str(settings.home),
        "LABKIT_SANDBOX_API_PORT": str(settings.api_port),
        "LABKIT_SANDBOX_REGISTRY_PORT": str(settings.registry_port),
        "LABKIT_SANDBOX_LB_PORT": str(settings.lb_port),
        "LABKIT_STATE_DIR": str(tmp_path_factory.mktemp("labkit-state")),
        "LABKIT_BACKEND": "sandbox",
    }
    if strict:
        env["LABKIT_STRICT"] = "1"
    dropped = [k for k in ("AWS_ENDPOINT_URL", "LABKIT_STRICT", "LABKIT_HEADLESS") if k not in env]
    saved = {k: os.environ.get(k) for k in [*env, *dropped, "DOCKER_HOST"]}
    os.environ.update(env)
    for key in dropped:
        os.environ.pop(key, None)
    try:
        yield env
    finally:
        lifecycle.down(settings)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def running_sandbox_clients(*services: str) -> dict[str, Any]:
    """boto3 clients for the sandbox the environment points at (it must be running),
    plus its status under ``"status"``: independent of labkit's learner API."""
    status = lifecycle.status()
    assert status.running, status.describe()
    env = lifecycle.env()
    kwargs = dict(
        endpoint_url=status.api_url,
        region_name=status.region,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    return {"status": status, **{name: boto3.client(name, **kwargs) for name in services}}


def remove_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere: no AWS_* variables, empty config files, no IMDS."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))


def command_lines_showing(secret: str) -> list[str]:
    """Every process's command line (``/proc/*/cmdline``, which any user of the host may
    read) that contains ``secret``: the answer must be empty."""
    showing = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile
            continue
        if any(secret.encode() in word for word in words):
            showing.append(f"{cmdline.parent.name}: {b' '.join(words).decode(errors='replace')}")
    return showing
