"""Settings chosen once in notebook 00, remembered, and picked up by the other notebooks;
the order -p > LABKIT_BACKEND > notebook 00 > default, and no setting that traps."""

from __future__ import annotations

import re
import stat

import pytest
from papermill.inspection import inspect_notebook

from labkit import widgets
from labkit.cli import _lab_from_args, build_parser, main
from labkit.config import SETTINGS, Backend, LabConfig
from labkit.errors import InputError, PrerequisiteError
from labkit.lab import open_lab
from labkit.runner import lab_notebooks
from labkit.state import (
    FROM_COMMAND_LINE,
    FROM_DEFAULT,
    FROM_ENVIRONMENT,
    FROM_NOTEBOOK_00,
    FROM_PARAMETERS,
    FROM_RUN,
    RUN_SETTINGS_VARIABLE,
    load_state,
    resolve_settings,
    save_settings,
    save_state,
    state_path,
)


def test_defaults_before_notebook_00_ran():
    resolved = resolve_settings(backend="", region="", repository_name="")
    assert resolved.config == LabConfig()
    assert set(resolved.sources.values()) == {FROM_DEFAULT}


def test_saved_settings_fill_the_blanks_and_a_parameter_wins():
    chosen = LabConfig.from_parameters(backend="aws", region="eu-west-1", repository_name="x1")
    save_settings(chosen)
    resolved = resolve_settings(backend="auto", region="", repository_name="", service_name="")
    assert resolved.config.backend is Backend.AWS
    assert (resolved.config.region, resolved.config.repository_name) == ("eu-west-1", "x1")
    assert resolved.sources["backend"] == FROM_NOTEBOOK_00
    assert resolved.sources["service_name"] == FROM_DEFAULT

    overridden = resolve_settings(backend="sandbox", repository_name="other")
    assert overridden.config.backend is Backend.SANDBOX
    assert overridden.config.repository_name == "other"
    assert overridden.config.region == "eu-west-1"
    assert overridden.sources["repository_name"] == FROM_PARAMETERS


def test_environment_backend_is_named_as_the_source(monkeypatch):
    monkeypatch.setenv("LABKIT_BACKEND", "aws")
    resolved = resolve_settings()
    assert resolved.config.backend is Backend.AWS
    assert resolved.sources["backend"] == FROM_ENVIRONMENT


def test_the_line_says_what_is_used_and_where_it_came_from():
    save_settings(LabConfig.from_parameters(backend="sandbox", repository_name="myrepo"))
    line = resolve_settings(region="us-west-2").describe()
    assert "\n" not in line
    assert "region=us-west-2 (this notebook's parameters)" in line
    assert "backend=sandbox" in line and "(remembered from notebook 00)" in line
    assert "account_id=whatever STS says" in line and "00_start_here.ipynb" in line
    assert "Order: -p > LABKIT_BACKEND > notebook 00 > default" in line


def test_a_bad_saved_value_names_the_state_file():
    save_state({"settings": {"backend": "sandbox", "repository_name": "MyRepo"}})
    with pytest.raises(InputError) as caught:
        resolve_settings()
    assert str(state_path()) in caught.value.why
    assert "labkit settings forget" in caught.value.fix
    assert resolve_settings(repository_name="myrepo").config.repository_name == "myrepo"


def test_unknown_names_are_refused():
    with pytest.raises(InputError):
        resolve_settings(repo="x")


def test_state_file_is_owner_only():
    save_settings(LabConfig())
    mode = stat.S_IMODE(state_path().stat().st_mode)
    assert mode == 0o600
    save_state({**load_state(), "other": 1})  # rewriting keeps it private
    assert stat.S_IMODE(state_path().stat().st_mode) == 0o600


def test_form_in_00_saves_and_open_lab_in_01_picks_it_up(capsys):
    form = widgets.settings_form(backend="aws", region="", repository_name="")
    assert form.fields["repository_name"].input.value == "myrepo"
    form.fields["region"].input.value = "eu-central-1"  # the learner edits the form
    form.save()
    assert "Saved for notebooks 01–06" in capsys.readouterr().out

    lab = open_lab(backend="", region="", account_id="", repository_name="", service_name="")
    line = capsys.readouterr().out
    assert lab.config.backend is Backend.AWS and lab.config.region == "eu-central-1"
    assert "backend=aws" in line and FROM_NOTEBOOK_00 in line

    again = widgets.SettingsForm(backend="", region="")  # 00 re-opened: shows last time's
    assert again.fields["backend"].input.value == "aws"
    assert again.fields["region"].input.value == "eu-central-1"


def test_cli_uses_the_saved_settings_with_p_overriding():
    save_settings(LabConfig.from_parameters(backend="aws", repository_name="saved"))
    args = build_parser().parse_args(["check"])
    assert _lab_from_args(args).config.repository_name == "saved"
    args = build_parser().parse_args(["check", "-p", "repository_name", "given"])
    assert _lab_from_args(args).config.repository_name == "given"


@pytest.mark.parametrize("path", lab_notebooks(), ids=lambda p: p.name)
def test_papermill_lists_every_parameter_with_help(path):
    """`papermill --help-notebook` infers the parameters with its own parser."""
    inferred = inspect_notebook(path)
    assert list(inferred) == [*SETTINGS, "confirm_cost"]
    for name, parameter in inferred.items():
        assert parameter["help"], f"{name} has no help text papermill can read"
        assert parameter["inferred_type_name"] in ("str", "bool"), name
    assert inferred["repository_name"]["default"] == '""'  # empty: as chosen in 00


def test_open_lab_is_reachable_from_the_package():
    import labkit

    assert labkit.open_lab is open_lab


# -- the order: -p > LABKIT_BACKEND > notebook 00 > default; nothing traps -----------------


def test_each_step_of_the_order_wins_over_the_next(monkeypatch):
    assert resolve_settings().sources["backend"] == FROM_DEFAULT
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    auto = resolve_settings()
    assert auto.config.backend is Backend.ENDPOINT  # the documented auto-detection...
    assert auto.sources["backend"] == "default, as AWS_ENDPOINT_URL is set"
    save_settings(LabConfig.from_parameters(backend="aws"))
    assert resolve_settings().config.backend is Backend.AWS  # ...is only a default
    assert resolve_settings().sources["backend"] == FROM_NOTEBOOK_00
    monkeypatch.setenv("LABKIT_BACKEND", "sandbox")
    exported = resolve_settings()
    assert (exported.config.backend, exported.sources["backend"]) == (
        Backend.SANDBOX,
        FROM_ENVIRONMENT,
    )
    assert "backend=sandbox (from LABKIT_BACKEND)" in exported.describe()
    given = resolve_settings(FROM_COMMAND_LINE, backend="endpoint")
    assert (given.config.backend, given.sources["backend"]) == (Backend.ENDPOINT, "-p")


def test_an_exported_backend_is_not_overridden_by_memory(monkeypatch):
    """The issue's trap: endpoint remembered, LABKIT_BACKEND=sandbox exported."""
    save_state({"settings": {"backend": "endpoint"}})
    monkeypatch.setenv("LABKIT_BACKEND", "sandbox")
    assert resolve_settings().config.backend is Backend.SANDBOX
    args = build_parser().parse_args(["check"])
    assert _lab_from_args(args).backend is Backend.SANDBOX


def test_a_runs_p_reaches_00_but_is_not_remembered(monkeypatch, capsys):
    """`labkit run -p backend endpoint`: 00 uses endpoint for the run, remembers nothing
    of it; the next run (a new shell) is back on what was remembered before."""
    save_settings(LabConfig.from_parameters(backend="sandbox", repository_name="mine"))
    before = load_state()["settings"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv(RUN_SETTINGS_VARIABLE, "backend")  # as runner.run_notebooks sets it
    form = widgets.SettingsForm(backend="endpoint", region="", repository_name="")
    assert "[-p of this labkit run, not remembered]" in str(form)
    saved = form.save()
    out = capsys.readouterr().out
    assert saved.config.backend is Backend.ENDPOINT and saved.sources["backend"] == FROM_RUN
    assert load_state()["settings"] == before
    assert "backend=endpoint (-p of this labkit run, not remembered)" in out

    monkeypatch.delenv(RUN_SETTINGS_VARIABLE)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    after = resolve_settings()
    assert (after.config.backend, after.config.repository_name) == (Backend.SANDBOX, "mine")


def test_00_remembers_only_what_is_chosen_there(monkeypatch, capsys):
    """Values from LABKIT_BACKEND or the defaults are used, never remembered; an edit is."""
    monkeypatch.setenv("LABKIT_BACKEND", "aws")
    form = widgets.SettingsForm()
    assert form.fields["backend"].input.value == "aws"
    assert "[from LABKIT_BACKEND]" in str(form)
    form.fields["repository_name"].input.value = "edited"
    form.save()
    assert "Saved for notebooks 01–06: repository_name=edited (" in capsys.readouterr().out
    assert load_state()["settings"] == {"repository_name": "edited"}
    monkeypatch.delenv("LABKIT_BACKEND")
    assert resolve_settings().config.backend is Backend.SANDBOX  # aws did not stick


def test_00_refuses_a_backend_that_labkit_backend_would_override(monkeypatch):
    save_settings(LabConfig.from_parameters(repository_name="kept"))
    before = load_state()["settings"]
    monkeypatch.setenv("LABKIT_BACKEND", "sandbox")
    form = widgets.SettingsForm()
    form.fields["backend"].input.value = "aws"
    with pytest.raises(InputError) as caught:
        form.save()
    assert "LABKIT_BACKEND=sandbox is exported" in caught.value.what
    assert "unset LABKIT_BACKEND" in caught.value.fix
    assert load_state()["settings"] == before  # nothing remembered
    form.fields["backend"].input.value = "auto"  # auto: no choice of one's own
    assert form.save().config.backend is Backend.SANDBOX


def test_auto_in_00_forgets_the_remembered_backend():
    save_settings(LabConfig.from_parameters(backend="aws"))
    form = widgets.SettingsForm()
    assert form.fields["backend"].input.value == "aws"
    form.fields["backend"].input.value = "auto"
    assert form.save().sources["backend"] == FROM_DEFAULT
    assert "backend" not in load_state()["settings"]


def _remember_endpoint() -> None:
    save_state({"settings": {"backend": "endpoint"}, "service_names": {"k": "MYSERVICE1"}})


def test_a_remembered_endpoint_without_its_url_stops_at_once_naming_the_fix(capsys):
    _remember_endpoint()
    with pytest.raises(PrerequisiteError) as caught:
        open_lab()
    error = caught.value
    assert "backend 'endpoint' here (remembered from notebook 00)" in error.what
    assert "AWS_ENDPOINT_URL is not set" in error.why
    for fix in ("export AWS_ENDPOINT_URL=", "labkit settings forget", "-p backend sandbox"):
        assert fix in error.fix, fix
    assert "backend=endpoint (remembered from notebook 00)" in capsys.readouterr().out

    # In 00 the form marks it and saving refuses (so nothing starts); sandbox is the way out.
    form = widgets.SettingsForm()
    assert "AWS_ENDPOINT_URL is not set" in form.fields["backend"].error
    with pytest.raises(PrerequisiteError):
        form.save()
    form.fields["backend"].input.value = "sandbox"
    assert form.save().config.backend is Backend.SANDBOX
    form = widgets.SettingsForm()
    form.fields["backend"].input.value = "endpoint"  # chosen anew: the fix is in the form
    with pytest.raises(PrerequisiteError) as caught:
        form.save()
    assert "(chosen in the form)" in caught.value.what
    assert "choose sandbox in the form" in caught.value.fix
    assert load_state()["settings"]["backend"] == "sandbox"


def test_the_cli_stops_before_running_anything(tmp_path, capsys):
    _remember_endpoint()
    output = tmp_path / "runs"
    assert main(["run", "--until", "01", "-o", str(output)]) == 2
    captured = capsys.readouterr()
    assert "labkit settings forget" in captured.err and "AWS_ENDPOINT_URL" in captured.err
    assert "backend=endpoint (remembered from notebook 00)" in captured.out
    assert "Resetting" not in captured.out and not output.exists()  # nothing was done
    assert main(["check"]) == 2


def test_labkit_settings_shows_the_order_and_forget_forgets_only_settings(capsys):
    _remember_endpoint()
    assert main(["settings"]) == 1  # the requirement is missing: said, not hidden
    out = capsys.readouterr().out
    assert "remembered from notebook 00" in out and "❌" in out and "settings forget" in out
    assert main(["settings", "forget"]) == 0
    out = capsys.readouterr().out
    assert "Forgot the settings" in out and re.search(r"\nbackend +sandbox +default *\n", out)
    assert load_state() == {"service_names": {"k": "MYSERVICE1"}}
    assert main(["settings", "forget"]) == 0
    assert "nothing to forget" in capsys.readouterr().out
