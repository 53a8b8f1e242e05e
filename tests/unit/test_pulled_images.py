"""PulledImages' bookkeeping over a Docker image store held in a dict, with its event log:
one existence check per reference and run, concurrent first pulls of one reference still
count as the agent's, and a reference someone else tagged or pulled since (or whose history
is gone) stays. The real Docker effects are tested in tests/sandbox/test_agent_images.py."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import docker.errors

from labkit.sandbox.agent.images import PulledImages


@dataclass
class ImageStore:
    """``client.images`` of a Docker Engine: references -> image ids, counting lookups."""

    refs: dict[str, str] = field(default_factory=dict)
    lookups: int = 0
    removed: list[str] = field(default_factory=list)
    #: Docker's image events, as ``GET /events`` returns them
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def images(self) -> ImageStore:
        return self

    @property
    def api(self) -> ImageStore:
        return self

    def events(self, **_: Any) -> list[dict[str, Any]]:
        return list(self.log)

    def info(self) -> dict[str, Any]:
        return {"SystemTime": "2026-12-05T08:30:00.123456789Z"}

    def pulled(self, reference: str, image: str) -> None:
        self.refs[reference] = image
        self.log.append({"Action": "pull", "Actor": {"ID": reference}})

    def tag(self, reference: str, image: str) -> None:
        self.refs[reference] = image
        self.log.append(
            {"Action": "tag", "Actor": {"ID": image, "Attributes": {"name": reference}}}
        )

    def get(self, reference: str) -> Any:
        self.lookups += 1
        time.sleep(0.01)  # a round trip, so concurrent first pulls overlap
        if reference not in self.refs:
            raise docker.errors.ImageNotFound(reference)
        return type("Image", (), {"id": self.refs[reference]})()

    def remove(self, reference: str) -> None:
        self.removed.append(reference)
        del self.refs[reference]


def pull(pulled: PulledImages, store: ImageStore, reference: str, image: str) -> None:
    pulled.before_pull(store, reference)
    store.pulled(reference, image)
    pulled.after_pull(reference, image)


def test_one_existence_check_per_reference_however_many_tasks_pull_it() -> None:
    store, pulled = ImageStore(), PulledImages()
    for _ in range(5):
        pull(pulled, store, "127.0.0.1:5000/web:latest", "sha256:a")
    assert store.lookups == 1
    pulled.remove_all(store)
    assert store.removed == ["127.0.0.1:5000/web:latest"]


def test_concurrent_first_pulls_check_once_and_count_as_the_agents() -> None:
    store, pulled = ImageStore(), PulledImages()
    threads = [
        threading.Thread(target=pull, args=(pulled, store, "127.0.0.1:5000/web:latest", "sha256:a"))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.lookups == 1
    pulled.remove_all(store)
    assert store.removed == ["127.0.0.1:5000/web:latest"]


def test_a_reference_there_before_or_repointed_since_stays() -> None:
    store = ImageStore(refs={"127.0.0.1:5000/mine:latest": "sha256:learner"})
    pulled = PulledImages()
    pull(pulled, store, "127.0.0.1:5000/mine:latest", "sha256:a")  # the learner's tag
    pull(pulled, store, "127.0.0.1:5000/web:latest", "sha256:a")
    store.tag("127.0.0.1:5000/web:latest", "sha256:retagged")  # docker tag by the learner
    pulled.remove_all(store)
    assert store.removed == []
    assert set(store.refs) == {"127.0.0.1:5000/mine:latest", "127.0.0.1:5000/web:latest"}


def test_the_same_image_tagged_or_pulled_by_the_learner_after_the_agent_stays() -> None:
    store, pulled = ImageStore(), PulledImages()
    pull(pulled, store, "127.0.0.1:5000/tagged:latest", "sha256:a")
    pull(pulled, store, "127.0.0.1:5000/pulled:latest", "sha256:a")
    pull(pulled, store, "127.0.0.1:5000/agents:latest", "sha256:a")
    store.tag("127.0.0.1:5000/tagged:latest", "sha256:a")  # step 22 after a catch-up
    store.pulled("127.0.0.1:5000/pulled:latest", "sha256:a")  # the learner's docker pull
    pulled.remove_all(store)
    assert store.removed == ["127.0.0.1:5000/agents:latest"]


def test_a_history_that_no_longer_reaches_the_agents_pull_proves_nothing() -> None:
    store, pulled = ImageStore(), PulledImages()
    pull(pulled, store, "127.0.0.1:5000/web:latest", "sha256:a")
    store.log.clear()  # Docker keeps the latest few hundred events only
    pulled.remove_all(store)
    assert store.removed == []
