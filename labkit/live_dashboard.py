"""A live view of the service while the instructor talks: ``labkit.dashboard(lab)``.

It mirrors the console's service page (counts and deployments, the Tasks tab, the
latest Events, the target group's Targets) and refreshes every couple of seconds from
a background thread, for a bounded time. The cell returns at once, so the kernel stays
free: run ``labkit.ecs.scale(lab, 3)`` in the next cell and watch it happen above.

Headless (papermill via ``labkit run``, which sets ``LABKIT_HEADLESS=1``, or outside a
kernel) it shows ONE snapshot, HTML with a plain-text twin, and returns.
"""

from __future__ import annotations

import html
import os
import threading
import time
from datetime import datetime
from typing import Any

from labkit import ecs, views
from labkit.display import in_kernel, show
from labkit.lab import Lab, current_lab

DEFAULT_SECONDS = 120.0
DEFAULT_INTERVAL = 2.0

#: The live dashboard of this kernel: re-running the cell replaces it (one poller only).
_active: Dashboard | None = None


def headless() -> bool:
    """True when no one watches live output (labkit run, or not in a Jupyter kernel)."""
    flag = os.environ.get("LABKIT_HEADLESS", "").strip().lower()
    return flag in ("1", "true", "yes") or not in_kernel()


def snapshot(lab: Lab, service_name: str, events: int = 6) -> tuple[str, str]:
    """The service page right now, as (HTML, plain text). Never raises."""
    stamp = datetime.now().strftime("%H:%M:%S")
    try:
        service = ecs.find_service(lab, service_name)
        if service is None:
            text = f"Service {service_name} does not exist (yet): run notebook 04 first."
            return (f"<i>{html.escape(text)}</i>", text)
        tasks = ecs.tasks(lab, service=service_name)
        try:
            targets = ecs.target_health(lab)
        except Exception:  # noqa: BLE001 — a missing target group shows as "(none)"
            targets = []
    except Exception as exc:  # noqa: BLE001 — a dashboard reports, it never crashes
        text = f"Could not read {service_name}: {exc.__class__.__name__}: {exc}"
        return (f"<i>{html.escape(text)}</i>", text)

    summary = (
        f"{service_name} on {lab.names.cluster}: desired {service['desiredCount']}, "
        f"running {service['runningCount']}, pending {service['pendingCount']}"
        + ("  ✅ steady" if ecs.is_steady(service) else "")
    )
    parts = [
        views.deployments_table(service),
        views.tasks_table(service_name, tasks),
        views.targets_table(lab.names.target_group, targets),
        views.events_table(service, events),
    ]
    title = f"📊 Service dashboard · {stamp}"
    rich = (
        "<div style='font-family:sans-serif;font-size:13px;border:1px solid #ccc;"
        "border-radius:6px;padding:8px 12px'>"
        f"<div><b>{html.escape(title)}</b></div><div>{html.escape(summary)}</div>"
        + "".join(h for h, _ in parts)
        + "</div>"
    )
    plain = "\n\n".join([f"{title}\n{summary}", *(p for _, p in parts)])
    return rich, plain


class Dashboard:
    """A refreshing view of one service; ``stop()`` ends it early."""

    def __init__(self, lab: Lab, service_name: str, seconds: float, interval: float) -> None:
        self.lab = lab
        self.service_name = service_name
        self.seconds = max(0.0, float(seconds))
        self.interval = max(0.5, float(interval))
        self.refreshes = 0
        self.widget: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Dashboard:
        """Display a widget and refresh it from a daemon thread until ``seconds`` pass."""
        import ipywidgets as w
        from IPython.display import display

        rich, plain = snapshot(self.lab, self.service_name)
        self.refreshes = 1
        self.widget = w.HTML(value=rich)
        # The widget, with the first snapshot as its text/plain twin (nbconvert, logs).
        bundle = self.widget._repr_mimebundle_() or {}
        bundle["text/plain"] = plain
        display(bundle, raw=True)
        self._thread = threading.Thread(target=self._loop, name="labkit-dashboard", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.wait(self.interval):
            if time.monotonic() >= deadline:
                break
            rich, _ = snapshot(self.lab, self.service_name)
            self.widget.value = rich
            self.refreshes += 1
        note = "stopped" if self._stop.is_set() else f"stopped after {self.seconds:.0f} s"
        self.widget.value += (
            f"<div style='color:#777;font-size:12px'>⏹️ dashboard {note}; re-run the cell "
            "to watch again.</div>"
        )

    def stop(self, wait: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)

    def __repr__(self) -> str:
        state = "live" if self.running else "stopped"
        return f"<Dashboard of {self.service_name}: {state}, {self.refreshes} refresh(es)>"


def dashboard(
    lab: Lab | None = None,
    service: str | None = None,
    seconds: float = DEFAULT_SECONDS,
    interval: float = DEFAULT_INTERVAL,
    live: bool | None = None,
) -> Dashboard:
    """Show the service's page, refreshed every ``interval`` s for ``seconds`` s.

    Returns at once (the refreshing happens in a background thread, so the kernel is
    free for the next cell). ``service`` defaults to the lab's service. Headless, or
    with ``live=False``, it shows one snapshot and returns.
    """
    lab = lab or current_lab()
    name = service or lab.service_name  # resolved here, not in the thread
    board = Dashboard(lab, name, seconds, interval)
    live = (not headless()) if live is None else live
    global _active
    if _active is not None:
        _active.stop()  # a re-run cell replaces the previous dashboard
        _active = None
    if live and seconds > 0 and in_kernel():
        _active = board.start()
        return board
    show(*snapshot(lab, name))  # one snapshot: HTML and its plain-text twin
    board.refreshes = 1
    return board
