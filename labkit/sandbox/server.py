"""The sandbox process: composes the API, registry, load balancers and ECS agent.

Run by ``labkit sandbox up`` as ``python -m labkit.sandbox`` in its own session,
so it outlives the notebook kernel that started it. Settings come from the environment
(see :class:`labkit.sandbox.context.Settings`). ``Sandbox`` is also usable in-process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import threading
import time
from typing import Any

import boto3
from botocore.config import Config

from labkit.errors import BackendError
from labkit.sandbox.api import ApiServer, json_response
from labkit.sandbox.auth import sandbox_secret_lookup
from labkit.sandbox.containers import docker_or_none, remove_sandbox_containers
from labkit.sandbox.context import (
    LOOPBACK,
    SandboxContext,
    Settings,
    private_dir,
)
from labkit.sandbox.credentials import SandboxCredentials, ensure_credentials
from labkit.sandbox.environment import provision
from labkit.sandbox.persistence import SavedState, seed_for
from labkit.sandbox.registry import Registry
from labkit.sandbox.validation import AwsChecks


class Sandbox:
    """Everything the sandbox runs, started and stopped together."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.ctx = SandboxContext(settings=self.settings, docker=None)
        self.api = ApiServer(LOOPBACK, self.settings.api_port)
        self.registry: Registry | None = None
        self.load_balancers: Any = None
        self.agent: Any = None
        self.saved_state: SavedState | None = None
        self.environment: dict[str, str] = {}
        self.credentials: SandboxCredentials | None = None
        self.started_at: dt.datetime | None = None
        self.ready_seconds: float | None = None
        self.checks: AwsChecks | None = None

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.settings.api_url,
            region_name=self.settings.region,
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
            # An HTTP_PROXY in the environment must not see the sandbox's own calls.
            config=Config(retries={"max_attempts": 2}, proxies={}),
        )

    def start(self) -> None:
        """Start every part; on failure, stop what did start and raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        from moto.core.base_backend import BackendDict
        from moto.moto_api._internal import mock_random

        t0 = time.monotonic()
        # A fresh AWS: moto's backends are process-wide, and an in-process sandbox must
        # not inherit what earlier code in this process created.
        BackendDict.reset()
        # The same home gets the same environment ids at every start (see persistence).
        mock_random.seed(seed_for(self.settings.home))
        self.started_at = dt.datetime.now(dt.UTC)
        private_dir(self.settings.home)
        # The API answers only calls signed with this home's keys (its learner's).
        self.credentials = ensure_credentials(self.settings.home)
        self.api.secret_of = sandbox_secret_lookup(
            self.credentials, self.settings.account_id, self.settings.region
        )
        self.ctx.docker = docker_or_none()
        # Containers left by a sandbox that was killed: ECS would not know them either.
        remove_sandbox_containers(self.ctx.docker, str(self.settings.home))

        self.registry = Registry(self.ctx, self.settings.api_url)
        self.registry.install_ecr_patches()
        # Before provisioning and restoring: what AWS refuses is refused from the first call.
        self.checks = AwsChecks(self.ctx)
        self.checks.install()
        self.api.add_route("health", lambda request: json_response({"ok": True}))
        self.api.add_route("status", lambda request: json_response(self.status()))
        self.api.add_route("registry/token", self.registry.token_route)
        self.api.add_route("registry/token-ttl", self.registry.token_ttl_route)
        try:
            self.api.start()
        except OSError as exc:
            raise BackendError(
                f"The sandbox API could not listen on {self.settings.api_url}.",
                why=str(exc),
                fix="Another program uses that port: stop it, or choose another port with "
                "LABKIT_SANDBOX_API_PORT.",
            ) from None
        self.registry.start()

        clients = {name: self.client(name) for name in ("iam", "ec2", "ecs", "elbv2")}
        self.environment = provision(clients)
        mock_random.seed()  # what the learner creates gets random ids again
        self.saved_state = SavedState(self.ctx)
        saved = self.saved_state.load()
        with self.ctx.lock:
            self.registry.restore_repositories()
            self.saved_state.restore_definitions(saved)

        self._start_data_plane()
        with self.ctx.lock:
            self.saved_state.restore_services(saved)
        self.saved_state.start()
        self.ready_seconds = round(time.monotonic() - t0, 3)

    def _start_data_plane(self) -> None:
        from labkit.sandbox.agent import EcsAgent
        from labkit.sandbox.loadbalancer import LoadBalancers

        self.load_balancers = LoadBalancers(self.ctx)
        self.load_balancers.start()
        self.agent = EcsAgent(self.ctx, self.load_balancers)
        self.agent.start()

    def stop(self) -> None:
        for component in (self.saved_state, self.agent, self.load_balancers, self.registry):
            if component is not None:
                with contextlib.suppress(Exception):  # stopping the rest matters more than this one
                    component.stop()
        remove_sandbox_containers(self.ctx.docker, str(self.settings.home))
        self.api.stop()
        if self.checks is not None:
            with self.ctx.lock:
                self.checks.remove()

    def status(self) -> dict[str, Any]:
        lbs = self.load_balancers.urls() if self.load_balancers is not None else {}
        return {
            # The API answers while the rest still starts; callers wait for ready.
            "ready": self.ready_seconds is not None,
            "pid": os.getpid(),
            "api_url": self.settings.api_url,
            "registry": self.settings.registry_host,
            "region": self.settings.region,
            "account_id": self.settings.account_id,
            "home": str(self.settings.home),
            "docker": self.ctx.docker is not None,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ready_seconds": self.ready_seconds,
            "components": {
                "api": "running",
                "registry": "running" if self.registry and self.registry.running else "stopped",
                "agent": "running" if self.agent is not None else "stopped",
                "load_balancers": "running" if self.load_balancers is not None else "stopped",
            },
            "load_balancers": lbs,
        }


def main() -> int:
    # moto's server logs every request line; the sandbox log keeps only what matters.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Keys, tokens, pushed images and logs are the learner's alone, whatever the umask.
    os.umask(0o077)
    settings = Settings()
    sandbox = Sandbox(settings)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sandbox.start()
    except Exception as exc:
        print(f"sandbox failed to start: {exc}", flush=True)
        return 1
    state = dict(sandbox.status(), environment=sandbox.environment)
    settings.state_file.write_text(json.dumps(state, indent=2))
    print(f"sandbox ready in {sandbox.ready_seconds} s: {settings.api_url}", flush=True)
    # A short timeout, not a bare wait(): the signal handler only runs once the main
    # thread gets back to the interpreter, and a bare wait() may never give it the chance.
    while not stopping.wait(0.5):
        pass
    print("sandbox stopping", flush=True)
    sandbox.stop()
    settings.state_file.unlink(missing_ok=True)
    return 0
