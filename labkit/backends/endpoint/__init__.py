"""The lab environment on an AWS-compatible endpoint (backend ``endpoint``).

An emulator given as ``AWS_ENDPOINT_URL`` starts empty and bills nothing, so notebook 00
creates the lab's missing pieces there without asking (:mod:`.provisioning`, which also
removes them again) and probes what the endpoint serves beyond its API (:mod:`.probes`).
What was probed is kept in the state file across kernels, once per endpoint and region;
:func:`require_served` turns it into one clear message at the top of a notebook instead
of a failure half-way through it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from labkit.backends.endpoint import provisioning
from labkit.backends.endpoint.probes import (
    TASK_TITLES,
    EndpointCapabilities,
    probe,
    push_address_on,
)
from labkit.backends.endpoint.provisioning import EndpointEnvironment, find_environment
from labkit.backends.lookup import find_cluster
from labkit.backends.report import TeardownReport
from labkit.config import Backend
from labkit.errors import PrerequisiteError
from labkit.lab import Lab
from labkit.names import NOTEBOOKS
from labkit.state import load_state, update_state

#: The state-file key under which probed capabilities are kept across kernels.
STATE_KEY = "endpoint_capabilities"


def _state_key(lab: Lab) -> str:
    return f"{lab.target.endpoint_url}|{lab.region}"


def _remember(lab: Lab, found: EndpointCapabilities | None) -> None:
    """Keep what was probed at this endpoint and region in the state file (None: forget it)."""

    key = _state_key(lab)  # worked out before the update (it may read the state)

    def change(state: dict[str, Any]) -> None:
        kept = state.setdefault(STATE_KEY, {})
        if found is None:
            kept.pop(key, None)
        else:
            kept[key] = asdict(found)

    update_state(change)


def ensure_environment(lab: Lab) -> EndpointEnvironment:
    """Find the lab environment at the endpoint, create what is missing, probe what it serves.

    Safe to re-run: pieces are found by their lab names and only missing ones are made.
    """
    env = find_environment(lab, create_missing=True)
    _remember(lab, probe(lab, env))
    return env


def capabilities(lab: Lab, refresh: bool = False) -> EndpointCapabilities:
    """The endpoint's capabilities: probed by notebook 00, then read from the state file."""
    saved = None if refresh else load_state().get(STATE_KEY, {}).get(_state_key(lab))
    if saved:
        return EndpointCapabilities.from_dict(saved)
    found = probe(lab, find_environment(lab))
    _remember(lab, found)
    return found


def remove_environment(lab: Lab, report: TeardownReport, timeout_s: float = 180) -> None:
    """The teardown's last endpoint step (:func:`.provisioning.remove_environment`); what
    was probed is forgotten with it."""
    provisioning.remove_environment(lab, report, timeout_s)
    _remember(lab, None)


def unserved_tasks(lab: Lab) -> frozenset[int]:
    """The tasks this backend cannot serve (none outside the endpoint backend)."""
    if lab.backend is not Backend.ENDPOINT:
        return frozenset()
    return capabilities(lab).unserved


def push_address(lab: Lab, uri: str) -> str:
    """Where Docker pushes the repository ``uri``: ``uri`` itself, except on an endpoint
    whose ECR names AWS's own registry host (unreachable from here) while the endpoint
    serves the registry API on its own port: then the same repository on that port."""
    if lab.backend is not Backend.ENDPOINT:
        return uri
    return push_address_on(capabilities(lab), uri)


def require_served(lab: Lab, task: int) -> None:
    """Before a task's notebook: say up front if the endpoint cannot serve it (or is not set up)."""
    if lab.backend is not Backend.ENDPOINT or task not in TASK_TITLES:
        return
    if find_cluster(lab.ecs, lab.names.cluster) is None:
        raise PrerequisiteError(
            f"The lab environment is not at {lab.target.endpoint_url} yet.",
            why=f"There is no cluster {lab.names.cluster}: the endpoint starts empty.",
            fix=f"Run {NOTEBOOKS[0]} first: it creates the lab environment there (free).",
        )
    caps = capabilities(lab)
    support = caps.support(task)
    if support.served:
        return
    served = [t for t in caps.tasks() if t.served and t.task < 5]
    later = [t for t in served if t.task > task]
    go_on = f"; or go on with {NOTEBOOKS[later[0].task]}" if later else ""
    raise PrerequisiteError(
        f"{'Task ' + str(task) if task < 5 else 'Notebook 05'} ({support.title}) cannot be "
        f"done on this endpoint ({caps.endpoint_url}); nothing was changed.",
        why=support.reason[:1].upper() + support.reason[1:] + ".",
        fix="Tasks " + ", ".join(str(t.task) for t in served) + " work here. For this one use "
        'the offline sandbox (backend = "sandbox", the default, which has a registry, real '
        f"containers and a load balancer) or real AWS{go_on}.",
    )
