"""What the kit remembers across kernels, in one owner-only JSON file: the settings
chosen in notebook 00 (picked up by notebooks 01–06 and the CLI), when the lab began,
the service's number; and which setting in use comes from where."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; see _state_lock
    fcntl = None  # type: ignore[assignment]

from labkit.config import (
    BACKEND_VARIABLE,
    SETTING_DEFAULTS,
    SETTINGS,
    LabConfig,
    default_backend,
    missing_requirement,
    refuse_unknown_settings,
)
from labkit.errors import InputError, PrerequisiteError
from labkit.files import write_private
from labkit.names import NOTEBOOKS

T = TypeVar("T")


def state_path() -> Path:
    """Where the kit remembers choices across kernels (``LABKIT_STATE_DIR`` overrides)."""
    base = os.environ.get("LABKIT_STATE_DIR") or Path.home() / ".labkit"
    return Path(base) / "state.json"


def load_state() -> dict[str, Any]:
    try:
        state = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def save_state(state: dict[str, Any]) -> None:
    """Write the state file atomically, readable by its owner only (it names the account).

    Callers that change what they read use :func:`update_state` instead, so that another
    process (a second kernel, a ``labkit`` command) writing meanwhile loses nothing."""
    path = state_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, json.dumps(state, indent=2, sort_keys=True).encode(), durable=True)


@contextmanager
def _state_lock() -> Iterator[None]:
    """Hold the state file's lock (``state.lock`` beside it) between processes.

    Where there is no ``fcntl`` (Windows) writes stay atomic but are not serialised."""
    path = state_path().with_name("state.lock")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    # O_NOFOLLOW: a symlink planted in place of the lock file is refused, not opened.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


#: Whether this thread is inside update_state's change (see there).
_updating = threading.local()


def update_state(change: Callable[[dict[str, Any]], T]) -> T:
    """Read the state, let ``change`` edit it in place, and write it back if it changed,
    all under the state lock: updates from several processes at once all land. Returns
    what ``change`` returns."""
    if getattr(_updating, "active", False):
        # The inner update would be lost when the outer one writes its older copy (and the
        # lock is not re-entrant): work out what the change needs before calling this.
        raise RuntimeError("update_state() called inside another update_state() change")
    _updating.active = True
    try:
        with _state_lock():
            return _apply(change)
    finally:
        _updating.active = False


def _apply(change: Callable[[dict[str, Any]], T]) -> T:
    state = load_state()
    before = json.dumps(state, sort_keys=True)
    result = change(state)
    if json.dumps(state, sort_keys=True) != before:
        save_state(state)
    return result


# -- the settings: where each comes from -----------------------------------------------
#
# Each setting is taken from the first of these that has it:
#   1. -p for this command or run, or the notebook's own parameters cell;
#   2. an exported LABKIT_BACKEND (the backend only);
#   3. what notebook 00 remembered (the state file);
#   4. the default (the backend's: LABKIT_DEFAULT_BACKEND, set by `labkit lab`, else
#      endpoint when AWS_ENDPOINT_URL is set, else the sandbox).
# Only a choice made in notebook 00 is remembered: a run's -p, LABKIT_BACKEND and the
# defaults never are (see SettingsForm.save).

#: Where a setting in use came from, as :meth:`ResolvedSettings.describe` says it.
FROM_PARAMETERS = "this notebook's parameters"
FROM_COMMAND_LINE = "-p"
FROM_RUN = "-p of this labkit run, not remembered"
FROM_ENVIRONMENT = f"from {BACKEND_VARIABLE}"
FROM_NOTEBOOK_00 = "remembered from notebook 00"
FROM_FORM = "chosen in the form"  # notebook 00, before it is saved
FROM_DEFAULT = "default"
PRECEDENCE = f"-p > {BACKEND_VARIABLE} > notebook 00 > default"

#: ``labkit run`` lists here the settings its -p gave: its kernels use them for the run
#: (papermill puts them in each notebook's parameters) and notebook 00 does not remember
#: them.
RUN_SETTINGS_VARIABLE = "LABKIT_RUN_SETTINGS"


def run_settings() -> set[str]:
    """The settings this ``labkit run``'s -p gave (in its kernels; else none)."""
    return set(os.environ.get(RUN_SETTINGS_VARIABLE, "").split()) & set(SETTINGS)


def _settings_in(state: dict[str, Any]) -> dict[str, Any]:
    saved = state.get("settings")
    return dict(saved) if isinstance(saved, dict) else {}


def remembered_settings() -> dict[str, Any]:
    return _settings_in(load_state())


def save_settings(config: LabConfig, names: Iterable[str] | None = None) -> Path:
    """Remember ``config``'s settings ``names`` (all by default) for the later notebooks;
    the others stay as they were. An empty value forgets that setting. Returns the state
    file's path."""

    def change(state: dict[str, Any]) -> None:
        saved = _settings_in(state)
        for name in SETTINGS if names is None else names:
            value = str(getattr(config, name))
            if is_set(name, value):
                saved[name] = value
            else:
                saved.pop(name, None)
        state["settings"] = saved

    update_state(change)
    return state_path()


def forget_settings(names: Iterable[str] | None = None) -> bool:
    """Forget the settings ``names`` (all by default) notebook 00 remembered; the rest of
    the state stays. True if there was something to forget."""

    def change(state: dict[str, Any]) -> bool:
        saved = _settings_in(state)
        chosen = set(saved if names is None else names)
        gone = [saved.pop(name) for name in list(saved) if name in chosen]
        if not gone:
            return False
        state["settings"] = saved
        if not saved:
            del state["settings"]
        return True

    return update_state(change)


def is_set(name: str, value: Any) -> bool:
    """False for an empty setting (and backend ``auto``): those fall back a step."""
    text = "" if value is None else str(value).strip()
    return text != "" and not (name == "backend" and text.lower() == "auto")


def choose_settings(
    given_as: str = FROM_PARAMETERS, **parameters: Any
) -> dict[str, tuple[Any, str]]:
    """Each setting's value as given (not yet checked) and where it came from, in the
    order above. ``given_as`` names where ``parameters`` came from (-p of a command)."""
    refuse_unknown_settings(parameters)
    saved = remembered_settings()
    from_run = run_settings()
    exported = os.environ.get(BACKEND_VARIABLE, "").strip()
    chosen: dict[str, tuple[Any, str]] = {}
    for name, default in SETTING_DEFAULTS.items():
        if is_set(name, parameters.get(name)):
            chosen[name] = (parameters[name], FROM_RUN if name in from_run else given_as)
        elif name == "backend" and exported:
            chosen[name] = (exported, FROM_ENVIRONMENT)
        elif is_set(name, saved.get(name)):
            chosen[name] = (saved[name], FROM_NOTEBOOK_00)
        elif name == "backend":
            chosen[name] = default_backend()
        else:
            chosen[name] = (default, FROM_DEFAULT)
    return chosen


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings in use and where each came from (see the order above)."""

    config: LabConfig
    sources: dict[str, str]

    def value_text(self, name: str) -> str:
        return str(getattr(self.config, name)) or SETTINGS[name].empty_means

    def describe(self) -> str:
        """One plain-text line: the settings in use, grouped by where they came from."""
        groups: dict[str, list[str]] = {}
        for name in SETTINGS:
            groups.setdefault(self.sources[name], []).append(f"{name}={self.value_text(name)}")
        parts = [f"{', '.join(names)} ({source})" for source, names in groups.items()]
        return (
            f"Lab settings: {'; '.join(parts)}. Order: {PRECEDENCE}; "
            f"{NOTEBOOKS[0]} chooses, `labkit settings` explains."
        )

    __str__ = describe

    def check_requirements(self) -> None:
        """Stop, naming the fix, when the backend needs what this environment lacks."""
        problem = missing_requirement(self.config.backend)
        if not problem:
            return
        source = self.sources["backend"]
        fixes = {
            FROM_NOTEBOOK_00: "choose again in notebook 00, or forget that choice: "
            "`labkit settings forget`; or for one run `labkit run -p backend sandbox` "
            f"(or export {BACKEND_VARIABLE}=sandbox)",
            FROM_ENVIRONMENT: f"or `unset {BACKEND_VARIABLE}`",
            FROM_FORM: "or choose sandbox in the form and re-run this cell",
            FROM_PARAMETERS: 'or set backend = "sandbox" in the parameters cell',
            FROM_COMMAND_LINE: "or leave out `-p backend endpoint`",
            FROM_RUN: "or leave out `-p backend endpoint`",
        }
        other = fixes.get(source, "or choose the sandbox in notebook 00")
        raise PrerequisiteError(
            f"The lab cannot use backend 'endpoint' here ({source}).",
            why=f"{problem[:1].upper()}{problem[1:]}: nothing was done.",
            fix="export AWS_ENDPOINT_URL=http://host:port (your emulator) before starting; "
            f"{other}.",
        )


def resolve_settings(
    given_as: str = FROM_PARAMETERS, check: bool = True, **parameters: Any
) -> ResolvedSettings:
    """The settings to use (see :func:`choose_settings`), validated; an invalid value
    names where it came from. ``check``: also stop when the backend's requirement is
    missing (:meth:`ResolvedSettings.check_requirements`)."""
    chosen = choose_settings(given_as, **parameters)
    sources = {name: source for name, (_, source) in chosen.items()}
    for name, (value, source) in chosen.items():
        try:
            SETTINGS[name].coerce(value)
        except InputError as exc:
            if source == FROM_NOTEBOOK_00:
                where = f"It is remembered from notebook 00, in {state_path()}."
                fix = f"Choose again in {NOTEBOOKS[0]}, or run `labkit settings forget`."
            elif source == FROM_ENVIRONMENT:
                where, fix = (
                    f"{BACKEND_VARIABLE} is exported with it.",
                    f"Or fix {BACKEND_VARIABLE}.",
                )
            else:
                raise
            raise InputError(exc.what, why=f"{exc.why} {where}", fix=f"{exc.fix} {fix}") from None
    config = LabConfig(**{name: value for name, (value, _) in chosen.items()})
    resolved = ResolvedSettings(config, sources)
    if check:
        resolved.check_requirements()
    return resolved
