"""``labkit doctor``: what the sandbox needs on this machine, what is missing, and the fix.

Facts are gathered once (:func:`gather`), then judged by a pure function (:func:`diagnose`)
so each platform's decisions are unit-tested without that platform.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from labkit.errors import LabkitError
from labkit.sandbox.registry_runner import (
    EngineFacts,
    choose_runner,
    docker_fix,
    engine_in_vm,
    find_registry_binary,
    is_wsl,
    registry_image,
)

MIN_PYTHON = (3, 11)
SAMPLE_IMAGE = "amazon/amazon-ecs-sample:latest"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


@dataclass(frozen=True)
class MachineFacts:
    """Everything the doctor judges; gathered by :func:`gather`, or built by a test."""

    system: str  # platform.system()
    wsl: bool = False
    python: tuple[int, int, int] = (3, 11, 0)
    #: None: Docker not reachable (``docker_error`` says why).
    engine: EngineFacts | None = None
    docker_error: str = ""
    registry_mode: str = "auto"
    registry_binary: str | None = None
    registry_image: str = "registry:2"
    registry_image_present: bool = False
    static_busybox: str | None = None
    busybox_image: str | None = None
    sample_image_present: bool = False
    docker_hub: bool = False
    #: name → (port, free or already the sandbox's own)
    ports: dict[str, tuple[int, bool]] = field(default_factory=dict)
    sandbox_running: bool = False
    proxies: dict[str, str] = field(default_factory=dict)
    no_proxy: str = ""


@dataclass(frozen=True)
class Finding:
    topic: str
    status: str  # "ok" | "warn" | "missing"
    detail: str
    fix: str = ""

    @property
    def mark(self) -> str:
        return {"ok": "✅", "warn": "⚠️ ", "missing": "❌"}[self.status]


def _platform_name(facts: MachineFacts) -> str:
    if facts.system == "Darwin":
        return "macOS"
    if facts.wsl:
        return "Linux (WSL2)"
    return facts.system


def diagnose(facts: MachineFacts) -> list[Finding]:
    """One finding per thing the sandbox needs, in the order a learner would fix them."""
    docker_ok = facts.engine is not None
    in_vm = facts.engine is not None and engine_in_vm(facts.engine)
    return [
        _python_finding(facts),
        _docker_finding(facts, in_vm),
        _registry_finding(facts, docker_ok, in_vm),
        _sample_finding(facts, docker_ok, in_vm),
        *_port_findings(facts),
        _proxy_finding(facts, in_vm),
    ]


def _python_finding(facts: MachineFacts) -> Finding:
    version = ".".join(map(str, facts.python))
    if facts.python[:2] >= MIN_PYTHON:
        return Finding("Python", "ok", f"Python {version}")
    return Finding(
        "Python",
        "missing",
        f"Python {version}; the kit needs {'.'.join(map(str, MIN_PYTHON))} or newer",
        "Install a newer Python (python.org, Homebrew `brew install python`, or "
        "`uv python install 3.12`), then `pipx install` the kit again.",
    )


def _docker_finding(facts: MachineFacts, in_vm: bool) -> Finding:
    if facts.engine is None:
        return Finding(
            "Docker",
            "missing",
            f"not reachable: {facts.docker_error or 'no answer'}",
            docker_fix(facts.system, facts.wsl),
        )
    where = "in a VM (Docker Desktop or alike)" if in_vm else "on this host"
    return Finding("Docker", "ok", f"{facts.engine.operating_system or 'engine'}, {where}")


def _port_findings(facts: MachineFacts) -> list[Finding]:
    taken = [f"{name} {port}" for name, (port, free) in facts.ports.items() if not free]
    if taken:
        return [
            Finding(
                "Ports",
                "missing",
                "taken on 127.0.0.1: " + ", ".join(taken),
                "Stop what listens there, or move the sandbox: LABKIT_SANDBOX_API_PORT, "
                "LABKIT_SANDBOX_REGISTRY_PORT, LABKIT_SANDBOX_LB_PORT.",
            )
        ]
    if not facts.ports:
        return []
    ports = ", ".join(f"{name} {port}" for name, (port, _) in facts.ports.items())
    own = " (the running sandbox's)" if facts.sandbox_running else " (free)"
    return [Finding("Ports", "ok", ports + own)]


def _registry_finding(facts: MachineFacts, docker_ok: bool, in_vm: bool) -> Finding:
    try:
        choice = choose_runner(facts.registry_mode, facts.registry_binary, docker_ok, in_vm)
    except LabkitError as exc:
        return Finding("Registry", "missing", exc.what, exc.fix or "")
    if choice.kind == "binary":
        return Finding("Registry", "ok", f"host binary {choice.binary} ({choice.reason})")
    image = facts.registry_image
    if facts.registry_image_present:
        return Finding("Registry", "ok", f"{image} container ({choice.reason})")
    if facts.docker_hub:
        return Finding(
            "Registry",
            "warn",
            f"{image} container ({choice.reason}); the image is pulled at the first "
            "`labkit sandbox up` (about 10 MB)",
            f"Optional, ahead of time: `docker pull {image}`.",
        )
    linux_fix = (
        " Or, on Debian/Ubuntu, the host binary: `sudo apt-get install -y docker-registry`."
        if facts.system == "Linux" and not facts.wsl
        else ""
    )
    return Finding(
        "Registry",
        "missing",
        f"no registry binary, no {image} image in Docker, and Docker Hub does not answer",
        f"Connect to the internet once and run `docker pull {image}`.{linux_fix}",
    )


def _sample_finding(facts: MachineFacts, docker_ok: bool, in_vm: bool) -> Finding:
    if not docker_ok:
        return Finding("Sample image", "warn", "needs Docker (see above)")
    if facts.sample_image_present:
        return Finding("Sample image", "ok", f"{SAMPLE_IMAGE} is in Docker")
    if facts.docker_hub:
        return Finding(
            "Sample image", "ok", f"Task 2 pulls {SAMPLE_IMAGE} from Docker Hub, as the guide does"
        )
    host_arch = platform.machine().lower()
    engine_arch = (facts.engine.architecture if facts.engine else "").lower()
    same_arch = not engine_arch or engine_arch == host_arch
    if facts.static_busybox and facts.system == "Linux" and same_arch:
        return Finding(
            "Sample image",
            "ok",
            f"offline stand-in, built from the host's static busybox {facts.static_busybox}",
        )
    if facts.busybox_image:
        return Finding(
            "Sample image", "ok", f"offline stand-in, built FROM {facts.busybox_image} in Docker"
        )
    linux_fix = (
        " On Debian/Ubuntu: `sudo apt-get install -y busybox-static`."
        if facts.system == "Linux" and not in_vm
        else ""
    )
    return Finding(
        "Sample image",
        "missing",
        "Docker Hub does not answer and nothing here can build the offline stand-in",
        "Connect to the internet once: Task 2 then pulls the real image (or `docker pull "
        f"busybox` lets the kit build its stand-in offline later).{linux_fix}",
    )


def _proxy_finding(facts: MachineFacts, in_vm: bool) -> Finding:
    if not facts.proxies:
        return Finding("Proxies", "ok", "none set")
    names = ", ".join(sorted(facts.proxies))
    bypass = {h.strip().lower() for h in facts.no_proxy.split(",") if h.strip()}
    missing = [h for h in ("127.0.0.1", "localhost") if h not in bypass]
    fixes = []
    if missing:
        fixes.append(
            f"Add {','.join(missing)} to NO_PROXY (the kit talks to the sandbox on loopback "
            "and bypasses proxies itself, but other tools may not)."
        )
    if in_vm:
        fixes.append(
            "In Docker Desktop, keep host.docker.internal out of the proxy (Settings > "
            "Resources > Proxies > bypass): the engine fetches registry tokens there."
        )
    if not fixes:
        return Finding("Proxies", "ok", f"{names} set; loopback is bypassed")
    return Finding("Proxies", "warn", f"{names} set", " ".join(fixes))


# -- gathering facts ----------------------------------------------------------------------


def _docker_hub_answers(timeout: float = 2.0) -> bool:
    """Whether this host reaches Docker Hub's registry (the engine usually does too)."""
    try:
        with socket.create_connection(("registry-1.docker.io", 443), timeout=timeout):
            return True
    except OSError:
        return False


def gather() -> MachineFacts:
    from labkit.images import local_busybox_image, static_busybox
    from labkit.sandbox import lifecycle
    from labkit.sandbox.context import Settings, port_is_free

    settings = Settings()
    engine, error, client = None, "", None
    try:
        import docker

        client = docker.from_env(timeout=10)
        engine = EngineFacts.probe(client)
    except Exception as exc:  # any failure means the same here: no Docker
        error = " ".join(f"{exc.__class__.__name__}: {exc}".split())[:200]
        client = None

    def present(name: str) -> bool:
        try:
            return client is not None and bool(client.images.get(name))
        except Exception:  # any failure means the same here: not there
            return False

    image = registry_image()
    busybox_image = local_busybox_image(client) if client is not None else None
    running = lifecycle.status(settings).running
    ports = {
        "API": settings.api_port,
        "registry": settings.registry_port,
        "load balancer": settings.lb_port,
    }
    static = static_busybox()
    return MachineFacts(
        system=platform.system(),
        wsl=is_wsl(),
        python=tuple(sys.version_info[:3]),  # type: ignore[arg-type]
        engine=engine,
        docker_error=error,
        registry_mode=os.environ.get("LABKIT_REGISTRY", "auto"),
        registry_binary=find_registry_binary(),
        registry_image=image,
        registry_image_present=present(image),
        static_busybox=str(static) if static else None,
        busybox_image=busybox_image,
        sample_image_present=present(SAMPLE_IMAGE),
        docker_hub=_docker_hub_answers(),
        ports={name: (port, running or port_is_free(port)) for name, port in ports.items()},
        sandbox_running=running,
        proxies={k: v for k in PROXY_VARIABLES if (v := os.environ.get(k))},
        no_proxy=os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "",
    )


def render(facts: MachineFacts, findings: list[Finding]) -> str:
    lines = [f"labkit doctor: {_platform_name(facts)}, for the offline sandbox", ""]
    width = max(len(f.topic) for f in findings)
    for f in findings:
        lines.append(f"{f.mark} {f.topic.ljust(width)}  {f.detail}")
        if f.fix and f.status != "ok":
            lines.append(f"   {' ' * width}  → {f.fix}")
    missing = [f for f in findings if f.status == "missing"]
    lines.append("")
    lines.append(
        "Ready: `labkit sandbox up`, then open notebooks/00_start_here.ipynb."
        if not missing
        else f"{len(missing)} thing(s) to fix first; run `labkit doctor` again afterwards."
    )
    return "\n".join(lines)


def as_dict(facts: MachineFacts, findings: list[Finding]) -> dict[str, Any]:
    return {
        "platform": _platform_name(facts),
        "ok": not any(f.status == "missing" for f in findings),
        "findings": [asdict(f) for f in findings],
    }
