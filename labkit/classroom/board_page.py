"""The instructor's board as a live page: ``board.board(room)`` served over HTTP.

``labkit classroom up`` starts it (``--board-ip``/``--board-port``, 127.0.0.1:8001 by
default) and ``down`` stops it. It runs as root, because every row comes from a probe run
as that learner (``board.learner_row``): the learners' real state, never a self-report.

Learners share the host's loopback, so the page answers only the board token (kept in the
root-only state folder; ``up`` prints the page's address with it). The probes cost CPU, so
the rows are refreshed only while someone looks: a request finding rows older than
``--every`` seconds starts a refresh, and the page reloads itself every few seconds.
"""

from __future__ import annotations

import argparse
import hmac
import html
import json
import os
import signal
import threading
import time
import urllib.parse
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

from labkit.classroom import board, host
from labkit.classroom.state import Classroom

PAGE_RELOAD_SECONDS = 5
#: The board's pages load nothing and run nothing: only their own inline style.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


class LiveBoard:
    """The latest rows, refreshed in the background at most every ``every`` seconds."""

    def __init__(self, state_dir: Path, every: float) -> None:
        self.state_dir, self.every = Path(state_dir), every
        self.rows: list[board.LearnerRow] | None = None
        self.taken_at = 0.0
        self.error = ""  # why the last reading failed, shown on the page
        self._refreshing = threading.Lock()
        self._first = threading.Event()

    def _refresh(self) -> None:
        try:
            # Loaded each time: a learner's sandbox gets fresh ports at each server start.
            room = Classroom.load(self.state_dir)
            self.rows, self.taken_at = board.board(room), time.time()
            self.error = ""
        except Exception as exc:  # noqa: BLE001 — shown on the page; the next view retries
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._first.set()
            self._refreshing.release()

    def current(self, wait: float = 120) -> list[board.LearnerRow] | None:
        stale = time.time() - self.taken_at >= self.every
        if stale and self._refreshing.acquire(blocking=False):
            threading.Thread(target=self._refresh, daemon=True).start()
        if self.rows is None:
            self._first.wait(wait)
        return self.rows


def _page(live: LiveBoard) -> str:
    rows = live.current()
    error = f"<p>The last reading failed: {html.escape(live.error)}</p>" if live.error else ""
    if rows is None:
        return (
            "<!doctype html><meta http-equiv='refresh' content='2'><p>No reading yet.</p>" + error
        )
    page = board.as_html(rows, refresh_seconds=PAGE_RELOAD_SECONDS)
    taken = time.strftime("%H:%M:%S", time.localtime(live.taken_at))
    note = (
        f"<p>Read at {html.escape(taken)} from each learner's sandbox; refreshed every "
        f"{live.every:g} s while this page is open. Reset a learner: <code>labkit "
        "classroom reset NAME</code>; bring to task N: <code>labkit classroom goto NAME "
        "N</code>.</p>"
    )
    return page + note + error


def make_server(
    state_dir: Path, ip: str, port: int, token: str, every: float
) -> ThreadingHTTPServer:
    live = LiveBoard(state_dir, every)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 — the http.server's name
            url = urllib.parse.urlsplit(self.path)
            given = urllib.parse.parse_qs(url.query).get("token", [""])[0]
            header = self.headers.get("Authorization", "")
            if header.startswith("token "):
                given = header.removeprefix("token ")
            if not hmac.compare_digest(given.encode(), token.encode()):
                self._send(403, "text/plain", "The board needs its token (see `classroom up`).")
            elif url.path == "/":
                self._send(200, "text/html; charset=utf-8", _page(live))
            elif url.path == "/board.json":
                rows = live.current() or []
                payload = {"taken_at": live.taken_at, "rows": [asdict(r) for r in rows]}
                self._send(200, "application/json", json.dumps(payload))
            else:
                self._send(404, "text/plain", "Not found: the board is at / and /board.json.")

        def _send(self, code: int, kind: str, text: str) -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            # Besides escaping: the page runs no script at all, and is never sniffed as one.
            self.send_header("Content-Security-Policy", PAGE_POLICY)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # one line per reload would drown the hub's log

    return ThreadingHTTPServer((ip, port), Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The classroom's live board (run by `up`).")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between readings")
    args = parser.parse_args(argv)
    token = Classroom.load(args.state).board_token
    signal.signal(signal.SIGTERM, _stop_with_probes)
    make_server(args.state, args.ip, args.port, token, args.every).serve_forever()


def _stop_with_probes(*_: object) -> None:
    """Stop the probes still running (they run as learners) and reap them, then exit:
    orphaned, they would outlive `classroom down`, or linger as zombies where PID 1 does
    not reap (a container)."""
    host.stop_processes(psutil.Process().children(recursive=True), 5)
    os._exit(0)


if __name__ == "__main__":
    main()
