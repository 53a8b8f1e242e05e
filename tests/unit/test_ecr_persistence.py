"""``ecr.json``: each image's push time is kept with its digest, and files written by an
older kit (digests only) are still read."""

from __future__ import annotations

import json
from pathlib import Path

from labkit.sandbox.registry.persistence import RepositoryStore


def test_push_times_are_kept_with_the_digests(tmp_path: Path) -> None:
    store = RepositoryStore(tmp_path / "ecr.json")
    store.path.write_text(json.dumps({"repo": {"digests": []}}))
    store.remember_images("repo", {"sha256:b": 200, "sha256:a": 100})
    assert store.digests("repo") == ["sha256:a", "sha256:b"]
    assert store.pushed_at("repo") == {"sha256:a": 100, "sha256:b": 200}
    # A restarted sandbox's store reads them back from the file.
    assert RepositoryStore(store.path).pushed_at("repo") == {"sha256:a": 100, "sha256:b": 200}


def test_the_file_is_rewritten_only_when_something_moved(tmp_path: Path) -> None:
    store = RepositoryStore(tmp_path / "ecr.json")
    store.path.write_text(json.dumps({"repo": {"digests": []}}))
    store.remember_images("repo", {"sha256:a": 100})
    first = store.path.stat().st_mtime_ns, store.path.stat().st_ino
    store.remember_images("repo", {"sha256:a": 100})
    assert (store.path.stat().st_mtime_ns, store.path.stat().st_ino) == first


def test_a_file_from_an_older_kit_without_push_times_is_read(tmp_path: Path) -> None:
    store = RepositoryStore(tmp_path / "ecr.json")
    store.path.write_text(json.dumps({"repo": {"digests": ["sha256:a"]}}))
    assert store.digests("repo") == ["sha256:a"]
    assert store.pushed_at("repo") == {}  # those images get a new time once
    store.remember_images("repo", {"sha256:a": 300})
    assert store.pushed_at("repo") == {"sha256:a": 300}


def test_an_unknown_repository_is_not_added(tmp_path: Path) -> None:
    store = RepositoryStore(tmp_path / "ecr.json")
    store.path.write_text("{}")
    store.remember_images("gone", {"sha256:a": 1})
    assert json.loads(store.path.read_text()) == {}
