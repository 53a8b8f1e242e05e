"""The lab's names and the kit's settings, defined once.

The names come from the lab guide (``../shared/lab-guide.md``); the sandbox provisions
the pre-existing ones (cluster, roles, load balancer, target group) and the notebooks
create the learner's ones (repository, task definition family, service…).
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from labkit.errors import InputError

#: The tag every resource the kit creates carries, so cleanup never touches anything else.
KIT_TAG_KEY = "labkit:created-by"
KIT_TAG_VALUE = "ecs-labkit"


def has_kit_tag(tags: Any) -> bool:
    """True when an AWS tag list (Key/Value or key/value casing) holds the kit's tag."""
    for tag in tags or []:
        key = tag.get("Key", tag.get("key"))
        value = tag.get("Value", tag.get("value"))
        if key == KIT_TAG_KEY and value == KIT_TAG_VALUE:
            return True
    return False


def role_trust_policy(service: str) -> str:
    """A role trust policy that lets ``service`` (e.g. ec2.amazonaws.com) assume it."""
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


#: The region the lab guide uses.
DEFAULT_REGION = "us-west-2"

#: moto's account id; the sandbox's account.
SANDBOX_ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class LabNames:
    """Names used by the lab guide, pre-provisioned and learner-created alike."""

    # Pre-provisioned by the lab environment (the sandbox, or the CloudFormation stack).
    cluster: str = "ECSCluster"
    instance_role: str = "Ec2instanceRole"
    service_role: str = "ecsServiceRole"
    load_balancer: str = "Myloadbalancer"
    target_group: str = "myTargetgroup"
    # Created by the learner in Tasks 1–4.
    repository: str = "myrepo"
    repository_statement: str = "my_repository_statement"
    task_family: str = "ecs-demo"
    container_name: str = "ecs-sample"
    service_prefix: str = "MYSERVICE"
    namespace: str = "myprivatednsnamespace"
    discovery_ttl_seconds: int = 10


LAB = LabNames()


# --------------------------------------------------------------------------------------
# Backend selection and input validation
# --------------------------------------------------------------------------------------


class Backend(StrEnum):
    """Where the lab's AWS calls go."""

    SANDBOX = "sandbox"  # the embedded offline sandbox (default)
    ENDPOINT = "endpoint"  # any AWS-compatible endpoint given by AWS_ENDPOINT_URL
    AWS = "aws"  # real AWS, default boto3 credential chain


#: ECR's repository-name rule, from the CreateRepository API reference.
REPOSITORY_NAME_PATTERN = re.compile(
    r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*"
)
REGION_PATTERN = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
#: ECS service names: up to 255 letters, numbers, hyphens and underscores.
SERVICE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")

#: Environment variables that make every check strict (a failed check raises).
STRICT_ENV_VARS = ("LABKIT_STRICT",)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def coerce_backend(value: Any) -> Backend:
    """``"auto"``/empty → LABKIT_BACKEND, else ``endpoint`` if AWS_ENDPOINT_URL is set,
    else the sandbox."""
    text = "" if _blank(value) else str(value).strip().lower()
    if text in ("", "auto"):
        text = os.environ.get("LABKIT_BACKEND", "").strip().lower()
        if not text:
            text = "endpoint" if os.environ.get("AWS_ENDPOINT_URL") else "sandbox"
    try:
        return Backend(text)
    except ValueError:
        raise InputError(
            f"Unknown backend {value!r}.",
            why="The backend must be one of: auto, sandbox, endpoint, aws.",
            fix='Set backend = "sandbox" (offline, the default), "endpoint" '
            '(with AWS_ENDPOINT_URL) or "aws" (real AWS, costs money).',
        ) from None


def coerce_account_id(value: Any) -> str:
    """A 12-digit account id as a string; ``""`` means "whatever STS says".

    papermill's ``-p account_id 012345678901`` arrives as the int 12345678901, so
    ints of 10 or 11 digits are zero-padded back to 12 digits (leading zeros lost on the
    way). A shorter int is refused rather than padded: it is far more likely a typo than
    an account id with three or more leading zeros (``papermill -r`` keeps text as text).
    """
    if _blank(value):
        return ""
    if isinstance(value, bool):
        raise InputError(f"Account id {value!r} is not valid.", why="Got a boolean.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        digits = len(str(abs(value)))
        text = f"{value:012d}" if value >= 0 and 10 <= digits <= 12 else str(value)
    else:
        text = str(value).strip().replace("-", "")
    if not re.fullmatch(r"\d{12}", text):
        found = f"{len(text)} digits" if text.isdigit() else "characters other than digits"
        raise InputError(
            f"Account id {value!r} is not valid.",
            why=f"An AWS account id is exactly 12 digits, e.g. 123456789012; this has {found}.",
            fix="Copy the account id shown in notebook 00 (or leave it empty). With "
            "papermill, pass it as text to keep leading zeros: -r account_id 012345678901.",
        )
    return text


def coerce_region(value: Any) -> str:
    """A region name like ``us-west-2``; ``""`` means the backend's default."""
    if _blank(value):
        return ""
    text = str(value).strip().lower()
    if not REGION_PATTERN.fullmatch(text):
        raise InputError(
            f"Region {value!r} is not valid.",
            why="A region looks like us-west-2 or eu-central-1.",
            fix=f'Use the lab\'s region, "{DEFAULT_REGION}", or leave it empty.',
        )
    regions = known_regions()
    if regions and text not in regions:
        close = difflib.get_close_matches(text, sorted(regions), n=1)
        hint = f'Did you mean "{close[0]}"? ' if close else ""
        raise InputError(
            f"Region {value!r} does not exist.",
            why="It is not one of the regions where Amazon ECS runs (botocore's list, "
            "which ships with boto3).",
            fix=f'{hint}Use the lab\'s region, "{DEFAULT_REGION}", or leave it empty. '
            "(A region newer than your boto3: `pip install -U boto3`.)",
        )
    return text


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region where ECS runs, in every partition botocore knows (no network)."""
    try:
        import botocore.session

        session = botocore.session.get_session()
        found: set[str] = set()
        for partition in session.get_available_partitions():
            found |= set(session.get_available_regions("ecs", partition_name=partition))
        return frozenset(found)
    except Exception:  # an unreadable endpoints file must not block the lab
        return frozenset()


def coerce_repository_name(value: Any) -> str:
    """An ECR repository name: lowercase, 2–256 characters, ECR's pattern."""
    text = "" if _blank(value) else str(value).strip()
    problem = ""
    if not 2 <= len(text) <= 256:
        problem = f"it has {len(text)} characters; ECR wants 2 to 256"
    elif text != text.lower():
        problem = "it has uppercase letters; ECR wants lowercase"
    elif not REPOSITORY_NAME_PATTERN.fullmatch(text):
        problem = (
            "ECR allows lowercase letters and digits, separated by single . _ - or /, "
            "starting and ending with a letter or digit"
        )
    if problem:
        raise InputError(
            f"Repository name {value!r} is not valid.",
            why=problem[:1].upper() + problem[1:] + ".",
            fix=f'Use the lab\'s name, "{LAB.repository}", or e.g. "team/my-app".',
        )
    return text


def coerce_service_name(value: Any) -> str:
    """An ECS service name; ``""`` means "MYSERVICE<random number>", chosen once."""
    if _blank(value):
        return ""
    text = str(value).strip()
    if not SERVICE_NAME_PATTERN.fullmatch(text):
        raise InputError(
            f"Service name {value!r} is not valid.",
            why="ECS service names are 1-255 letters, digits, hyphens and underscores.",
            fix=f'Leave it empty to get "{LAB.service_prefix}<random number>".',
        )
    return text


def strict_checks() -> bool:
    """True under CI: a failed check raises :class:`~labkit.errors.CheckFailed`."""
    flag = os.environ.get("LABKIT_STRICT", "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    return os.environ.get("CI", "").strip().lower() == "true"


@dataclass(frozen=True)
class LabConfig:
    """Everything a notebook's ``parameters`` cell can set, validated.

    Build it with :meth:`from_parameters`, which coerces what papermill or a widget
    hands over (ints for account ids, stray spaces…) and raises
    :class:`~labkit.errors.InputError` with a fix when a value is wrong.
    """

    backend: Backend = Backend.SANDBOX
    region: str = ""  # "" → the backend's region
    account_id: str = ""  # "" → whatever STS says; set → must match STS
    repository_name: str = LAB.repository
    service_name: str = ""  # "" → MYSERVICE<random>, persisted per account/region
    names: LabNames = field(default=LAB)

    @classmethod
    def from_parameters(
        cls,
        backend: Any = "auto",
        region: Any = "",
        account_id: Any = "",
        repository_name: Any = LAB.repository,
        service_name: Any = "",
        **unknown: Any,
    ) -> LabConfig:
        if unknown:
            raise InputError(
                f"Unknown parameter(s): {', '.join(sorted(unknown))}.",
                why="Expected backend, region, account_id, repository_name, service_name.",
                fix="Check the spelling in the parameters cell or on the papermill line.",
            )
        return cls(
            backend=coerce_backend(backend),
            region=coerce_region(region),
            account_id=coerce_account_id(account_id),
            repository_name=coerce_repository_name(repository_name),
            service_name=coerce_service_name(service_name),
        )

    def with_changes(self, **changes: Any) -> LabConfig:
        return replace(self, **changes)


# --------------------------------------------------------------------------------------
# A little state that must survive kernels: the settings chosen in 00, the service number
# --------------------------------------------------------------------------------------


def state_path() -> Path:
    """Where the kit remembers choices across kernels (``LABKIT_STATE_DIR`` overrides)."""
    base = os.environ.get("LABKIT_STATE_DIR") or Path.home() / ".labkit"
    return Path(base) / "state.json"


def load_state() -> dict[str, Any]:
    try:
        state = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def save_state(state: dict[str, Any]) -> None:
    """Write the state file atomically, readable by its owner only (it names the account)."""
    path = state_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(state, indent=2, sort_keys=True))
    os.chmod(tmp, 0o600)  # an older tmp file may have had wider permissions
    tmp.replace(path)


#: The settings notebook 00 saves and every later notebook (and the CLI) picks up.
SETTING_NAMES = ("backend", "region", "account_id", "repository_name", "service_name")

#: Where a setting in use came from, as :meth:`ResolvedSettings.describe` says it.
FROM_PARAMETERS = "this notebook's parameters"
FROM_NOTEBOOK_00 = "chosen in notebook 00"
FROM_ENVIRONMENT = "the environment"
FROM_DEFAULT = "default"

#: What an empty setting means, in words.
_DEFAULT_WORDS = {
    "region": "the backend's region",
    "account_id": "whatever STS says",
    "service_name": f"{LAB.service_prefix}<random number>",
}


def saved_settings() -> dict[str, Any]:
    """The settings saved by notebook 00 (``{}`` before it ran)."""
    saved = load_state().get("settings", {})
    return {k: v for k, v in saved.items() if k in SETTING_NAMES} if isinstance(saved, dict) else {}


def save_settings(config: LabConfig) -> Path:
    """Remember ``config`` for the later notebooks; returns the state file's path."""
    state = load_state()
    state["settings"] = {
        "backend": config.backend.value,
        "region": config.region,
        "account_id": config.account_id,
        "repository_name": config.repository_name,
        "service_name": config.service_name,
    }
    save_state(state)
    return state_path()


def is_set(name: str, value: Any) -> bool:
    """False for an empty setting (and backend ``auto``): those fall back to notebook 00."""
    if _blank(value):
        return False
    return not (name == "backend" and str(value).strip().lower() == "auto")


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings in use and where each came from (parameters, notebook 00, defaults)."""

    config: LabConfig
    sources: dict[str, str]

    def value_text(self, name: str) -> str:
        value = getattr(self.config, name)
        value = value.value if isinstance(value, Backend) else value
        return str(value) if value != "" else _DEFAULT_WORDS.get(name, "")

    def describe(self) -> str:
        """One plain-text line: the settings in use, grouped by where they came from."""
        groups: dict[str, list[str]] = {}
        for name in SETTING_NAMES:
            groups.setdefault(self.sources[name], []).append(f"{name}={self.value_text(name)}")
        order = (FROM_PARAMETERS, FROM_NOTEBOOK_00, FROM_ENVIRONMENT, FROM_DEFAULT)
        parts = [f"{', '.join(groups[src])} ({src})" for src in order if src in groups]
        return (
            f"Lab settings: {'; '.join(parts)}. To change them, re-run {NOTEBOOKS[0]} "
            "(papermill: -p NAME VALUE)."
        )

    def __str__(self) -> str:
        return self.describe()


def resolve_settings(**parameters: Any) -> ResolvedSettings:
    """The settings to use: a non-empty parameter wins, else what notebook 00 saved,
    else the default (for the backend: LABKIT_BACKEND, or endpoint when AWS_ENDPOINT_URL
    is set, or the sandbox). Validated; an invalid saved value names the state file."""
    unknown = set(parameters) - set(SETTING_NAMES)
    if unknown:
        raise InputError(
            f"Unknown parameter(s): {', '.join(sorted(unknown))}.",
            why=f"Expected {', '.join(SETTING_NAMES)}.",
            fix="Check the spelling in the parameters cell or on the papermill line.",
        )
    saved = saved_settings()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in SETTING_NAMES:
        given = parameters.get(name)
        if is_set(name, given):
            values[name], sources[name] = given, FROM_PARAMETERS
        elif is_set(name, saved.get(name)):
            values[name], sources[name] = saved[name], FROM_NOTEBOOK_00
        else:
            values[name] = LAB.repository if name == "repository_name" else ""
            environment = name == "backend" and (
                os.environ.get("LABKIT_BACKEND", "").strip() or os.environ.get("AWS_ENDPOINT_URL")
            )
            sources[name] = FROM_ENVIRONMENT if environment else FROM_DEFAULT
    try:
        config = LabConfig.from_parameters(**values)
    except InputError as exc:
        if FROM_NOTEBOOK_00 not in sources.values():
            raise
        raise InputError(
            exc.what,
            why=f"{exc.why} (Settings remembered from notebook 00 are in {state_path()}.)",
            fix=f"{exc.fix} Then re-run {NOTEBOOKS[0]} to save the fixed settings.",
        ) from None
    return ResolvedSettings(config, sources)


#: The notebooks, in order; errors name the one to run.
NOTEBOOKS: dict[int, str] = {
    0: "00_start_here.ipynb",
    1: "01_task1_repository.ipynb",
    2: "02_task2_push_image.ipynb",
    3: "03_task3_task_definition.ipynb",
    4: "04_task4_service.ipynb",
    5: "05_operating_the_service.ipynb",
    6: "06_cleanup.ipynb",
}
