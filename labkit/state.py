"""What the kit remembers across kernels, in one owner-only JSON file: the settings
chosen in notebook 00 (picked up by notebooks 01–06 and the CLI), when the lab began,
the service's number."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.config import SETTING_DEFAULTS, SETTINGS, LabConfig, refuse_unknown_settings
from labkit.errors import InputError
from labkit.names import NOTEBOOKS


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
    """Write the state file atomically, readable by its owner only (it names the account)."""
    path = state_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(state, indent=2, sort_keys=True))
    os.chmod(tmp, 0o600)  # an older tmp file may have had wider permissions
    tmp.replace(path)


# -- the settings chosen in notebook 00 ------------------------------------------------

#: Where a setting in use came from, as :meth:`ResolvedSettings.describe` says it.
FROM_PARAMETERS = "this notebook's parameters"
FROM_NOTEBOOK_00 = "chosen in notebook 00"
FROM_ENVIRONMENT = "the environment"
FROM_DEFAULT = "default"


def save_settings(config: LabConfig) -> Path:
    """Remember ``config`` for the later notebooks; returns the state file's path."""
    state = load_state()
    state["settings"] = {name: str(getattr(config, name)) for name in SETTINGS}
    save_state(state)
    return state_path()


def _is_set(name: str, value: Any) -> bool:
    """False for an empty setting (and backend ``auto``): those fall back to notebook 00."""
    text = "" if value is None else str(value).strip()
    return text != "" and not (name == "backend" and text.lower() == "auto")


def choose_settings(**parameters: Any) -> dict[str, tuple[Any, str]]:
    """Each setting's value as given (not yet checked) and where it came from: a non-empty
    parameter wins, else what notebook 00 saved, else the default (for the backend:
    LABKIT_BACKEND, or endpoint when AWS_ENDPOINT_URL is set, or the sandbox)."""
    refuse_unknown_settings(parameters)
    saved = load_state().get("settings")
    saved = saved if isinstance(saved, dict) else {}
    chosen: dict[str, tuple[Any, str]] = {}
    for name, default in SETTING_DEFAULTS.items():
        if _is_set(name, parameters.get(name)):
            chosen[name] = (parameters[name], FROM_PARAMETERS)
        elif _is_set(name, saved.get(name)):
            chosen[name] = (saved[name], FROM_NOTEBOOK_00)
        else:
            environment = name == "backend" and (
                os.environ.get("LABKIT_BACKEND", "").strip() or os.environ.get("AWS_ENDPOINT_URL")
            )
            chosen[name] = (default, FROM_ENVIRONMENT if environment else FROM_DEFAULT)
    return chosen


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings in use and where each came from (parameters, notebook 00, defaults)."""

    config: LabConfig
    sources: dict[str, str]

    def value_text(self, name: str) -> str:
        return str(getattr(self.config, name)) or SETTINGS[name].empty_means

    def describe(self) -> str:
        """One plain-text line: the settings in use, grouped by where they came from."""
        groups: dict[str, list[str]] = {}
        for name in SETTINGS:
            groups.setdefault(self.sources[name], []).append(f"{name}={self.value_text(name)}")
        order = (FROM_PARAMETERS, FROM_NOTEBOOK_00, FROM_ENVIRONMENT, FROM_DEFAULT)
        parts = [f"{', '.join(groups[src])} ({src})" for src in order if src in groups]
        return (
            f"Lab settings: {'; '.join(parts)}. To change them, re-run {NOTEBOOKS[0]} "
            "(papermill: -p NAME VALUE)."
        )

    __str__ = describe


def resolve_settings(**parameters: Any) -> ResolvedSettings:
    """The settings to use (see :func:`choose_settings`), validated; an invalid saved
    value names the state file."""
    chosen = choose_settings(**parameters)
    sources = {name: source for name, (_, source) in chosen.items()}
    try:
        config = LabConfig(**{name: value for name, (value, _) in chosen.items()})
    except InputError as exc:
        if FROM_NOTEBOOK_00 not in sources.values():
            raise
        raise InputError(
            exc.what,
            why=f"{exc.why} (Settings remembered from notebook 00 are in {state_path()}.)",
            fix=f"{exc.fix} Then re-run {NOTEBOOKS[0]} to save the fixed settings.",
        ) from None
    return ResolvedSettings(config, sources)
