"""ipywidgets forms, pre-filled from the ``parameters`` cell and validated at once.

Nothing here waits for a click: a form shows the values it was given and whether they
are valid; later cells read the form's current values. Edit a field, re-run the next
cell, and the new value is used. Every form also prints a plain-text twin, because
papermill and nbconvert have no widget frontend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from labkit.config import (
    NOTEBOOKS,
    SETTING_NAMES,
    Backend,
    LabConfig,
    ResolvedSettings,
    coerce_account_id,
    coerce_backend,
    coerce_region,
    coerce_repository_name,
    coerce_service_name,
    is_set,
    resolve_settings,
    save_settings,
    saved_settings,
)
from labkit.errors import InputError
from labkit.lab import Lab
from labkit.views import _in_kernel

PARAMETER_NAMES = SETTING_NAMES

#: host[:port]/name — the shape of a repository URI.
REPOSITORY_URI_PATTERN = re.compile(r"[A-Za-z0-9.-]+(?::\d+)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*")


def coerce_repository_uri(value: Any) -> str:
    text = str(value or "").strip()
    if not REPOSITORY_URI_PATTERN.fullmatch(text):
        raise InputError(
            f"Repository URI {value!r} is not valid.",
            why="It looks like <registry host>/<repository name>, without a tag.",
            fix="Copy it from the Repository view of notebook 01 (or leave the pre-filled one).",
        )
    return text


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

    @property
    def value(self) -> Any:
        """The coerced value; raises InputError (with a fix) if the field is invalid."""
        return self.coerce(self.input.value)

    def describe(self) -> str:
        value = self.coerce(self.input.value)
        value = value.value if isinstance(value, Backend) else value
        return str(value) if value != "" else "(default)"

    def plain(self) -> str:
        shown = self.describe() if self.error is None else self.input.value
        return f"{'✅' if self.error is None else '❌'} {self.label}: {shown}" + (
            f"  — {self.error}" if self.error else ""
        )


class Form:
    """Validated fields shown together; ``str(form)`` is the plain-text twin."""

    def __init__(self, title: str, fields: dict[str, ValidatedField]) -> None:
        self.title = title
        self.fields = fields
        self.widget = w.VBox([w.HTML(f"<b>{title}</b>"), *(f.box for f in fields.values())])

    def __getitem__(self, name: str) -> Any:
        return self.fields[name].value

    #: A line under the plain-text twin (it is printed once, before any edit).
    plain_note = ""

    def __str__(self) -> str:
        lines = [self.title, *(f"  {f.plain()}" for f in self.fields.values())]
        return "\n".join(lines + ([f"  {self.plain_note}"] if self.plain_note else []))

    def show(self) -> Form:
        if _in_kernel():
            from IPython.display import display

            display(self.widget)
        print(self)
        return self


class SettingsForm(Form):
    """The lab's settings: backend, region, account, repository name, service name.

    Pre-filled with what the parameters cell says, else what was saved last time
    (:meth:`save`), else the defaults; :meth:`save` remembers the form's current values
    for notebooks 01–06 (``labkit.open_lab()``).
    """

    plain_note = "(as pre-filled; after editing the form, the next cell prints what it saves)"

    def __init__(self, **parameters: Any) -> None:
        unknown = set(parameters) - set(PARAMETER_NAMES)
        if unknown:
            raise InputError(
                f"Unknown parameter(s): {', '.join(sorted(unknown))}.",
                why=f"Expected {', '.join(PARAMETER_NAMES)}.",
                fix="Check the spelling in the parameters cell.",
            )
        p = _prefill(parameters)
        backend_choice = str(p["backend"] or "auto").strip().lower()
        super().__init__(
            "Lab settings",
            {
                "backend": ValidatedField(
                    "backend",
                    backend_choice,
                    coerce_backend,
                    options=["auto", *(b.value for b in Backend)]
                    if backend_choice in ["auto", *(b.value for b in Backend)]
                    else None,
                ),
                "region": ValidatedField("region", p["region"], coerce_region),
                "account_id": ValidatedField(
                    "account id", coerce_account_id_lenient(p["account_id"]), coerce_account_id
                ),
                "repository_name": ValidatedField(
                    "repository name", p["repository_name"], coerce_repository_name
                ),
                "service_name": ValidatedField(
                    "service name", p["service_name"], coerce_service_name
                ),
            },
        )

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
        names = ", ".join(f"{n}={saved.value_text(n)}" for n in PARAMETER_NAMES)
        print(
            f"Saved for notebooks 01–06: {names} (in {path}, readable by you only). "
            f"To change them, edit the form and re-run this cell; {NOTEBOOKS[0]} is the "
            "only place they are chosen."
        )
        return saved


def _prefill(parameters: dict[str, Any]) -> dict[str, Any]:
    """Raw values to show: a given parameter as typed (even if invalid, so the form shows
    the ❌), else what was saved last time, else the default."""
    saved = saved_settings()
    defaults = {name: "" for name in PARAMETER_NAMES}
    defaults.update(backend="auto", repository_name=LabConfig().repository_name)
    shown = {}
    for name in PARAMETER_NAMES:
        if is_set(name, parameters.get(name)):
            shown[name] = parameters[name]
        elif is_set(name, saved.get(name)):
            shown[name] = saved[name]
        else:
            shown[name] = defaults[name]
    return shown


def coerce_account_id_lenient(value: Any) -> str:
    """Pre-fill text: papermill's int account id shown zero-padded, bad input kept as is."""
    try:
        return coerce_account_id(value)
    except InputError:
        return str(value)


def settings_form(**parameters: Any) -> SettingsForm:
    """Show the settings form pre-filled from the parameters cell; return it."""
    form = SettingsForm(**parameters)
    form.show()
    return form


def repository_uri_form(uri: str, expected: str | None = None) -> Form:
    """Step 19–20's ``REPOSITORY=…``: the URI pre-filled, validated, editable.

    With ``expected`` (the lab's own URI) an edited or pasted value must also name your
    registry, region, account and repository (see ``ecr.compare_repository_uri``)."""
    coerce: Callable[[Any], str] = coerce_repository_uri
    if expected:
        from labkit.ecr import compare_repository_uri

        def coerce(value: Any) -> str:
            return compare_repository_uri(value, expected)

    form = Form("REPOSITORY (step 20)", {"uri": ValidatedField("REPOSITORY", uri, coerce)})
    return form.show()
