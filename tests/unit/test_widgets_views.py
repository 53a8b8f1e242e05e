from __future__ import annotations

import pytest

from labkit import display, widgets
from labkit.config import coerce_repository_uri
from labkit.errors import InputError, PrerequisiteError


def test_settings_form_prefills_coerces_and_prints_plain_text(capsys):
    form = widgets.settings_form(backend="sandbox", account_id=12345678901)
    out = capsys.readouterr().out
    assert "✅ account id: 012345678901" in out
    assert form.config.account_id == "012345678901"
    assert form.fields["backend"].input.value == "sandbox"


def test_invalid_field_shows_at_once_and_config_raises(capsys):
    form = widgets.settings_form(repository_name="MyRepo")
    assert "❌ repository name: MyRepo" in capsys.readouterr().out
    assert form.fields["repository_name"].status.value.startswith("❌")
    with pytest.raises(InputError):
        form.config  # noqa: B018
    form.fields["repository_name"].input.value = "myrepo"  # the learner fixes it
    assert form.fields["repository_name"].status.value.startswith("✅")
    assert form.config.repository_name == "myrepo"


def test_unknown_parameter_is_refused():
    with pytest.raises(InputError):
        widgets.SettingsForm(repo="x")


def test_repository_uri_shape():
    assert coerce_repository_uri(" 127.0.0.1:4711/myrepo ") == "127.0.0.1:4711/myrepo"
    with pytest.raises(InputError):
        coerce_repository_uri("myrepo:latest")


def test_error_box_has_what_why_fix():
    error = PrerequisiteError("Task 1 is not done.", why="No repo.", fix="Run 01 first.")
    html_text, plain = display.error_box(error)
    assert plain.splitlines() == [
        "PrerequisiteError",
        "❌ Task 1 is not done.",
        "Why: No repo.",
        "What to do: Run 01 first.",
    ]
    assert "Run 01 first." in html_text and "<table>" in html_text


def test_ipython_shows_labkit_errors_as_a_box_without_traceback(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        assert display.install_error_display()
        result = shell.run_cell(
            "from labkit.errors import PrerequisiteError\n"
            "raise PrerequisiteError('Task 1 is not done.', fix='Run 01 first.')"
        )
        assert not result.success  # papermill still sees a failed cell
        out = capsys.readouterr()
        text = out.out + out.err
        assert "What to do: Run 01 first." in text
        assert "Traceback" not in text
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()


def test_table_plain_text(capsys):
    display.table("T", ["a", "bb"], [[1, None], ["xyz", 2]])
    assert capsys.readouterr().out.splitlines() == ["T", "a    bb", "1      ", "xyz  2 "]


def test_botocore_errors_are_explained():
    from botocore.exceptions import ClientError

    exc = ClientError(
        {"Error": {"Code": "RepositoryNotFoundException", "Message": "no such repo"}},
        "DescribeImages",
    )
    error = display.explain(exc)
    assert error.what == "AWS refused DescribeImages."
    assert "RepositoryNotFoundException: no such repo" in error.why
    assert "earlier notebooks" in error.fix


def test_registry_password_never_prints():
    from labkit.ecr import RegistryLogin

    login = RegistryLogin("127.0.0.1:4711", "AWS", "s3cr3t-token")
    assert "s3cr3t" not in repr(login) and "s3cr3t" not in str(login)
