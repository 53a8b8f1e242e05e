"""The declared dependencies say what is used: pyproject.toml, environment.yml, constraints.txt.

Every package that labkit, the benchmarks, the notebooks' solutions and the tests import is
declared; every declared package is used; environment.yml lists the same packages from
conda-forge; constraints.txt pins every one of them at a version its specifier allows.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
DEV = [Requirement(r) for r in PROJECT["optional-dependencies"]["dev"]]
OPTIONAL = PROJECT["optional-dependencies"]
FIRST_PARTY = {"labkit", "benchmarks", "tests"}

#: Declared, used, and never imported: a reason each.
USED_WITHOUT_IMPORT = {
    "awscli": "the lab guide's aws commands in notebooks and terminals",
    "jupyterlab": "the app the notebooks open in",
    "ipykernel": "the notebooks' kernel (papermill runs it too)",
    "flask": "moto's server app, which the sandbox serves in-process, imports it",
    "flask-cors": "moto's server app, which the sandbox serves in-process, imports it",
    "ruff": "the linter and formatter (a command)",
}

#: PyPI name -> conda-forge name, where they differ.
CONDA_FORGE_NAMES = {"docker": "docker-py", "nbconvert": "nbconvert-core"}


def _third_party_imports(*folders: str) -> dict[str, set[str]]:
    """Top-level module -> files importing it, over the .py files of ``folders``."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _distributions(*folders: str) -> dict[str, set[str]]:
    """Distribution (canonical name) -> files in ``folders`` importing it."""
    imports = _third_party_imports(*folders)
    installed = _installed()
    by_dist: dict[str, set[str]] = {}
    for module, files in imports.items():
        dists = installed.get(module)
        assert dists, f"{module} (imported by {sorted(files)}) is not installed"
        for dist in dists:
            by_dist.setdefault(canonicalize_name(dist), set()).update(files)
    return by_dist


@functools.cache
def _installed() -> dict[str, list[str]]:
    return packages_distributions()


def _names(requirements: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements}


def test_everything_the_kit_imports_is_a_runtime_dependency():
    used = _distributions("labkit", "benchmarks", "notebooks")
    # labkit/classroom/ is the instructor's, installed with the `classroom` extra.
    classroom = _names([Requirement(r) for r in OPTIONAL["classroom"]])
    undeclared = {
        dist: sorted(files)
        for dist, files in used.items()
        if dist not in _names(RUNTIME)
        and not (dist in classroom and all(f.startswith("labkit/classroom/") for f in files))
    }
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


def test_everything_the_tests_import_is_declared():
    used = _distributions("tests")
    declared = _names(RUNTIME) | _names(DEV)
    undeclared = {dist: sorted(files) for dist, files in used.items() if dist not in declared}
    assert not undeclared, f"imported by tests but not declared (dev extra): {undeclared}"


def test_every_declared_package_is_used():
    kit = set(_distributions("labkit", "benchmarks", "notebooks"))
    tests = set(_distributions("tests"))
    unused_runtime = _names(RUNTIME) - kit - set(USED_WITHOUT_IMPORT)
    assert not unused_runtime, f"declared but labkit never uses them: {unused_runtime}"
    unused_dev = _names(DEV) - tests - kit - set(USED_WITHOUT_IMPORT)
    assert not unused_dev, f"dev dependencies no test uses: {unused_dev}"


def test_the_sandbox_takes_moto_without_its_server_extra():
    # moto[server] brings what other services need (cfn-lint, aws-xray-sdk, graphql-core …);
    # the sandbox serves its few services with moto's server app and flask.
    (moto,) = [r for r in RUNTIME if r.name == "moto"]
    assert not moto.extras & {"server", "all", "proxy"}, moto.extras
    assert {"ecr", "ecs", "ec2", "elbv2", "iam", "sts", "servicediscovery"} <= moto.extras


def test_environment_yml_lists_the_dependencies_from_conda_forge():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    (pip_section,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_section == ["-e ."], "pip installs the kit itself, conda everything else"

    python = next(d for d in conda if d.startswith("python="))
    version = python.removeprefix("python=")
    minimum = PROJECT["requires-python"].removeprefix(">=")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))

    listed = {}
    for spec in conda:
        name, constraint = re.fullmatch(r"([A-Za-z0-9_.-]+)(.*)", spec).groups()
        listed[name] = constraint
    expected = {
        CONDA_FORGE_NAMES.get(canonicalize_name(r.name), canonicalize_name(r.name)): str(
            r.specifier
        )
        for r in RUNTIME
    }
    assert {n: c for n, c in listed.items() if n not in {"python", "pip"}} == expected


def test_constraints_pin_every_dependency_at_an_allowed_version():
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if line.strip() and not line.startswith("#"))
    pins = {canonicalize_name(name): version for name, version in pins.items()}
    assert canonicalize_name(PROJECT["name"]) not in pins, "the kit itself is not pinned"
    for requirement in RUNTIME + DEV:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name]), (
            f"constraints.txt pins {name}=={pins[name]}, pyproject wants {requirement}:"
            " run scripts/lock.sh"
        )
