"""The processes the sandbox starts, recorded so that only they are ever signalled.

A PID alone proves nothing: after a crash or a reboot the number in a pid file may belong
to any other program. A record holds the PID, the start time and the command line, read
from the process right after it was started; a process is the sandbox's own only while
all three still match. Everything else is left alone, and the caller says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from labkit.files import write_private

#: How long a record waits for a just-started child to exec its command line.
EXEC_WAIT_SECONDS = 5.0
#: Start times are read through the boot time, which the kernel reports to the second.
START_TIME_TOLERANCE_SECONDS = 1.0


@dataclass(frozen=True)
class ProcessRecord:
    """Who a process is: its PID, when it started and what it runs."""

    pid: int
    started: float  # seconds since the epoch (psutil's create_time)
    cmdline: tuple[str, ...]

    @classmethod
    def of(cls, pid: int, argv: Sequence[str] | None = None) -> ProcessRecord:
        """The record of a running process (call it right after starting the process).

        ``argv`` is what it was started with: between fork and exec a child shows no (or
        its parent's) command line, so the record waits, briefly, until it runs ``argv``.
        """
        process = psutil.Process(pid)
        deadline = time.monotonic() + EXEC_WAIT_SECONDS
        while True:
            with process.oneshot():
                record = cls(pid, process.create_time(), tuple(process.cmdline()))
            if argv is None or record.cmdline == tuple(argv) or time.monotonic() > deadline:
                return record
            time.sleep(0.01)

    def save(self, path: Path) -> None:
        body = {"pid": self.pid, "started": self.started, "cmdline": list(self.cmdline)}
        write_private(path, json.dumps(body, indent=1).encode())

    def matches(self, process: psutil.Process) -> bool:
        with process.oneshot():
            same_start = abs(process.create_time() - self.started) <= START_TIME_TOLERANCE_SECONDS
            return same_start and tuple(process.cmdline()) == self.cmdline


def recorded_pid(path: Path) -> int | None:
    """The PID a record (or an older kit's bare pid file) names, unverified: for display
    and measurement only; to signal, use :func:`find_own`."""
    try:
        body = json.loads(path.read_text())
        return int(body if isinstance(body, int) else body["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _describe(process: psutil.Process) -> str:
    """``pid N (`command …`, started …)`` for messages; never raises."""
    try:
        with process.oneshot():
            command = shlex.join(process.cmdline()) or process.name()
            started = dt.datetime.fromtimestamp(process.create_time()).strftime("%Y-%m-%d %H:%M")
        if len(command) > 80:
            command = command[:77] + "..."
        return f"process {process.pid} (`{command}`, started {started})"
    except psutil.Error:
        return f"process {process.pid} (another user's, or already gone)"


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; only its parent's wait is missing)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_own(path: Path, what: str) -> tuple[psutil.Process | None, str]:
    """The live process the record at ``path`` names, when it is provably that process.

    Otherwise ``None`` and a sentence for the user: empty when there is simply nothing
    running, else which process the stale record names and that it was left alone.
    """
    try:
        text = path.read_text()
    except OSError:
        return None, ""
    try:
        body = json.loads(text)
        if isinstance(body, int):  # a bare PID, as older kits wrote it: no proof of identity
            record, pid = None, body
        else:
            record = ProcessRecord(int(body["pid"]), float(body["started"]), tuple(body["cmdline"]))
            pid = record.pid
    except (ValueError, KeyError, TypeError):
        return None, f"{path} is not a process record the kit wrote; it was ignored."
    try:
        process = psutil.Process(pid)
    except (psutil.NoSuchProcess, ValueError):
        return None, ""  # nothing runs under that PID any more
    except psutil.Error as exc:
        return None, f"{path} names process {pid}, which cannot be inspected ({exc}); left alone."
    if not _alive(process):
        return None, ""
    try:
        ours = record is not None and record.matches(process)
    except psutil.Error:
        ours = False
    if ours:
        return process, ""
    why = (
        "an older kit's pid file, with no start time or command line to prove it"
        if record is None
        else "now another program: its start time or command line differ from the record"
    )
    return None, (
        f"{path.name} names {_describe(process)}, which is not the {what} ({why}); "
        "that process was left alone."
    )


def stop(process: psutil.Process, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; True when it was running.

    psutil refuses to signal a PID that has been reused since ``process`` was looked up.
    """
    try:
        process.terminate()
    except psutil.NoSuchProcess:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(process):
            return True
        time.sleep(0.1)
    with contextlib.suppress(psutil.NoSuchProcess):
        process.kill()
    return True
