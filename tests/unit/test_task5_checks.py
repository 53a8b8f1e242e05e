"""Notebook 05's exercises: the messages of their checks (moto), and the page probe the
capstone's check reads (a real local web server, stopped mid-way)."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from labkit.network import PageProbe
from labkit.tasks import task1, task3, task4, task5
from labkit.tasks.exercise import ____


@pytest.fixture
def service_lab(lab, catch_up):
    """Tasks 1, 3 and 4's service made by their catch-ups (moto runs no containers)."""
    return catch_up(lab, task1.TASK, task3.TASK, task4.q1, task4.q2, task4.q3)


def _answered(exercise, lab, *answers):
    result = exercise.evaluate(lab, answers)
    return result.passed, result.message, result.hint


def test_scale_check_wants_ecs_event_and_the_learners_reading(service_lab):
    passed, message, hint = _answered(task5.q1, service_lab, ____)
    assert not passed and "has not said it could not place" in message
    assert "desiredCount=3" in hint
    verdict = task5._placement_answer(service_lab, "service is fine")
    assert not verdict.passed and "not ECS's event" in verdict.message
    assert "is already using a port required by your task" in verdict.hint


def test_stop_check_names_what_is_wrong_with_the_learners_arn(service_lab):
    verdict = task5._stopped_answer(service_lab, ____)
    assert not verdict.passed and "not a task ARN" in verdict.message
    other = "arn:aws:ecs:us-west-2:123456789012:task/ECSCluster/0123456789abcdef"
    verdict = task5._stopped_answer(service_lab, other)
    assert not verdict.passed and "is not a task of" in verdict.message


def test_capstone_check_wants_v2_then_the_probe(service_lab):
    passed, message, hint = _answered(task5.q3, service_lab, ____)
    assert not passed and "no image tagged v2" in message and "push" in hint
    verdict = task5._probe_answer(service_lab, "a page")
    assert not verdict.passed and "wants the probe" in verdict.message


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 — the http.server name
        body = b"<html><title>v1</title></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_probe_counts_every_request_and_each_failure():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    probe = PageProbe(url, interval=0.05, timeout=1).start()
    time.sleep(0.5)
    assert probe.requests > 0 and probe.failures == [] and probe.bodies[0].startswith("<html>")
    server.shutdown()
    server.server_close()  # the page goes away mid-watch: each request now fails
    time.sleep(0.5)
    probe.stop()
    assert not probe.running and probe.failures
    seconds, what = probe.failures[0]
    assert seconds > 0.4 and ("refused" in what.lower() or "Error" in what)
    assert f"{len(probe.failures)} failed" in str(probe)
