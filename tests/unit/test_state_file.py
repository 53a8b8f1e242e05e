"""The state file under concurrent writers: two processes (a notebook kernel and a
``labkit`` command, or two kernels) updating it at once lose nothing and never fail."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from labkit.state import load_state, save_state, state_path, update_state

WRITES_PER_PROCESS = 300


def _hammer(state_dir: str, name: str, count: int, errors: multiprocessing.Queue) -> None:
    """Increment this process's own counter and a shared one, ``count`` times."""
    os.environ["LABKIT_STATE_DIR"] = state_dir
    failures = []

    def bump(state: dict) -> None:
        state[name] = state.get(name, 0) + 1
        state["shared"] = state.get("shared", 0) + 1

    for _ in range(count):
        try:
            update_state(bump)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            failures.append(repr(exc))
    errors.put((name, failures))


def test_two_processes_updating_at_once_lose_nothing() -> None:
    state_dir = os.environ["LABKIT_STATE_DIR"]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, like a kernel
    errors = context.Queue()
    workers = [
        context.Process(target=_hammer, args=(state_dir, f"p{i}", WRITES_PER_PROCESS, errors))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    reports = dict(errors.get(timeout=300) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert reports == {"p0": [], "p1": []}
    assert load_state() == {
        "p0": WRITES_PER_PROCESS,
        "p1": WRITES_PER_PROCESS,
        "shared": 2 * WRITES_PER_PROCESS,
    }
    # No temporary file is left behind, and the file stays owner-only.
    assert sorted(p.name for p in state_path().parent.iterdir()) == ["state.json", "state.lock"]
    assert stat.S_IMODE(state_path().stat().st_mode) == 0o600


def test_update_returns_what_the_change_returns_and_skips_an_unchanged_write() -> None:
    save_state({"a": 1})
    before = state_path().stat().st_mtime_ns
    assert update_state(lambda state: state.get("a")) == 1
    assert state_path().stat().st_mtime_ns == before  # nothing changed: not rewritten
    assert update_state(lambda state: state.setdefault("b", 2)) == 2
    assert load_state() == {"a": 1, "b": 2}


def test_a_failed_change_writes_nothing() -> None:
    save_state({"a": 1})

    def broken(state: dict) -> None:
        state["a"] = 2
        raise RuntimeError("midway")

    with pytest.raises(RuntimeError):
        update_state(broken)
    assert load_state() == {"a": 1}


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="no O_NOFOLLOW here")
def test_a_symlink_planted_as_the_lock_file_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("not the kit's")
    state_path().parent.mkdir(parents=True, exist_ok=True)
    (state_path().parent / "state.lock").symlink_to(target)
    with pytest.raises(OSError):
        update_state(lambda state: state.update(a=1))
    assert target.read_text() == "not the kit's"


def test_a_symlink_in_place_of_the_state_file_is_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    state_path().parent.mkdir(parents=True, exist_ok=True)
    state_path().symlink_to(target)
    save_state({"a": 1})
    assert target.read_text() == "{}"
    assert not state_path().is_symlink()
    assert load_state() == {"a": 1}


def test_an_update_inside_another_update_is_refused_not_deadlocked_or_lost() -> None:
    """The lock is not re-entrant, and the outer update would write over the inner one:
    a nested call says so at once (it deadlocked before callers were fixed)."""

    def outer(state: dict) -> None:
        update_state(lambda inner: inner.update(inner_key=1))

    with pytest.raises(RuntimeError, match="inside another update_state"):
        update_state(outer)
    update_state(lambda state: state.update(after=1))  # the lock and the flag were released
    assert load_state().get("after") == 1
