"""Owner-only files from the first byte, proxy exceptions, and process records."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from labkit.files import write_private
from labkit.sandbox import processes
from labkit.sandbox.context import no_proxy_value, private_dir
from labkit.sandbox.processes import ProcessRecord
from labkit.sandbox.registry.tokens import BearerSigner, EcrTokens


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def no_umask_and_no_chmod(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """umask 0, and chmod forbidden: a file is owner-only only if it was born so."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a key file must be created owner-only, not narrowed later")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_key_files_are_born_owner_only(tmp_path: Path, no_umask_and_no_chmod: None) -> None:
    home = private_dir(tmp_path / "home")
    signer = BearerSigner(home)
    tokens = EcrTokens(home, ttl_seconds=60)
    assert mode(home) == 0o700
    assert mode(home / "token.key") == 0o600
    assert mode(home / "ecr-token.key") == 0o600
    # The keys work: a token signed now is accepted, and a second start reuses the keys.
    user, password = tokens.credentials("arn:aws:iam::123456789012:user/moto")
    assert EcrTokens(home, 60).principal(user, password).endswith(":user/moto")
    assert BearerSigner(home).x5c == signer.x5c
    assert [p.name for p in home.iterdir() if p.name.endswith(".tmp")] == []


def test_write_private_replaces_a_file_whole_and_owner_only(
    tmp_path: Path, no_umask_and_no_chmod: None
) -> None:
    target = tmp_path / "registry.yml"
    target.write_text("old, world-readable")
    assert mode(target) == 0o666
    write_private(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600


def test_write_private_writers_never_share_a_temporary_file(tmp_path: Path) -> None:
    """Threads of one process writing one file, and a temporary file a killed writer left
    under the old pid-based name: every write lands whole, nothing is left behind."""
    target = tmp_path / "services.json"
    (tmp_path / f".services.json.{os.getpid()}.tmp").write_text("left by a killed sandbox")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                write_private(target, f"{n}-{i}".encode() * 1000)
        except BaseException as exc:  # noqa: BLE001 - the test reports any
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    text = target.read_text()
    assert text == text[: len(text) // 1000] * 1000  # one writer's whole data
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".services.json.{os.getpid()}.tmp",
        "services.json",
    ]


def test_private_dir_tightens_an_existing_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    private_dir(home)
    assert mode(home) == 0o700


def test_no_proxy_keeps_both_spellings_and_adds_loopback() -> None:
    value = no_proxy_value({"no_proxy": "a.example, b.example", "NO_PROXY": "b.example,c"})
    assert value.split(",") == ["a.example", "b.example", "c", "127.0.0.1", "localhost", "::1"]
    assert no_proxy_value({}) == "127.0.0.1,localhost,::1"
    assert no_proxy_value({"NO_PROXY": "localhost"}) == "localhost,127.0.0.1,::1"


@pytest.fixture()
def sleeper() -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(["sleep", "60"])
    # Under load the child may not have exec'd yet (or shows an empty command line while it
    # does): the tests need it to be `sleep 60` already.
    deadline = time.monotonic() + 10
    while psutil.Process(process.pid).cmdline() != ["sleep", "60"]:
        assert time.monotonic() < deadline, "sleep 60 did not start"
        time.sleep(0.01)
    yield process
    process.kill()
    process.wait()


def test_a_record_finds_its_own_process_and_stop_ends_it(
    tmp_path: Path, sleeper: subprocess.Popen
) -> None:
    record_path = tmp_path / "sandbox.pid"
    ProcessRecord.of(sleeper.pid).save(record_path)
    assert mode(record_path) == 0o600
    found, note = processes.find_own(record_path, "sandbox")
    assert found is not None and found.pid == sleeper.pid and note == ""
    assert processes.stop(found, timeout=5)
    assert sleeper.wait(timeout=5) == -15  # SIGTERM was enough


@pytest.mark.parametrize(
    "stale",
    ["bare pid", "other start time", "other command line"],
)
def test_a_stale_record_leaves_the_process_alone(
    tmp_path: Path, sleeper: subprocess.Popen, stale: str
) -> None:
    record_path = tmp_path / "sandbox.pid"
    real = ProcessRecord.of(sleeper.pid)
    if stale == "bare pid":
        record_path.write_text(str(sleeper.pid))
    elif stale == "other start time":
        ProcessRecord(real.pid, real.started - 30, real.cmdline).save(record_path)
    else:
        ProcessRecord(real.pid, real.started, ("python", "-m", "labkit.sandbox")).save(record_path)
    found, note = processes.find_own(record_path, "sandbox")
    assert found is None
    assert f"names process {sleeper.pid} (`sleep 60`" in note
    assert note.endswith("that process was left alone.")
    time.sleep(0.1)
    assert sleeper.poll() is None


def test_missing_dead_and_damaged_records(tmp_path: Path) -> None:
    record_path = tmp_path / "registry.pid"
    assert processes.find_own(record_path, "registry") == (None, "")
    finished = subprocess.Popen(["true"])
    finished.wait()
    ProcessRecord(finished.pid, time.time(), ("true",)).save(record_path)
    if not psutil.pid_exists(finished.pid):  # (unless the PID was reused at once)
        assert processes.find_own(record_path, "registry") == (None, "")
    record_path.write_text(json.dumps({"pid": "x"}))
    found, note = processes.find_own(record_path, "registry")
    assert found is None and "not a process record the kit wrote" in note


def test_lab_environment_sends_loopback_calls_past_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``lab.export_environment()`` then a plain ``boto3.client()``, behind a proxy."""
    import socket

    import boto3
    import botocore.exceptions
    from botocore.config import Config

    from labkit.lab import Lab

    proxy = socket.create_server(("127.0.0.1", 0))
    proxy.settimeout(0.5)
    closed = socket.create_server(("127.0.0.1", 0))
    endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there: a direct call is refused at once
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.getsockname()[1]}")
    monkeypatch.setenv("NO_PROXY", "intranet.example")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)

    lab = Lab.from_parameters(backend="endpoint")
    environment = lab.aws_environment()
    assert environment["no_proxy"] == "intranet.example,127.0.0.1,localhost,::1"
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    for client in (
        boto3.client("sts", config=Config(retries={"max_attempts": 1})),
        lab.client("sts"),
    ):
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            client.get_caller_identity()
    with pytest.raises(TimeoutError):
        proxy.accept()  # nobody came
    proxy.close()

    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://ecs.example.com")
    assert "NO_PROXY" not in Lab.from_parameters(backend="endpoint").aws_environment()


def test_record_of_a_just_started_child_holds_the_command_it_runs() -> None:
    """Read right after Popen, a child may not have exec'd yet (no command line, or its
    parent's): a record taken then would never match, and `up` would wait in vain."""
    import sys

    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    for _ in range(20):
        child = subprocess.Popen(argv)
        try:
            record = ProcessRecord.of(child.pid, argv)
            assert record.cmdline == tuple(argv)
            assert record.matches(psutil.Process(child.pid))
        finally:
            child.kill()
            child.wait()
