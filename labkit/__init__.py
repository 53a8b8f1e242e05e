"""ECS Lab Kit: learn Amazon ECR and ECS hands-on, in Jupyter.

The public API is small; everything a notebook needs is reachable from here::

    import labkit
    settings = labkit.widgets.settings_form(backend="sandbox")   # validated parameters
    lab = settings.lab()                                       # labkit.Lab
    labkit.ecr.ensure_repository(lab)                          # Task 1
    labkit.images.push_image(lab)                              # Task 2
    labkit.taskdef.register_lab_task_definition(lab)           # Task 3
    labkit.ecs.ensure_service(lab)                             # Task 4
    labkit.checks.task1.check()                                # ✅ / ❌
    board = labkit.dashboard(lab, seconds=120)                 # live service page

Modules: config (backend selection, validation), aws (sessions and clients), ecr,
images, shell (the lab's own commands), taskdef, ecs, network, checks, widgets,
views, cleanup, runner, errors.
Every error is a :class:`labkit.errors.LabkitError` (what / why / what to do); in a
Jupyter kernel it shows as a short box instead of a traceback.
"""

from labkit import (
    aws,
    checks,
    cleanup,
    config,
    ecr,
    ecs,
    environment,
    errors,
    images,
    network,
    runner,
    shell,
    taskdef,
    views,
    widgets,
)
from labkit.config import LAB, Backend, LabConfig
from labkit.dashboard import dashboard  # the function; the module is labkit.dashboard too
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
from labkit.lab import Lab

__version__ = "0.1.0"

__all__ = [
    "LAB",
    "Backend",
    "BackendError",
    "CheckFailed",
    "CredentialsMissing",
    "DockerUnavailable",
    "InputError",
    "Lab",
    "LabConfig",
    "LabkitError",
    "PrerequisiteError",
    "SandboxNotRunning",
    "aws",
    "checks",
    "cleanup",
    "config",
    "dashboard",
    "ecr",
    "ecs",
    "environment",
    "errors",
    "images",
    "network",
    "runner",
    "shell",
    "taskdef",
    "views",
    "widgets",
]

# In a Jupyter kernel, show LabkitError as a what/why/what-to-do box.
views.install_error_display()
