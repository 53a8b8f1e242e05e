"""One way to find the kit's own files (labkit.kit_files), in a clone and in an installed
kit, and no working in the installed kit's copy. The real wheel, installed, is tested in
tests/notebooks/test_installed_kit.py."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from labkit import images, kit_files, launch, runner, taskdef
from labkit.errors import InputError
from labkit.names import NOTEBOOKS
from labkit.tasks import exercise

LABKIT = Path(kit_files.__file__).parent


def test_in_this_clone_every_kit_file_is_under_the_clones_notebooks():
    notebooks = kit_files.kit_notebooks()
    assert notebooks == LABKIT.parent / "notebooks"
    assert all((notebooks / name).is_file() for name in NOTEBOOKS.values())
    assert runner.NOTEBOOK_DIR == notebooks
    assert exercise.SOLUTIONS_DIR == notebooks / "solutions" and exercise.SOLUTIONS_DIR.is_dir()
    assert taskdef.LAB_TASK_DEFINITION == notebooks / "task-definition.json"
    assert images.SAMPLE_APP_DIR == notebooks / "sample-app"
    assert (images.SAMPLE_APP_DIR / "Dockerfile").is_file()


def test_no_other_module_finds_the_notebooks_by_itself():
    """Only kit_files knows where the notebooks folder is (relative to a module's file,
    or the folder that holds the package)."""
    offenders = [
        f"{path.relative_to(LABKIT)}: {line.strip()}"
        for path in LABKIT.rglob("*.py")
        if path.name != "kit_files.py"
        for line in path.read_text().splitlines()
        if '"notebooks"' in line and ("__file__" in line or "KIT_ROOT" in line)
    ]
    assert offenders == []


@pytest.fixture
def installed_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As in a wheel install: the package's own copy of the notebooks folder, writable
    by this user (as a pipx install in their home is)."""
    packaged = tmp_path / "site-packages" / "labkit" / "_kit_files" / "notebooks"
    shutil.copytree(kit_files.CLONE_NOTEBOOKS, packaged, ignore=shutil.ignore_patterns("my-*"))
    monkeypatch.setattr(kit_files, "INSTALLED_NOTEBOOKS", packaged)
    return packaged


def test_an_installed_kit_finds_its_packaged_copy_and_never_works_in_it(installed_copy, tmp_path):
    assert kit_files.kit_notebooks() == installed_copy
    assert kit_files.is_installed_copy(installed_copy)
    assert not kit_files.editable_in_place(installed_copy, NOTEBOOKS[0])
    output = tmp_path / "runs" / "1"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        work = runner.working_folder(installed_copy, output)
    assert work == output / "notebooks" and str(installed_copy) in printed.getvalue()
    assert [p.name for p in runner.lab_notebooks(work)] == list(NOTEBOOKS.values())
    assert (work / "solutions").is_dir() and (work / "task-definition.json").is_file()
    # A second run into the same folder keeps what the first one wrote there.
    (work / "my-task-definition.json").write_text("{}")
    assert runner.working_folder(installed_copy, output) == work
    assert (work / "my-task-definition.json").read_text() == "{}"


def test_labkit_lab_opens_a_copy_of_the_installed_kit_in_the_home_folder(
    installed_copy, tmp_path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        opened = launch.plan(launch.default_notebooks()).notebooks
    assert opened == tmp_path / "home" / launch.WORKSPACE_NAME
    assert (opened / NOTEBOOKS[3]).is_file() and (opened / "sample-app").is_dir()
    assert (opened / "docs" / "sandbox.md").is_file()  # what the notebooks link to
    assert "installed kit's notebooks stay as shipped" in printed.getvalue()


def test_a_writable_folder_runs_in_place_and_an_empty_one_is_refused(tmp_path):
    mine = tmp_path / "mine"
    shutil.copytree(kit_files.CLONE_NOTEBOOKS, mine)
    assert runner.working_folder(mine, tmp_path / "out") == mine
    with pytest.raises(InputError, match="No lab notebooks"):
        runner.working_folder(tmp_path / "out", tmp_path / "out")
