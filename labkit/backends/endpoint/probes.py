"""What an endpoint serves beyond its API, and so which of the lab's tasks can be done there.

Emulators differ beyond the API: a registry to push to, containers that really run, a load
balancer that carries traffic.
"""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from labkit.aws import is_loopback
from labkit.backends.endpoint.provisioning import EndpointEnvironment
from labkit.backends.lookup import error_text
from labkit.lab import Lab

#: How long one probe of the data plane (an HTTP GET, a DNS lookup) may take.
PROBE_TIMEOUT_S = 3.0

TASK_TITLES: dict[int, str] = {
    1: "repository and permission statement",
    2: "pull, tag and push the image",
    3: "task definition",
    4: "service behind the load balancer",
    5: "operating the service",
}


@dataclass(frozen=True)
class TaskSupport:
    """Whether one lab task can be done on this endpoint, and why not."""

    task: int
    title: str
    served: bool
    reason: str


@dataclass(frozen=True)
class EndpointCapabilities:
    """What an endpoint serves beyond its API, probed once; decides which tasks work there.

    Each part holds a fact and, when the part is missing, why (in words a learner can
    check). ``registry`` is the registry's address (empty: none), ``load_balancer_address``
    what the load balancer's DNS name resolves to (empty: it leads nowhere from here).
    """

    endpoint_url: str
    region: str
    ecr_api: bool = False
    ecr_detail: str = ""
    registry: str = ""
    registry_detail: str = ""
    #: The registry host this endpoint's ECR names (its login's proxyEndpoint), when that
    #: is real AWS's (ACCOUNT.dkr.ecr.REGION.amazonaws.com): its URIs name it, Docker
    #: pushes to ``registry`` instead (see :func:`push_address_on`).
    named_registry: str = ""
    container_instances: int = 0
    container_detail: str = ""
    listener: bool = False
    listener_detail: str = ""
    load_balancer_address: str = ""
    load_balancer_detail: str = ""
    cloud_map: bool = False
    cloud_map_detail: str = ""
    probed_at: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointCapabilities:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def _service_gaps(self) -> list[str]:
        gaps = []
        if not self.registry:
            gaps.append("no registry, so no image for a container to run")
        if self.container_instances < 1:
            gaps.append(f"no container instances ({self.container_detail})")
        if not self.listener:
            gaps.append(f"no TCP listener on the load balancer ({self.listener_detail})")
        if not self.cloud_map:
            gaps.append(f"no Cloud Map for service discovery ({self.cloud_map_detail})")
        if not self.load_balancer_address:
            gaps.append(f"no page to open: {self.load_balancer_detail}")
        return gaps

    def support(self, task: int) -> TaskSupport:
        """Task 1–4 of the lab, or 5 for notebook 05 (which needs Task 4's service)."""
        title = TASK_TITLES[task]
        if task == 1:
            if self.ecr_api:
                return TaskSupport(1, title, True, "the ECR API stores the repository and policy")
            return TaskSupport(1, title, False, f"no ECR API ({self.ecr_detail})")
        if task == 2:
            if self.registry and self.named_registry:
                served = _host(self.registry)
                return TaskSupport(
                    2,
                    title,
                    True,
                    f"its repository URIs name AWS's registry {self.named_registry}, which "
                    f"does not resolve here, but the registry API answers at {self.registry}: "
                    f"Task 2 pushes to {served}/REPOSITORY-NAME instead",
                )
            if self.registry:
                return TaskSupport(2, title, True, f"a registry answers at {self.registry}")
            return TaskSupport(2, title, False, f"no registry to push to: {self.registry_detail}")
        if task == 3:
            return TaskSupport(3, title, True, "RegisterTaskDefinition is an API call only")
        gaps = self._service_gaps()
        if not gaps:
            return TaskSupport(task, title, True, "registry, containers and load balancer")
        if task == 5:
            return TaskSupport(5, title, False, "it operates Task 4's service: " + "; ".join(gaps))
        return TaskSupport(4, title, False, "; ".join(gaps))

    def tasks(self) -> tuple[TaskSupport, ...]:
        return tuple(self.support(n) for n in TASK_TITLES)

    @property
    def unserved(self) -> frozenset[int]:
        return frozenset(t.task for t in self.tasks() if not t.served)

    def rows(self) -> list[list[str]]:
        return [
            [f"Task {t.task}" if t.task < 5 else "Notebook 05", t.title, "✅" if t.served else "❌"]
            + [t.reason]
            for t in self.tasks()
        ]

    def describe(self) -> str:
        out = [f"What {self.endpoint_url} ({self.region}) can serve of this lab:"]
        for task, title, mark, reason in self.rows():
            out.append(f"  {mark} {task:<11} {title:<36} {reason}")
        return "\n".join(out)


def push_address_on(capabilities: EndpointCapabilities, uri: str) -> str:
    """Where Docker pushes the repository ``uri`` on this endpoint: ``uri`` itself, or, when
    its host is the AWS registry the endpoint's ECR names while the endpoint serves the
    registry API itself, the same repository on the endpoint's host and port."""
    host, _, path = uri.partition("/")
    if not (capabilities.registry and path and _aws_name(host.split(":")[0])):
        return uri
    return f"{_host(capabilities.registry)}/{path}"


def _host(url: str) -> str:
    """``http://127.0.0.1:4566/`` → ``127.0.0.1:4566``: what Docker names a registry by."""
    return urllib.parse.urlsplit(url).netloc or url


# ------------------------------------------------------------------------ probes
def _aws_name(host: str) -> bool:
    """True for real AWS's DNS names: nothing at a local endpoint answers there."""
    return host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")


def _answers(call: Callable[[], Any]) -> tuple[bool, str]:
    """Whether one read-only API call is served here, and if not, the error."""
    try:
        call()
    except (ClientError, BotoCoreError) as exc:
        return False, error_text(exc)
    return True, ""


def _get(url: str) -> tuple[int, dict[str, str]]:
    """GET ``url``: status and headers (an HTTP error status is an answer too)."""
    handlers = [urllib.request.ProxyHandler({})] if is_loopback(url) else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=PROBE_TIMEOUT_S) as reply:
            return reply.status, dict(reply.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {})


def _probe_registry(lab: Lab) -> tuple[str, str, str]:
    """The address of a registry behind this endpoint's ECR, or ``("", why not)``, and the
    AWS registry host its ECR names instead, if it does."""
    endpoint = lab.target.endpoint_url or ""
    candidates: list[str] = []
    notes: list[str] = []
    named = ""
    try:
        data = lab.ecr.get_authorization_token()["authorizationData"]
        proxy = data[0].get("proxyEndpoint", "") if data else ""
    except (ClientError, BotoCoreError) as exc:
        proxy = ""
        notes.append(f"GetAuthorizationToken failed ({error_text(exc)})")
    if proxy:
        host = urllib.parse.urlsplit(proxy).hostname or ""
        if _aws_name(host):
            named = host
            notes.append(f"its login token is for {proxy}, real AWS's registry, not this one's")
        else:
            candidates.append(proxy)
    if endpoint and endpoint not in candidates:
        candidates.append(endpoint)
    for base in candidates:
        url = base.rstrip("/") + "/v2/"
        try:
            status, headers = _get(url)
        except (OSError, ValueError) as exc:
            notes.append(f"{url} did not answer ({exc.__class__.__name__})")
            continue
        # The distribution API sends this header on /v2/, with 200 or 401 alike.
        if any(k.lower() == "docker-distribution-api-version" for k in headers):
            return base, "", named
        notes.append(f"{url} is not a registry (HTTP {status})")
    return "", "; ".join(notes) or "no registry address was found", ""


def _resolve(host: str) -> str:
    """The first address ``host`` resolves to within the probe timeout, else ""."""
    found: list[str] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, 80, proto=socket.IPPROTO_TCP)[0][4][0])
        except OSError:
            pass

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(PROBE_TIMEOUT_S)
    return found[0] if found else ""


def _probe_load_balancer(dns: str, name: str) -> tuple[str, str]:
    if not dns:
        return "", f"there is no load balancer {name} yet"
    if _aws_name(dns):
        return "", f"its DNS name {dns} is in real AWS's namespace, where this endpoint is not"
    address = _resolve(dns)
    if not address:
        return "", f"its DNS name {dns} does not resolve here"
    return address, ""


def probe(lab: Lab, env: EndpointEnvironment) -> EndpointCapabilities:
    """Probe what the endpoint serves (a few read-only calls, a GET, a DNS lookup)."""
    ecr_api, ecr_detail = _answers(lambda: lab.ecr.describe_repositories(maxResults=1))
    registry, registry_detail, named_registry = _probe_registry(lab)
    address, lb_detail = _probe_load_balancer(env.load_balancer_dns, lab.names.load_balancer)
    cloud_map, cloud_map_detail = _answers(
        lambda: lab.servicediscovery.list_namespaces(MaxResults=1)
    )
    return EndpointCapabilities(
        endpoint_url=lab.target.endpoint_url or "",
        region=lab.region,
        ecr_api=ecr_api,
        ecr_detail=ecr_detail,
        registry=registry,
        registry_detail=registry_detail,
        named_registry=named_registry,
        container_instances=env.container_instances,
        container_detail=env.container_detail
        or ("none registered" if not env.container_instances else ""),
        listener=env.listener,
        listener_detail=env.listener_detail,
        load_balancer_address=address,
        load_balancer_detail=lb_detail,
        cloud_map=cloud_map,
        cloud_map_detail=cloud_map_detail,
        probed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
