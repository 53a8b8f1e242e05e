"""The lab's settings, specified once: :class:`LabConfig`, each field with its check.

Each field of LabConfig carries a :class:`Setting` (how a value is checked, its help
text); from that one spec come the settings form, :meth:`LabConfig.from_parameters`,
``labkit run -p``'s help and the notebooks' ``parameters`` cell. The checks of the
learner's other typed values (a repository URI) live here too.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from labkit.errors import InputError
from labkit.names import DEFAULT_REGION, LAB


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


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


#: An exported backend: it comes before what notebook 00 remembers (see labkit.state).
BACKEND_VARIABLE = "LABKIT_BACKEND"
#: The backend when nothing chose one; ``labkit lab`` sets it for its session.
DEFAULT_BACKEND_VARIABLE = "LABKIT_DEFAULT_BACKEND"


def default_backend() -> tuple[str, str]:
    """The backend when no one chose one, and why: ``labkit lab``'s session default
    (LABKIT_DEFAULT_BACKEND), else ``endpoint`` when AWS_ENDPOINT_URL is set, else the
    sandbox."""
    session = os.environ.get(DEFAULT_BACKEND_VARIABLE, "").strip().lower()
    if session:
        return session, f"default of this labkit lab ({DEFAULT_BACKEND_VARIABLE})"
    if os.environ.get("AWS_ENDPOINT_URL", "").strip():
        return Backend.ENDPOINT.value, "default, as AWS_ENDPOINT_URL is set"
    return Backend.SANDBOX.value, "default"


def coerce_backend(value: Any) -> Backend:
    """``"auto"``/empty → LABKIT_BACKEND, else :func:`default_backend`."""
    text = "" if _blank(value) else str(value).strip().lower()
    if text in ("", "auto"):
        text = os.environ.get(BACKEND_VARIABLE, "").strip().lower() or default_backend()[0]
    try:
        return Backend(text)
    except ValueError:
        raise InputError(
            f"Unknown backend {value!r}.",
            why="The backend must be one of: auto, sandbox, endpoint, aws.",
            fix='Set backend = "sandbox" (offline, the default), "endpoint" '
            '(with AWS_ENDPOINT_URL) or "aws" (real AWS, costs money).',
        ) from None


def missing_requirement(backend: Backend) -> str:
    """What ``backend`` needs and this environment lacks, or ``""``. (Real AWS's
    credentials are checked by its first call: finding them may take the network.)"""
    if backend is Backend.ENDPOINT and not os.environ.get("AWS_ENDPOINT_URL", "").strip():
        return "backend is 'endpoint' but AWS_ENDPOINT_URL is not set"
    return ""


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


#: host[:port]/name — the shape of a repository URI.
REPOSITORY_URI_PATTERN = re.compile(r"[A-Za-z0-9.-]+(?::\d+)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*")


def coerce_repository_uri(value: Any) -> str:
    text = str(value or "").strip()
    if not REPOSITORY_URI_PATTERN.fullmatch(text):
        raise InputError(
            f"Repository URI {value!r} is not valid.",
            why="It looks like <registry host>/<repository name>, without a tag.",
            fix="Copy it from the Repository view of notebook 01 (or leave the pre-filled one).",
        )
    return text


#: ``<account>.dkr.ecr.<region>.amazonaws.com`` (``.com.cn`` in China).
AWS_REGISTRY_PATTERN = re.compile(
    r"(?P<account>[^.]+)\.dkr\.ecr\.(?P<region>[^.]+)\.amazonaws\.com(?:\.cn)?"
)


def compare_repository_uri(uri: Any, expected: str) -> str:
    """``uri`` as typed or pasted, checked against the lab's own ``expected`` URI.

    Says precisely what differs (another account, another region, another registry, a
    typo in the name, a tag on the end) instead of letting ``docker push`` fail later.
    Returns the URI without surrounding spaces.
    """
    text = str(uri or "").strip()
    fix = f"Use your repository URI, {expected} (notebook 01 shows it; it is pre-filled)."
    if "://" in text:
        raise InputError(
            f"Repository URI {text!r} starts with a scheme.",
            why="Docker wants <registry host>/<repository name>, without http:// or https://.",
            fix=fix,
        )
    host, _, name = text.partition("/")
    if ":" in name:
        raise InputError(
            f"Repository URI {text!r} ends with a tag.",
            why="The repository URI names the repository only; the tag (:latest) is "
            "added by the commands that use it.",
            fix=fix,
        )
    coerce_repository_uri(text)  # the shape: host[:port]/name
    want_host, _, want_name = expected.partition("/")
    if host != want_host:
        got, want = AWS_REGISTRY_PATTERN.fullmatch(host), AWS_REGISTRY_PATTERN.fullmatch(want_host)
        if got and want and got["account"] != want["account"]:
            why = (
                f"It names account {got['account']}, but you are signed in to account "
                f"{want['account']}; each account has its own registry."
            )
        elif got and want and got["region"] != want["region"]:
            why = (
                f"It names region {got['region']}, but the lab runs in {want['region']}; "
                "each region has its own registry."
            )
        else:
            why = f"Its registry is {host!r}, but yours is {want_host!r}."
        raise InputError(f"Repository URI {text!r} is not your registry.", why=why, fix=fix)
    if name != want_name:
        close = difflib.get_close_matches(name, [want_name], n=1, cutoff=0.5)
        why = f"It names repository {name!r}, but yours is {want_name!r}."
        if close:
            why += " A typo?"
        raise InputError(f"Repository URI {text!r} is not your repository.", why=why, fix=fix)
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
class Setting:
    """How one setting is checked and explained; the field of LabConfig holds its default.

    ``help`` is the parameters cell's comment, the form's and ``labkit run -p``'s text;
    ``empty_means`` is what an empty value stands for, in words."""

    coerce: Callable[[Any], Any]
    help: str
    empty_means: str = ""
    choices: tuple[str, ...] = ()


def _setting(default: Any, coerce: Callable[[Any], Any], help: str, **more: Any) -> Any:
    """A field of LabConfig: its default, and its :class:`Setting` as metadata."""
    return field(default=default, metadata={"setting": Setting(coerce, help, **more)})


@dataclass(frozen=True)
class LabConfig:
    """Everything a notebook's ``parameters`` cell can set, validated on every build.

    Each field's value goes through its setting's ``coerce`` (so what papermill or a
    widget hands over, ints for account ids or stray spaces, is accepted), and a wrong
    one raises :class:`~labkit.errors.InputError` naming the setting, the expected
    shape and the value: ``LabConfig(repository_name="BAD")`` is refused wherever it is
    built. :meth:`from_parameters` also refuses unknown names.
    """

    backend: Backend = _setting(
        "auto",
        coerce_backend,
        "auto, sandbox (offline, the default), endpoint or aws; empty: as in 00",
        choices=("auto", *(b.value for b in Backend)),
    )
    region: str = _setting(
        "",
        coerce_region,
        "an AWS region; empty: as in 00, else the backend's (the lab uses us-west-2)",
        empty_means="the backend's region",
    )
    account_id: str = _setting(
        "",
        coerce_account_id,
        "12 digits, guards against the wrong account; empty: as in 00, else any",
        empty_means="whatever STS says",
    )
    repository_name: str = _setting(
        LAB.repository,
        coerce_repository_name,
        f"the ECR repository (step 6); empty: as in 00, else {LAB.repository}",
    )
    service_name: str = _setting(
        "",
        coerce_service_name,
        f"the ECS service (step 37); empty: as in 00, else {LAB.service_prefix} and a number",
        empty_means=f"{LAB.service_prefix}<random number>",
    )

    def __post_init__(self) -> None:
        for name, setting in SETTINGS.items():
            object.__setattr__(self, name, setting.coerce(getattr(self, name)))

    @classmethod
    def from_parameters(cls, **parameters: Any) -> LabConfig:
        """A LabConfig from a parameters cell, papermill or a form; unknown names refused."""
        refuse_unknown_settings(parameters)
        return cls(**parameters)


#: The settings, in the order of the parameters cell.
SETTINGS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in fields(LabConfig)}
#: Their values when nothing is chosen (before coercion: backend "auto").
SETTING_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(LabConfig)}


def refuse_unknown_settings(parameters: dict[str, Any]) -> None:
    unknown = set(parameters) - set(SETTINGS)
    if unknown:
        raise InputError(
            f"Unknown parameter(s): {', '.join(sorted(unknown))}.",
            why=f"Expected {', '.join(SETTINGS)}.",
            fix="Check the spelling in the parameters cell or on the papermill line.",
        )


def parameter_help() -> str:
    """``labkit run -p``'s help: every setting with what it takes."""
    return "a setting, repeatable: " + "; ".join(
        f"{name}: {setting.help}" for name, setting in SETTINGS.items()
    )


def parameters_cell() -> str:
    """The source every notebook's ``parameters`` cell has (empty: as chosen in 00): the
    settings, then the notebooks' own parameter (notebook 00 in AWS mode)."""
    return "\n".join(
        [
            "# Parameters. Empty means as chosen in notebook 00; papermill -p NAME VALUE "
            "overrides.",
            *(f'{name}: str = ""  # {setting.help}' for name, setting in SETTINGS.items()),
            "confirm_cost: bool = False  # AWS mode, notebook 00: True lets the kit create "
            "billable resources",
        ]
    )
