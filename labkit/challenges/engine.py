"""The challenge engine: start, check, hint, solve, stop, and the score.

What it remembers lives in the kit's state file (``labkit.state``, owner-only) under
``"challenge"``: the scenario's name, when it started, the clues taken, whether the
reference fix was used, when the check first passed, and the lab as it was before the
fault (for ``stop``). Score = the scenario's points less the clues' costs (0 after
``solve``); the time is from ``start`` to the first passing check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from labkit.backends import endpoint
from labkit.challenges import all_scenarios, lab_state, scenario
from labkit.challenges.scenario import POINTS, Scenario
from labkit.config import Backend
from labkit.errors import PrerequisiteError
from labkit.lab import Lab
from labkit.state import load_state, update_state

STATE_KEY = "challenge"
#: How long ``start`` waits for ECS to report the fault, and the others for a healthy lab.
SYMPTOM_SECONDS = 150.0
HEALTHY_SECONDS = 240.0


def _now() -> datetime:
    return datetime.now().astimezone()


def current() -> dict[str, Any] | None:
    found = load_state().get(STATE_KEY)
    return found if isinstance(found, dict) and found.get("name") else None


def _save(record: dict[str, Any] | None) -> None:

    def change(state: dict[str, Any]) -> None:
        if record is None:
            state.pop(STATE_KEY, None)
        else:
            state[STATE_KEY] = record

    update_state(change)


def score(record: dict[str, Any]) -> int:
    if record.get("solved_by_reference"):
        return 0
    costs = {i + 1: clue.cost for i, clue in enumerate(scenario(record["name"]).clues)}
    return max(0, POINTS - sum(costs.get(tier, 0) for tier in record.get("clues", [])))


def elapsed_seconds(record: dict[str, Any]) -> float:
    end = record.get("fixed_at") or _now().isoformat()
    return (datetime.fromisoformat(end) - datetime.fromisoformat(record["started"])).total_seconds()


def board_summary() -> dict[str, Any] | None:
    """For the classroom board: the current scenario and its score (no API calls)."""
    record = current()
    if record is None:
        return None
    return {"name": record["name"], "score": score(record), "fixed": bool(record.get("fixed_at"))}


def cannot_serve(lab: Lab, chosen: Scenario) -> str | None:
    """Why this backend cannot run ``chosen`` (None when it can)."""
    if lab.backend is Backend.AWS and not chosen.aws_safe:
        return "it is not offered on a real AWS account (not safe or not cheap there)"
    unserved = endpoint.unserved_tasks(lab) & chosen.needs_tasks
    if unserved:
        return f"this endpoint cannot serve Task(s) {', '.join(map(str, sorted(unserved)))}"
    return None


def servable(lab: Lab) -> list[tuple[Scenario, str | None]]:
    return [(s, cannot_serve(lab, s)) for s in all_scenarios()]


# -- a working lab ----------------------------------------------------------------------


def wait_healthy(
    lab: Lab, chosen: Scenario | None = None, timeout: float = HEALTHY_SECONDS
) -> list[str]:
    """Poll until nothing is wrong (or the timeout); returns what is still wrong."""
    deadline = time.monotonic() + timeout
    while True:
        problems = problems_of(lab, chosen)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(3)


def problems_of(lab: Lab, chosen: Scenario | None) -> list[str]:
    extra = chosen.extra_check(lab) if chosen is not None else []
    return extra + lab_state.service_problems(lab)


def catch_up(lab: Lab) -> None:
    """Tasks 1–4 by their reference solutions (only those not done), then a healthy service."""
    from labkit.tasks import all_tasks

    lab.export_environment()  # the solutions use plain boto3 clients, as notebook cells do
    for task in all_tasks():
        if not task.evaluate(lab).passed:
            task.restore(lab)
    problems = wait_healthy(lab)
    if problems:
        raise PrerequisiteError(
            "The lab is not working after Tasks 1–4, so there is nothing to break.",
            why="; ".join(problems),
            fix="Run `labkit check` and the notebook it names, or `labkit reset` and try again.",
        )


# -- the commands -----------------------------------------------------------------------


def start(lab: Lab, name: str) -> list[str]:
    """A working lab, then the fault; returns ECS's words for it (printed as they come)."""
    chosen = scenario(name)
    why_not = cannot_serve(lab, chosen)
    if why_not:
        raise PrerequisiteError(
            f"Challenge {name} cannot run here: {why_not}.",
            fix="`labkit challenge list` shows which ones can.",
        )
    if current() is not None:
        stop(lab)
    catch_up(lab)
    since = _now()
    _save(
        {
            "name": name,
            "started": since.isoformat(),
            "clues": [],
            "baseline": lab_state.baseline(lab),
        }
    )
    chosen.inject(lab)
    print(f"🧨 {chosen.title}\n   What you see: {chosen.symptom}\n   Waiting for ECS to say so…")
    lines = lab_state.wait_for_words(lab, chosen.symptom_words, since, SYMPTOM_SECONDS)
    for line in lines:
        print(f"   {line}")
    page = lab_state.page_problem(lab)
    print(f"   The page through the load balancer: {page or 'still served (by the old task)'}")
    print(
        "Diagnose with aws ecs describe-services / describe-tasks, aws elbv2 "
        "describe-target-health and the views; fix it; then `labkit challenge check`."
    )
    return lines


def _require_current(name: str | None) -> tuple[dict[str, Any], Scenario]:
    record = current()
    if record is None or (name and record["name"] != name):
        raise PrerequisiteError(
            f"Challenge {name or ''} is not running.".replace("  ", " "),
            fix=f"Start it: labkit challenge start {name or 'NAME'} (list: labkit challenge list).",
        )
    return record, scenario(record["name"])


@dataclass(frozen=True)
class CheckResult:
    name: str
    problems: list[str]
    score: int
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        took = f"{self.seconds / 60:.1f} min"
        if self.passed:
            return f"✅ {self.name}: fixed. Score {self.score}/{POINTS}, time {took}."
        lines = [f"❌ {self.name}: not fixed yet (score so far {self.score}/{POINTS}, {took}):"]
        return "\n".join(lines + [f"   - {p}" for p in self.problems])


def check(lab: Lab, name: str | None = None) -> CheckResult:
    record, chosen = _require_current(name)
    problems = problems_of(lab, chosen)
    if not problems and not record.get("fixed_at"):
        record["fixed_at"] = _now().isoformat()
        _save(record)
    return CheckResult(chosen.name, problems, score(record), elapsed_seconds(record))


def hint(name: str | None = None) -> str:
    """The next clue tier (its cost is taken from the score); all of them once all are taken."""
    record, chosen = _require_current(name)
    taken = record.setdefault("clues", [])
    if len(taken) < len(chosen.clues):
        taken.append(len(taken) + 1)
        _save(record)
    lines = [
        f"💡 Clue {tier}/{len(chosen.clues)} (−{chosen.clues[tier - 1].cost} points): "
        f"{chosen.clues[tier - 1].text}"
        for tier in taken
    ]
    return "\n".join(lines + [f"Score now {score(record)}/{POINTS}."])


def solve(lab: Lab, name: str) -> CheckResult:
    """The reference fix (score 0), then wait for the lab to be healthy again."""
    record, chosen = _require_current(name)
    record["solved_by_reference"] = True
    _save(record)
    chosen.solve(lab)
    print(f"🔧 Applied the reference fix. With the aws CLI it is:\n   {chosen.cli_fix}")
    wait_healthy(lab, chosen)
    return check(lab, name)


def stop(lab: Lab) -> list[str]:
    """Back to the working lab as it was before ``start``; returns what was put back."""
    record = current()
    if record is None:
        return []
    changed = lab_state.restore(lab, record["baseline"])
    problems = wait_healthy(lab)
    _save(None)
    if problems:
        raise PrerequisiteError(
            "The lab's settings are back, but the service is not healthy yet.",
            why="; ".join(problems),
            fix="Wait a minute, then run `labkit check` (it names what is missing).",
        )
    return changed


def status_text() -> str:
    record = current()
    if record is None:
        return "No challenge is running. `labkit challenge list` shows them."
    chosen = scenario(record["name"])
    state = "fixed" if record.get("fixed_at") else "not fixed yet"
    return (
        f"Challenge {chosen.name}: {chosen.title} ({state}). Started {record['started']}, "
        f"{elapsed_seconds(record) / 60:.1f} min; clues taken {len(record.get('clues', []))}"
        f"/{len(chosen.clues)}; score {score(record)}/{POINTS}."
    )
