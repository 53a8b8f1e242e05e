"""ELBv2 listeners as real TCP proxies on 127.0.0.1, with real health checks.

Each listener in moto's elbv2 backend gets a loopback socket: the first at
``settings.lb_port``, the next at ``lb_port + 1``, and so on. Targets are virtual (an EC2
instance id and a port, as ECS registers them, keyed by both: see
:mod:`labkit.sandbox.target_registrations`); the agent says where each really listens
(:meth:`LoadBalancers.set_endpoint`); a loopback IPv4 target id is reachable as it is.

Routing as an NLB routes (AWS, "Health checks for Network Load Balancer target groups"):
``initial`` targets get no traffic, connections go round robin to ``healthy`` ones, and
only when every target has failed does it fail open to all; with none, the connection is
reset. Health checks (one check: :mod:`labkit.sandbox.health_probe`) run every
:data:`HEALTH_CHECK_INTERVAL` (sandbox speed; AWS: ``HealthCheckIntervalSeconds``, 10 or
30 s) with the target group's thresholds, and ``DescribeTargetHealth`` reports them (moto
alone reports every target healthy). A deregistered target is ``draining`` for
:data:`DRAIN_SECONDS` (AWS: the deregistration delay, 300 s).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from labkit.sandbox.context import (
    LOOPBACK,
    SandboxContext,
    Ticker,
    is_loopback_ip,
    shadow,
    unshadow,
)
from labkit.sandbox.health_probe import HealthCheck, failed_probe, probe_target
from labkit.sandbox.target_registrations import TargetRegistrations, target_port

log = logging.getLogger(__name__)

#: Seconds between two health checks of one target (sandbox speed; AWS: 10 or 30).
HEALTH_CHECK_INTERVAL = 1.0
#: Seconds a deregistered target is reported as draining (AWS: deregistration delay, 300 s).
DRAIN_SECONDS = 2.0
#: How often the backend is polled for new or deleted listeners.
POLL_INTERVAL = 0.25
#: How far past ``lb_port`` to look for a free port when one is taken.
PORT_SEARCH = 50

_STATE_TEXT = {
    "initial": ("Elb.RegistrationInProgress", "Target registration is in progress"),
    "unhealthy": ("Target.FailedHealthChecks", "Health checks failed"),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
    "unused": (
        "Target.NotInUse",
        "Target group is not configured to receive traffic from the load balancer",
    ),
}

TargetKey = tuple[str, str, int]  # (target group arn, target id, port)


@dataclass
class _Health:
    state: str = "initial"
    passes: int = 0
    fails: int = 0
    next_check: float = 0.0
    probing: bool = False
    #: AWS's reason code and description of the last failure, and what the sandbox saw.
    reason: str | None = None
    description: str | None = None
    detail: str | None = None
    drain_until: float = 0.0


@dataclass
class _Listener:
    arn: str
    lb_arn: str
    dns_name: str
    virtual_port: int
    port: int
    sock: socket.socket
    thread: threading.Thread | None = None
    rr: itertools.count = field(default_factory=itertools.count)


def _forward_target_groups(listener: Any) -> list[str]:
    arns: list[str] = []
    for action in getattr(listener, "default_actions", []) or []:
        if getattr(action, "type", None) != "forward":
            continue
        data = action.data
        if "TargetGroupArn" in data:
            arns.append(data["TargetGroupArn"])
        for tg in (data.get("ForwardConfig") or {}).get("TargetGroups", []):
            arns.append(tg["TargetGroupArn"])
    return arns


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (one thread per connection)."""
    socks = [a, b]
    try:
        while True:
            readable, _, _ = select.select(socks, [], [], 60)
            if not readable:
                return  # idle connection: close it, as an NLB does after its idle timeout
            for src in readable:
                dst = b if src is a else a
                data = src.recv(65536)
                if not data:
                    return
                dst.sendall(data)
    except OSError:
        return
    finally:
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()


class LoadBalancers(TargetRegistrations):
    """The sandbox's data plane for ELBv2: listener sockets, target health, forwarding."""

    #: moto backend methods replaced (on the sandbox's backend only) while running.
    _PATCHED = (
        "register_targets",
        "deregister_targets",
        "describe_target_health",
        "notify_terminate_instances",
    )

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self._listeners: dict[str, _Listener] = {}
        self._endpoints: dict[tuple[str, int], tuple[str, int]] = {}
        self._health: dict[TargetKey, _Health] = {}
        #: Connections open (or opening) to each real address: a draining target's count.
        self._open: Counter[tuple[str, int]] = Counter()
        self._state_lock = threading.RLock()
        self._ticker = Ticker("labkit-lb", POLL_INTERVAL, self._tick)
        self._probes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="labkit-lb-probe")
        self._originals: dict[str, Any] = {}

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Patch target registration and health, open the existing listeners, start polling."""
        backend = self.ctx.backend("elbv2")
        with self.ctx.lock:
            if not self._originals:
                self._originals = shadow(backend, self, self._PATCHED)
                for tg in list(backend.target_groups.values()):
                    self._rekey(tg)
        self._sync_listeners()
        self._ticker.start()

    def stop(self) -> None:
        """Close every listener and stop health checks; restore moto's methods."""
        self._ticker.stop(timeout=5)
        self._probes.shutdown(wait=True, cancel_futures=True)
        with self._state_lock:
            for listener in list(self._listeners.values()):
                self._close_listener(listener)
            self._listeners.clear()
        with self.ctx.lock:
            unshadow(self.ctx.backend("elbv2"), self._PATCHED)
            self._originals.clear()

    # public queries -----------------------------------------------------------------------
    def url_for(self, dns_name: str) -> str:
        """``http://127.0.0.1:PORT`` for a load balancer's DNS name (its port-80 listener first)."""
        with self._state_lock:
            matches = [x for x in self._listeners.values() if x.dns_name == dns_name]
        if not matches:
            self._sync_listeners()  # created a moment ago: do not wait for the poll
            with self._state_lock:
                matches = [x for x in self._listeners.values() if x.dns_name == dns_name]
        if not matches:
            raise KeyError(f"No listener of a load balancer with DNS name {dns_name!r}")
        best = sorted(matches, key=lambda x: (x.virtual_port != 80, x.port))[0]
        return f"http://{LOOPBACK}:{best.port}"

    def urls(self) -> dict[str, str]:
        """Each load balancer's DNS name and the loopback URL that reaches it."""
        with self._state_lock:
            names = {x.dns_name for x in self._listeners.values()}
        return {name: self.url_for(name) for name in sorted(names)}

    # called by the agent ------------------------------------------------------------------
    def set_endpoint(self, target_id: str, port: int, address: tuple[str, int]) -> None:
        """Where the virtual target ``target_id:port`` really listens."""
        with self._state_lock:
            self._endpoints[(target_id, int(port))] = address
        self._ticker.wake.set()

    def remove_endpoint(
        self, target_id: str, port: int, address: tuple[str, int] | None = None
    ) -> None:
        """Forget ``target_id:port``; with ``address``, only if it still points there."""
        with self._state_lock:
            key = (target_id, int(port))
            if address is None or self._endpoints.get(key) == address:
                self._endpoints.pop(key, None)

    def open_connections(self, address: tuple[str, int]) -> int:
        """How many client connections the load balancers hold open to ``address``."""
        with self._state_lock:
            return self._open[address]

    def begin_draining(self, tg_arn: str, target_id: str, port: int) -> None:
        """Report the (just deregistered) target as draining for :data:`DRAIN_SECONDS`."""
        with self._state_lock:
            health = self._health.setdefault((tg_arn, target_id, int(port)), _Health())
            health.state = "draining"
            health.drain_until = time.monotonic() + DRAIN_SECONDS

    def target_state(self, tg_arn: str, target_id: str, port: int) -> str:
        with self._state_lock:
            health = self._health.get((tg_arn, target_id, int(port)))
            return health.state if health else "initial"

    def failure_description(self, tg_arn: str, target_id: str, port: int) -> str:
        """AWS's words for the target's last failed check ("Health checks failed", ...)."""
        with self._state_lock:
            health = self._health.get((tg_arn, target_id, int(port)))
            return (health.description if health else None) or "Health checks failed"

    def resolve(self, target_id: str, port: int) -> tuple[str, int] | None:
        with self._state_lock:
            address = self._endpoints.get((target_id, int(port)))
        if address is None and is_loopback_ip(target_id):
            address = (target_id, int(port))
        return address

    # the poll loop ------------------------------------------------------------------------
    def _tick(self) -> None:
        self._sync_listeners()
        self._check_health()

    def _sync_listeners(self) -> None:
        with self.ctx.lock:
            wanted: dict[str, tuple[str, str, int]] = {}
            for lb in list(self.ctx.backend("elbv2").load_balancers.values()):
                for listener in list(lb.listeners.values()):
                    wanted[listener.arn] = (lb.arn, lb.dns_name, int(listener.port or 0))
        with self._state_lock:
            if self._ticker.stopping:
                return
            for arn in list(self._listeners):
                if arn not in wanted:
                    self._close_listener(self._listeners.pop(arn))
            # Creation order of ARNs in moto is stable, so ports are assigned in that order.
            for arn, (lb_arn, dns_name, virtual_port) in wanted.items():
                if arn not in self._listeners:
                    self._open_listener(arn, lb_arn, dns_name, virtual_port)

    def _open_listener(self, arn: str, lb_arn: str, dns_name: str, virtual_port: int) -> None:
        taken = {x.port for x in self._listeners.values()}
        base = self.ctx.settings.lb_port
        for port in range(base, base + PORT_SEARCH):
            if port in taken:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                sock.close()
                continue
            sock.listen(64)
            sock.settimeout(0.5)  # so the accept loop notices stop()
            listener = _Listener(arn, lb_arn, dns_name, virtual_port, port, sock)
            listener.thread = threading.Thread(
                target=self._accept_loop, args=(listener,), name=f"labkit-lb-{port}", daemon=True
            )
            self._listeners[arn] = listener
            listener.thread.start()
            log.info("listener %s (%s:%s) on %s:%s", arn, dns_name, virtual_port, LOOPBACK, port)
            return
        log.error("no free port in %s..%s for listener %s", base, base + PORT_SEARCH, arn)

    @staticmethod
    def _close_listener(listener: _Listener) -> None:
        # shutdown() first: close() alone leaves the socket listening until the accept
        # thread's pending poll returns.
        with contextlib.suppress(OSError):
            listener.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            listener.sock.close()

    # forwarding ---------------------------------------------------------------------------
    def _accept_loop(self, listener: _Listener) -> None:
        while not self._ticker.stopping:
            try:
                conn, _ = listener.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # socket closed
            conn.settimeout(None)
            threading.Thread(
                target=self._handle, args=(listener, conn), name="labkit-lb-conn", daemon=True
            ).start()

    def _candidates(self, listener_arn: str) -> list[tuple[str, int]]:
        """The real addresses a new connection may go to: the healthy targets, or, when every
        target has failed its checks, all of them (an NLB fails open); never ``initial`` ones."""
        with self.ctx.lock:
            backend = self.ctx.backend("elbv2")
            lb = backend.load_balancers.get(self._listeners[listener_arn].lb_arn)
            listener = lb.listeners.get(listener_arn) if lb else None
            targets: list[tuple[str, str, int]] = []
            for tg_arn in _forward_target_groups(listener) if listener else []:
                tg = backend.target_groups.get(tg_arn)
                for t in list(tg.targets.values()) if tg else []:
                    port = target_port(t, tg)
                    if port is not None:
                        targets.append((tg_arn, t["Id"], port))
        states = [self.target_state(*t) for t in targets]
        if "healthy" in states:
            chosen = [t for t, state in zip(targets, states, strict=True) if state == "healthy"]
        elif states and all(state == "unhealthy" for state in states):
            chosen = targets  # fail open
        else:
            chosen = []
        addresses = [self.resolve(target_id, port) for _tg, target_id, port in chosen]
        return [a for a in addresses if a is not None]

    def _handle(self, listener: _Listener, conn: socket.socket) -> None:
        try:
            candidates = self._candidates(listener.arn)
        except Exception:
            log.exception("choosing a target failed")
            candidates = []
        if candidates:
            start = next(listener.rr)
            for i in range(len(candidates)):
                address = candidates[(start + i) % len(candidates)]
                with self._counted(address):
                    try:
                        upstream = socket.create_connection(address, timeout=2)
                    except OSError:
                        continue  # a dying target: try the next one
                    upstream.settimeout(None)
                    _pipe(conn, upstream)
                return
        conn.close()  # no target: the client sees the connection reset, as with an NLB

    @contextlib.contextmanager
    def _counted(self, address: tuple[str, int]) -> Iterator[None]:
        with self._state_lock:
            self._open[address] += 1
        try:
            yield
        finally:
            with self._state_lock:
                self._open[address] -= 1

    # health checks ------------------------------------------------------------------------
    def _check_health(self) -> None:
        now = time.monotonic()
        with self.ctx.lock:
            backend = self.ctx.backend("elbv2")
            registered: dict[TargetKey, tuple[HealthCheck, bool]] = {}
            for tg in list(backend.target_groups.values()):
                check = HealthCheck.of(tg)
                in_use = bool(tg.load_balancer_arns)
                for t in list(tg.targets.values()):
                    port = target_port(t, tg)
                    if port is not None:
                        registered[(tg.arn, t["Id"], port)] = (check, in_use)
        due: list[tuple[TargetKey, HealthCheck]] = []
        with self._state_lock:
            for key in list(self._health):
                health = self._health[key]
                if key not in registered:
                    if health.state != "draining" or health.drain_until <= now:
                        del self._health[key]
            for key, (check, in_use) in registered.items():
                health = self._health.get(key)
                if health is None or health.state == "draining":
                    health = self._health[key] = _Health(next_check=now)
                if not in_use:
                    health.state = "unused"
                    continue
                if health.state == "unused":
                    health.state = "initial"
                if health.next_check <= now and not health.probing:
                    health.next_check = now + HEALTH_CHECK_INTERVAL
                    health.probing = True
                    due.append((key, check))
        for key, check in due:
            try:
                self._probes.submit(self._check_one, key, check)
            except RuntimeError:  # stopping: the pool takes no more work
                return

    def _check_one(self, key: TargetKey, check: HealthCheck) -> None:
        _, target_id, port = key
        if check.port != "traffic-port" and check.port.isdigit():
            port = int(check.port)
        address = self.resolve(target_id, port)
        if address is None:
            result = failed_probe(
                "Target.FailedHealthChecks",
                "Health checks failed",
                f"no running task answers at {target_id}:{port}",
            )
        else:
            try:
                result = probe_target(address, check)
            except Exception as exc:  # a probe must never kill the pool's thread
                result = failed_probe("Target.FailedHealthChecks", "Health checks failed", str(exc))
        with self._state_lock:
            health = self._health.get(key)
            if health is None:
                return
            health.probing = False
            if health.state in ("draining", "unused"):
                return
            if result.ok:
                health.passes, health.fails = health.passes + 1, 0
                if health.passes >= check.healthy_threshold:
                    health.state = "healthy"
                    health.reason = health.description = health.detail = None
            else:
                health.passes, health.fails = 0, health.fails + 1
                health.reason, health.description = result.reason, result.description
                health.detail = result.detail
                # An unknown target never turns healthy: say so at once.
                if health.fails >= check.unhealthy_threshold or address is None:
                    health.state = "unhealthy"

    # DescribeTargetHealth -----------------------------------------------------------------
    def _describe_target_health(
        self, target_group_arn: str, targets: list[dict[str, Any]]
    ) -> list[Any]:
        from moto.elbv2.models import FakeHealthStatus

        tg = self._target_group(target_group_arn)
        self._rekey(tg)
        original = self._originals["describe_target_health"]
        wanted: list[tuple[str, int | None]] = []
        if targets:
            for target in targets:
                port = int(target["Port"]) if target.get("Port") else None
                matches = [k for k in tg.targets if k[0] == target["Id"] and port in (None, k[1])]
                wanted.extend(matches or [(target["Id"], port)])
        else:
            wanted = list(tg.targets)
            with self._state_lock:
                for (arn, target_id, port), health in self._health.items():
                    if arn == target_group_arn and health.state == "draining":
                        if (target_id, port) not in tg.targets:
                            wanted.append((target_id, port))
        result = []
        for target_id, port in wanted:
            registered = (target_id, port) in tg.targets
            with self._state_lock:
                health = self._health.get((target_group_arn, target_id, port)) if port else None
            if not registered and (health is None or health.state != "draining"):
                ask = {"Id": target_id} if port is None else {"Id": target_id, "Port": port}
                result.extend(original(target_group_arn, [ask]))
                continue
            state = health.state if health else ("initial" if tg.load_balancer_arns else "unused")
            reason, description = _STATE_TEXT.get(state, (None, None))
            if state == "initial" and health and (health.passes or health.fails):
                reason, description = (
                    "Elb.InitialHealthChecking",
                    "Initial health checks in progress",
                )
            if state == "unhealthy" and health and health.reason:
                reason = health.reason
                # AWS's words, then what the sandbox saw: the learner's best clue.
                description = f"{health.description}: {health.detail}"
            result.append(
                FakeHealthStatus(target_id, port, tg.health_check_port, state, reason, description)
            )
        return result
