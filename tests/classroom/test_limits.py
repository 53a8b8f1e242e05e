"""One learner's fork bomb and memory hog do not stop the room: with each learner in a
cgroup of their own, another learner finishes Task 1 in about their usual time, the hog
meets its own limits, and the hub keeps answering.

Real: two learners on a hub of this module's own, the load run from the hog's own
kernel, Task 1 run by the other's kernel (`labkit run --until 01`, the solved notebooks).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from labkit.classroom import board, host, hub, limits
from labkit.classroom.state import Classroom
from tests.classroom.test_classroom import PASSWORD, LearnerSession, _require_classroom_host
from tests.conftest import free_port

pytestmark = pytest.mark.classroom

RUN_TASK1 = """
import subprocess, sys, time
start = time.monotonic()
done = subprocess.run([sys.executable, "-m", "labkit.cli", "run", "--until", "01", "-q",
                       "-o", "runs/task1", "--notebooks", "notebooks"],
                      capture_output=True, text=True)
print("EXIT", done.returncode, "SECONDS", round(time.monotonic() - start, 2))
print(done.stdout[-2000:])
print(done.stderr[-2000:])
"""

#: Run by the hog learner's kernel, detached; ends by itself after argv[1] seconds.
LOAD = """
import ctypes, os, sys, time
end = time.time() + float(sys.argv[1])
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: reap the whole bomb

def child(work):
    while time.time() < end:
        try:
            pid = os.fork()
        except OSError:  # the process maximum: wait for room
            time.sleep(0.1)
            continue
        if pid == 0:
            work()
            os._exit(0)
        return pid

def hog():  # 64 MiB more at each step, every page touched, until killed
    chunks = []
    while time.time() < end:
        chunks.append(b"x" * (64 * 2**20))

def bomb():  # every process forks again, 11 times (2048 at most), then spins
    level = 0
    while level < 11 and time.time() < end:
        try:
            os.fork()
            level += 1
        except OSError:  # retried 10 times a second (bash's own bomb waits 1 s and more)
            time.sleep(0.1)
    while time.time() < end:
        pass

os.waitpid(child(hog), 0)  # first the hog alone, up to the memory maximum
hog_pid, hogs = child(hog), 2  # then again, beside the bomb
child(bomb)
while True:
    try:
        pid, _ = os.wait()
    except ChildProcessError:
        break
    if pid == hog_pid and time.time() < end:
        hog_pid, hogs = child(hog), hogs + 1
print("hogs started", hogs, flush=True)
"""


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _require_classroom_host()
    state = tmp_path_factory.mktemp("classroom-limits") / "state"
    suffix = secrets.token_hex(2)
    names = [f"cg{suffix}-hog", f"cg{suffix}-calm"]
    roster = state.parent / "roster.txt"
    roster.write_text("\n".join(names) + "\n")
    said: list[str] = []
    classroom = hub.up(
        roster, state, "127.0.0.1", free_port(), PASSWORD, say=said.append, board_port=free_port()
    )
    if limits.Plan.from_dict(classroom.limits).limited != ["cpu", "memory", "pids"]:
        hub.down(state, say=lambda *_: None, delete_accounts=True)
        pytest.skip("this host cannot limit learners: " + " ".join(said))
    try:
        sessions = [LearnerSession(classroom, name) for name in names]
        for session in sessions:
            session.start_server()
        for session in sessions:
            session.wait_ready()
        yield classroom, said, sessions
    finally:
        hub.down(state, say=lambda *_: None, delete_accounts=True)


def _cell(room: Classroom, name: str) -> limits.Cell:
    cell = Classroom.load(room.state_dir).cell(room.learner(name))
    assert cell is not None
    return cell


def _task1(session: LearnerSession) -> float:
    output = session.execute(RUN_TASK1)
    assert "EXIT 0" in output and "All 2 notebook(s) passed" in output, output
    return float(output.split("SECONDS", 1)[1].split()[0])


def _cpu_times() -> tuple[float, float]:
    """All CPUs' time so far and the part the hypervisor gave to other machines (steal),
    in seconds, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    steal = fields[7] if len(fields) > 7 else 0
    return sum(fields[:8]) / ticks, steal / ticks


def _task1_beside_the_load(session: LearnerSession) -> tuple[float, float]:
    """Task 1's wall time, and the share of the CPUs' time stolen by the hypervisor
    meanwhile: on a shared VM host a machine burning both CPUs gets throttled, and that
    slows every learner alike, whatever the cgroups do."""
    total_before, steal_before = _cpu_times()
    seconds = _task1(session)
    total_after, steal_after = _cpu_times()
    return seconds, (steal_after - steal_before) / max(1e-9, total_after - total_before)


def test_up_names_the_limits(room: Any) -> None:
    _, said, _ = room
    line = next(text for text in said if text.startswith("Per-learner limits:"))
    assert "memory 1.5 GiB, 1024 processes and threads" in line
    assert "cpu, memory, pids" in line


def test_every_process_of_a_learner_is_in_their_cgroup(room: Any) -> None:
    classroom, _, sessions = room
    for session in sessions:
        cell = _cell(classroom, session.name)
        theirs = {p.pid for p in host.learner_processes(session.entry)}
        names = {p.name() for p in host.learner_processes(session.entry)}
        # The server, the Docker Engine (rootlesskit, dockerd, containerd), the sandbox.
        assert {"rootlesskit", "dockerd", "containerd"} <= names, names
        assert theirs and theirs <= cell.pids(), theirs - cell.pids()
        for hierarchy in cell.plan.hierarchies:
            folder = Path(hierarchy.parent) / cell.name
            assert folder.stat().st_uid == 0 and not folder.stat().st_mode & 0o022


def test_a_fork_bomb_and_a_memory_hog_do_not_stop_another_learner(room: Any) -> None:
    classroom, _, (hog, calm) = room
    settings = limits.Plan.from_dict(classroom.limits).settings
    hog_cell, calm_cell = _cell(classroom, hog.name), _cell(classroom, calm.name)
    unloaded = _task1(calm)
    print(f"\nTask 1 alone: {unloaded:.1f} s")
    lab_use = calm_cell.usage()
    # The load lasts past two loaded tries of Task 1 (see below), and ends by itself.
    bound = 3 * unloaded + 30
    # A slow first try (up to twice the bound) still leaves the second its whole bound.
    seconds = 3 * bound + 60
    started = hog.execute(
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', {LOAD!r}, '{seconds}'],"
        " start_new_session=True, stdout=open('load.log', 'w'), stderr=subprocess.STDOUT)\n"
        "print('STARTED')\n"
    )
    assert "STARTED" in started, started
    load_ends = time.monotonic() + seconds
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        use = hog_cell.usage()
        if use["pids_refused"] and use["oom_kills"]:
            break
        time.sleep(0.5)
    assert use["pids_refused"] and use["oom_kills"], use  # both limits met already
    hub_before = time.monotonic()
    hub.api(classroom, "GET", "/hub/api/")
    hub_answer = time.monotonic() - hub_before

    # Equal CPU weights give the calm learner at least half of the learners' CPU while
    # the hog spins ~1000 processes: about twice as long, plus the host's own noise, on the
    # CPU time the hypervisor left this machine. Unlimited, the bomb's 2048 spinning
    # processes would leave it ~1/2000 of the CPU. A second try under the same load rules
    # out one unlucky window (CI once saw 73 s where 10 - 23 s is usual here).
    tries = []
    for _ in range(2):
        loaded, stolen = _task1_beside_the_load(calm)
        tries.append((loaded, round(stolen, 3)))
        if loaded * (1 - stolen) < bound:
            break
    during = hog_cell.usage()
    assert time.monotonic() < load_ends, "the load ended before the loaded runs did"
    assert during["pids"] >= settings.pids_max * 0.9, during  # still bombing meanwhile

    print(
        f"\nTask 1: {unloaded:.1f} s alone; beside the fork bomb and memory hog (seconds, "
        f"share of CPU time stolen by the hypervisor): {tries}; hub answered in "
        f"{hub_answer:.2f} s under load; hog: {during}; calm learner after Task 1: {lab_use}"
    )
    assert loaded * (1 - stolen) < bound, (unloaded, tries)
    assert hub_answer < 10
    assert during["memory_peak"] <= settings.memory_max
    assert lab_use["memory_peak"] < settings.memory_max / 2  # the lab itself fits well
    assert lab_use["pids"] < settings.pids_max / 2

    # The load ends by itself; the hog's own server survived it, and so did the host.
    time.sleep(max(0.0, load_ends - time.monotonic()) + 5)
    assert hog_cell.usage()["pids"] < settings.pids_max / 2
    assert "alive" in hog.execute("print('alive')")
    assert os.system("true") == 0
    assert psutil.virtual_memory().available > 2 * settings.memory_max


def test_status_shows_each_learners_use(room: Any) -> None:
    classroom, _, sessions = room
    plan = limits.Plan.from_dict(classroom.limits)
    text = limits.usage_text(plan, {s.name: s.room.learner(s.name).unix_user for s in sessions})
    hog_line = next(line for line in text.splitlines() if line.startswith(sessions[0].name))
    assert "out-of-memory kills" in hog_line and "forks refused" in hog_line, text
    calm_line = next(line for line in text.splitlines() if line.startswith(sessions[1].name))
    assert calm_line.endswith("never") and "/1024" in calm_line, text
    # The board's probes run in each learner's cgroup too, and read their real state.
    rows = {row.name: row for row in board.board(Classroom.load(classroom.state_dir))}
    calm = rows[sessions[1].name]
    assert calm.sandbox == "healthy" and calm.tasks[0]["passed"], calm


def test_down_removes_the_learners_cgroups(room: Any) -> None:
    classroom, _, sessions = room
    cells = [_cell(classroom, session.name) for session in sessions]
    hub.down(classroom.state_dir, say=lambda *_: None)
    for cell in cells:
        assert not cell.exists()
    plan = limits.Plan.from_dict(classroom.limits)
    for hierarchy in plan.hierarchies:  # and the kit's folder, unless another room uses it
        parent = Path(hierarchy.parent)
        assert not parent.exists() or any(p.is_dir() for p in parent.iterdir())
