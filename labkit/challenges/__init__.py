"""Break and fix: real ECS faults to diagnose, checked against the real state.

Each module here is one scenario (:class:`~labkit.challenges.scenario.Scenario`: title,
symptom, ``inject``, checks, tiered clues with point costs, the reference fix, whether it
is safe on AWS and what it costs there). :mod:`labkit.challenges.engine` runs them:
``start`` (a working lab by catch-up, then the fault), ``check``, ``hint``, ``solve``,
``stop``, and the score. ``labkit challenge …`` and notebook 07 call the engine.
"""

from __future__ import annotations

import importlib

from labkit.challenges.scenario import Scenario
from labkit.errors import InputError

#: The scenario modules, in the order notebook 07 teaches them.
SCENARIO_MODULES = ("pull_denied", "missing_tag", "wrong_port", "port_conflict", "memory", "exits")


def all_scenarios() -> tuple[Scenario, ...]:
    return tuple(
        importlib.import_module(f"labkit.challenges.{module}").SCENARIO
        for module in SCENARIO_MODULES
    )


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; a clear error listing the names otherwise."""
    found = {s.name: s for s in all_scenarios()}
    if name not in found:
        raise InputError(
            f"There is no challenge called {name!r}.",
            why=f"The challenges are: {', '.join(found)}.",
            fix="Run `labkit challenge list` to see each one's title.",
        )
    return found[name]
