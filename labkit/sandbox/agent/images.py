"""The image references the agent's pulls created, untagged again when the sandbox stops.

A real ECS agent cleans its image cache; the sandbox pulls into the learner's own Docker
Engine, from a registry whose port changes from run to run, so every run would leave
``127.0.0.1:PORT/repo:tag`` references behind. Only what is proven the agent's own goes:
a reference counts as the agent's when it did not exist before the agent's first pull of it
(checked once per reference and sandbox run). At stop it is untagged only while it still
names the image the agent's pull left it on, and only when Docker's event history since that
pull shows nobody else made it: no ``docker tag`` naming it, and no pull of it but the
agent's own (the learner may tag or pull the very same image under it, as Task 2's step 22
does). A history that does not reach back to the agent's pulls proves nothing: the reference
stays. The untag is ``docker rmi`` without force, so an image a container still uses stays.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections import Counter
from typing import Any

import docker.errors

log = logging.getLogger(__name__)

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)")

#: Seconds by which Docker's clock may lag this process's (Docker Desktop runs the engine
#: in a VM): the event replay starts this much earlier.
CLOCK_MARGIN_SECONDS = 60.0


class PulledImages:
    """Reference -> image id of every reference the agent created by pulling it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked: set[str] = set()  # references whose prior existence was looked up
        self._claimed: set[str] = set()  # ... of which those that did not exist
        self._owned: dict[str, str] = {}  # claimed references -> image id after the pull
        self._pulls: Counter[str] = Counter()  # the agent's pulls of each claimed reference
        self._since = 0.0  # time.time() before the first claim: Docker's history starts here

    def before_pull(self, client: Any, reference: str) -> None:
        """Before pulling ``reference``: the first time, note whether it already exists.

        Under the lock, so tasks pulling one reference at once check it once, and that check
        sees it as it was before any of the agent's pulls.
        """
        with self._lock:
            if reference in self._checked:
                return
            try:
                missing = image_id(client, reference) is None
            except Exception as exc:  # unproven is not ours: the reference is left alone
                log.warning("checking image %s before the pull failed: %s", reference, exc)
                missing = False
            if missing:
                self._claim(reference)
            self._checked.add(reference)

    def _claim(self, reference: str) -> None:
        if not self._claimed:
            self._since = time.time()
        self._claimed.add(reference)

    def after_pull(self, reference: str, pulled_id: str | None) -> None:
        """The agent's pull left ``reference`` on ``pulled_id``: keep it if it is ours."""
        if pulled_id is None:
            return
        with self._lock:
            if reference in self._claimed:
                self._owned[reference] = pulled_id
                self._pulls[reference] += 1

    def remove_all(self, client: Any) -> None:
        """Untag every reference the agent created that still names the image it pulled."""
        with self._lock:
            owned, self._owned = self._owned, {}
            pulls, self._pulls = self._pulls, Counter()
            self._checked.clear()
            self._claimed.clear()
        if not owned:
            return
        others = _made_by_others(client, self._since, owned, pulls)
        for reference, pulled_id in owned.items():
            if reference in others:
                log.info("leaving image %s: %s", reference, others[reference])
                continue
            try:
                current = image_id(client, reference)
            except Exception as exc:
                log.warning("leaving image %s: checking it failed: %s", reference, exc)
                continue
            if current != pulled_id:
                if current is not None:
                    log.info("leaving %s: it names another image now (re-tagged)", reference)
                continue
            try:
                client.images.remove(reference)  # docker rmi: no force
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                # 409: a container still uses it; it is not ours to force away.
                log.warning("leaving image %s: %s", reference, getattr(exc, "explanation", exc))
            except Exception as exc:
                log.warning("removing image %s failed: %s", reference, exc)


def image_id(client: Any, reference: str) -> str | None:
    """The id of the local image ``reference`` names; None when there is none (other
    Docker errors raise)."""
    try:
        return client.images.get(reference).id
    except docker.errors.ImageNotFound:
        return None


def _made_by_others(
    client: Any, since: float, owned: dict[str, str], pulls: Counter[str]
) -> dict[str, str]:
    """Owned reference -> why it may not be the agent's alone, from Docker's image events.

    Events are read in the daemon's order from its first pull of each reference on, so the
    two clocks (Docker Desktop's VM has its own) need not agree: ``since`` only bounds the
    replay, with a wide margin. Docker keeps the latest few hundred events only: when the
    agent's pulls are no longer all there, nothing is proven.
    """
    tagged: Counter[str] = Counter()
    pulled: Counter[str] = Counter()
    try:
        # Until Docker's own now: a later ``until`` would hold the stream open until then.
        until = _docker_now(client)
        for event in client.api.events(
            since=since - CLOCK_MARGIN_SECONDS, until=until, filters={"type": "image"}, decode=True
        ):
            actor = event.get("Actor") or {}
            if event.get("Action") == "pull" and actor.get("ID") in owned:
                pulled[actor["ID"]] += 1
            elif event.get("Action") == "tag":
                name = (actor.get("Attributes") or {}).get("name", "")
                if pulled[name]:  # a tag before the agent's first pull is not about its pull
                    tagged[name] += 1
    except Exception as exc:  # no history, no proof
        return dict.fromkeys(owned, f"Docker's event history could not be read: {exc}")
    why: dict[str, str] = {}
    for reference in owned:
        if tagged[reference]:
            why[reference] = "it was tagged (docker tag) after the agent pulled it"
        elif pulled[reference] > pulls[reference]:
            why[reference] = "it was pulled by someone other than the agent too"
        elif pulled[reference] < pulls[reference]:
            why[reference] = "Docker's event history no longer reaches back to the agent's pull"
    return why


def _docker_now(client: Any) -> float:
    """Docker Engine's clock (``SystemTime`` of ``docker info``), as a Unix time."""
    text = client.api.info()["SystemTime"]  # RFC 3339, in nanoseconds: ...T08:30:00.1Z
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"Docker's SystemTime {text!r} is not an RFC 3339 time")
    whole, fraction, offset = match.groups()
    stamp = dt.datetime.fromisoformat(whole + ("+00:00" if offset in ("Z", "z") else offset))
    return stamp.timestamp() + float(f"0.{fraction or 0}")
