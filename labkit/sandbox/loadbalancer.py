"""ELBv2 listeners as real TCP proxies on 127.0.0.1, with real health checks.

Every listener in moto's elbv2 backend (the lab's NLB ``Myloadbalancer`` on TCP 80, and any
created later) gets a real listening socket on the loopback interface: the first at
``settings.lb_port``, the next at ``lb_port + 1``, and so on. A connection is forwarded, round
robin, to a *healthy* registered target of the listener's target group.

Targets are virtual (an EC2 instance id and a port, as ECS registers them); the agent tells us
where each one really listens (:meth:`LoadBalancers.set_endpoint`). Targets whose id is a
loopback IPv4 address are reachable as they are.

Health checks are real TCP connects, **once a second** (sandbox speed; AWS checks every 10-30
seconds). A target turns healthy after ``min(HealthyThresholdCount, 2)`` passing checks and
unhealthy after ``min(UnhealthyThresholdCount, 2)`` failing ones. ``DescribeTargetHealth``
reports these results (moto on its own reports every target healthy), and a deregistered
target stays ``draining`` for a short sandbox drain time.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from labkit.sandbox.context import LOOPBACK, SandboxContext

log = logging.getLogger(__name__)

#: Seconds between two health checks of one target (sandbox speed).
HEALTH_CHECK_INTERVAL = 1.0
#: Seconds a health-check connect may take.
HEALTH_CHECK_TIMEOUT = 0.5
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
    description: str | None = None
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


def _is_loopback_ip(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        return False


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
            try:
                s.close()
            except OSError:
                pass


class LoadBalancers:
    """The sandbox's data plane for ELBv2: listener sockets, target health, forwarding."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self._listeners: dict[str, _Listener] = {}
        self._endpoints: dict[tuple[str, int], tuple[str, int]] = {}
        self._health: dict[TargetKey, _Health] = {}
        self._state_lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._original_describe_target_health: Any = None

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Patch DescribeTargetHealth, open the existing listeners, start polling."""
        backend = self.ctx.elbv2()
        with self.ctx.lock:
            if self._original_describe_target_health is None:
                # Instance attribute: shadows the class method for this backend only.
                self._original_describe_target_health = backend.describe_target_health
                backend.describe_target_health = self._describe_target_health
        self._sync_listeners()
        self._thread = threading.Thread(target=self._run, name="labkit-lb", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close every listener and stop health checks; restore moto's DescribeTargetHealth."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        with self._state_lock:
            for listener in list(self._listeners.values()):
                self._close_listener(listener)
            self._listeners.clear()
        with self.ctx.lock:
            if self._original_describe_target_health is not None:
                backend = self.ctx.elbv2()
                if backend.__dict__.get("describe_target_health") == self._describe_target_health:
                    del backend.describe_target_health
                self._original_describe_target_health = None

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

    def listener_ports(self) -> dict[str, int]:
        """Listener ARN -> the real loopback port it listens on."""
        with self._state_lock:
            return {arn: x.port for arn, x in self._listeners.items()}

    # called by the agent ------------------------------------------------------------------
    def set_endpoint(self, target_id: str, port: int, address: tuple[str, int]) -> None:
        """Where the virtual target ``target_id:port`` really listens."""
        with self._state_lock:
            self._endpoints[(target_id, int(port))] = address
        self._wake.set()

    def remove_endpoint(
        self, target_id: str, port: int, address: tuple[str, int] | None = None
    ) -> None:
        """Forget ``target_id:port``; with ``address``, only if it still points there."""
        with self._state_lock:
            key = (target_id, int(port))
            if address is None or self._endpoints.get(key) == address:
                self._endpoints.pop(key, None)

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

    def resolve(self, target_id: str, port: int) -> tuple[str, int] | None:
        with self._state_lock:
            address = self._endpoints.get((target_id, int(port)))
        if address is None and _is_loopback_ip(target_id):
            address = (target_id, int(port))
        return address

    # the poll loop ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_listeners()
                self._check_health()
            except Exception:  # keep the data plane alive whatever a tick trips on
                log.exception("load balancer tick failed")
            self._wake.wait(POLL_INTERVAL)
            self._wake.clear()

    def _sync_listeners(self) -> None:
        with self.ctx.lock:
            wanted: dict[str, tuple[str, str, int]] = {}
            for lb in list(self.ctx.elbv2().load_balancers.values()):
                for listener in list(lb.listeners.values()):
                    wanted[listener.arn] = (lb.arn, lb.dns_name, int(listener.port or 0))
        with self._state_lock:
            if self._stop.is_set():
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
        try:
            # shutdown() first: close() alone leaves the socket listening until the accept
            # thread's pending poll returns.
            listener.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            listener.sock.close()
        except OSError:
            pass

    # forwarding ---------------------------------------------------------------------------
    def _accept_loop(self, listener: _Listener) -> None:
        while not self._stop.is_set():
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
        """Healthy targets' real addresses; if none is healthy, fail open as NLBs do."""
        with self.ctx.lock:
            backend = self.ctx.elbv2()
            lb = backend.load_balancers.get(self._listeners[listener_arn].lb_arn)
            listener = lb.listeners.get(listener_arn) if lb else None
            targets: list[tuple[str, str, int]] = []
            for tg_arn in _forward_target_groups(listener) if listener else []:
                tg = backend.target_groups.get(tg_arn)
                for t in list(tg.targets.values()) if tg else []:
                    targets.append((tg_arn, t["Id"], int(t.get("Port") or tg.port)))
        healthy, others = [], []
        for tg_arn, target_id, port in targets:
            address = self.resolve(target_id, port)
            if address is None:
                continue
            state = self.target_state(tg_arn, target_id, port)
            if state == "healthy":
                healthy.append(address)
            elif state != "draining":
                others.append(address)
        return healthy or others

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
                try:
                    upstream = socket.create_connection(address, timeout=2)
                except OSError:
                    continue  # a dying target: try the next one
                upstream.settimeout(None)
                _pipe(conn, upstream)
                return
        conn.close()  # no target: the client sees the connection reset, as with an NLB

    # health checks ------------------------------------------------------------------------
    def _check_health(self) -> None:
        now = time.monotonic()
        with self.ctx.lock:
            backend = self.ctx.elbv2()
            registered: dict[TargetKey, tuple[int, int, bool]] = {}
            for tg in list(backend.target_groups.values()):
                healthy_n = max(1, min(int(tg.healthy_threshold_count or 2), 2))
                unhealthy_n = max(1, min(int(tg.unhealthy_threshold_count or 2), 2))
                in_use = bool(tg.load_balancer_arns)
                for t in list(tg.targets.values()):
                    key = (tg.arn, t["Id"], int(t.get("Port") or tg.port))
                    registered[key] = (healthy_n, unhealthy_n, in_use)
        due: list[tuple[TargetKey, int, int]] = []
        with self._state_lock:
            for key in list(self._health):
                health = self._health[key]
                if key not in registered:
                    if health.state != "draining" or health.drain_until <= now:
                        del self._health[key]
            for key, (healthy_n, unhealthy_n, in_use) in registered.items():
                health = self._health.get(key)
                if health is None or health.state == "draining":
                    health = self._health[key] = _Health(next_check=now)
                if not in_use:
                    health.state = "unused"
                    continue
                if health.state == "unused":
                    health.state = "initial"
                if health.next_check <= now:
                    health.next_check = now + HEALTH_CHECK_INTERVAL
                    due.append((key, healthy_n, unhealthy_n))
        for key, healthy_n, unhealthy_n in due:
            _, target_id, port = key
            address = self.resolve(target_id, port)
            ok, why = False, None
            if address is None:
                why = f"Health checks failed: no running task answers at {target_id}:{port}"
            else:
                try:
                    socket.create_connection(address, timeout=HEALTH_CHECK_TIMEOUT).close()
                    ok = True
                except OSError as exc:
                    why = f"Health checks failed: TCP connect to the target failed ({exc})"
            with self._state_lock:
                health = self._health.get(key)
                if health is None or health.state == "draining":
                    continue
                if ok:
                    health.passes, health.fails = health.passes + 1, 0
                    if health.passes >= healthy_n:
                        health.state, health.description = "healthy", None
                else:
                    health.passes, health.fails = 0, health.fails + 1
                    health.description = why
                    # An unknown target never turns healthy: say so at once.
                    if health.fails >= unhealthy_n or address is None:
                        health.state = "unhealthy"

    # DescribeTargetHealth -----------------------------------------------------------------
    def _describe_target_health(
        self, target_group_arn: str, targets: list[dict[str, Any]]
    ) -> list[Any]:
        from moto.elbv2.models import FakeHealthStatus

        backend = self.ctx.elbv2()
        original = self._original_describe_target_health
        tg = backend.target_groups.get(target_group_arn)
        if tg is None:
            return original(target_group_arn, targets)
        if not targets:
            targets = list(tg.targets.values())
            with self._state_lock:
                for (arn, target_id, port), health in self._health.items():
                    if arn == target_group_arn and health.state == "draining":
                        if target_id not in tg.targets:
                            targets.append({"Id": target_id, "Port": port})
        result = []
        for target in targets:
            target_id = target["Id"]
            registered = tg.targets.get(target_id)
            port = int(target.get("Port") or (registered or {}).get("Port") or tg.port)
            with self._state_lock:
                health = self._health.get((target_group_arn, target_id, port))
            if registered is None and (health is None or health.state != "draining"):
                result.extend(original(target_group_arn, [target]))
                continue
            state = health.state if health else ("initial" if tg.load_balancer_arns else "unused")
            reason, description = _STATE_TEXT.get(state, (None, None))
            if state == "unhealthy" and health and health.description:
                description = health.description
            result.append(
                FakeHealthStatus(target_id, port, tg.health_check_port, state, reason, description)
            )
        return result
