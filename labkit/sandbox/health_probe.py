"""One health check of one target, as a Network Load Balancer makes it.

A target group's settings (:class:`HealthCheck`) and one check over the network
(:func:`probe_target`); :mod:`labkit.sandbox.loadbalancer` schedules the checks and keeps
each target's state between them.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from typing import Any

#: Seconds a health check's connect, or its HTTP answer, may take.
HEALTH_CHECK_TIMEOUT = 0.5
#: Seconds a TCP check waits, after connecting, for the port's proxy to hang up (see
#: :func:`probe_target`). Docker's proxy hangs up within a millisecond when nothing listens
#: in the container; a forwarder that crosses into a VM (Docker Desktop) takes a little more.
PROXY_HANGUP_WAIT = 0.25


@dataclass(frozen=True)
class HealthCheck:
    """A target group's health check settings, as the probe needs them."""

    protocol: str = "TCP"
    port: str = "traffic-port"
    path: str = "/"
    matcher: str = "200-399"
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2

    @classmethod
    def of(cls, tg: Any) -> HealthCheck:
        matcher = getattr(tg, "matcher", None) or {}
        return cls(
            protocol=(tg.health_check_protocol or tg.protocol or "TCP").upper(),
            port=str(tg.health_check_port or "traffic-port"),
            path=tg.health_check_path or "/",
            matcher=str(matcher.get("HttpCode") or "200-399"),
            healthy_threshold=max(1, int(tg.healthy_threshold_count or 5)),
            unhealthy_threshold=max(1, int(tg.unhealthy_threshold_count or 2)),
        )

    def accepts(self, status: int) -> bool:
        """Whether ``status`` matches the matcher ("200", "200,202", "200-299")."""
        for part in self.matcher.split(","):
            low, _, high = part.strip().partition("-")
            try:
                if int(low) <= status <= int(high or low):
                    return True
            except ValueError:
                continue
        return False


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str | None = None
    description: str | None = None
    detail: str | None = None


def failed_probe(reason: str, description: str, detail: str) -> ProbeResult:
    return ProbeResult(False, reason, description, detail)


def probe_target(address: tuple[str, int], check: HealthCheck) -> ProbeResult:
    """One health check of the application behind ``address`` (a published loopback port).

    Whatever forwards a published port (Docker's userland proxy; Docker Desktop's VM
    forwarder) accepts a connection before it knows whether anything listens in the
    container, and hangs up at once when nothing does. So a TCP check connects, then waits
    :data:`PROXY_HANGUP_WAIT`: a hang-up fails; bytes or silence pass. An HTTP(S) check
    matches the real answer's status. This needs no root, no Linux-only namespace tricks and
    no extra container, and it checks the very path the traffic takes, as an NLB checks the
    instance's host port. Where it differs from an NLB: a TCP server that accepts and closes
    at once, without a byte, fails here but passes an NLB's TCP check.
    """
    try:
        sock = socket.create_connection(address, timeout=HEALTH_CHECK_TIMEOUT)
    except TimeoutError:
        return failed_probe("Target.Timeout", "Request timed out", "the TCP connect timed out")
    except OSError as exc:
        return failed_probe(
            "Target.FailedHealthChecks",
            "Health checks failed",
            f"the TCP connect failed ({exc.strerror or exc})",
        )
    try:
        if check.protocol in ("HTTP", "HTTPS"):
            return _probe_http(sock, address, check)
        sock.settimeout(PROXY_HANGUP_WAIT)
        try:
            data = sock.recv(1)
        except TimeoutError:
            return ProbeResult(True)  # silence: the app holds the connection, waiting for us
        except OSError:
            data = b""
        if data:
            return ProbeResult(True)
        return failed_probe(
            "Target.FailedHealthChecks",
            "Health checks failed",
            "the port's proxy accepted the connection and closed it at once: nothing in the "
            "container listens on the container port",
        )
    finally:
        sock.close()


def _probe_http(sock: socket.socket, address: tuple[str, int], check: HealthCheck) -> ProbeResult:
    connection = http.client.HTTPConnection(*address, timeout=HEALTH_CHECK_TIMEOUT)
    try:
        if check.protocol == "HTTPS":  # an NLB does not verify the target's certificate
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock)
        sock.settimeout(HEALTH_CHECK_TIMEOUT)
        connection.sock = sock  # connected already: the request goes over this socket
        connection.request("GET", check.path, headers={"User-Agent": "ELB-HealthChecker/2.0"})
        status = connection.getresponse().status
    except TimeoutError:
        return failed_probe("Target.Timeout", "Request timed out", "no HTTP answer in time")
    except (http.client.HTTPException, ConnectionError):
        return failed_probe(
            "Target.FailedHealthChecks",
            "Health checks failed",
            "the connection closed without an HTTP answer: nothing in the container listens "
            "on the container port, or it does not speak HTTP",
        )
    except OSError as exc:
        return failed_probe("Target.FailedHealthChecks", "Health checks failed", str(exc))
    finally:
        connection.close()
    if check.accepts(status):
        return ProbeResult(True)
    return failed_probe(
        "Target.ResponseCodeMismatch",
        f"Health checks failed with these codes: [{status}]",
        f"GET {check.path} answered {status}; the matcher wants {check.matcher}",
    )
