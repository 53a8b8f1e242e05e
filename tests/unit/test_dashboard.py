"""``labkit.dashboard``: one plain-text snapshot headless, a bounded live refresh otherwise."""

from __future__ import annotations

import time

import pytest

import labkit
import labkit.live_dashboard as board_module  # noqa: E402
from labkit.names import LAB


def _service(lab, name: str = "MYSERVICE1234") -> str:
    family = lab.ecs.register_task_definition(
        family=LAB.task_family,
        containerDefinitions=[{"name": LAB.container_name, "image": "busybox", "memory": 64}],
    )["taskDefinition"]["taskDefinitionArn"]
    lab.ecs.create_service(
        cluster=LAB.cluster, serviceName=name, taskDefinition=family, desiredCount=1
    )
    return name


def test_headless_prints_one_snapshot_and_returns(lab, capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_HEADLESS", "1")
    name = _service(lab)
    started = time.monotonic()
    board = labkit.dashboard(lab, service=name, seconds=60)
    assert time.monotonic() - started < 5
    out = capsys.readouterr().out
    assert "Service dashboard" in out and f"{name} on {LAB.cluster}: desired 1" in out
    for section in ("Deployments", "Tasks", f"Targets of {LAB.target_group}", "Events"):
        assert section in out
    assert not board.running and board.refreshes == 1


def test_missing_service_is_a_message_not_an_error(lab):
    rich, plain = board_module.snapshot(lab, "MYSERVICE0000")
    assert "does not exist" in plain and "notebook 04" in plain
    assert "does not exist" in rich


def test_live_refreshes_in_the_background_for_a_bounded_time(lab, monkeypatch):
    monkeypatch.delenv("LABKIT_HEADLESS", raising=False)
    monkeypatch.setattr(board_module, "in_kernel", lambda: True)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    name = _service(lab)
    started = time.monotonic()
    board = labkit.dashboard(lab, service=name, seconds=1.6, interval=0.5)
    assert time.monotonic() - started < 3, "the cell must return at once"
    assert board.running
    # The displayed bundle is the widget plus a readable text/plain twin.
    assert "application/vnd.jupyter.widget-view+json" in shown[0]
    assert shown[0]["text/plain"].startswith("📊 Service dashboard")
    board._thread.join(10)
    assert not board.running and board.refreshes >= 3
    assert "stopped after 2 s" in board.widget.value


def test_a_new_dashboard_stops_the_previous_one(lab, monkeypatch):
    monkeypatch.delenv("LABKIT_HEADLESS", raising=False)
    monkeypatch.setattr(board_module, "in_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: None)
    name = _service(lab)
    first = labkit.dashboard(lab, service=name, seconds=60, interval=0.5)
    second = labkit.dashboard(lab, service=name, seconds=60, interval=0.5)
    assert not first.running and second.running
    assert "⏹️ dashboard stopped;" in first.widget.value
    second.stop()
    assert not second.running


@pytest.mark.parametrize("flag", ["1", "true"])
def test_headless_flag(monkeypatch, flag):
    monkeypatch.setenv("LABKIT_HEADLESS", flag)
    assert board_module.headless()
