"""The instructor's board: every learner's real lab state, read by the lab's own checks.

For each learner a probe (``python -m labkit.classroom.board --probe``) runs as that
learner, with their environment, and asks their sandbox through ``labkit.tasks`` exactly
what the notebooks' checks ask: nothing comes from the learner's own report.
"""

from __future__ import annotations

import html
import json
import pwd
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from labkit.classroom import host
from labkit.classroom.state import Classroom


@dataclass
class LearnerRow:
    name: str
    sandbox: str  # "healthy", or what is wrong
    tasks: list[dict[str, Any]] = field(default_factory=list)
    stuck: str = ""  # the first failed check's label and message
    challenge: dict[str, Any] | None = None  # `labkit challenge`: {name, score, fixed}

    @property
    def done(self) -> int:
        return sum(1 for task in self.tasks if task["passed"])


def probe() -> dict[str, Any]:
    """Run as the learner: their sandbox's health and every task's and exercise's check."""
    from labkit import sandbox
    from labkit.lab import Lab
    from labkit.tasks import all_tasks

    status = sandbox.status()
    report: dict[str, Any] = {
        "sandbox": {"running": status.running, "problem": status.problem, "docker": status.docker},
        "challenge": _challenge(),
    }
    if not status.running:
        report["tasks"] = []
        return report
    lab = Lab.from_parameters(backend="sandbox")
    tasks = []
    for task in all_tasks():
        result = task.evaluate(lab)
        exercises = []
        for exercise in task.exercises:
            check = exercise.evaluate(lab)
            exercises.append(
                {"label": check.label, "passed": check.passed, "message": check.message}
            )
        tasks.append(
            {
                "number": task.number,
                "label": result.label,
                "title": result.title,
                "passed": result.passed,
                "message": result.message,
                "hint": result.hint,
                "exercises": exercises,
            }
        )
    report["tasks"] = tasks
    return report


# -- break-and-fix challenges (labkit.challenges): the probe adds challenge: {name, score,
# fixed} from the learner's own state file (no API call); the board shows it after "stuck".


def _challenge() -> dict[str, Any] | None:
    from labkit.challenges.engine import board_summary

    return board_summary()


def challenge_text(row: LearnerRow) -> str:
    c = row.challenge
    if not c:
        return ""
    return f" · challenge {c['name']}: {c['score']} points{' (fixed)' if c['fixed'] else ''}"


def learner_row(room: Classroom, learner: host.Learner) -> LearnerRow:
    try:
        entry = pwd.getpwnam(learner.unix_user)
    except KeyError:
        return LearnerRow(learner.name, "no account")
    env = host.learner_env(entry, learner, room.python, rootless=room.rootless)
    done = host.run_as(entry, env, [room.python, "-m", "labkit.classroom.board", "--probe"], 120)
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return LearnerRow(learner.name, f"probe failed: {done.stderr.strip()[-300:]}")
    sandbox = report["sandbox"]
    health = "healthy" if sandbox["running"] else f"down ({sandbox['problem']})"
    if sandbox["running"] and not sandbox["docker"]:
        health = "no Docker (API only)"
    row = LearnerRow(learner.name, health, report["tasks"], challenge=report.get("challenge"))
    for task in row.tasks:
        if not task["passed"]:
            failed = next((e for e in task["exercises"] if not e["passed"]), None)
            row.stuck = f"{(failed or task)['label']}: {(failed or task)['message']}"
            break
    return row


def board(room: Classroom, parallel: int = 4) -> list[LearnerRow]:
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(lambda learner: learner_row(room, learner), room.learners))


def as_text(rows: list[LearnerRow]) -> str:
    numbers = sorted({task["number"] for row in rows for task in row.tasks}) or [1, 2, 3, 4]
    header = f"{'learner':<16} " + " ".join(f"T{n}" for n in numbers) + "  sandbox    stuck at"
    lines = [header, "-" * len(header)]
    for row in rows:
        marks = {task["number"]: "✅" if task["passed"] else "❌" for task in row.tasks}
        cells = " ".join(f"{marks.get(n, '··')}" for n in numbers)
        stuck = row.stuck or ("all done" if row.tasks else "")
        lines.append(f"{row.name:<16} {cells}  {row.sandbox:<10} {stuck}{challenge_text(row)}")
    return "\n".join(lines)


def as_html(rows: list[LearnerRow], refresh_seconds: int = 30) -> str:
    numbers = sorted({task["number"] for row in rows for task in row.tasks}) or [1, 2, 3, 4]
    head = "".join(f"<th>Task {n}</th>" for n in numbers)
    body = []
    for row in rows:
        marks = {task["number"]: task for task in row.tasks}
        cells = "".join(
            f"<td title='{html.escape(marks[n]['message'])}'>"
            + ("✅" if marks[n]["passed"] else "❌")
            + "</td>"
            if n in marks
            else "<td>·</td>"
            for n in numbers
        )
        body.append(
            f"<tr><td>{html.escape(row.name)}</td>{cells}<td>{html.escape(row.sandbox)}</td>"
            f"<td>{html.escape((row.stuck or 'all done') + challenge_text(row))}</td></tr>"
        )
    return (
        "<!doctype html><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{refresh_seconds}'>"
        "<title>Classroom board</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        "</style><h1>Classroom board</h1>"
        f"<table><tr><th>learner</th>{head}<th>sandbox</th><th>stuck at</th></tr>"
        + "".join(body)
        + "</table>"
    )


def reset(room: Classroom, name: str) -> str:
    """Back to a clean lab for one learner (as they would with `labkit reset`)."""
    return _as_learner(room, name, ["reset"])


def bring_to(room: Classroom, name: str, task: int) -> str:
    """Run the solved notebooks up to task ``task`` for one learner (their lab, their runs)."""
    run = ["run", "--until", f"{task:02d}", "-q", "-o", "runs/catch-up", "--notebooks", "notebooks"]
    return _as_learner(room, name, run)


def _as_learner(room: Classroom, name: str, args: list[str]) -> str:
    learner = room.learner(name)
    entry = pwd.getpwnam(learner.unix_user)
    env = host.learner_env(entry, learner, room.python, rootless=room.rootless)
    done = host.run_as(entry, env, [room.python, "-m", "labkit.cli", *args], 1800)
    return (done.stdout + done.stderr).strip()


if __name__ == "__main__" and sys.argv[1:] == ["--probe"]:
    print(json.dumps(probe(), default=str))
