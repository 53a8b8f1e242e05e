"""Every error labkit raises, in one tree.

Each error carries three parts a learner can act on:

- ``what``: what happened, in one sentence;
- ``why``: the cause, or what was expected versus what was found;
- ``fix``: what to do next.

``str(error)`` joins them, so a plain traceback still reads well, and notebooks show
them as a short box instead of a traceback wall (see ``labkit.display``).

    LabkitError
    ├── InputError          a value the learner typed is not valid (name, URI, JSON…)
    ├── PrerequisiteError   a step ran before the one it needs (names the notebook)
    ├── BackendError        the sandbox, Docker or AWS cannot be reached or refused
    │   ├── SandboxNotRunning
    │   ├── DockerUnavailable
    │   └── CredentialsMissing
    └── CheckFailed         a task's check found the lab not in the expected state
"""

from __future__ import annotations


class LabkitError(Exception):
    """Base of every labkit error: what happened, why, and what to do next."""

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        self.what = what
        self.why = why
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [self.what]
        if self.why:
            parts.append(f"Why: {self.why}")
        if self.fix:
            parts.append(f"What to do: {self.fix}")
        return "\n".join(parts)


class InputError(LabkitError, ValueError):
    """A value given to labkit (name, URI, region, JSON…) is not valid."""


class PrerequisiteError(LabkitError):
    """A step ran before the step it depends on."""


class BackendError(LabkitError):
    """The sandbox, Docker Engine or AWS could not be reached or refused the request."""


class SandboxNotRunning(BackendError):
    """The embedded sandbox is not running."""


class DockerUnavailable(BackendError):
    """Docker Engine is not installed or its daemon is not running."""


class CredentialsMissing(BackendError):
    """AWS mode was chosen but no AWS credentials were found."""


class CheckFailed(LabkitError, AssertionError):
    """A task's check found the lab in a different state than expected."""
