"""Start, find and stop the sandbox process from any Python process or the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from labkit.errors import BackendError
from labkit.sandbox import processes, rootless
from labkit.sandbox.context import (
    LOOPBACK,
    Settings,
    no_proxy_value,
    open_private_log,
    port_is_free,
    private_dir,
)
from labkit.sandbox.credentials import ensure_credentials
from labkit.sandbox.processes import ProcessRecord

#: Records of the processes the sandbox starts (see :mod:`labkit.sandbox.processes`).
SANDBOX_RECORD = "sandbox.pid"
REGISTRY_RECORD = "registry.pid"

#: urllib without any proxy: sandbox traffic never leaves loopback.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

START_TIMEOUT_SECONDS = 90


@dataclass
class SandboxStatus:
    """What runs where. ``running`` is False (with ``problem``) when the sandbox is down."""

    running: bool
    api_url: str
    registry: str
    region: str
    account_id: str
    home: str
    docker: bool = False
    pid: int | None = None
    started_at: str | None = None
    ready_seconds: float | None = None
    components: dict[str, str] = field(default_factory=dict)
    load_balancers: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    #: What the user should know, e.g. a stale pid file whose process was left alone.
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if not self.running:
            return "\n".join(
                [f"The sandbox is not running ({self.problem}). Start it: labkit sandbox up"]
                + [f"  Note: {note}" for note in self.notes]
            )
        lines = [
            f"The sandbox is running (pid {self.pid}, home {self.home}).",
            f"  AWS API endpoint   {self.api_url}   (region {self.region}, "
            f"account {self.account_id})",
            f"  image registry     {self.registry}",
        ]
        for dns, url in self.load_balancers.items():
            lines.append(f"  load balancer      {dns} -> {url}")
        if not self.docker:
            lines.append(
                "  Docker Engine is not reachable: API steps work, containers cannot run.\n"
                "  To run them, start Docker Engine (dockerd), then: "
                "labkit sandbox down && labkit sandbox up"
            )
        lines += [f"  Note: {note}" for note in self.notes]
        return "\n".join(lines)


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LABKIT_SANDBOX_HOME=str(settings.home),
        LABKIT_SANDBOX_API_PORT=str(settings.api_port),
        LABKIT_SANDBOX_REGISTRY_PORT=str(settings.registry_port),
        LABKIT_SANDBOX_LB_PORT=str(settings.lb_port),
        LABKIT_SANDBOX_REGION=settings.region,
        LABKIT_SANDBOX_TOKEN_TTL=str(settings.token_ttl_seconds),
    )
    # Whatever the sandbox or the registry calls on loopback must not go to a proxy.
    env["NO_PROXY"] = env["no_proxy"] = no_proxy_value(env)
    return env


def _get_json(url: str, timeout: float = 2.0) -> dict[str, Any]:
    with _opener.open(url, timeout=timeout) as response:
        return json.loads(response.read())


def status(settings: Settings | None = None) -> SandboxStatus:
    """The sandbox's status; never raises."""
    settings = settings or Settings()
    base = dict(
        api_url=settings.api_url,
        registry=settings.registry_host,
        region=settings.region,
        account_id=settings.account_id,
        home=str(settings.home),
    )
    process, note = processes.find_own(settings.home / SANDBOX_RECORD, "sandbox")
    notes = [note] if note else []
    if process is None:
        return SandboxStatus(running=False, problem="no sandbox process", notes=notes, **base)
    pid = process.pid
    try:
        live = _get_json(f"{settings.api_url}/_labkit/status")
    except OSError as exc:
        live, problem = {"ready": True}, f"process {pid} does not answer: {exc}"
    else:
        answers = live.get("pid")
        problem = f"the API port answers for process {answers}, not for {pid}"
        problem = "" if answers == pid else problem
    if not problem and not live.get("ready"):
        problem = "still starting"
    if problem:
        return SandboxStatus(running=False, pid=pid, problem=problem, **base)
    reported = ("api_url", "registry", "region", "pid", "docker", "started_at", "ready_seconds")
    reported += ("components", "load_balancers")
    return SandboxStatus(running=True, **{**base, **{name: live[name] for name in reported}})


def _stop_recorded(
    settings: Settings, record: str, what: str, timeout: float, notes: list[str]
) -> bool:
    """Stop the process ``record`` names if it is provably the sandbox's, then drop the record.

    True when it stopped; ``notes`` gets which stale record's process was left alone.
    """
    path = settings.home / record
    process, note = processes.find_own(path, what)
    stopped = process is not None and processes.stop(process, timeout)
    path.unlink(missing_ok=True)  # the record is the kit's own file, stale or not
    notes += [note] if note else []
    return stopped


def _stop_leftover_registry(settings: Settings, notes: list[str]) -> list[str]:
    """Stop the registry process a killed sandbox left behind (a record names it)."""
    if _stop_recorded(settings, REGISTRY_RECORD, "sandbox's registry", 5, notes):
        return ["registry process"]
    return []


def _remove_leftover_containers(settings: Settings) -> list[str]:
    """Remove the containers labelled as this home's sandbox's (and no other)."""
    # Imported here: the Docker SDK alone costs about a second, on `up`'s critical path.
    from labkit.sandbox.containers import docker_or_none, remove_sandbox_containers

    removed = remove_sandbox_containers(docker_or_none(), str(settings.home))
    return [f"{removed} container(s)"] if removed else []


def _taken_port(settings: Settings) -> tuple[str, int, str] | None:
    """The first of the sandbox's ports another socket listens on, as (name, port, variable)."""
    if rootless.state_dir() is not None:
        return None  # in a classroom the ports are forwarded ones, held by RootlessKit
    for name, port, variable in (
        ("API", settings.api_port, "LABKIT_SANDBOX_API_PORT"),
        ("registry", settings.registry_port, "LABKIT_SANDBOX_REGISTRY_PORT"),
        ("load balancer", settings.lb_port, "LABKIT_SANDBOX_LB_PORT"),
    ):
        if not port_is_free(port):
            return name, port, variable
    return None


def up(settings: Settings | None = None, timeout: float = START_TIMEOUT_SECONDS) -> SandboxStatus:
    """Start the sandbox, or return the running one's status (idempotent)."""
    settings = settings or Settings()
    current = status(settings)
    if current.running:
        return current
    notes: list[str] = []
    _stop_recorded(settings, SANDBOX_RECORD, "sandbox", 15, notes)
    _stop_leftover_registry(settings, notes)
    # The sandbox process removes a killed one's containers as it starts (Sandbox.start),
    # so `up` asks Docker only when a port is taken: a leftover registry container may hold it.
    taken = _taken_port(settings)
    if taken is not None:
        _remove_leftover_containers(settings)
        taken = _taken_port(settings)
    if taken is not None:
        name, port, variable = taken
        raise BackendError(
            f"The sandbox cannot start: its {name} port {LOOPBACK}:{port} is taken.",
            why="Another program (or another sandbox with a different home) listens there.",
            fix=f"Stop that program, or pick a free port: export {variable}=<port>.",
        )
    private_dir(settings.home)
    ensure_credentials(settings.home)  # before the child: clients read them as it starts
    settings.state_file.unlink(missing_ok=True)  # a killed sandbox leaves its own behind
    # In a classroom: inside the learner's rootless Docker namespace (see sandbox.rootless).
    in_namespaces = rootless.prepare(settings)
    log = open_private_log(settings.log_file)
    argv = [sys.executable, "-m", "labkit.sandbox"]
    process = subprocess.Popen(
        in_namespaces + argv,
        env=_child_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=str(settings.home),
    )
    log.close()
    # Read now, while the child cannot have been replaced: it is not reaped until we wait.
    ProcessRecord.of(process.pid, argv).save(settings.home / SANDBOX_RECORD)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = settings.log_file.read_text(errors="replace")[-1500:]
            raise BackendError(
                "The sandbox process stopped while starting.",
                why=tail.strip() or f"exit code {process.returncode}",
                fix=f"Read {settings.log_file}; `labkit sandbox down` then `up` retries.",
            )
        if settings.state_file.exists():
            current = status(settings)
            if current.running:
                current.notes = notes
                return current
        time.sleep(0.05)
    raise BackendError(
        f"The sandbox did not become ready within {timeout:.0f} s.",
        why=f"See {settings.log_file}.",
        fix="Run `labkit sandbox down`, then `labkit sandbox up` again.",
    )


def down(settings: Settings | None = None) -> str:
    """Stop everything the sandbox started (process, registry, containers), nothing else."""
    settings = settings or Settings()
    stopped, notes = [], []
    if _stop_recorded(settings, SANDBOX_RECORD, "sandbox", 15, notes):
        stopped.append("sandbox process")
    settings.state_file.unlink(missing_ok=True)
    stopped += _stop_leftover_registry(settings, notes)
    stopped += _remove_leftover_containers(settings)
    message = "The sandbox was not running; nothing to stop."
    if stopped:
        images = settings.home / "registry"
        message = f"Stopped: {', '.join(stopped)}. Pushed images stay in {images}"
    return "\n".join([message, *(f"Note: {note}" for note in notes)])


def env(settings: Settings | None = None) -> dict[str, str]:
    """Environment variables that point the aws CLI, boto3 and labkit at the sandbox."""
    settings = settings or Settings()
    credentials = ensure_credentials(settings.home)
    # Both spellings: tools differ in which one they read, and Python's urllib (so botocore
    # and the aws CLI) prefers the lowercase one when both are set.
    no_proxy = no_proxy_value()
    return {
        "LABKIT_BACKEND": "sandbox",
        "AWS_ENDPOINT_URL": settings.api_url,
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_REGION": settings.region,
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }
