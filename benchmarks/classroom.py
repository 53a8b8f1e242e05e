"""Classroom capacity: ``python -m benchmarks.classroom --learners 1,3,6`` (as root).

For each N: a hub with N learners (``labkit classroom up``), every learner's server
started through the hub's REST API with their own password and a kernel opened in it;
then all N run the lab (notebooks 00-04, solved) at once. Reports per-learner memory
(proportional set size, by part: sandbox, registry, single-user server, kernel, Docker
Engine, containers), the wall time for all N, and the largest N under 5 minutes.
Everything is stopped (``classroom down --delete-accounts``) after each N.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from labkit.classroom import board, hub
from labkit.classroom.state import Classroom
from labkit.sandbox.context import free_port_block

TARGET_SECONDS = 300
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
    with _loopback.open(request, timeout=120) as reply:
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


def memory_by_part(uids: set[int]) -> dict[str, float]:
    """MB of proportional set size per part, summed over the learners' processes."""
    totals: dict[str, float] = {}
    for process in psutil.process_iter(["uids", "cmdline"]):
        uids_info = process.info.get("uids")
        if uids_info is None or uids_info.real not in uids:
            continue
        try:
            pss = process.memory_full_info().pss
        except psutil.Error:
            continue
        part = part_of(process.info.get("cmdline") or [])
        totals[part] = totals.get(part, 0.0) + pss / 2**20
    return totals


def run_n(learners: int, log: Any) -> dict[str, Any]:
    password = "bench-" + secrets.token_hex(4)
    suffix = secrets.token_hex(2)
    names = [f"b{suffix}-{i}" for i in range(learners)]
    with tempfile.TemporaryDirectory(prefix="labkit-classroom-bench-") as tmp:
        roster = Path(tmp) / "roster.txt"
        roster.write_text("\n".join(names) + "\n")
        state = Path(tmp) / "state"
        room = hub.up(roster, state, "127.0.0.1", free_port_block(1), password, say=log)
        try:
            tokens = {
                name: _http(
                    "POST",
                    f"{room.url}/hub/api/users/{name}/tokens",
                    {"auth": {"username": name, "password": password}},
                )["token"]
                for name in names
            }
            t0 = time.monotonic()
            for name in names:
                _http("POST", f"{room.url}/hub/api/users/{name}/server", token=tokens[name])
            for name in names:
                while not (
                    _http("GET", f"{room.url}/hub/api/users/{name}", token=tokens[name])["servers"]
                    .get("", {})
                    .get("ready")
                ):
                    time.sleep(1)
            spawn_seconds = time.monotonic() - t0
            for name in names:
                _http(
                    "POST",
                    f"{room.url}/user/{name}/api/kernels",
                    {"name": "python3"},
                    token=tokens[name],
                )
            room = Classroom.load(state)
            uids = {psutil.Process().uids().real}
            import pwd

            uids = {pwd.getpwnam(learner.unix_user).pw_uid for learner in room.learners}
            time.sleep(3)
            idle = memory_by_part(uids)
            peak_total = [0.0]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak_total[0] = max(peak_total[0], sum(memory_by_part(uids).values()))
                    done.wait(2)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.monotonic()
            with ThreadPoolExecutor(learners) as pool:
                outputs = list(pool.map(lambda n: board.bring_to(room, n, 4), names))
            lab_seconds = time.monotonic() - t0
            done.set()
            sampler.join()
            passed = sum("All 5 notebook(s) passed" in output for output in outputs)
            after = memory_by_part(uids)
        finally:
            hub.down(state, say=lambda *_: None, delete_accounts=True)
    per_learner = {part: round(mb / learners, 1) for part, mb in sorted(after.items())}
    return {
        "learners": learners,
        "passed": passed,
        "spawn_seconds": round(spawn_seconds, 1),
        "lab_seconds": round(lab_seconds, 1),
        "memory_mb_per_learner_idle": {k: round(v / learners, 1) for k, v in idle.items()},
        "memory_mb_per_learner_after_lab": per_learner,
        "memory_mb_per_learner_total_after_lab": round(sum(after.values()) / learners, 1),
        "memory_mb_peak_total": round(peak_total[0], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.classroom")
    parser.add_argument("--learners", default="1,3", help="comma-separated N to try")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)

    def log(*parts: Any) -> None:
        print(*parts, file=sys.stderr, flush=True)

    results = []
    for n in (int(x) for x in args.learners.split(",")):
        log(f"classroom benchmark: {n} learner(s)")
        results.append(run_n(n, log))
        log(json.dumps(results[-1]))
    under = [r["learners"] for r in results if r["passed"] == r["learners"]]
    under = [r["learners"] for r in results if r["learners"] in under and r["lab_seconds"] < 300]
    summary = {
        "results": results,
        "largest_n_under_5_minutes": max(under) if under else None,
        "median_memory_mb_per_learner": statistics.median(
            r["memory_mb_per_learner_total_after_lab"] for r in results
        ),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
