"""ECS Lab Kit: learn Amazon ECR and ECS hands-on, in Jupyter.

The public API is small; everything a notebook needs is reachable from here::

    import labkit
    settings = labkit.widgets.settings_form(backend="sandbox")   # notebook 00: the form
    settings.save(); lab = settings.lab()                      # remembered, a labkit.Lab
    lab = labkit.open_lab()                                    # notebooks 01–06: as in 00
    from labkit.tasks.task1 import q1, ____                   # Task 1's exercises
    with q1.attempt():                                         # the learner's own call
        boto3.client("ecr").create_repository(repositoryName="myrepo")
    q1.check(); q1.hint(); q1.solution(); q1.solve()           # ✅ / ❌, help, catch-up
    board = labkit.dashboard(lab, seconds=120)                 # live service page

Modules, top to bottom (each imports only those below it): cli, runner; tasks (the
exercises), teardown, widgets, views, live_dashboard; ecr, images, shell, taskdef, ecs,
network, environment, backends (endpoint, aws); lab; aws (sessions and clients); state
(what is remembered across kernels); config (the settings, their spec and checks); names
(the lab guide's names); display (tables, notes, the error box) and errors, which every
module may use.
Every error is a :class:`labkit.errors.LabkitError` (what / why / what to do); in a
Jupyter kernel it shows as a short box instead of a traceback.
"""

import importlib
import sys
from typing import TYPE_CHECKING, Any

from labkit.errors import (
    BackendError,
    CheckFailed,
    CredentialsMissing,
    DockerUnavailable,
    InputError,
    LabkitError,
    PrerequisiteError,
    SandboxNotRunning,
)

if TYPE_CHECKING:
    from labkit.config import Backend, LabConfig
    from labkit.lab import Lab, open_lab
    from labkit.live_dashboard import dashboard
    from labkit.names import LAB

_SUBMODULES = {
    "aws",
    "config",
    "display",
    "ecr",
    "ecs",
    "environment",
    "errors",
    "images",
    "live_dashboard",
    "names",
    "network",
    "runner",
    "shell",
    "state",
    "taskdef",
    "tasks",
    "teardown",
    "views",
    "widgets",
}
_NAMES = {
    "LAB": "labkit.names",
    "Backend": "labkit.config",
    "LabConfig": "labkit.config",
    "Lab": "labkit.lab",
    "open_lab": "labkit.lab",
    "dashboard": "labkit.live_dashboard",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the sandbox process and the CLI need none of IPython,
    # ipywidgets or boto3's clients that the notebook modules pull in.
    if name in _SUBMODULES:
        return importlib.import_module(f"labkit.{name}")
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "LAB",
    "Backend",
    "LabConfig",
    "Lab",
    "open_lab",
    "dashboard",
    "BackendError",
    "CheckFailed",
    "CredentialsMissing",
    "DockerUnavailable",
    "InputError",
    "LabkitError",
    "PrerequisiteError",
    "SandboxNotRunning",
    *sorted(_SUBMODULES),
]


if "ipykernel" in sys.modules:  # in a Jupyter kernel, a LabkitError shows as a short box
    importlib.import_module("labkit.display").install_error_display()
