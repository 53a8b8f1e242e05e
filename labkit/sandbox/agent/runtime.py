"""The container runtime: a task's containers as real Docker containers.

Images are pulled from the sandbox registry *as the container instance role*, so the
repository policy decides whether a task can start. Container ports are published on
127.0.0.1 only, on an ephemeral host port: the container instance's "host port 80" is
virtual, mapped to a real loopback port. Everything here runs on the agent's pool threads,
without the sandbox lock: it touches only the task's own record.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import docker.errors
from docker.utils import parse_repository_tag
from moto.core.utils import utcnow

from labkit.sandbox.agent.images import PulledImages
from labkit.sandbox.agent.table import LaunchError, TaskRecord
from labkit.sandbox.context import CONTAINER_LABEL, LOOPBACK, SandboxContext

log = logging.getLogger(__name__)

#: Seconds a stopping container gets between SIGTERM and SIGKILL (ECS: 30; sandbox speed).
#: Sub-second, so not ``docker stop``, whose timeout counts whole seconds.
STOP_TIMEOUT_SECONDS = 0.5
#: Seconds Docker gets to report a container's exit after SIGKILL.
STOP_WAIT_SECONDS = 10
#: The role the container instances run as: their pulls are authorized as this principal.
INSTANCE_ROLE = "Ec2instanceRole"
#: The label ECS puts on a task's containers; the agent finds its own by it.
TASK_ARN_LABEL = "com.amazonaws.ecs.task-arn"

_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass
class DockerRuntime:
    """Creates, watches, stops and removes the containers of the agent's tasks."""

    ctx: SandboxContext
    #: The image references this run's pulls created: untagged again at stop.
    pulled: PulledImages = field(default_factory=PulledImages)

    @property
    def available(self) -> bool:
        return self.ctx.docker is not None

    def _own_containers(self) -> dict[str, Any]:
        return {"label": f"{CONTAINER_LABEL}={self.ctx.settings.home}"}

    def launch(self, rec: TaskRecord) -> None:
        """Pull, create and start the task's containers; a failure lands in ``launch_error``."""
        created: dict[str, str] = {}
        try:
            client = self.ctx.docker
            if client is None:
                raise LaunchError(
                    "CannotStartContainerError: the sandbox runs without Docker Engine "
                    "(API-only mode)"
                )
            rec.task.pull_started_at = utcnow()
            images = {
                c["name"]: self._pull(client, c["image"])
                for c in rec.task_def.container_definitions
            }
            rec.task.pull_stopped_at = utcnow()
            # Stopped while its images were pulled (StopTask, a scale-in): ECS's agent
            # creates no container for a task it is to stop, and neither does this one.
            if rec.task.desired_status != "STOPPED":
                self._create_and_start(client.api, rec, images, created)
        except LaunchError as exc:
            rec.launch_error = exc
        except Exception as exc:
            log.exception("launching %s failed", rec.arn)
            rec.launch_error = LaunchError(f"CannotCreateContainerError: {_docker_message(exc)}")
        rec.containers = created

    def _create_and_start(
        self, api: Any, rec: TaskRecord, images: dict[str, str], created: dict[str, str]
    ) -> None:
        # docker-py's low-level calls: one request each (its container objects inspect
        # after every step), so a container costs Docker Engine four calls to start.
        for cdef in rec.task_def.container_definitions:
            args = self._container_args(api, rec, cdef, images[cdef["name"]])
            created[cdef["name"]] = api.create_container(**args)["Id"]
        for name, cid in created.items():
            try:
                api.start(cid)
            except Exception as exc:
                raise LaunchError(f"CannotStartContainerError: {_docker_message(exc)}") from exc
            attrs = api.inspect_container(cid)
            rec.stop_signals[cid] = (attrs.get("Config") or {}).get("StopSignal") or "SIGTERM"
            self._collect_ports(rec, name, attrs)

    def stop(self, rec: TaskRecord) -> None:
        """Stop and remove the task's containers, keeping their exit codes."""
        if not rec.containers or self.ctx.docker is None:
            return
        api = self.ctx.docker.api
        for name, cid in rec.containers.items():
            try:
                exit_code = _stop_container(api, cid, rec.stop_signals.get(cid, "SIGTERM"))
                if name not in rec.exit_codes and exit_code is not None:
                    rec.exit_codes[name] = exit_code
            except Exception as exc:
                if not _gone(exc):
                    log.warning("stopping container %s: %s", cid, exc)
            try:  # whatever the stop said: a STOPPED task keeps no container
                api.remove_container(cid, force=True)
            except Exception as exc:
                if not _gone(exc):
                    log.warning("removing container %s: %s", cid, exc)

    def states(self) -> dict[str, tuple[str, int | None]] | None:
        """Container id -> (state, exit code) of the sandbox's containers; None if Docker
        did not answer."""
        try:
            found = self.ctx.docker.api.containers(all=True, filters=self._own_containers())
        except Exception:
            log.exception("listing containers failed")
            return None
        out: dict[str, tuple[str, int | None]] = {}
        for c in found:
            match = _EXIT_CODE.search(c.get("Status", ""))
            out[c["Id"]] = (c.get("State", ""), int(match.group(1)) if match else None)
        return out

    def remove_all(self, known: set[str]) -> None:
        """Remove the containers ``known`` and any task container a cut-short launch left,
        then the image references the agent's pulls created."""
        client = self.ctx.docker
        if client is None:
            return
        ids = set(known)
        try:
            found = client.containers.list(all=True, filters=self._own_containers())
            ids |= {c.id for c in found if TASK_ARN_LABEL in c.labels}
        except Exception:
            log.exception("listing containers at stop failed")
        for cid in ids:
            with contextlib.suppress(Exception):
                client.containers.get(cid).remove(force=True)
        self.pulled.remove_all(client)

    def _pull(self, client: Any, image: str) -> str:
        """Pull ``image`` as the container instance role; return the reference to run."""
        host, path, tag = split_image(image)
        settings = self.ctx.settings
        sandbox_hosts = {settings.registry_host, f"localhost:{settings.registry_port}"}
        if host and (_ECR_HOST.match(host) or host in sandbox_hosts):
            # ECR hostnames do not resolve offline: the sandbox registry serves them all.
            repo = f"{settings.registry_host}/{path}"
            principal = self.ctx.role_arn(INSTANCE_ROLE)
            named = f"{host}/{path}"  # as the task definition names it, in ECS's messages
            with self.ctx.lock:
                exists = path in self.ctx.backend("ecr").repositories
            if not exists:
                raise LaunchError(missing_repository_reason(named, path, self.ctx.account_id))
            if self.ctx.pull_denial_reason is not None:
                reason = self.ctx.pull_denial_reason(principal, path)
                if reason:
                    raise LaunchError(pull_denied_reason(named, reason))
            auth = None
            if self.ctx.registry_credentials is not None:
                username, password = self.ctx.registry_credentials(principal)
                auth = {"username": username, "password": password}
            reference = f"{repo}{_tag_separator(tag)}{tag}"
            self.pulled.before_pull(client, reference)
            try:
                pulled_id = _pull_or_fail(client, repo, tag, auth)
            except LaunchError as exc:
                missing = isinstance(exc.__cause__, docker.errors.NotFound)
                if missing or "manifest unknown" in str(exc):
                    raise LaunchError(missing_image_reason(named, tag)) from exc
                raise
            self.pulled.after_pull(reference, pulled_id)
            return reference
        reference = (
            image if (":" in image.rsplit("/", 1)[-1] or "@" in image) else f"{image}:latest"
        )
        try:
            client.images.get(reference)
            return reference  # a local image (no registry host): nothing to pull
        except Exception:
            pass
        # Not untagged at stop: an image from a public registry serves the next run too.
        _pull_or_fail(client, f"{host}/{path}" if host else path, tag, None)
        return reference

    def _container_args(
        self, api: Any, rec: TaskRecord, cdef: dict[str, Any], image: str
    ) -> dict[str, Any]:
        """docker-py's ``APIClient.create_container`` arguments for one container definition."""
        td, task = rec.task_def, rec.task
        overrides = {
            o.get("name"): o for o in (task.overrides or {}).get("containerOverrides", []) or []
        }.get(cdef["name"], {})
        env = {e["name"]: e.get("value", "") for e in cdef.get("environment") or []}
        env.update({e["name"]: e.get("value", "") for e in overrides.get("environment") or []})
        labels = dict(self.ctx.container_labels)
        labels.update(cdef.get("dockerLabels") or {})
        labels.update(
            {
                TASK_ARN_LABEL: task.task_arn,
                "com.amazonaws.ecs.container-name": cdef["name"],
                "com.amazonaws.ecs.cluster": rec.cluster,
                "com.amazonaws.ecs.task-definition-family": td.family,
                "com.amazonaws.ecs.task-definition-version": str(td.revision),
            }
        )
        # Only on loopback, on an ephemeral port: "host port 80" is the instance's, virtual.
        ports = {
            f"{int(pm['containerPort'])}/{pm.get('protocol') or 'tcp'}": (LOOPBACK, None)
            for pm in cdef.get("portMappings") or []
            if pm.get("containerPort")
        }
        name = _NAME_UNSAFE.sub("-", f"ecs-{td.family}-{td.revision}-{cdef['name']}-{task.id}")
        host: dict[str, Any] = {
            "port_bindings": ports,
            # ECS gives a container with cpu 0 the minimum of 2 shares, as Docker requires.
            "cpu_shares": max(int(cdef.get("cpu") or 0), 2),
        }
        for key, arg in (("memory", "mem_limit"), ("memoryReservation", "mem_reservation")):
            if cdef.get(key):
                host[arg] = f"{int(cdef[key])}m"
        if cdef.get("readonlyRootFilesystem"):
            host["read_only"] = True
        args: dict[str, Any] = {
            "image": image,
            "name": name,
            "detach": True,
            "labels": labels,
            "ports": [tuple(port.split("/", 1)) for port in ports],
            "environment": env,
            "host_config": api.create_host_config(**host),
        }
        command = overrides.get("command") or cdef.get("command")
        if command:
            args["command"] = command
        for key, arg in (
            ("entryPoint", "entrypoint"),
            ("workingDirectory", "working_dir"),
            ("user", "user"),
            ("hostname", "hostname"),
        ):
            if cdef.get(key):
                args[arg] = cdef[key]
        return args

    @staticmethod
    def _collect_ports(rec: TaskRecord, name: str, attrs: dict[str, Any]) -> None:
        published = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
        cdef = next(c for c in rec.task_def.container_definitions if c["name"] == name)
        for pm in cdef.get("portMappings") or []:
            cport = int(pm.get("containerPort") or 0)
            bindings = published.get(f"{cport}/{pm.get('protocol') or 'tcp'}") or []
            real = next((int(b["HostPort"]) for b in bindings if b.get("HostIp") == LOOPBACK), None)
            if real is None:
                continue
            if rec.task_def.network_mode == "host":
                virtual = cport
            else:  # bridge: a fixed hostPort is reserved on the instance; 0 means dynamic
                virtual = int(pm.get("hostPort") or 0) or real
            rec.ports[(name, cport)] = (virtual, real)


def _stop_container(api: Any, cid: str, stop_signal: str) -> int | None:
    """What ``docker stop`` does: the image's stop signal, then SIGKILL after the grace
    period; the container's exit code (None when Docker does not say)."""
    try:
        api.kill(cid, signal=stop_signal)
    except docker.errors.NotFound:
        raise
    except docker.errors.APIError:
        pass  # 409: it is not running (it exited on its own); its exit code is kept
    try:
        return api.wait(cid, timeout=STOP_TIMEOUT_SECONDS).get("StatusCode")
    except Exception:  # still running when its grace is over (docker-py's HTTP timed out)
        pass
    with contextlib.suppress(docker.errors.APIError):  # it exited meanwhile
        api.kill(cid)
    try:
        return api.wait(cid, timeout=STOP_WAIT_SECONDS).get("StatusCode")
    except docker.errors.NotFound:
        raise
    except Exception:  # Docker is slow to say: ask for the state it has
        state = api.inspect_container(cid).get("State") or {}
        return None if state.get("Running") else state.get("ExitCode")


def _gone(exc: Exception) -> bool:
    """Docker says the container no longer exists."""
    return isinstance(exc, docker.errors.NotFound) or "No such container" in str(exc)


def _pull_or_fail(
    client: Any, repository: str, tag: str, auth: dict[str, str] | None
) -> str | None:
    """Pull; return the id of the image the reference now names."""
    try:
        image = client.images.pull(repository, tag=tag, auth_config=auth)
    except Exception as exc:
        raise LaunchError(f"CannotPullContainerError: {_docker_message(exc)}") from exc
    return getattr(image, "id", None)


def missing_repository_reason(named: str, repository: str, account_id: str) -> str:
    """ECS's stoppedReason when the image's ECR repository does not exist."""
    return (
        f"CannotPullContainerError: Error response from daemon: repository {named} not found: "
        f"name unknown: The repository with name '{repository}' does not exist in the registry "
        f"with id '{account_id}'"
    )


def pull_denied_reason(named: str, denial: str) -> str:
    """ECS's stoppedReason when ECR refuses the pull (``denial``: ECR's AccessDenied sentence).

    The ECS agent puts its advice first when ECR refused ecr:BatchGetImage.
    """
    daemon = (
        f"Error response from daemon: pull access denied for {named}, repository does not "
        f"exist or may require 'docker login': denied: {denial}"
    )
    if "is not authorized to perform: ecr:BatchGetImage on resource" in denial:
        daemon = (
            "The task can\u2019t pull the image. Check that the role has the permissions to pull "
            f"images from the registry. {daemon}"
        )
    return f"CannotPullContainerError: {daemon}"


def missing_image_reason(named: str, tag: str) -> str:
    """ECS's stoppedReason when the repository has no image of that tag (or digest)."""
    return (
        f"CannotPullContainerError: Error response from daemon: manifest for "
        f"{named}{_tag_separator(tag)}{tag} not found: manifest unknown: Requested image not found"
    )


def _tag_separator(tag: str) -> str:
    return "@" if tag.startswith("sha256:") else ":"


def split_image(image: str) -> tuple[str, str, str]:
    """``host/path:tag`` -> (host or "", path, tag or digest); tag defaults to latest."""
    repository, tag = parse_repository_tag(image)
    first, _, remainder = repository.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        return first, remainder, tag or "latest"
    return "", repository, tag or "latest"


def _docker_message(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)
