"""The lab's tasks as exercises: one module per task of the lab guide.

    from labkit.tasks.task1 import q1, q2, ____   # in notebook 01
    with q1.attempt():
        ...                                        # the learner's boto3 call
    q1.check(); q1.hint(); q1.hint(2); q1.solution(); q1.solve()

A task notebook's setup cell is three lines::

    import labkit
    from labkit.tasks.task1 import ____, q1, q2, quiz

    lab = labkit.tasks.open_lab(1, globals())   # settings, require(), export_environment()

and its last cell shows ``labkit.tasks.progress(lab)``: every task's ✅/❌ from the real
state. ``quiz`` (:mod:`labkit.tasks.understanding`): ``quiz.ask(1)``, ``quiz.check(1, "b")``.

``task1`` … ``task4`` each hold their exercises (``q1``, ``q2`` …), the checks that read
the real state, tiered hints, solutions and the catch-up. Adding a Task 5 is one module
here, one notebook and its solution files. The framework is in :mod:`labkit.tasks.exercise`.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Mapping
from typing import Any

from labkit import lab as lab_module
from labkit.backends import endpoint
from labkit.config import SETTINGS
from labkit.display import show
from labkit.errors import PrerequisiteError
from labkit.lab import Lab, current_lab
from labkit.tasks.exercise import Task

#: The task modules, in the lab's order.
TASK_MODULES = ("task1", "task2", "task3", "task4")

#: What a task adds to an AWS bill (``Lab.cost_notice``); the others add nothing to speak of.
_TASK_COSTS = {1: "repository", 4: "service"}


def all_tasks() -> tuple[Task, ...]:
    """Every lab task, in order (imported on first use)."""
    return tuple(importlib.import_module(f"labkit.tasks.{name}").TASK for name in TASK_MODULES)


def require(lab: Lab, task: int) -> None:
    """Before task ``task``: every earlier task must be done, else name the notebook.

    On an endpoint that cannot serve task ``task`` (no registry, no containers) this says
    so first, before anything runs; tasks the endpoint cannot serve are not required."""
    lab.identity  # noqa: B018 — raises a clear BackendError if the backend is unreachable
    endpoint.require_served(lab, task)
    unserved = endpoint.unserved_tasks(lab)
    for earlier in all_tasks():
        if earlier.number >= task:
            break
        if earlier.number in unserved:
            continue
        result = earlier.evaluate(lab)
        if not result.passed:
            why = result.message[:1].upper() + result.message[1:] + "."
            raise PrerequisiteError(
                f"Task {earlier.number} ({earlier.title}) is not done yet.",
                why=why,
                fix=f"Run {earlier.notebook} first (or catch up there with "
                f"labkit.tasks.task{earlier.number}.TASK.solve()), then re-run this notebook.",
            )


def open_lab(task: int, parameters: Mapping[str, Any]) -> Lab:
    """A task notebook's setup, in one line: ``lab = labkit.tasks.open_lab(1, globals())``.

    The settings chosen in notebook 00, unless the notebook's parameters cell (papermill's
    ``-p``) says otherwise (only the setting names are read from ``parameters``); then the
    earlier tasks are required (:func:`require`), ``boto3.client(...)`` and ``!aws …`` are
    pointed at the lab (``Lab.export_environment``), and in AWS mode the task's cost is
    named."""
    settings = {name: parameters[name] for name in SETTINGS if name in parameters}
    lab = lab_module.open_lab(**settings)
    require(lab, task)
    lab.export_environment()
    if f"task{task}" in TASK_MODULES:  # a task's own setup, if any (Task 2: $REPOSITORY)
        on_open = getattr(importlib.import_module(f"labkit.tasks.task{task}"), "on_open", None)
        if on_open is not None:
            on_open(lab)
    if task in _TASK_COSTS:
        lab.cost_notice(_TASK_COSTS[task])
    return lab


def progress(lab: Lab | None = None) -> None:
    """Show the course so far: each task's ✅/❌, read from the real state by its check.

    Never raises (a check that cannot run is a ❌ with its reason). Tasks the endpoint
    cannot serve show as skipped. :func:`course_progress` gives the same as data."""
    course_progress(lab, show_it=True)


def course_progress(lab: Lab | None = None, show_it: bool = False) -> dict[int, bool]:
    """``{task number: done}`` for every task the backend serves (see :func:`progress`)."""
    lab = lab or current_lab()
    try:
        unserved = endpoint.unserved_tasks(lab)
    except Exception:  # an unreachable backend: every check below says so itself
        unserved = set()
    done: dict[int, bool] = {}
    lines, rows = [], []
    for task in all_tasks():
        if task.number in unserved:
            mark, text = "➖", "not served by this endpoint"
        else:
            result = task.evaluate(lab)
            done[task.number] = result.passed
            mark = "✅" if result.passed else "❌"
            text = "done" if result.passed else f"not yet: {result.message}"
        lines.append(f"{mark} {task.label} ({task.title}, {task.notebook}): {text}")
        rows.append(
            f"<tr><td>{mark}</td><td>{html.escape(task.label)}</td>"
            f"<td>{html.escape(task.title)}</td><td>{html.escape(text)}</td></tr>"
        )
    if not show_it:
        return done
    count = sum(done.values())
    heading = f"Course progress: {count} of {len(done)} tasks done"
    show(
        f"<div><b>{html.escape(heading)}</b><table>{''.join(rows)}</table></div>",
        "\n".join([heading, *lines]),
    )
    return done
