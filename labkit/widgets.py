"""ipywidgets forms, pre-filled from the ``parameters`` cell and validated at once.

Nothing here waits for a click: a form shows the values it was given and whether they
are valid; later cells read the form's current values. Edit a field, re-run the next
cell, and the new value is used. Every form also prints a plain-text twin, because
papermill and nbconvert have no widget frontend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from labkit.config import (
    NOTEBOOKS,
    SETTING_DEFAULTS,
    SETTINGS,
    LabConfig,
    ResolvedSettings,
    Setting,
    is_set,
    refuse_unknown_settings,
    resolve_settings,
    save_settings,
    saved_settings,
)
from labkit.display import in_kernel
from labkit.errors import InputError
from labkit.lab import Lab


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

    Pre-filled with what the parameters cell says, else what was saved last time
    (:meth:`save`), else the defaults; :meth:`save` remembers the form's current values
    for notebooks 01–06 (``labkit.open_lab()``). ``str(form)`` is the plain-text twin.
    """

    title = "Lab settings"

    def __init__(self, **parameters: Any) -> None:
        refuse_unknown_settings(parameters)
        saved = saved_settings()
        self.fields: dict[str, ValidatedField] = {}
        for name, setting in SETTINGS.items():
            # A given parameter as typed (even if invalid, so the form shows the ❌), else
            # what was saved last time, else the default.
            given = (v for v in (parameters.get(name), saved.get(name)) if is_set(name, v))
            self.fields[name] = _setting_field(name, next(given, SETTING_DEFAULTS[name]), setting)
        self.widget = w.VBox(
            [w.HTML(f"<b>{self.title}</b>"), *(f.box for f in self.fields.values())]
        )

    def __str__(self) -> str:
        # Printed once, before any edit.
        note = "(as pre-filled; after editing the form, the next cell prints what it saves)"
        return "\n".join(
            [self.title, *(f"  {f.plain()}" for f in self.fields.values()), f"  {note}"]
        )

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

    def save(self) -> ResolvedSettings:
        """Remember the form's current values for notebooks 01–06; print what was saved."""
        config = self.config
        path = save_settings(config)
        saved = resolve_settings()  # read back, as the next notebooks will
        names = ", ".join(f"{n}={saved.value_text(n)}" for n in SETTINGS)
        print(
            f"Saved for notebooks 01–06: {names} (in {path}, readable by you only). "
            f"To change them, edit the form and re-run this cell; {NOTEBOOKS[0]} is the "
            "only place they are chosen."
        )
        return saved


def _setting_field(name: str, value: Any, setting: Setting) -> ValidatedField:
    label = name.replace("_", " ")
    if setting.choices:
        text = str(value).strip().lower()
        options = setting.choices if text in setting.choices else None  # else: a ❌ text box
        return ValidatedField(label, text, setting.coerce, options=options)
    try:  # shown as the lab will use it: papermill's int account id zero-padded
        value = setting.coerce(value)
    except InputError:
        pass  # shown as typed, next to its ❌
    return ValidatedField(label, value, setting.coerce)


def settings_form(**parameters: Any) -> SettingsForm:
    """Show the settings form pre-filled from the parameters cell; return it."""
    form = SettingsForm(**parameters)
    form.show()
    return form
