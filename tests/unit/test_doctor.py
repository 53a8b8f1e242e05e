"""``labkit doctor``'s decisions, per platform, from given machine facts."""

from __future__ import annotations

import pytest

from labkit.doctor import Finding, MachineFacts, diagnose, render
from labkit.sandbox.registry_runner import EngineFacts

DEBIAN = EngineFacts("Linux", "Debian GNU/Linux 12 (bookworm)", "host", "6.1", "x86_64")
DESKTOP = EngineFacts("Darwin", "Docker Desktop", "docker-desktop", "6.10-linuxkit", "aarch64")
PORTS = {"API": (4710, True), "registry": (4711, True), "load balancer": (4780, True)}


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABKIT_DOCKER_ENGINE", raising=False)
    monkeypatch.delenv("LABKIT_ENGINE_HOST_ALIAS", raising=False)


def by_topic(findings: list[Finding]) -> dict[str, Finding]:
    return {f.topic: f for f in findings}


def test_debian_with_packages_is_ready() -> None:
    facts = MachineFacts(
        "Linux",
        engine=DEBIAN,
        registry_binary="/usr/bin/docker-registry",
        static_busybox="/bin/busybox",
        ports=PORTS,
    )
    found = by_topic(diagnose(facts))
    assert {f.status for f in found.values()} == {"ok"}
    assert "host binary" in found["Registry"].detail
    assert "Ready" in render(facts, list(found.values()))


def test_new_mac_online_pulls_what_it_needs() -> None:
    facts = MachineFacts("Darwin", engine=DESKTOP, docker_hub=True, ports=PORTS)
    found = by_topic(diagnose(facts))
    assert found["Docker"].status == "ok" and "VM" in found["Docker"].detail
    assert found["Registry"].status == "warn" and "pulled" in found["Registry"].detail
    assert found["Sample image"].status == "ok" and "Docker Hub" in found["Sample image"].detail


def test_mac_offline_with_images_is_ready() -> None:
    facts = MachineFacts(
        "Darwin",
        engine=DESKTOP,
        registry_image_present=True,
        sample_image_present=True,
        ports=PORTS,
    )
    assert all(f.status == "ok" for f in diagnose(facts))


def test_mac_offline_without_images_says_connect_once() -> None:
    found = by_topic(diagnose(MachineFacts("Darwin", engine=DESKTOP, ports=PORTS)))
    assert found["Registry"].status == "missing"
    assert "docker pull registry:2" in found["Registry"].fix
    assert "apt-get" not in found["Registry"].fix  # no apt on a Mac
    assert found["Sample image"].status == "missing"
    assert "apt-get" not in found["Sample image"].fix


def test_mac_ignores_a_linux_busybox_but_uses_a_busybox_image() -> None:
    facts = MachineFacts("Darwin", engine=DESKTOP, static_busybox="/bin/busybox", ports=PORTS)
    assert by_topic(diagnose(facts))["Sample image"].status == "missing"
    facts = MachineFacts("Darwin", engine=DESKTOP, busybox_image="busybox:latest", ports=PORTS)
    sample = by_topic(diagnose(facts))["Sample image"]
    assert sample.status == "ok" and "FROM busybox:latest" in sample.detail


@pytest.mark.parametrize(
    ("system", "wsl", "words"),
    [
        ("Darwin", False, "Docker Desktop for Mac"),
        ("Windows", False, "WSL 2 backend"),
        ("Linux", True, "WSL integration"),
        ("Linux", False, "docker` group"),
    ],
)
def test_no_docker_fix_per_platform(system: str, wsl: bool, words: str) -> None:
    found = by_topic(diagnose(MachineFacts(system, wsl=wsl, docker_error="no socket")))
    assert found["Docker"].status == "missing"
    assert words in found["Docker"].fix
    assert found["Registry"].status == "missing"


def test_linux_without_root_or_apt_uses_the_container() -> None:
    facts = MachineFacts("Linux", engine=DEBIAN, registry_image_present=True, ports=PORTS)
    registry = by_topic(diagnose(facts))["Registry"]
    assert registry.status == "ok" and "registry:2 container" in registry.detail


def test_taken_port_names_the_variable() -> None:
    ports = dict(PORTS, registry=(4711, False))
    facts = MachineFacts("Linux", engine=DEBIAN, registry_binary="/x", ports=ports)
    found = by_topic(diagnose(facts))["Ports"]
    assert found.status == "missing" and "registry 4711" in found.detail
    assert "LABKIT_SANDBOX_REGISTRY_PORT" in found.fix


def test_proxies_without_loopback_bypass_warn_and_desktop_names_its_setting() -> None:
    facts = MachineFacts("Darwin", engine=DESKTOP, proxies={"HTTPS_PROXY": "http://p:3128"})
    proxies = by_topic(diagnose(facts))["Proxies"]
    assert proxies.status == "warn"
    assert "NO_PROXY" in proxies.fix and "host.docker.internal" in proxies.fix
    facts = MachineFacts(
        "Linux",
        engine=DEBIAN,
        proxies={"HTTPS_PROXY": "http://p:3128"},
        no_proxy="localhost,127.0.0.1",
    )
    assert by_topic(diagnose(facts))["Proxies"].status == "ok"


def test_old_python_is_missing() -> None:
    found = by_topic(diagnose(MachineFacts("Linux", python=(3, 9, 18), engine=DEBIAN)))
    assert found["Python"].status == "missing"
