from __future__ import annotations

import dataclasses

import pytest

from labkit.config import (
    Backend,
    LabConfig,
    coerce_account_id,
    coerce_backend,
    coerce_region,
    coerce_repository_name,
    coerce_service_name,
    strict_checks,
)
from labkit.errors import InputError


@pytest.mark.parametrize(
    "given, expected",
    [
        (12345678901, "012345678901"),  # papermill -p account_id 012345678901
        ("012345678901", "012345678901"),
        ("0123-4567-8901", "012345678901"),
        (123456789012.0, "123456789012"),
        ("", ""),
        (None, ""),
    ],
)
def test_account_id_stays_a_12_char_string(given, expected):
    assert coerce_account_id(given) == expected


@pytest.mark.parametrize("bad", ["12345", "abcdefghijkl", True, 1234567890123])
def test_bad_account_ids_say_what_is_expected(bad):
    with pytest.raises(InputError) as info:
        coerce_account_id(bad)
    assert "12 digits" in str(info.value) or "boolean" in str(info.value)


@pytest.mark.parametrize("name", ["myrepo", "ab", "team/my-app", "a.b_c-d/e", "x" * 256])
def test_valid_repository_names(name):
    assert coerce_repository_name(name) == name


@pytest.mark.parametrize(
    "name, why",
    [
        ("MyRepo", "uppercase"),
        ("a", "2 to 256"),
        ("x" * 257, "2 to 256"),
        ("my..repo", "separated by single"),
        ("-repo", "separated by single"),
        ("repo/", "separated by single"),
        ("my repo", "separated by single"),
    ],
)
def test_invalid_repository_names_explain_the_rule(name, why):
    with pytest.raises(InputError) as info:
        coerce_repository_name(name)
    assert why in info.value.why
    assert info.value.fix


def test_region_and_service_name():
    assert coerce_region(" US-WEST-2 ") == "us-west-2"
    with pytest.raises(InputError):
        coerce_region("oregon")
    assert coerce_service_name("MYSERVICE42") == "MYSERVICE42"
    with pytest.raises(InputError):
        coerce_service_name("my service")


def test_backend_auto_resolution(monkeypatch):
    assert coerce_backend("auto") is Backend.SANDBOX
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:5000")
    assert coerce_backend("") is Backend.ENDPOINT
    monkeypatch.setenv("LABKIT_BACKEND", "aws")
    assert coerce_backend("auto") is Backend.AWS
    assert coerce_backend("SANDBOX") is Backend.SANDBOX
    with pytest.raises(InputError):
        coerce_backend("localstack")


def test_from_parameters_rejects_unknown_names():
    with pytest.raises(InputError) as info:
        LabConfig.from_parameters(repo_name="myrepo")
    assert "repo_name" in info.value.what


def test_strict_checks_follow_ci(monkeypatch):
    assert not strict_checks()
    monkeypatch.setenv("CI", "true")
    assert strict_checks()
    monkeypatch.setenv("LABKIT_STRICT", "0")
    assert not strict_checks()
    monkeypatch.setenv("LABKIT_STRICT", "1")
    monkeypatch.delenv("CI")
    assert strict_checks()


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("repository_name", "BAD", "lowercase"),
        ("account_id", "12345", "12 digits"),
        ("region", "oregon", "us-west-2"),
        ("service_name", "my service", "letters, digits"),
        ("backend", "localstack", "sandbox"),
    ],
)
def test_a_config_is_validated_wherever_it_is_built(field, value, expected):
    """Not only from_parameters: the fields themselves refuse a bad value."""
    with pytest.raises(InputError) as info:
        LabConfig(**{field: value})
    assert repr(value) in info.value.what and field.split("_")[0] in info.value.what.lower()
    assert expected in info.value.why
    with pytest.raises(InputError):
        dataclasses.replace(LabConfig(), **{field: value})


def test_fields_coerce_what_papermill_and_widgets_hand_over():
    config = LabConfig(backend=" SANDBOX ", account_id=12345678901, region=" US-WEST-2 ")
    assert config.backend is Backend.SANDBOX
    assert (config.account_id, config.region) == ("012345678901", "us-west-2")
    assert config == LabConfig.from_parameters(
        backend="sandbox", account_id="012345678901", region="us-west-2"
    )
