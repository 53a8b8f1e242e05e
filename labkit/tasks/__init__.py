"""The lab's tasks as exercises: one module per task of the lab guide.

    from labkit.tasks.task1 import q1, q2, ____   # in notebook 01
    with q1.attempt():
        ...                                        # the learner's boto3 call
    q1.check(); q1.hint(); q1.hint(2); q1.solution(); q1.solve()

``task1`` … ``task4`` each hold their exercises (``q1``, ``q2`` …), the checks that read
the real state, tiered hints, solutions and the catch-up. Adding a Task 5 is one module
here, one notebook and its solution files. The framework is in :mod:`labkit.tasks.exercise`.
"""

from __future__ import annotations

import importlib

from labkit.backends import endpoint
from labkit.errors import PrerequisiteError
from labkit.lab import Lab
from labkit.tasks.exercise import Task

#: The task modules, in the lab's order.
TASK_MODULES = ("task1", "task2", "task3", "task4")


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
