"""environment.yml and pyproject.toml stay in step."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_installs_the_project_with_dev_extras():
    text = (ROOT / "environment.yml").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    python = re.search(r"^\s*-\s*python\s*=\s*([\d.]+)\s*$", text, re.M)
    assert python, "environment.yml must pin python"
    minimum = pyproject["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.group(1).split("."))) >= tuple(map(int, minimum.split(".")))
    assert python.group(1) == "3.11"
    assert re.search(r"^\s*-\s*-e\s+\.\[dev\]\s*$", text, re.M)
    assert "dev" in pyproject["project"]["optional-dependencies"]
    # Every other package would drift from pyproject: dependencies live there only.
    listed = re.findall(r"^\s*-\s*([A-Za-z0-9_.-]+)", text, re.M)
    assert set(listed) <= {"python", "pip", "conda-forge", "-e"}, listed


def test_pyproject_declares_what_labkit_imports():
    deps = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    for package in ("boto3", "docker", "ipywidgets", "papermill", "tqdm", "ipykernel", "nbformat"):
        assert package in deps, f"{package} is imported by labkit but not in pyproject.toml"
