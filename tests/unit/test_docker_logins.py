"""Task 2's check sees each new ``docker login``, wherever Docker keeps it.

Inline in config.json's ``auths``, or through a credential helper (``credsStore``, as
Docker Desktop sets, or a host's ``credHelpers``): then config.json keeps only ``{}`` for
the host and the check must ask the helper, a real program here, as Docker does.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from labkit.tasks import task2
from tests.credential_helper import install_credential_helper, store_credential

HOST = "127.0.0.1:5123"
HELPER = "labkittest"


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


@pytest.fixture
def helper_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    install_credential_helper(folder, HELPER)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    return folder


def _write_config(folder: Path, config: dict) -> None:
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "config",
    [
        {"credsStore": HELPER, "auths": {HOST: {}}},  # Docker Desktop's form
        {"credHelpers": {HOST: HELPER}, "auths": {HOST: {}}},  # a helper for this host
    ],
    ids=["credsStore", "credHelpers"],
)
def test_each_login_through_a_credential_helper_changes_the_entry(
    docker_config: Path, helper_folder: Path, config: dict
) -> None:
    _write_config(docker_config, config)
    assert task2._docker_login_entry(HOST) == "none"  # the helper has nothing yet

    store_credential(helper_folder, HELPER, HOST, "AWS", "first-token-0123456789")
    first = task2._docker_login_entry(HOST)
    store_credential(helper_folder, HELPER, HOST, "AWS", "second-token-0123456789")
    second = task2._docker_login_entry(HOST)
    assert first is not None and first.startswith(f"helper:{HELPER}:")
    assert second is not None and second.startswith(f"helper:{HELPER}:")
    assert first != second  # a new token, a new entry: config.json did not change
    assert "token" not in first + second  # only a hash of the credential is kept

    assert task2._docker_login_entry("127.0.0.1:9999") == "none"  # another host


def test_a_credential_stored_under_https_is_found(docker_config: Path, helper_folder: Path) -> None:
    """Older docker CLIs kept the address as typed: ``docker login https://HOST``."""
    _write_config(docker_config, {"credsStore": HELPER})
    store_credential(helper_folder, HELPER, f"https://{HOST}", "AWS", "a-token-0123456789")
    assert task2._docker_login_entry(HOST).startswith(f"helper:{HELPER}:")


def test_a_helper_not_found_means_the_login_cannot_be_read(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "no login": a JupyterLab started from the Dock may lack the helper's folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _write_config(docker_config, {"credsStore": "labkit-not-installed", "auths": {HOST: {}}})
    assert task2._docker_login_entry(HOST) is None


def test_a_helper_in_docker_desktops_user_folder_is_found(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    install_credential_helper(home / ".docker" / "bin", HELPER)
    monkeypatch.setenv("HOME", str(home))
    _write_config(docker_config, {"credsStore": HELPER})
    store_credential(home / ".docker" / "bin", HELPER, HOST, "AWS", "a-token-0123456789")
    assert task2._docker_login_entry(HOST).startswith(f"helper:{HELPER}:")


def test_a_helper_that_never_answers_is_given_up_on(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung helper (Docker Desktop not running): unknown (None), after the timeout."""
    folder = tmp_path / "bin"
    folder.mkdir()
    hung = folder / "docker-credential-labkithung"
    hung.write_text("#!/bin/sh\nexec sleep 30\n")
    hung.chmod(0o700)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    monkeypatch.setattr(task2, "CREDENTIAL_HELPER_TIMEOUT_S", 0.5)
    _write_config(docker_config, {"credsStore": "labkithung"})
    started = time.monotonic()
    assert task2._docker_login_entry(HOST) is None
    assert time.monotonic() - started < 5


def test_a_helper_name_that_is_not_a_program_name_is_not_run(docker_config: Path) -> None:
    _write_config(docker_config, {"credHelpers": {HOST: "../../bin/sh"}})
    assert task2._docker_login_entry(HOST) is None


def test_inline_logins_change_the_entry_and_match_by_host(docker_config: Path) -> None:
    def auth(token: str) -> dict:
        return {"auth": base64.b64encode(f"AWS:{token}".encode()).decode()}

    assert task2._docker_login_entry(HOST) == "none"  # no config.json yet
    _write_config(docker_config, {"auths": {HOST: auth("first-token")}})
    first = task2._docker_login_entry(HOST)
    _write_config(docker_config, {"auths": {HOST: auth("second-token")}})
    second = task2._docker_login_entry(HOST)
    assert first.startswith("auth:") and second.startswith("auth:") and first != second
    # Docker finds a key written with a scheme or a path under the host too.
    _write_config(docker_config, {"auths": {f"https://{HOST}/v2/": auth("second-token")}})
    assert task2._docker_login_entry(HOST) == second
    _write_config(docker_config, {"auths": {"127.0.0.1:9999": auth("second-token")}})
    assert task2._docker_login_entry(HOST) == "none"
