"""Run the lab's own shell lines from a notebook, printing them as a terminal would.

The lab types commands into a Session Manager window; here they run through ``bash``
with the variables they expect (``$REPOSITORY``) set, and their output is printed, so
the notebook shows exactly what the terminal would. A failing command does not raise
by default: the next cell decides what to do (e.g. build the offline stand-in image).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from labkit.errors import BackendError
from labkit.lab import Lab


class ExitCode(int):
    """An exit code that shows as ``exit code 0`` when it is a cell's last value."""

    def __repr__(self) -> str:
        return f"exit code {int(self)}"


def sh(
    command: str,
    env: dict[str, str] | None = None,
    check: bool = False,
    stdin: str | None = None,
    timeout: float = 600,
) -> ExitCode:
    """Print ``$ command``, run it with bash, print its output; return the exit code."""
    # f-strings, not str(): a blank (____) still in a variable says "not done yet" here,
    # before anything runs (see labkit.tasks.exercise.Blank).
    env = {name: f"{value}" for name, value in (env or {}).items()}
    print(f"$ {command}", flush=True)
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
    )
    secrets = [stdin or ""] + [v for k, v in env.items() if _secret_name(k)]
    output = mask(proc.stdout + proc.stderr, secrets).rstrip()
    if output:
        print(output)
    if proc.returncode != 0:
        print(f"(exit code {proc.returncode})")
        if check:
            raise BackendError(
                f"`{command}` failed with exit code {proc.returncode}.",
                why=output.splitlines()[-1] if output else "It printed nothing.",
                fix="Read the output above; fix the cause and re-run this cell.",
            )
    return ExitCode(proc.returncode)


def _secret_name(name: str) -> bool:
    return any(word in name.upper() for word in ("SECRET", "PASSWORD", "TOKEN"))


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (8+ characters) replaced by its first 4 characters + ``…``."""
    for secret in sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True):
        text = text.replace(secret, f"{secret[:4]}…(hidden)")
    return text


def docker_login(lab: Lab, registry: str, docker_config: str | None = None) -> ExitCode:
    """Step 23: ``aws ecr get-login-password | docker login …``, or its boto3 twin.

    With the ``aws`` CLI installed this runs the lab's exact line. Without it, boto3's
    GetAuthorizationToken supplies the same password on ``docker login``'s stdin. The
    password is never printed. ``docker_config``: a Docker config folder of the caller's
    (``DOCKER_CONFIG``) to keep the credential in, instead of the user's.
    """
    config_env = {"DOCKER_CONFIG": docker_config} if docker_config else {}
    from labkit.images import docker_client

    docker_client()  # without Docker, DockerUnavailable says why `docker login` cannot run
    lab_line = (
        f"aws ecr get-login-password --region {lab.region} | "
        f"docker login --username AWS --password-stdin {shlex.quote(registry)}"
    )
    if shutil.which("aws"):
        code = sh(lab_line, env={**lab.aws_environment(), **config_env})
        if code == 0:
            return code
        print("The aws CLI did not work here; using boto3's GetAuthorizationToken instead.")
    else:
        print("The aws CLI is not installed; boto3 does its part. The lab's line is:")
        print(f"  {lab_line}")
    from labkit import ecr

    login = ecr.registry_login(lab)
    return sh(
        f"docker login --username {login.username} --password-stdin {shlex.quote(registry)}",
        env=config_env,
        stdin=login.password,
        check=True,
    )
