"""The image references the agent's pulls created, untagged again when the sandbox stops.

A real ECS agent cleans its image cache; the sandbox pulls into the learner's own Docker
Engine, from a registry whose port changes from run to run, so every run would leave
``127.0.0.1:PORT/repo:tag`` references behind. Only what is proven the agent's own goes:
a reference counts as the agent's when it did not exist before the agent's first pull of it
(checked once per reference and sandbox run), and it is untagged at stop only while it still
names the image the agent's pull left it on. The untag is ``docker rmi`` without force, so an
image a container still uses stays.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import docker.errors

log = logging.getLogger(__name__)


class PulledImages:
    """Reference -> image id of every reference the agent created by pulling it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked: set[str] = set()  # references whose prior existence was looked up
        self._claimed: set[str] = set()  # ... of which those that did not exist
        self._owned: dict[str, str] = {}  # claimed references -> image id after the pull

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
                self._claimed.add(reference)
            self._checked.add(reference)

    def after_pull(self, reference: str, pulled_id: str | None) -> None:
        """The agent's pull left ``reference`` on ``pulled_id``: keep it if it is ours."""
        if pulled_id is None:
            return
        with self._lock:
            if reference in self._claimed:
                self._owned[reference] = pulled_id

    def claim_new(self, reference: str) -> None:
        """``reference`` was just found missing, and the agent is about to pull it."""
        with self._lock:
            self._claimed.add(reference)
            self._checked.add(reference)

    def remove_all(self, client: Any) -> None:
        """Untag every reference the agent created that still names the image it pulled."""
        with self._lock:
            owned, self._owned = self._owned, {}
            self._checked.clear()
            self._claimed.clear()
        for reference, pulled_id in owned.items():
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
