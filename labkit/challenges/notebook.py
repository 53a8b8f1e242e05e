"""Notebook 07's cells: the list, start, the learner's fix cell, check, and stop.

Every cell runs headless (no cell waits for a click) and prints plain text beside any
HTML. A blank (``____``) or AWS's refusal in the fix cell is a short note, so notebook 07
as shipped runs to the end with ❌; under ``LABKIT_STRICT`` a ❌ fails the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from labkit.challenges import engine, scenario
from labkit.challenges.scenario import POINTS
from labkit.config import strict_checks
from labkit.display import note, show, table
from labkit.errors import CheckFailed
from labkit.lab import Lab
from labkit.tasks.exercise import _is_blank_error

#: The scenarios whose fix cell ran to the end (check then waits for ECS to settle).
_attempted: set[str] = set()
#: How long a check cell waits for the service to settle after a fix.
SETTLE_SECONDS = 240.0


def overview(lab: Lab) -> list[str]:
    """The scenarios as a table, each with what it costs on AWS and whether this backend
    can run it; returns the names it can run."""
    rows, runnable = [], []
    for chosen, why_not in engine.servable(lab):
        rows.append(
            [chosen.name, chosen.title, f"❌ {why_not}" if why_not else "✅", chosen.aws_cost]
        )
        if not why_not:
            runnable.append(chosen.name)
    table(f"Break and fix ({lab.backend.value})", ["name", "fault", "here", "on AWS"], rows)
    skipped = [r[0] for r in rows if r[0] not in runnable]
    if skipped:
        note(f"This backend cannot serve: {', '.join(skipped)}; their sections say so and skip.")
    return runnable


def start(lab: Lab, name: str) -> bool:
    """Start ``name`` (False, with the reason, where this backend cannot serve it)."""
    why_not = engine.cannot_serve(lab, scenario(name))
    if why_not:
        note(f"Skipping {name}: {why_not}.", "⏭️")
        return False
    _attempted.discard(name)
    engine.start(lab, name)
    return True


def hint(name: str) -> None:
    print(engine.hint(name))


@contextmanager
def attempt(name: str) -> Iterator[None]:
    """Wrap the learner's fix: a blank or AWS's refusal becomes a note, not a traceback."""
    try:
        yield
    except Exception as exc:
        if _is_blank_error(exc):
            note(
                "Not done yet: replace each ____ with your fix and run the cell again. "
                f"Stuck? challenge.hint({name!r})",
                "⏳",
            )
            return
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if not code:
            raise
        note(f"AWS refused the call: {code}: {exc}", "⚠️")
        return
    _attempted.add(name)


def check(lab: Lab, name: str) -> bool:
    """✅ with the score, or ❌ with what is still wrong. After a fix, it waits (up to
    SETTLE_SECONDS) for ECS to start tasks and the targets to turn healthy."""
    if engine.current() is None or engine.current()["name"] != name:
        note(f"{name} is not running here (skipped or not started).", "⏭️")
        return False
    deadline = time.monotonic() + (SETTLE_SECONDS if name in _attempted else 0)
    while True:
        result = engine.check(lab, name)
        if result.passed or time.monotonic() > deadline:
            break
        time.sleep(3)
    color = "#2ca02c" if result.passed else "#d62728"
    show(f"<pre style='color:{color}'>{result}</pre>", str(result))
    if not result.passed and strict_checks():
        raise CheckFailed(
            f"Challenge {name} is not fixed: {'; '.join(result.problems)}.",
            why="LABKIT_STRICT (or CI=true) makes failed checks fail the run.",
            fix=f"challenge.hint({name!r}); the reference fix: labkit challenge solve {name}.",
        )
    return result.passed


def stop(lab: Lab) -> None:
    changed = engine.stop(lab)
    print("Back to the working lab" + (f" (put back: {', '.join(changed)})." if changed else "."))


__all__ = ["POINTS", "attempt", "check", "hint", "overview", "start", "stop"]
