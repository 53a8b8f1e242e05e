"""The load balancer's address and the page behind it (steps 55–59)."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from labkit import ecs
from labkit.config import Backend
from labkit.display import link, note, page_view
from labkit.errors import BackendError
from labkit.lab import Lab


def load_balancer_dns(lab: Lab) -> str:
    """The DNS name the lab copies in step 58."""
    reply = lab.elbv2.describe_load_balancers(Names=[lab.names.load_balancer])
    return reply["LoadBalancers"][0]["DNSName"]


def load_balancer_url(lab: Lab, dns: str | None = None) -> str:
    """Where the load balancer (DNS name ``dns``, default the lab's) answers: its DNS name,
    or in the sandbox a loopback port."""
    dns = dns or load_balancer_dns(lab)
    if lab.backend is Backend.SANDBOX:
        from labkit.aws import sandbox_status

        status = sandbox_status()
        url = (status.load_balancers or {}).get(dns) if status is not None else None
        if not url:
            raise BackendError(
                f"The sandbox does not serve load balancer {dns}.",
                why="Its listener is not in the sandbox status.",
                fix="Restart the sandbox: `labkit sandbox down && labkit sandbox up`.",
            )
        return url
    return f"http://{dns}"


@dataclass(frozen=True)
class Page:
    url: str
    status: int
    body: str

    @property
    def title(self) -> str:
        match = re.search(r"<title>(.*?)</title>", self.body, re.I | re.S)
        return match.group(1).strip() if match else ""

    def __str__(self) -> str:
        return f"GET {self.url} → HTTP {self.status}, {len(self.body)} bytes, title {self.title!r}"


def _opener(url: str) -> urllib.request.OpenerDirector:
    """A plain opener; loopback URLs (the sandbox) never go through an HTTP proxy."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def fetch_page(url: str, attempts: int = 60, delay: float = 2.0, timeout: float = 5.0) -> Page:
    """GET ``url``, retrying while targets become healthy (NLB health checks take time)."""
    last = ""
    for attempt in range(attempts):
        try:
            with _opener(url).open(url, timeout=timeout) as reply:
                body = reply.read().decode("utf-8", "replace")
                return Page(url, reply.status, body)
        except (urllib.error.URLError, OSError) as exc:
            last = f"{exc.__class__.__name__}: {getattr(exc, 'reason', exc)}"
        if attempt + 1 < attempts:
            time.sleep(delay)
    raise BackendError(
        f"The load balancer at {url} did not answer.",
        why=f"{attempts} attempts; last error {last}.",
        fix="Check the Targets view (is a target healthy?) and the service events, "
        "then re-run this cell.",
    )


def show_load_balancer(lab: Lab) -> str:
    """Step 58's DNS name, and (sandbox) the loopback URL that answers for it; the URL."""
    dns = load_balancer_dns(lab)
    url = load_balancer_url(lab)
    print(f"DNS name of {lab.names.load_balancer}: {dns}")
    if lab.backend is Backend.SANDBOX:
        print(f"In the sandbox your load balancer answers at {url}")
    link(url, f"Open {lab.names.load_balancer} in a new tab")
    return url


def resolve_note(name: str) -> str:
    """Try to resolve ``name`` here, and say what that means (a private DNS name)."""
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(name, None)})
    except OSError as exc:
        text = (
            f"{name} does not resolve here ({exc.strerror or exc}). Expected: a private DNS "
            "namespace answers only inside its VPC (on the container instances, or any "
            "machine in that VPC); in the sandbox there is no VPC DNS at all. "
            "discover_instances above is the API's way to ask the same question."
        )
    else:
        text = f"{name} resolves to {', '.join(addresses)}"
    print(text)
    return text


def open_page(lab: Lab, url: str | None = None) -> Page | None:
    """Steps 58–59: fetch the page behind the load balancer and show it.

    Without the learner's service there is nothing behind the listener: say so and
    return None instead of waiting for a page that cannot come."""
    if ecs.find_service(lab) is None:
        note(
            f"Nothing to open yet: service {lab.service_name} does not exist (Exercise 4.2).",
            "⏳",
        )
        return None
    page = fetch_page(url or load_balancer_url(lab))
    page_view(page)
    return page


@dataclass
class PageProbe:
    """Fetches the page through the load balancer every ``interval`` seconds in the
    background, as a user would keep reloading it during a rollout; counts what failed.

    ``probe = PageProbe(url).start()`` … ``probe.stop()``; then ``requests``, ``failures``
    (each ``(seconds since start, what went wrong)``) and ``bodies`` (each distinct page,
    in the order first seen)."""

    url: str
    interval: float = 0.2
    timeout: float = 5.0
    #: A probe nobody stops (a check never run) ends on its own after this long.
    max_seconds: float = 900.0
    requests: int = 0
    failures: list[tuple[float, str]] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    started: float = 0.0
    started_at: float = 0.0  # wall clock (time.time()), to compare with the API's times
    last_body: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> PageProbe:
        self.started, self.started_at = time.monotonic(), time.time()
        self._thread = threading.Thread(target=self._run, name="labkit-page-probe", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        opener = _opener(self.url)
        while not self._stop.is_set() and time.monotonic() - self.started < self.max_seconds:
            self.requests += 1
            try:
                with opener.open(self.url, timeout=self.timeout) as reply:
                    body = reply.read().decode("utf-8", "replace")
                    if reply.status != 200:
                        raise OSError(f"HTTP {reply.status}")
                self.last_body = body
                if body not in self.bodies:
                    self.bodies.append(body)
            except (urllib.error.URLError, OSError) as exc:
                what = f"{exc.__class__.__name__}: {getattr(exc, 'reason', exc)}"
                self.failures.append((time.monotonic() - self.started, what))
            self._stop.wait(self.interval)

    def stop(self) -> PageProbe:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __str__(self) -> str:
        return (
            f"{self.requests} request(s) to {self.url}, {len(self.failures)} failed, "
            f"{len(self.bodies)} distinct page(s)"
        )


def probe_page(lab: Lab, interval: float = 0.2) -> PageProbe:
    """Start fetching the lab's page through the load balancer in the background
    (notebook 05's rollout: every request must succeed)."""
    probe = PageProbe(load_balancer_url(lab), interval=interval).start()
    print(f"Fetching {probe.url} every {interval} s until the check stops it.")
    return probe
