"""``ecr.json``: the ECR repositories a restarted sandbox lists again.

Each repository's settings, policy and tags are kept, and the digests it holds (untagged
images are only reachable by digest) with when each was pushed (``imagePushedAt`` never
changes on AWS while nothing is pushed); the images themselves stay in the registry's
storage. Files from older kits have no ``pushed_at``: those images get a new time once.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

from labkit.files import write_private


class RepositoryStore:
    """Reads and atomically rewrites ``ecr.json`` (owner-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        #: The file's text as last read, and the (inode, size, mtime) it was read at:
        #: every DescribeImages loads it, and a stat is cheaper than a read.
        self._read: tuple[tuple[int, int, int], str] | None = None

    def load(self) -> dict[str, Any]:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                return {}
            version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if self._read is None or self._read[0] != version:
                self._read = (version, self.path.read_text())
            return json.loads(self._read[1])

    def _write(self, state: dict[str, Any]) -> None:
        text = json.dumps(state, indent=1, default=str)
        with self._lock:
            write_private(self.path, text.encode())
            # Remembered with the new file's own stat: a rename may hand back an inode of
            # the same size within one mtime tick, and that must not look unchanged.
            stat = self.path.stat()
            self._read = ((stat.st_ino, stat.st_size, stat.st_mtime_ns), text)

    def digests(self, repository: str) -> list[str]:
        return self.load().get(repository, {}).get("digests", [])

    def pushed_at(self, repository: str) -> dict[str, Any]:
        """When each image of ``repository`` was pushed, by digest, as last saved."""
        saved = self.load().get(repository, {}).get("pushed_at")
        return saved if isinstance(saved, dict) else {}

    def remember_images(self, repository: str, pushed_at: dict[str, Any]) -> None:
        """Keep the digests ``repository`` holds and when each was pushed."""
        state = self.load()
        saved = state.get(repository)
        # Every DescribeImages gets here: the file is rewritten only when something moved.
        if saved is None:
            return
        if saved.get("digests") != sorted(pushed_at) or saved.get("pushed_at") != pushed_at:
            saved["digests"] = sorted(pushed_at)
            saved["pushed_at"] = dict(sorted(pushed_at.items()))
            self._write(state)

    def save(self, ecr: Any) -> None:
        """Write every repository's settings and policy (not images: the registry has them)."""
        old = self.load()
        state = {}
        for name, repo in ecr.repositories.items():
            state[name] = {
                "created_at": repo.created_at,
                "policy": repo.policy,
                "image_tag_mutability": repo.image_tag_mutability,
                "scan_on_push": bool(repo.image_scanning_configuration.get("scanOnPush")),
                # ECR's tagger keys its list "tags" (other services' say "Tags").
                "tags": ecr.tagger.list_tags_for_resource(repo.arn).get("tags", []),
                "digests": old.get(name, {}).get("digests", []),
                "pushed_at": old.get(name, {}).get("pushed_at", {}),
            }
        self._write(state)

    def restore(self, ecr: Any) -> list[str]:
        """Re-create in moto the repositories saved by an earlier sandbox; their names."""
        restored, state = [], self.load()
        for name, saved in state.items():
            if name in ecr.repositories:
                continue
            repo = ecr.create_repository(
                repository_name=name,
                registry_id=None,
                encryption_config=None,
                image_scan_config={"scanOnPush": saved.get("scan_on_push", False)},
                image_tag_mutability=saved.get("image_tag_mutability") or "MUTABLE",
                tags=saved.get("tags") or [],
            )
            repo.policy = saved.get("policy")
            if saved.get("created_at"):
                repo.created_at = dt.datetime.fromisoformat(str(saved["created_at"]))
            restored.append(name)
        self._write(state)  # each create_repository saved a file without those not yet back
        return restored
