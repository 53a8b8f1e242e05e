"""What a break-and-fix scenario is: the fault, how it shows, how it is checked, clues.

Each scenario module of :mod:`labkit.challenges` defines one :class:`Scenario`. The engine
(:mod:`labkit.challenges.engine`) brings a working lab, calls ``inject``, waits until ECS
reports ``symptom_words``, and later asks ``check`` what is still wrong. ``stop`` needs no
per-scenario code: the engine puts back what it recorded before ``inject`` (see
:mod:`labkit.challenges.lab_state`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from labkit.lab import Lab

#: The points a scenario is worth before clues.
POINTS = 100


@dataclass(frozen=True)
class Clue:
    """One tier of help: the text, and the points it costs (AWS Jam style)."""

    cost: int
    text: str


@dataclass(frozen=True)
class Scenario:
    """One fault from a real, common cause, shown in the words ECS uses."""

    name: str
    title: str
    #: What the learner meets, as a user would describe it.
    symptom: str
    #: Text ECS writes (a stoppedReason or a service event) once the fault shows.
    symptom_words: str
    #: Break the working lab (after Task 4).
    inject: Callable[[Lab], None]
    #: What is still wrong beyond the service being unhealthy (empty: nothing more).
    extra_check: Callable[[Lab], list[str]]
    #: The reference fix (the same calls the learner could make).
    solve: Callable[[Lab], None]
    #: The fix with the aws CLI, as the solution shows it.
    cli_fix: str
    clues: tuple[Clue, ...]
    #: Safe and cheap on a real account, and what it costs there.
    aws_safe: bool
    aws_cost: str
    #: The lab tasks the backend must serve (an endpoint may not run containers).
    needs_tasks: frozenset[int] = frozenset({2, 3, 4})

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "symptom": self.symptom,
            "points": POINTS,
            "clues": [{"cost": c.cost, "text": c.text} for c in self.clues],
            "aws_safe": self.aws_safe,
            "aws_cost": self.aws_cost,
        }


def no_extra_check(_lab: Lab) -> list[str]:
    return []
