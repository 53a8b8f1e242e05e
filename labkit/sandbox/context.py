"""What every sandbox component shares: settings, moto backends, Docker, credentials.

The sandbox runs moto in-process, so components read and write moto's backend objects
directly (under ``ctx.lock``) to make the API report what really happened: the agent
sets task states and service events, the load balancer sets target health, the registry
lists the images really pushed.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from labkit.names import DEFAULT_REGION, SANDBOX_ACCOUNT_ID

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

#: Host names that mean this machine; no HTTP proxy may stand between the kit and them.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback_ip(value: str) -> bool:
    """Is ``value`` a loopback IP address (127.0.0.0/8, ::1)? False for anything else,
    an instance id or a host name included."""
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        return False


#: Docker label on every container the sandbox starts; its value is the sandbox home,
#: so two sandboxes (say, the learner's and a test's) never touch each other's containers.
CONTAINER_LABEL = "labkit.sandbox.home"


def no_proxy_value(environ: Mapping[str, str] | None = None) -> str:
    """``NO_PROXY`` as the user had it (either spelling), plus every loopback host name.

    Behind a company proxy, ``HTTP_PROXY`` would otherwise send the sandbox's requests,
    with their tokens, to the proxy, which cannot reach this machine's loopback anyway.
    """
    environ = os.environ if environ is None else environ
    names: list[str] = []
    for variable in ("no_proxy", "NO_PROXY"):
        for name in (environ.get(variable) or "").split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    names += [host for host in LOOPBACK_HOSTS if host not in names]
    return ",".join(names)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (0700), created if missing.

    An existing directory of ours with looser modes (made by an older kit) is tightened;
    one owned by someone else is left as it is.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    mine = not hasattr(os, "geteuid") or info.st_uid == os.geteuid()
    if mine and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    return path


def open_private_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, created owner-only (0600) if it is new."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return os.fdopen(fd, "ab")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def default_home() -> Path:
    return Path(os.environ.get("LABKIT_SANDBOX_HOME") or Path.home() / ".labkit" / "sandbox")


def port_is_free(port: int) -> bool:
    """True if a server may bind ``port`` on loopback now (as servers do, with
    SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port_block(size: int = 1) -> int:
    """A free loopback port whose next ``size - 1`` neighbours are free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            base = probe.getsockname()[1]
        if base + size > 65000:
            continue
        taken: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                taken.append(sock)
                sock.bind((LOOPBACK, port))
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
        return base
    raise OSError("no free block of loopback ports")


@dataclass(frozen=True)
class Settings:
    """Where the sandbox keeps its state and which loopback ports it listens on."""

    home: Path = field(default_factory=default_home)
    api_port: int = field(default_factory=lambda: _env_int("LABKIT_SANDBOX_API_PORT", 4710))
    registry_port: int = field(
        default_factory=lambda: _env_int("LABKIT_SANDBOX_REGISTRY_PORT", 4711)
    )
    #: The first load balancer listener port; each further NLB listener takes the next one.
    lb_port: int = field(default_factory=lambda: _env_int("LABKIT_SANDBOX_LB_PORT", 4780))
    region: str = field(
        default_factory=lambda: os.environ.get("LABKIT_SANDBOX_REGION", DEFAULT_REGION)
    )
    account_id: str = SANDBOX_ACCOUNT_ID
    #: Lifetime of an ECR authorization token (ECR's is 12 hours).
    token_ttl_seconds: int = field(
        default_factory=lambda: _env_int("LABKIT_SANDBOX_TOKEN_TTL", 12 * 3600)
    )

    @classmethod
    def on_free_ports(cls, home: Path, **overrides: Any) -> Settings:
        """Settings for a second sandbox beside the usual one: ``home`` and free ports."""
        api = free_port_block(2)  # the API, then the registry
        lb = free_port_block(4)  # the first load balancer listener, and room for more
        return cls(home=home, api_port=api, registry_port=api + 1, lb_port=lb, **overrides)

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def registry_host(self) -> str:
        return f"{LOOPBACK}:{self.registry_port}"

    @property
    def state_file(self) -> Path:
        return self.home / "state.json"

    @property
    def log_file(self) -> Path:
        return self.home / "sandbox.log"


@dataclass
class SandboxContext:
    """Shared by the sandbox's components inside the sandbox process."""

    settings: Settings
    #: A docker.DockerClient, or None when Docker Engine is not reachable (API-only mode).
    docker: Any | None
    #: Held while reading or mutating moto backend objects outside a moto request.
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: Filled by the registry component: ECR-style ``(username, password)`` for a principal.
    registry_credentials: Callable[[str], tuple[str, str]] | None = None
    #: Filled by the registry component: why ``principal`` may not pull ``repository``
    #: (an ECR-style AccessDenied sentence), or None when the pull is allowed.
    pull_denial_reason: Callable[[str, str], str | None] | None = None

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def account_id(self) -> str:
        return self.settings.account_id

    @property
    def container_labels(self) -> dict[str, str]:
        return {CONTAINER_LABEL: str(self.settings.home)}

    def role_arn(self, role_name: str) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{role_name}"

    def backend(self, service: str) -> Any:
        """moto's backend of ``service`` ("ecs", "elbv2", ...) for this account and region."""
        from moto.backends import get_backend

        return get_backend(service)[self.account_id][self.region]  # type: ignore[arg-type]


class Ticker:
    """A daemon thread that calls ``tick`` every ``seconds``, and at once after ``wake.set()``.

    A failing tick is logged, never fatal: the next one runs as usual.
    """

    def __init__(self, name: str, seconds: float, tick: Callable[[], None]) -> None:
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(seconds, tick), name=name)
        self._thread.daemon = True

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Let the running tick finish (up to ``timeout`` seconds); no tick after it."""
        self._stopping.set()
        self.wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self, seconds: float, tick: Callable[[], None]) -> None:
        while not self._stopping.is_set():
            try:
                tick()
            except Exception:  # one bad tick must not end the component
                log.exception("%s: tick failed", self._thread.name)
            self.wake.wait(seconds)
            self.wake.clear()


def shadow(backend: Any, owner: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Replace ``backend.<name>`` by ``owner._<name>`` for this backend object only (an
    instance attribute shadows the class's method); returns the replaced methods."""
    originals = {name: getattr(backend, name) for name in names}
    for name in names:
        setattr(backend, name, getattr(owner, f"_{name}"))
    return originals


def unshadow(backend: Any, names: tuple[str, ...]) -> None:
    """Undo :func:`shadow`: the backend's class methods answer again."""
    for name in names:
        backend.__dict__.pop(name, None)
