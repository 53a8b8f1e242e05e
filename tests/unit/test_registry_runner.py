"""Where the registry runs and which addresses it names, per platform (decision logic only;
tests/sandbox/test_desktop_conditions.py runs the container path for real)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from labkit.errors import BackendError
from labkit.sandbox.context import Settings
from labkit.sandbox.registry_runner import (
    CONTAINER_CERT,
    CONTAINER_CONFIG,
    ContainerRegistry,
    EngineFacts,
    choose_runner,
    container_name,
    container_user,
    engine_in_vm,
    find_registry_binary,
    realm_url,
)

LINUX = EngineFacts("Linux", "Debian GNU/Linux 12 (bookworm)", "vm", "6.1.0")
MAC = EngineFacts("Darwin", "Docker Desktop", "docker-desktop", "6.10.14-linuxkit", "aarch64")
WINDOWS = EngineFacts("Windows", "Docker Desktop", "docker-desktop", "5.15.153.1-microsoft")
WSL_DESKTOP = EngineFacts("Linux", "Docker Desktop", "docker-desktop", "5.15.153.1-microsoft")
LINUX_DESKTOP = EngineFacts("Linux", "Docker Desktop", "docker-desktop", "6.10.14-linuxkit")
COLIMA = EngineFacts("Linux", "Ubuntu 24.04 LTS", "colima", "6.8.0")


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LABKIT_DOCKER_ENGINE",
        "LABKIT_ENGINE_HOST_ALIAS",
        "LABKIT_REGISTRY_BINARY",
        "LABKIT_REGISTRY_IMAGE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("facts", "in_vm"),
    [
        (LINUX, False),
        (MAC, True),
        (WINDOWS, True),
        (WSL_DESKTOP, True),
        (LINUX_DESKTOP, True),
        (COLIMA, True),
    ],
)
def test_engine_location_per_platform(facts: EngineFacts, in_vm: bool) -> None:
    assert engine_in_vm(facts) is in_vm


def test_engine_location_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_in_vm(LINUX, override="vm") is True
    assert engine_in_vm(MAC, override="local") is False
    monkeypatch.setenv("LABKIT_DOCKER_ENGINE", "vm")
    assert engine_in_vm(LINUX) is True


def test_realm_is_what_the_engine_reaches() -> None:
    # The daemon runs the token exchange: on a local engine it shares our loopback...
    assert realm_url(4710, in_vm=False) == "http://127.0.0.1:4710/_labkit/registry/token"
    # ...in Docker Desktop's VM, 127.0.0.1 is the VM: the host is host.docker.internal.
    assert realm_url(4710, in_vm=True) == "http://host.docker.internal:4710/_labkit/registry/token"
    assert realm_url(5, in_vm=True, alias="192.168.65.254").startswith("http://192.168.65.254:5/")


def test_realm_alias_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_ENGINE_HOST_ALIAS", "gateway.docker.internal")
    assert realm_url(7, in_vm=True) == "http://gateway.docker.internal:7/_labkit/registry/token"


def test_runner_choice_per_platform() -> None:
    debian = choose_runner("auto", "/usr/bin/docker-registry", True, in_vm=False)
    assert (debian.kind, debian.binary) == ("binary", "/usr/bin/docker-registry")
    assert choose_runner("auto", None, True, in_vm=True).kind == "container"  # a Mac
    assert choose_runner("auto", None, True, in_vm=False).kind == "container"  # no apt, no root
    # A registry binary on a host whose engine is a VM would be out of the engine's reach.
    assert choose_runner("auto", "/usr/local/bin/registry", True, in_vm=True).kind == "container"
    # No Docker: the API still works with the host binary.
    assert choose_runner("auto", "/usr/bin/docker-registry", False, in_vm=False).kind == "binary"
    assert choose_runner("container", "/usr/bin/docker-registry", True, False).kind == "container"


def test_runner_choice_says_what_is_missing() -> None:
    with pytest.raises(BackendError, match="Docker is not reachable and this host has no"):
        choose_runner("auto", None, False, in_vm=False)
    with pytest.raises(BackendError, match="no registry binary was found"):
        choose_runner("binary", None, True, in_vm=False)
    with pytest.raises(BackendError, match="not a registry mode"):
        choose_runner("podman", None, True, in_vm=False)


def test_binary_lookup_can_be_hidden_or_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LABKIT_REGISTRY_BINARY", "none")
    assert find_registry_binary() is None
    fake = tmp_path / "registry"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("LABKIT_REGISTRY_BINARY", str(fake))
    assert find_registry_binary() == str(fake)
    fake.chmod(0o644)
    assert find_registry_binary() is None


def test_container_user_keeps_files_the_learners() -> None:
    assert container_user(LINUX, 1000, 1000) == "1000:1000"
    assert container_user(MAC, 501, 20) == "501:20"
    assert container_user(WINDOWS, None, None) is None
    rootless = EngineFacts("Linux", "Debian", rootless=True)
    assert container_user(rootless, 1000, 1000) is None


def test_container_config_names_the_engine_side_realm(tmp_path: Path) -> None:
    cert = tmp_path / "token.pem"
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    settings = Settings(home=tmp_path, api_port=4710, registry_port=4711, lb_port=4780)
    for facts, host in ((MAC, "host.docker.internal"), (LINUX, "127.0.0.1")):
        runner = ContainerRegistry(settings, client=None, facts=facts, cert_path=cert)
        with tarfile.open(fileobj=io.BytesIO(runner._config_archive())) as tar:
            config = json.loads(tar.extractfile(CONTAINER_CONFIG.lstrip("/")).read())
            assert tar.extractfile(CONTAINER_CERT.lstrip("/")).read() == cert.read_bytes()
        token = config["auth"]["token"]
        assert token["realm"] == f"http://{host}:4710/_labkit/registry/token"
        assert token["rootcertbundle"] == CONTAINER_CERT
        assert config["http"]["addr"] == ":5000"
        assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
        assert runner.labels == {
            "labkit.sandbox.home": str(tmp_path),
            "labkit.sandbox.role": "registry",
        }


def test_container_name_is_per_home(tmp_path: Path) -> None:
    assert container_name(tmp_path / "a") != container_name(tmp_path / "b")
    assert container_name(tmp_path / "a") == container_name(tmp_path / "a")
