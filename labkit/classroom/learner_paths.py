"""Root's few looks into a learner's folders, made so that a learner's symlink cannot steer them.

A learner owns their home and ``/run/user/<uid>``: they can put a symlink (or a hard link,
a FIFO, another folder) at any name in there, at any moment. Root therefore never uses a
path by name inside them. What root must do itself is done here, through file
descriptors: the folder it trusts (root's own ``/run/user``, ``/home``) is opened first,
and each name below it is opened relative to that descriptor with ``O_NOFOLLOW``, then
checked (kind, owner) on the descriptor itself before anything is done with it.
Everything else in a learner's folders (logs, notebooks, RootlessKit's state) is done by
a process already running as the learner.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from labkit.errors import BackendError

# getattr: the module is imported (never used) where these flags do not exist (Windows).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_TRUSTED = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = _TRUSTED | _NOFOLLOW


class NotTheLearners(BackendError, OSError):
    """A name in a learner's folder is not what root expected (a symlink, someone else's).

    An ``OSError`` too: callers that treat "cannot open it" as "not there" treat it so."""


@contextlib.contextmanager
def opened(trusted: Path, *names: str, flags: int = _DIRECTORY) -> Iterator[int]:
    """A descriptor of ``trusted/names…``, no symlink followed below ``trusted``.

    ``trusted`` is a folder only root can change (it is opened as usual); every name
    below it is a single component opened with ``O_NOFOLLOW`` relative to its parent's
    descriptor. The last one is opened with ``flags``.
    """
    fd = os.open(trusted, _TRUSTED)
    try:
        for index, name in enumerate(names):
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"{name!r} is not a single name")
            last = index == len(names) - 1
            mode = (flags if last else _DIRECTORY) | _NOFOLLOW
            child = os.open(name, mode, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "folder", stat.S_IFSOCK: "socket"}


def _require(fd: int, kind: int, uid: int, what: str) -> None:
    info = os.fstat(fd)
    if stat.S_IFMT(info.st_mode) != kind or info.st_uid != uid:
        raise NotTheLearners(
            f"{what} is not a {_KINDS[kind]} of user {uid}'s; root left it alone.",
            why="Only what the learner's own processes made there is used.",
        )


def private_folder(trusted: Path, name: str, uid: int, gid: int) -> None:
    """``trusted/name`` as a folder of ``uid``'s only (0700), made if missing.

    For folders whose name root controls (``/run/user/<uid>``, ``/home/<user>``): an
    existing symlink there is refused, never followed.
    """
    trusted.mkdir(mode=0o755, parents=True, exist_ok=True)
    with opened(trusted) as parent:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent)
    try:
        with opened(trusted, name) as fd:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o700)
    except OSError as error:  # ELOOP/ENOTDIR: a symlink or a file is there
        raise NotTheLearners(
            f"{trusted / name} is not a folder ({error.strerror}); root left it alone.",
            why="A symlink or a file there is never followed or changed by the classroom.",
            fix=f"Remove {trusted / name} (as root), then start again.",
        ) from None


def read_small_file(trusted: Path, *names: str, uid: int, limit: int = 4096) -> str:
    """The text of a regular file of ``uid``'s below ``trusted`` (a FIFO cannot block root,
    a hard link to someone else's file is refused)."""
    flags = os.O_RDONLY | os.O_NONBLOCK
    with opened(trusted, *names, flags=flags) as fd:
        _require(fd, stat.S_IFREG, uid, "/".join(names))
        return os.read(fd, limit).decode(errors="replace")


def connect_socket(trusted: Path, *names: str, uid: int, timeout: float) -> socket.socket:
    """A connection to ``uid``'s Unix socket below ``trusted``.

    The socket itself is opened as a path (``O_PATH``, not following a symlink put in its
    place) and connected to through ``/proc/self/fd``: the inode checked is the one used.
    """
    with opened(trusted, *names, flags=os.O_PATH) as fd:
        _require(fd, stat.S_IFSOCK, uid, "/".join(names))
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.settimeout(timeout)
            sock.connect(f"/proc/self/fd/{fd}")
        except OSError:
            sock.close()
            raise
        return sock


def remove_folder(trusted: Path, name: str) -> bool:
    """Remove ``trusted/name`` and all in it, through descriptors (``shutil.rmtree``'s
    symlink-safe walk, from a descriptor of ``trusted``); a symlink there is not followed.
    For folders whose owner can no longer run anything (their account is being deleted)."""
    try:
        with opened(trusted) as parent:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                return False
            shutil.rmtree(name, dir_fd=parent)
    except FileNotFoundError:
        return False
    return True
