"""Where the sandbox's registry runs: the host's registry binary, or a ``registry:2`` container.

Debian and Ubuntu package the CNCF registry (``docker-registry``); a host process starts
fastest, so it is the default there. Elsewhere (Docker Desktop on macOS and Windows, Linux
without root or apt) the registry is a container of ``registry:2``, pulled once.

Who calls whom (docs/desktop.md has the reasoning): the *engine's daemon*, not the
``docker`` CLI, calls the registry and, on its 401, the token realm. Docker Desktop's
engine lives in a VM whose ``127.0.0.1`` is not the host's, so there the registry is a
container publishing ``127.0.0.1:PORT`` and the realm is ``host.docker.internal``; a Linux
engine shares the host's loopback, so the realm is ``127.0.0.1``. The registry container
calls nothing on the host (the token key is copied in before it starts); the sandbox
calls the registry at its published loopback port.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import BackendError
from labkit.files import write_private
from labkit.sandbox.context import (
    CONTAINER_LABEL,
    LOOPBACK,
    Settings,
    no_proxy_value,
    open_private_log,
    private_dir,
)
from labkit.sandbox.processes import ProcessRecord

#: The token service the registry trusts (the ``service`` and ``iss`` of its tokens).
REGISTRY_SERVICE = "labkit-sandbox-registry"
TOKEN_ISSUER = "labkit-sandbox"
#: The CNCF distribution image, as Docker Hub names it.
DEFAULT_REGISTRY_IMAGE = "registry:2"
#: The name a VM-based engine (Docker Desktop) gives the host it runs on.
HOST_ALIAS = "host.docker.internal"
#: Where ``registry:2`` listens, keeps its data and reads its configuration.
CONTAINER_PORT = 5000
CONTAINER_STORAGE = "/var/lib/registry"
CONTAINER_CONFIG = "/etc/docker/registry/config.yml"
CONTAINER_CERT = "/etc/docker/registry/labkit-token.pem"
#: Second label on the registry container (the first, CONTAINER_LABEL, names the home).
ROLE_LABEL = "labkit.sandbox.role"

#: Engines that run in a VM of their own, recognised by ``docker info``'s words.
_VM_ENGINE_MARKS = ("docker desktop", "rancher desktop", "colima", "lima-", "orbstack")

MODE_VARIABLE = "LABKIT_REGISTRY"
BINARY_VARIABLE = "LABKIT_REGISTRY_BINARY"
IMAGE_VARIABLE = "LABKIT_REGISTRY_IMAGE"
ENGINE_VARIABLE = "LABKIT_DOCKER_ENGINE"
HOST_ALIAS_VARIABLE = "LABKIT_ENGINE_HOST_ALIAS"


def registry_image() -> str:
    return os.environ.get(IMAGE_VARIABLE) or DEFAULT_REGISTRY_IMAGE


def find_registry_binary() -> str | None:
    """The host's CNCF registry binary (Debian names it ``docker-registry``), or None.

    ``LABKIT_REGISTRY_BINARY`` names another one, or ``none`` to behave as if there were
    none (as on a Mac): the container path then runs instead.
    """
    chosen = os.environ.get(BINARY_VARIABLE, "").strip()
    if chosen.lower() == "none":
        return None
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which("docker-registry") or shutil.which("registry")


def is_wsl(release: str | None = None) -> bool:
    """True inside a WSL distro (its kernel release names Microsoft)."""
    return "microsoft" in (release if release is not None else platform.release()).lower()


@dataclass(frozen=True)
class EngineFacts:
    """What ``docker info`` says about the engine, plus the host's operating system."""

    host_system: str  # platform.system(): "Linux", "Darwin", "Windows"
    operating_system: str = ""
    name: str = ""
    kernel_version: str = ""
    architecture: str = ""
    rootless: bool = False

    @classmethod
    def probe(cls, client: Any) -> EngineFacts:
        info = client.info()
        return cls(
            host_system=platform.system(),
            operating_system=info.get("OperatingSystem") or "",
            name=info.get("Name") or "",
            kernel_version=info.get("KernelVersion") or "",
            architecture=info.get("Architecture") or "",
            rootless=any("rootless" in str(o) for o in info.get("SecurityOptions") or []),
        )

    @property
    def desktop(self) -> bool:
        return "docker desktop" in self.operating_system.lower()


def engine_in_vm(facts: EngineFacts, override: str | None = None) -> bool:
    """Whether the engine's ``127.0.0.1`` is another machine's (a VM's) loopback.

    ``override`` (``LABKIT_DOCKER_ENGINE``: ``vm`` or ``local``) settles it for engines the
    words below miss. A Linux host's engine is local unless ``docker info`` names a desktop
    product (Docker Desktop for Linux and WSL2 integration run the engine in a VM too).
    """
    choice = (override if override is not None else os.environ.get(ENGINE_VARIABLE, "")).lower()
    if choice in ("vm", "desktop"):
        return True
    if choice in ("local", "host"):
        return False
    if facts.host_system != "Linux":
        return True
    words = f"{facts.operating_system} {facts.name}".lower()
    return any(mark in words for mark in _VM_ENGINE_MARKS)


def engine_host_name(in_vm: bool, alias: str | None = None) -> str:
    """How the engine reaches a service on the host's loopback."""
    alias = alias if alias is not None else os.environ.get(HOST_ALIAS_VARIABLE)
    if alias:
        return alias
    return HOST_ALIAS if in_vm else LOOPBACK


def realm_url(api_port: int, in_vm: bool, alias: str | None = None) -> str:
    """The token realm the registry names in its challenge; the engine's daemon calls it."""
    return f"http://{engine_host_name(in_vm, alias)}:{api_port}/_labkit/registry/token"


def container_user(facts: EngineFacts, uid: int | None, gid: int | None) -> str | None:
    """The user the registry container runs as, so its files in the home stay the learner's.

    Not on Windows (no uids) nor with rootless Docker (there the container's root already
    is the learner, and another uid would map to a subordinate one the learner cannot
    delete).
    """
    if facts.host_system == "Windows" or facts.rootless or uid is None or gid is None:
        return None
    return f"{uid}:{gid}"


@dataclass(frozen=True)
class RunnerChoice:
    kind: str  # "binary" | "container"
    reason: str
    binary: str | None = None


def choose_runner(
    mode: str, binary: str | None, docker_reachable: bool, in_vm: bool
) -> RunnerChoice:
    """Pick how to run the registry; raise saying what is missing when nothing fits.

    ``mode`` is ``LABKIT_REGISTRY``: ``auto`` (default), ``binary`` or ``container``.
    """
    mode = (mode or "auto").lower()
    if mode not in ("auto", "binary", "container"):
        raise BackendError(
            f"{MODE_VARIABLE}={mode} is not a registry mode.",
            fix=f"Set {MODE_VARIABLE} to auto, binary or container (or unset it).",
        )
    if mode == "binary":
        if binary is None:
            raise BackendError(
                f"{MODE_VARIABLE}=binary, but no registry binary was found.",
                why="The host binary is Debian's `docker-registry` (or `registry` on PATH).",
                fix="Install it (`apt-get install -y docker-registry`), or unset "
                f"{MODE_VARIABLE} to run the registry as a container.",
            )
        return RunnerChoice("binary", f"{MODE_VARIABLE}=binary", binary)
    if mode == "container":
        if not docker_reachable:
            raise _no_docker_for_registry(binary)
        return RunnerChoice("container", f"{MODE_VARIABLE}=container")
    if binary is not None and not in_vm:
        return RunnerChoice("binary", "the host has the registry binary", binary)
    if docker_reachable:
        why = (
            "the engine runs in a VM, which cannot reach a registry on the host"
            if binary is not None
            else "no registry binary on this host"
        )
        return RunnerChoice("container", why)
    if binary is not None:
        # No Docker at all: the API still works, and the host binary serves ECR's calls.
        return RunnerChoice("binary", "Docker is not reachable", binary)
    raise _no_docker_for_registry(binary)


def docker_fix(system: str | None = None, wsl: bool | None = None) -> str:
    """How to get a reachable Docker engine, in this platform's words."""
    system = system or platform.system()
    wsl = is_wsl() if wsl is None else wsl
    if system == "Darwin":
        return (
            "Install Docker Desktop for Mac (https://docs.docker.com/desktop/) and start it; "
            "wait for the whale icon to settle, then try again."
        )
    if system == "Windows":
        return (
            "Install Docker Desktop for Windows with the WSL 2 backend and start it, "
            "then try again."
        )
    if wsl:
        return (
            "Start Docker Desktop on Windows and enable it for this distro (Settings > "
            "Resources > WSL integration), or install Docker Engine in the distro."
        )
    return (
        "Start Docker Engine (`sudo systemctl start docker`, or `sudo dockerd &`); without "
        "root, ask for your user to be added to the `docker` group (`sudo usermod -aG "
        "docker $USER`, then log in again). Not installed: `apt-get install -y docker.io` "
        "(Debian/Ubuntu) or your distribution's Docker Engine package."
    )


def _no_docker_for_registry(binary: str | None) -> BackendError:
    return BackendError(
        "The sandbox's registry cannot start: Docker is not reachable"
        + ("." if binary else " and this host has no registry binary."),
        why="Without a registry binary the registry runs as a `registry:2` container.",
        fix=docker_fix(),
    )


# -- the registry's configuration --------------------------------------------------------


def registry_config(*, storage: str, addr: str, realm: str, cert: str) -> dict[str, Any]:
    """The CNCF registry's configuration: filesystem storage, deletes on, token auth."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": addr, "secret": secrets.token_hex(16)},
        "auth": {
            "token": {
                "realm": realm,
                "service": REGISTRY_SERVICE,
                "issuer": TOKEN_ISSUER,
                "rootcertbundle": cert,
            }
        },
    }


# -- the two runners ---------------------------------------------------------------------


class RegistryRunner:
    """What both runners share: settings, the token certificate, waiting for the start."""

    kind: str

    def __init__(self, settings: Settings, cert_path: Path) -> None:
        self.settings = settings
        self.cert_path = cert_path

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def _last_words(self) -> str:
        """The end of the registry's log: why it stopped."""
        raise NotImplementedError

    def _wait_until_answers(self, timeout: float = 20) -> None:
        """Wait for the registry's 401 on ``/v2/``; raise saying why if it stops first."""
        url = f"http://{self.settings.registry_host}/v2/"
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if not self.running:
                raise BackendError(
                    f"The registry ({self.describe()}) stopped at start.",
                    why=self._last_words().strip() or "it printed nothing",
                    fix=f"Check that port {self.settings.registry_port} is free "
                    "(LABKIT_SANDBOX_REGISTRY_PORT picks another); `labkit doctor` checks more.",
                )
            try:
                opener.open(url, timeout=1)
            except urllib.error.HTTPError:
                return  # 401: it answers, and asks for a token as it should
            except OSError:
                time.sleep(0.05)
        raise BackendError(
            f"The registry did not answer at {url} within {timeout:.0f} s.",
            fix="See registry.log in the sandbox home; `labkit doctor` checks the set-up.",
        )


class HostBinaryRegistry(RegistryRunner):
    """Debian's ``docker-registry`` as a host process (the engine shares the host's loopback)."""

    kind = "binary"

    def __init__(self, settings: Settings, binary: str, cert_path: Path) -> None:
        super().__init__(settings, cert_path)
        self.binary = binary
        self.home = settings.home
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        storage = private_dir(self.home / "registry")
        config = registry_config(
            storage=str(storage),
            addr=self.settings.registry_host,
            realm=realm_url(self.settings.api_port, in_vm=False),
            cert=str(self.cert_path),
        )
        config_path = self.home / "registry.yml"
        # JSON is valid YAML, and keeps us free of a YAML dependency. It holds a secret.
        write_private(config_path, json.dumps(config, indent=2).encode())
        env = dict(os.environ)
        # Its own calls on loopback (notifications, if ever configured) go direct.
        env["NO_PROXY"] = env["no_proxy"] = no_proxy_value(env)
        with open_private_log(self.home / "registry.log") as log:
            argv = [str(self.binary), "serve", str(config_path)]
            self._process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        # Read now, while the child cannot have been replaced: it is not reaped until we wait.
        ProcessRecord.of(self._process.pid, argv).save(self.home / "registry.pid")
        self._wait_until_answers()

    def _last_words(self) -> str:
        return (self.home / "registry.log").read_text(errors="replace")[-800:]

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        (self.home / "registry.pid").unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def describe(self) -> str:
        return f"host process {self.binary}"


def container_name(home: Path) -> str:
    """One registry container per sandbox home, named so ``docker ps`` says whose it is."""
    return "labkit-registry-" + hashlib.sha256(str(home).encode()).hexdigest()[:10]


class ContainerRegistry(RegistryRunner):
    """``registry:2`` in a container: loopback-published, its storage in the sandbox home."""

    kind = "container"

    def __init__(
        self,
        settings: Settings,
        client: Any,
        facts: EngineFacts,
        cert_path: Path,
        image: str | None = None,
    ) -> None:
        super().__init__(settings, cert_path)
        self.client = client
        self.facts = facts
        self.image = image or registry_image()
        self.name = container_name(settings.home)
        self.in_vm = engine_in_vm(facts)
        self._container: Any = None

    @property
    def labels(self) -> dict[str, str]:
        return {CONTAINER_LABEL: str(self.settings.home), ROLE_LABEL: "registry"}

    def ensure_image(self) -> None:
        """Use the engine's ``registry:2``, or pull it (once, about 10 MB)."""
        import docker.errors
        from docker.utils import parse_repository_tag

        try:
            self.client.images.get(self.image)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            self.client.images.pull(*parse_repository_tag(self.image))  # no tag: latest
        except docker.errors.APIError as exc:
            reason = " ".join(str(getattr(exc, "explanation", "") or exc).split())[:300]
            raise BackendError(
                f"The registry image {self.image} is not in Docker and could not be pulled.",
                why=f"This host has no registry binary, so the sandbox runs its registry as "
                f"a container of {self.image}; the pull failed (offline?): {reason}",
                fix=f"Connect to the internet once and run `docker pull {self.image}` "
                "(Docker Desktop users usually are online), or on Debian/Ubuntu install "
                "the host binary: `apt-get install -y docker-registry`. "
                "`labkit doctor` checks everything the sandbox needs.",
            ) from None

    def _remove_leftover(self) -> None:
        import docker.errors

        try:
            old = self.client.containers.get(self.name)
        except docker.errors.NotFound:
            return
        if old.labels.get(CONTAINER_LABEL) != str(self.settings.home):
            raise BackendError(
                f"A container named {self.name} exists and is not this sandbox's.",
                why="Its labels do not name this sandbox home, so the kit leaves it alone.",
                fix=f"Remove or rename it yourself (`docker rm -f {self.name}`) if it is "
                "yours to remove, or use another LABKIT_SANDBOX_HOME.",
            )
        old.remove(force=True)

    def _config_archive(self) -> bytes:
        config = registry_config(
            storage=CONTAINER_STORAGE,
            addr=f":{CONTAINER_PORT}",
            realm=realm_url(self.settings.api_port, self.in_vm),
            cert=CONTAINER_CERT,
        )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, data in (
                (CONTAINER_CONFIG, json.dumps(config, indent=2).encode()),
                (CONTAINER_CERT, self.cert_path.read_bytes()),
            ):
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def start(self) -> None:
        self.ensure_image()
        self._remove_leftover()
        storage = private_dir(self.settings.home / "registry")
        uid = os.getuid() if hasattr(os, "getuid") else None
        gid = os.getgid() if hasattr(os, "getgid") else None
        container = self.client.containers.create(
            self.image,
            name=self.name,
            detach=True,
            labels=self.labels,
            user=container_user(self.facts, uid, gid),
            # Loopback only: Docker Desktop forwards it to the host's 127.0.0.1 as well.
            ports={f"{CONTAINER_PORT}/tcp": (LOOPBACK, self.settings.registry_port)},
            # The host path as the platform spells it: Docker Desktop maps macOS, Windows
            # and WSL paths into its VM itself.
            volumes={str(storage): {"bind": CONTAINER_STORAGE, "mode": "rw"}},
        )
        self._container = container
        # Configuration and the token service's public key go in before it starts, so
        # nothing but the storage is shared with the host.
        container.put_archive("/", self._config_archive())
        container.start()
        self._wait_until_answers()

    def _last_words(self) -> str:
        try:
            return self._container.logs(tail=20).decode(errors="replace")
        except Exception:  # the container is gone: nothing to read
            return ""

    def stop(self) -> None:
        if self._container is None:
            return
        with contextlib.suppress(Exception):  # already gone: the sandbox's own sweep removed it
            self._container.remove(force=True)
        self._container = None

    @property
    def running(self) -> bool:
        if self._container is None:
            return False
        try:
            self._container.reload()
        except Exception:
            return False
        return self._container.status == "running"

    def describe(self) -> str:
        where = "engine in a VM" if self.in_vm else "local engine"
        return f"container {self.name} ({self.image}, {where})"


def make_runner(settings: Settings, docker_client: Any | None, cert_path: Path) -> RegistryRunner:
    """The runner this host calls for (see :func:`choose_runner`)."""
    facts = EngineFacts.probe(docker_client) if docker_client is not None else None
    in_vm = engine_in_vm(facts) if facts is not None else False
    binary = find_registry_binary()
    choice = choose_runner(
        os.environ.get(MODE_VARIABLE, "auto"), binary, docker_client is not None, in_vm
    )
    if choice.kind == "binary":
        assert choice.binary is not None
        return HostBinaryRegistry(settings, choice.binary, cert_path)
    assert facts is not None
    return ContainerRegistry(settings, docker_client, facts, cert_path)
