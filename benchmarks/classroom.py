"""Classroom capacity, as root: how many learners one host takes.

    python -m benchmarks.classroom --learners 5,10,15,20     # each N, up to the first over 5 min
    python -m benchmarks.classroom --search 4                # 4, then larger N, then bisect

For each N: a hub with N learners (``hub.up``: accounts, notebooks, the hub), every
learner's server started through the hub's REST API with their own password (all at
once) and a kernel opened in it; then all N run the lab (notebooks 00-04, solved) at once.
Reports how long bringing them up took, per-learner memory (proportional set size, by
part: sandbox, registry, single-user server, kernel, Docker Engine, containers), the wall
time for all N, the load average before and after, and the largest N under 5 minutes.
Everything is stopped (``hub.down(delete_accounts=True)``) after each N, and checked.

``--search`` grows N (towards the 5 minutes the last run predicts, at most doubling) until
a run is over 5 minutes, then bisects until the gap is at most ``--resolution``. A lab
still running at ``--limit`` seconds is stopped: that N is over. A run is refused before it
starts if its predicted memory would not fit, and stopped if the host runs short while it
runs (the host has no swap to fall back on).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from labkit.classroom import host, hub
from labkit.classroom.state import Classroom
from labkit.sandbox.context import free_port_block
from labkit.sandbox.processes import recorded_pid

TARGET_SECONDS = 300
MB = 2**20
#: Stop the lab if the host has less than this left; refuse an N predicted to leave less.
MEMORY_FLOOR_MB = 2048
_loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))

PARTS = (
    ("sandbox", ("-m", "labkit.sandbox")),
    ("registry", ("docker-registry",)),
    ("server", ("jupyterhub.singleuser",)),
    ("kernel", ("ipykernel_launcher",)),
    (
        "docker",
        (
            "rootlesskit",
            "dockerd",
            "containerd",
            "slirp4netns",
            "docker-proxy",
            "/proc/self/exe",
        ),
    ),
)


def _http(method: str, url: str, body: Any = None, token: str = "") -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}"} if token else {},
    )
    with _loopback.open(request, timeout=300) as reply:
        text = reply.read()
    return json.loads(text) if text else None


def part_of(cmdline: list[str]) -> str:
    joined = " ".join(cmdline)
    for name, needles in PARTS:
        if (
            all(n in joined for n in needles)
            if name == "sandbox"
            else any(n in joined for n in needles)
        ):
            return name
    return "containers"


def learner_processes(uids: set[int]) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["uids", "cmdline"]):
        uids_info = process.info.get("uids")
        if uids_info is not None and uids_info.real in uids:
            found.append(process)
    return found


def memory_by_part(uids: set[int]) -> dict[str, float]:
    """MB of proportional set size per part, summed over the learners' processes."""
    totals: dict[str, float] = {}
    for process in learner_processes(uids):
        if "labkit.cli run" in " ".join(process.info.get("cmdline") or []):
            continue  # the benchmark's driver of the lab, not part of a learner's lab
        try:
            pss = process.memory_full_info().pss
        except psutil.Error:
            continue
        part = part_of(process.info.get("cmdline") or [])
        totals[part] = totals.get(part, 0.0) + pss / MB
    return totals


def available_mb() -> float:
    return psutil.virtual_memory().available / MB


def host_load() -> dict[str, Any]:
    """The load average, and how many test runs of others are going (the host is shared)."""
    others = 0
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if any(part.endswith("pytest") for part in cmdline[:3]) or cmdline[1:3] == [
            "-m",
            "pytest",
        ]:
            others += 1
    one, five, fifteen = os.getloadavg()
    return {"loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)], "pytest_runs": others}


def _run_lab(room: Classroom, name: str, limit: float) -> tuple[bool, str]:
    """Notebooks 00-04 (solved) as the learner, as ``labkit classroom goto NAME 4`` does."""
    learner = room.learner(name)
    entry = pwd.getpwnam(learner.unix_user)
    env = host.learner_env(entry, learner, room.python, rootless=room.rootless)
    argv = [room.python, "-m", "labkit.cli", "run", "--until", "04", "-q"]
    argv += ["-o", "runs/bench", "--notebooks", "notebooks"]
    try:
        done = host.run_as(entry, env, argv, timeout=limit)
    except subprocess.TimeoutExpired:
        return False, f"still running after {limit:.0f} s: stopped"
    output = (done.stdout + done.stderr).strip()
    return "All 5 notebook(s) passed" in output, output[-1500:]


def run_n(learners: int, log: Any, limit: float) -> dict[str, Any]:
    password = "bench-" + secrets.token_hex(4)
    suffix = secrets.token_hex(2)
    names = [f"b{suffix}-{i}" for i in range(learners)]
    result: dict[str, Any] = {"learners": learners, "load_before": host_load()}
    result["memory_mb_available_before"] = round(available_mb())
    with tempfile.TemporaryDirectory(prefix="labkit-classroom-bench-") as tmp:
        roster = Path(tmp) / "roster.txt"
        roster.write_text("\n".join(names) + "\n")
        state = Path(tmp) / "state"
        uids: set[int] = set()
        room: Classroom | None = None
        try:
            t0 = time.monotonic()
            room = hub.up(
                roster,
                state,
                port=free_port_block(1),
                shared_password=password,
                say=log,
                board_port=free_port_block(1),
            )
            result["up_seconds"] = round(time.monotonic() - t0, 1)  # accounts, notebooks, hub
            uids = {pwd.getpwnam(learner.unix_user).pw_uid for learner in room.learners}
            _bring_up(room, names, password, result)
            room = Classroom.load(state)  # the ports each server got at its start
            time.sleep(3)
            idle = memory_by_part(uids)
            result["memory_mb_per_learner_idle"] = _per_learner(idle, learners)
            _lab_for_all(room, names, uids, limit, result, log)
            after = memory_by_part(uids)
            result["memory_mb_per_learner_after_lab"] = _per_learner(after, learners)
            result["memory_mb_per_learner_total_after_lab"] = round(
                sum(after.values()) / learners, 1
            )
        finally:
            result["load_after"] = host_load()
            started = _recorded_pids(state)
            if (state / "classroom.json").exists():
                t0 = time.monotonic()
                hub.down(state, say=log, delete_accounts=True)
                result["down_seconds"] = round(time.monotonic() - t0, 1)
            result["left_after_down"] = _left_behind(uids, names, room, started)
    return result


def _bring_up(room: Classroom, names: list[str], password: str, result: dict) -> None:
    """Every learner's token, server (all started at once) and a kernel in it."""
    url = room.url
    t0 = time.monotonic()
    with ThreadPoolExecutor(min(len(names), 16)) as pool:

        def token(name: str) -> str:
            body = {"auth": {"username": name, "password": password}}
            return _http("POST", f"{url}/hub/api/users/{name}/tokens", body)["token"]

        tokens = dict(zip(names, pool.map(token, names), strict=True))

        # The hub answers a spawn request only when the server is up or after its
        # slow_spawn_timeout (10 s): one at a time, N learners would wait N x 10 s.
        # A server that fails to start is started again once, as its learner would.
        def spawn(name: str) -> None:
            for attempt in range(2):
                if attempt:
                    result["spawn_retries"] = result.get("spawn_retries", 0) + 1
                _http("POST", f"{url}/hub/api/users/{name}/server", token=tokens[name])
                while True:
                    user = _http("GET", f"{url}/hub/api/users/{name}", token=tokens[name])
                    server = user["servers"].get("", {})
                    if server.get("ready"):
                        return
                    if not server.get("pending"):
                        break
                    time.sleep(1)
            raise RuntimeError(f"{name}'s server did not start twice (see the hub's log)")

        t1 = time.monotonic()
        list(pool.map(spawn, names))
        result["spawn_seconds"] = round(time.monotonic() - t1, 1)

        def kernel(name: str) -> None:
            body = {"name": "python3"}
            _http("POST", f"{url}/user/{name}/api/kernels", body, token=tokens[name])

        t1 = time.monotonic()
        list(pool.map(kernel, names))
        result["kernel_seconds"] = round(time.monotonic() - t1, 1)
    result["bring_up_seconds"] = round(result["up_seconds"] + time.monotonic() - t0, 1)


def _lab_for_all(
    room: Classroom, names: list[str], uids: set[int], limit: float, result: dict, log: Any
) -> None:
    peak = {"total": 0.0, "available_min": available_mb()}
    done = threading.Event()

    def watch() -> None:
        last_pss = 0.0
        while not done.is_set():
            peak["available_min"] = min(peak["available_min"], available_mb())
            if peak["available_min"] < MEMORY_FLOOR_MB:
                result["stopped_for_memory"] = True
                for process in learner_processes(uids):
                    if "labkit.cli run" in " ".join(process.info.get("cmdline") or []):
                        process.kill()  # run_as returns; the rest goes at `down`
                return
            if time.monotonic() - last_pss >= 5:  # reading every PSS costs CPU
                peak["total"] = max(peak["total"], sum(memory_by_part(uids).values()))
                last_pss = time.monotonic()
            done.wait(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(names)) as pool:
        outcomes = list(pool.map(lambda name: _run_lab(room, name, limit), names))
    result["lab_seconds"] = round(time.monotonic() - t0, 1)
    done.set()
    watcher.join()
    result["passed"] = sum(ok for ok, _ in outcomes)
    failures = [output for ok, output in outcomes if not ok]
    if failures:
        result["first_failure"] = failures[0]
        log(f"{len(failures)} learner(s) did not finish the lab; the first:\n{failures[0]}")
    result["memory_mb_peak_total"] = round(peak["total"], 1)
    result["memory_mb_available_min"] = round(peak["available_min"])


def _per_learner(totals: dict[str, float], learners: int) -> dict[str, float]:
    return {part: round(mb / learners, 1) for part, mb in sorted(totals.items())}


def _recorded_pids(state: Path) -> dict[int, float]:
    """The hub's, its proxy's and the board page's pids, with their start times."""
    found = {}
    for name in ("jupyterhub.pid", "proxy.pid", hub.BOARD_RECORD):
        pid = recorded_pid(state / name)
        try:
            found[pid] = psutil.Process(pid).create_time()
        except (TypeError, ValueError, psutil.Error):
            pass
    return found


def _left_behind(
    uids: set[int], names: list[str], room: Classroom | None, started: dict[int, float]
) -> list[str]:
    """What ``down`` left: learners' processes and accounts, the hub, proxy, board page
    and the hub's listener."""
    left = [
        f"pid {p.pid} {' '.join(p.info.get('cmdline') or [])[:80]}" for p in learner_processes(uids)
    ]
    left += [f"account lk-{n}" for n in names if _has_account(f"lk-{n}")]
    for pid, created in started.items():
        try:
            if psutil.Process(pid).create_time() == created:
                left.append(f"pid {pid} (hub, proxy or board page)")
        except psutil.Error:
            pass
    for conn in psutil.net_connections("tcp") if room is not None else []:
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == room.port:
            left.append(f"listener on {conn.laddr.ip}:{conn.laddr.port}")
    return left


def _has_account(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def finished_in_time(result: dict[str, Any]) -> bool:
    return (
        result.get("passed") == result["learners"]
        and result.get("lab_seconds", TARGET_SECONDS) < TARGET_SECONDS
    )


def memory_allows(learners: int, results: list[dict[str, Any]], guess_mb: float) -> bool:
    """Whether N learners' predicted peak leaves the floor free (with a third to spare);
    per learner: the largest peak measured so far, else ``guess_mb``."""
    measured = [r["memory_mb_peak_total"] / r["learners"] for r in results if r.get("passed")]
    per_learner = max(measured, default=guess_mb)
    return learners * per_learner * 1.3 < available_mb() - MEMORY_FLOOR_MB


def next_larger(result: dict[str, Any]) -> int:
    """Towards the N the last run predicts for 5 minutes (linear in N), at most doubling."""
    n, seconds = result["learners"], max(result["lab_seconds"], 1.0)
    return min(2 * n, max(n + 1, int(n * TARGET_SECONDS / seconds)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.classroom")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--learners", default="1,3", help="comma-separated N, tried in order")
    which.add_argument("--search", type=int, metavar="START", help="search up from START")
    parser.add_argument("--resolution", type=int, default=2, help="--search: stop at this gap")
    parser.add_argument("--limit", type=float, default=2 * TARGET_SECONDS, help="lab timeout, s")
    parser.add_argument("--all", action="store_true", help="--learners: go on after one is over")
    parser.add_argument(
        "--mb-per-learner",
        type=float,
        default=700.0,
        help="peak memory per learner assumed before a run measured it (the memory guard)",
    )
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)

    def log(*parts: Any) -> None:
        print(*parts, file=sys.stderr, flush=True)

    results: list[dict[str, Any]] = []
    stopped = ""

    def attempt(n: int) -> bool | None:
        """Run N; whether it finished in time (None: refused, memory would not do)."""
        if not memory_allows(n, results, args.mb_per_learner):
            return None
        log(f"classroom benchmark: {n} learner(s)")
        try:
            results.append(run_n(n, log, args.limit))
        except Exception as exc:  # noqa: BLE001 - recorded; that N does not count as done
            results.append({"learners": n, "error": f"{type(exc).__name__}: {exc}"})
        log(json.dumps(results[-1]))
        if args.json:  # kept after each N: a long sweep is not lost to a late failure
            args.json.write_text(json.dumps({"results": results}, indent=2))
        return finished_in_time(results[-1])

    if args.search is None:
        for n in (int(x) for x in args.learners.split(",")):
            ok = attempt(n)
            if ok is None:
                stopped = f"{n} learners would not fit in memory"
                break
            if not ok and not args.all:
                break
    else:
        good, bad, n = 0, 0, args.search
        while not bad or bad - good > args.resolution:
            ok = attempt(n)
            if ok is None:
                stopped, bad = f"{n} learners would not fit in memory", n
                break
            if ok:
                good = n
                n = next_larger(results[-1]) if not bad else (good + bad) // 2
            else:
                bad = n
                n = (good + bad) // 2
            if bad and (bad - good <= args.resolution or n in (good, bad)):
                break
    under = [r["learners"] for r in results if finished_in_time(r)]
    summary = {
        "results": results,
        "largest_n_under_5_minutes": max(under) if under else None,
        "smallest_n_over_5_minutes": min(
            (r["learners"] for r in results if not finished_in_time(r)), default=None
        ),
        "stopped": stopped,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
