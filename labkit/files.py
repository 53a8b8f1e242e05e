"""Files the kit writes for the user alone: created owner-only, replaced atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` readable by its owner only, from the first byte on.

    The file is created 0600 (never written first and narrowed later) under a fresh
    temporary name beside ``path`` (mkstemp: O_EXCL, never follows a planted symlink, and
    two writers, or a file a killed writer left, never share one), then renamed over
    ``path``: a reader sees the old file or the whole new one, and a symlink at ``path`` is
    replaced, never followed. ``durable`` also syncs the data to disk before the rename.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
