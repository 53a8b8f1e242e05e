"""Settings chosen once in notebook 00, remembered, and picked up by the other notebooks."""

from __future__ import annotations

import stat

import pytest
from papermill.inspection import inspect_notebook

from labkit import widgets
from labkit.cli import _lab_from_args, build_parser
from labkit.config import SETTINGS, Backend, LabConfig
from labkit.errors import InputError
from labkit.lab import open_lab
from labkit.runner import lab_notebooks
from labkit.state import (
    FROM_DEFAULT,
    FROM_ENVIRONMENT,
    FROM_NOTEBOOK_00,
    FROM_PARAMETERS,
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
    assert "backend=sandbox" in line and "(chosen in notebook 00)" in line
    assert "account_id=whatever STS says" in line and "00_start_here.ipynb" in line


def test_a_bad_saved_value_names_the_state_file():
    save_state({"settings": {"backend": "sandbox", "repository_name": "MyRepo"}})
    with pytest.raises(InputError) as caught:
        resolve_settings()
    assert str(state_path()) in caught.value.why
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
