"""ipywidgets forms, pre-filled from the ``parameters`` cell and validated at once.

Nothing here waits for a click: a form shows the values it was given and whether they
are valid; later cells read the form's current values. Edit a field, re-run the next
cell, and the new value is used. Every form also prints a plain-text twin, because
papermill and nbconvert have no widget frontend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from labkit.config import (
    BACKEND_VARIABLE,
    SETTINGS,
    LabConfig,
    Setting,
    coerce_backend,
    missing_requirement,
)
from labkit.display import in_kernel
from labkit.errors import InputError
from labkit.lab import Lab
from labkit.names import NOTEBOOKS
from labkit.state import (
    FROM_FORM,
    FROM_NOTEBOOK_00,
    FROM_PARAMETERS,
    FROM_RUN,
    PRECEDENCE,
    ResolvedSettings,
    choose_settings,
    forget_settings,
    is_set,
    resolve_settings,
    save_settings,
)


class ValidatedField:
    """A text (or dropdown) widget plus a ✅/❌ line, re-validated on every edit."""

    def __init__(self, label: str, value: Any, coerce: Callable[[Any], Any], options=None):
        self.label = label
        self.coerce = coerce
        text = "" if value is None else str(value)
        style = {"description_width": "140px"}
        layout = w.Layout(width="480px")
        if options:
            self.input = w.Dropdown(
                options=options, value=text, description=label, style=style, layout=layout
            )
        else:
            self.input = w.Text(value=text, description=label, style=style, layout=layout)
        self.status = w.HTML()
        self.input.observe(lambda _change: self._validate(), names="value")
        self.box = w.HBox([self.input, self.status])
        self._validate()

    def _validate(self) -> None:
        self.status.value = f"✅ {self.describe()}" if self.error is None else f"❌ {self.error}"

    @property
    def error(self) -> str | None:
        try:
            self.coerce(self.input.value)
        except InputError as exc:
            return f"{exc.what} {exc.why}"
        return None

    def describe(self) -> str:
        return str(self.coerce(self.input.value)) or "(default)"

    def plain(self) -> str:
        shown = self.describe() if self.error is None else self.input.value
        return f"{'✅' if self.error is None else '❌'} {self.label}: {shown}" + (
            f"  — {self.error}" if self.error else ""
        )


class SettingsForm:
    """The lab's settings: backend, region, account, repository name, service name.

    Pre-filled as the notebooks would use them (labkit.state's order: the parameters
    cell or a run's -p, LABKIT_BACKEND, what was saved last time, the defaults), each
    field saying where its value came from. :meth:`save` remembers what is chosen here
    for notebooks 01–06 (``labkit.open_lab()``). ``str(form)`` is the plain-text twin.
    """

    title = "Lab settings"

    def __init__(self, **parameters: Any) -> None:
        # A given parameter as typed (even if invalid, so the form shows the ❌), else
        # LABKIT_BACKEND, else what was saved last time, else the default.
        self.prefilled = choose_settings(**parameters)
        self.fields: dict[str, ValidatedField] = {
            name: _setting_field(name, value, SETTINGS[name])
            for name, (value, _source) in self.prefilled.items()
        }
        self.widget = w.VBox(
            [w.HTML(f"<b>{self.title}</b>"), *(f.box for f in self.fields.values())]
        )

    def __str__(self) -> str:
        # Printed once, before any edit.
        note = "(as pre-filled; after editing the form, the next cell prints what it saves)"
        lines = [
            f"  {field.plain()}  [{self.prefilled[name][1]}]" for name, field in self.fields.items()
        ]
        return "\n".join([self.title, *lines, f"  {note}"])

    def show(self) -> SettingsForm:
        if in_kernel():
            from IPython.display import display

            display(self.widget)
        print(self)
        return self

    @property
    def config(self) -> LabConfig:
        """The form's current values as a LabConfig (InputError names a bad field)."""
        return LabConfig.from_parameters(**{k: f.input.value for k, f in self.fields.items()})

    def lab(self) -> Lab:
        """A Lab built from the form's current values."""
        return Lab(self.config)

    def edited(self, name: str) -> bool:
        """Whether the form's value of ``name`` differs from the one it was pre-filled with."""
        coerce = SETTINGS[name].coerce
        try:
            return coerce(self.fields[name].input.value) != coerce(self.prefilled[name][0])
        except InputError:
            return True

    def chosen_here(self, name: str) -> bool:
        """Whether setting ``name`` is chosen in notebook 00: typed in its parameters cell,
        remembered from last time, or edited in the form. A run's -p, LABKIT_BACKEND and
        the defaults are not (so saving never makes them stick)."""
        source = self.prefilled[name][1]
        return source in (FROM_PARAMETERS, FROM_NOTEBOOK_00) or self.edited(name)

    def save(self) -> ResolvedSettings:
        """Remember what is chosen here for notebooks 01–06; print what is remembered and
        what notebooks 01–06 will use. Refuses (remembering nothing) a backend that an
        exported LABKIT_BACKEND would override, or whose requirement is missing."""
        config = self.config
        chosen = [name for name in SETTINGS if self.chosen_here(name)]
        exported = os.environ.get(BACKEND_VARIABLE, "").strip()
        if "backend" in chosen and exported and coerce_backend(exported) != config.backend:
            raise InputError(
                f"backend {config.backend.value} cannot take effect: {BACKEND_VARIABLE}="
                f"{exported} is exported here, and it wins in notebooks 01–06.",
                why=f"An exported {BACKEND_VARIABLE} comes before what notebook 00 "
                f"remembers (the order: {PRECEDENCE}).",
                fix=f"Choose {exported} in the form and re-run this cell; or stop Jupyter, "
                f"`unset {BACKEND_VARIABLE}`, and start it again (`labkit lab`).",
            )
        sources = {
            name: (FROM_FORM if self.edited(name) else source)
            for name, (_, source) in self.prefilled.items()
        }
        ResolvedSettings(config, sources).check_requirements()
        # backend "auto" (or an emptied field) chooses nothing: forget the old choice.
        cleared = [n for n in chosen if not is_set(n, self.fields[n].input.value)]
        forget_settings(cleared)
        path = save_settings(config, [n for n in chosen if n not in cleared])
        # Read back as notebooks 01–06 will: a run's -p reaches them too.
        from_run = {n: self.fields[n].input.value for n in SETTINGS if sources[n] == FROM_RUN}
        saved = resolve_settings(**from_run)
        remembered = (
            ", ".join(f"{n}={saved.value_text(n)}" for n in chosen if n not in cleared) or "nothing"
        )
        print(
            f"Saved for notebooks 01–06: {remembered} (in {path}, readable by you only). "
            f"To change them, edit the form and re-run this cell; {NOTEBOOKS[0]} is the "
            "only place they are chosen."
        )
        print(saved.describe())
        return saved


def _setting_field(name: str, value: Any, setting: Setting) -> ValidatedField:
    label = name.replace("_", " ")
    if setting.choices:
        text = str(value).strip().lower()
        options = setting.choices if text in setting.choices else None  # else: a ❌ text box
        coerce = _usable_backend if name == "backend" else setting.coerce
        return ValidatedField(label, text, coerce, options=options)
    try:  # shown as the lab will use it: papermill's int account id zero-padded
        value = setting.coerce(value)
    except InputError:
        pass  # shown as typed, next to its ❌
    return ValidatedField(label, value, setting.coerce)


def _usable_backend(value: Any) -> Any:
    """The backend, refused (❌ in the form) when its requirement is missing here."""
    backend = coerce_backend(value)
    problem = missing_requirement(backend)
    if problem:
        raise InputError(
            f"Backend {backend.value} cannot be used here.",
            why=f"{problem[:1].upper()}{problem[1:]}.",
            fix="Choose sandbox, or export AWS_ENDPOINT_URL before starting Jupyter.",
        )
    return backend


def settings_form(**parameters: Any) -> SettingsForm:
    """Show the settings form pre-filled from the parameters cell; return it."""
    form = SettingsForm(**parameters)
    form.show()
    return form
