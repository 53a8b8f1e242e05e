"""Repository policies read as IAM reads them: checked when set, evaluated on each pull.

``check_repository_policy`` refuses at ``SetRepositoryPolicy`` what ECR refuses (with
ECR's constraint text) and what this sandbox cannot evaluate (saying so): a policy the
sandbox stores is one it evaluates exactly, never one it would quietly allow. ECR also
checks the ``ecr:`` actions a policy names: one that names no ECR action (``ecr:Pull``),
or a wildcard that matches none, makes it an invalid policy (ECR refused
``ecr:GetAuthorizationToken``, an action of the registry, in repository policies:
cloudposse/terraform-aws-ecr#67).

``decide`` evaluates a stored policy for one principal and one action, as IAM does for
a resource-based policy in the repository's own account:

- a ``Deny`` whose principal, action and condition match wins over any ``Allow``;
- an ``Allow`` counts when it names the principal itself (its role, its session, or
  ``"*"``). An ``Allow`` to the *account* (``"123456789012"``, ``arn:aws:iam::…:root``)
  delegates to the principal's own IAM policies: on AWS such a statement alone lets no
  role of the account in. The sandbox's instance role holds no ECR permission in IAM, so
  here it lets nothing in either (the sandbox does not read IAM identity policies);
- ``Action``/``NotAction`` match case-insensitively; ``*`` and ``?`` are the only
  wildcards (``[`` is a plain character, as in IAM);
- ``Condition``: the operators in ``OPERATORS`` (and their ``IfExists`` forms) over the
  keys in ``CONTEXT_KEYS``; values within one key are ORed, keys and operators ANDed.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import botocore.loaders

#: ECR's constraint texts (SetRepositoryPolicy's InvalidParameterException).
INVALID_POLICY = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
    "'Invalid repository policy provided'"
)
PRINCIPAL_NOT_FOUND = (
    "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Principal not found'"
)

#: The condition keys a pull's request context can hold, lower-cased (IAM's keys are
#: case-insensitive). SourceAccount/SourceArn exist only when a service calls on behalf
#: of a resource; a role's pull has neither, as on AWS.
CONTEXT_KEYS = (
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principaltype",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:securetransport",
    "aws:principalisawsservice",
    "aws:viaawsservice",
)

_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike"}
_NEGATED |= {"ArnNotEquals", "ArnNotLike"}
#: The condition operators the sandbox evaluates (each also with ``IfExists``; not Null).
OPERATORS = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Bool",
    "Null",
)

_ACCOUNT = re.compile(r"^\d{12}$")
_ROOT = re.compile(r"^arn:aws:iam::(\d{12}):root$")
_IAM_ENTITY = re.compile(r"^arn:aws:iam::(\d{12}):(role|user)(/.*)?/([\w+=,.@-]+)$")
_SESSION = re.compile(r"^arn:aws:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/([\w+=,.@-]+)$")
_SERVICE = re.compile(r"^[a-z0-9.-]+\.amazonaws\.com(\.cn)?$")
_VERSIONS = ("2012-10-17", "2008-10-17")
#: ECR's IAM actions that are no API operation (the Service Authorization Reference's
#: permission-only actions: pull through cache and replication).
_PERMISSION_ONLY_ACTIONS = ("BatchImportUpstreamImage", "GetImageCopyStatus", "ReplicateImage")


class PolicyRefused(ValueError):
    """SetRepositoryPolicy refuses this policy; ``str()`` is the message to answer with."""


class Decision(enum.Enum):
    ALLOW = "allow"
    IMPLICIT_DENY = "no statement allows it"
    EXPLICIT_DENY = "a Deny statement matches"


@dataclass(frozen=True)
class Caller:
    """Who asks: an IAM role (its session on the container instance) or the account's user."""

    arn: str  # the role's or user's ARN (what aws:PrincipalArn holds)
    account: str
    session_arn: str | None = None  # the assumed-role session, for a role
    context: dict[str, str] = field(default_factory=dict)

    @classmethod
    def role(cls, role_arn: str, account: str, session: str = "container-instance") -> Caller:
        name = role_arn.rsplit("/", 1)[-1]
        return cls(
            role_arn,
            account,
            f"arn:aws:sts::{account}:assumed-role/{name}/{session}",
            _context(role_arn, account, "AssumedRole"),
        )

    @classmethod
    def user(cls, user_arn: str, account: str) -> Caller:
        return cls(user_arn, account, None, _context(user_arn, account, "User"))


def _context(arn: str, account: str, principal_type: str) -> dict[str, str]:
    return {
        "aws:principalarn": arn,
        "aws:principalaccount": account,
        "aws:principaltype": principal_type,
        "aws:securetransport": "true",  # ECR answers only HTTPS
        "aws:principalisawsservice": "false",
        "aws:viaawsservice": "false",
    }


# -- checking a policy when it is set ------------------------------------------------------


def check_repository_policy(
    policy_text: str, account: str, principal_exists: Callable[[str], bool]
) -> None:
    """Raise ``PolicyRefused`` unless ECR would store ``policy_text`` and the sandbox can
    evaluate it. ``principal_exists`` says whether a role/user ARN of ``account`` exists."""
    try:
        document = json.loads(policy_text)
    except ValueError:
        raise PolicyRefused(INVALID_POLICY) from None
    if not isinstance(document, dict):
        raise PolicyRefused(INVALID_POLICY)
    if document.get("Version", "2008-10-17") not in _VERSIONS:
        raise PolicyRefused(INVALID_POLICY)
    statements = _as_list(document.get("Statement"))
    if not statements or not all(isinstance(s, dict) for s in statements):
        raise PolicyRefused(INVALID_POLICY)
    for statement in statements:
        _check_statement(statement, account, principal_exists)


def _check_statement(
    statement: dict[str, Any], account: str, principal_exists: Callable[[str], bool]
) -> None:
    # A repository policy is about its own repository: ECR refuses a Resource element.
    if "Resource" in statement or "NotResource" in statement:
        raise PolicyRefused(INVALID_POLICY)
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise PolicyRefused(INVALID_POLICY)
    if ("Action" in statement) == ("NotAction" in statement):
        raise PolicyRefused(INVALID_POLICY)
    if ("Principal" in statement) == ("NotPrincipal" in statement):
        raise PolicyRefused(INVALID_POLICY)  # a resource policy must say whom it is about
    if "NotPrincipal" in statement and statement["Effect"] != "Deny":
        raise PolicyRefused(
            "The labkit sandbox refuses NotPrincipal with Effect Allow: IAM supports "
            "NotPrincipal only with Deny. Use Principal, or a Condition on aws:PrincipalArn."
        )
    for pattern in _as_list(statement.get("Action", statement.get("NotAction"))):
        if not isinstance(pattern, str) or (pattern != "*" and ":" not in pattern):
            raise PolicyRefused(INVALID_POLICY)
        if not _names_an_ecr_action(pattern):
            raise PolicyRefused(INVALID_POLICY)
    principal = statement.get("Principal", statement.get("NotPrincipal"))
    _check_principal(principal, account, principal_exists)
    _check_condition(statement.get("Condition", {}))


def _names_an_ecr_action(pattern: str) -> bool:
    """False for an ``ecr:`` action (or wildcard) that names no ECR action; other
    services' actions are not looked up."""
    service = pattern.split(":", 1)[0]
    if pattern == "*" or service.lower() != "ecr":
        return True
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() in _ecr_actions_lower()
    matcher = _wildcard(pattern, True)
    return any(matcher.match(action) for action in ecr_actions())


@functools.cache
def ecr_actions() -> tuple[str, ...]:
    """ECR's IAM actions: ``ecr:`` and each operation of its API (botocore's model of it),
    and the permission-only actions. Read once (about 20 ms)."""
    model = botocore.loaders.create_loader().load_service_model("ecr", "service-2")
    names = sorted({*model["operations"], *_PERMISSION_ONLY_ACTIONS})
    return tuple(f"ecr:{name}" for name in names)


@functools.cache
def _ecr_actions_lower() -> frozenset[str]:
    return frozenset(action.lower() for action in ecr_actions())


def _check_principal(principal: Any, account: str, principal_exists: Callable[[str], bool]) -> None:
    if principal == "*":
        return
    if not isinstance(principal, dict) or not principal:
        raise PolicyRefused(INVALID_POLICY)
    for kind, values in principal.items():
        if kind == "Service":
            if not all(isinstance(v, str) and _SERVICE.match(v) for v in _as_list(values)):
                raise PolicyRefused(INVALID_POLICY)
        elif kind == "AWS":
            for value in _as_list(values):
                _check_aws_principal(value, account, principal_exists)
        elif kind in ("Federated", "CanonicalUser"):
            raise PolicyRefused(
                f"The labkit sandbox cannot evaluate {kind} principals in a repository "
                "policy; name an IAM role, user or account under Principal.AWS."
            )
        else:
            raise PolicyRefused(INVALID_POLICY)


def _check_aws_principal(value: Any, account: str, principal_exists: Callable[[str], bool]) -> None:
    if not isinstance(value, str):
        raise PolicyRefused(INVALID_POLICY)
    if value == "*" or _ACCOUNT.match(value) or _ROOT.match(value):
        return
    entity, session = _IAM_ENTITY.match(value), _SESSION.match(value)
    if entity is None and session is None:
        # Includes a wildcard inside an ARN: IAM allows "*" only on its own.
        raise PolicyRefused(INVALID_POLICY)
    owner = (entity or session).group(1)  # type: ignore[union-attr]
    if owner != account:
        return  # another account's principal: not this sandbox's to look up
    arn = value if entity else f"arn:aws:iam::{owner}:role/{session.group(2)}"  # type: ignore[union-attr]
    if not principal_exists(arn):
        raise PolicyRefused(PRINCIPAL_NOT_FOUND)


def _check_condition(condition: Any) -> None:
    if not isinstance(condition, dict):
        raise PolicyRefused(INVALID_POLICY)
    for operator, block in condition.items():
        if operator.startswith(("ForAnyValue:", "ForAllValues:")):
            raise PolicyRefused(
                f"The labkit sandbox cannot evaluate the condition operator {operator!r}: "
                "the keys it evaluates hold one value each. Use the operator without "
                "ForAnyValue:/ForAllValues:."
            )
        base = operator.removesuffix("IfExists")
        if base not in OPERATORS or operator == "NullIfExists":
            raise PolicyRefused(
                f"The labkit sandbox cannot evaluate the condition operator {operator!r}. "
                f"It evaluates {', '.join(OPERATORS)} (and their IfExists forms)."
            )
        if not isinstance(block, dict) or not block:
            raise PolicyRefused(INVALID_POLICY)
        for key, values in block.items():
            if key.lower() not in CONTEXT_KEYS:
                raise PolicyRefused(
                    f"The labkit sandbox cannot evaluate the condition key {key!r}. "
                    "It evaluates aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType, "
                    "aws:SourceAccount, aws:SourceArn, aws:SecureTransport, "
                    "aws:PrincipalIsAWSService and aws:ViaAWSService."
                )
            if not _as_list(values) or not all(
                isinstance(v, str | bool | int) for v in _as_list(values)
            ):
                raise PolicyRefused(INVALID_POLICY)


# -- evaluating a stored policy ------------------------------------------------------------


def decide(policy_text: str | None, caller: Caller, action: str) -> Decision:
    """IAM's answer for ``caller`` doing ``action`` under the repository policy alone."""
    if not policy_text:
        return Decision.IMPLICIT_DENY
    allowed = False
    for statement in _statements(policy_text):
        if not _action_matches(statement, action):
            continue
        try:
            holds = _condition_holds(statement, caller)
        except _Unevaluable:
            # Only a policy stored before it was checked gets here (an older sandbox's
            # ecr.json): fail closed, a Deny applies and an Allow does not.
            holds = statement.get("Effect") == "Deny"
        if not holds:
            continue
        if statement.get("Effect") == "Deny":
            if _names(statement, caller, for_deny=True):
                return Decision.EXPLICIT_DENY
        elif statement.get("Effect") == "Allow" and _names(statement, caller, for_deny=False):
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


@functools.lru_cache(maxsize=128)
def _statements(policy_text: str) -> tuple[dict[str, Any], ...]:
    """A stored policy's statements, parsed once per text (the token path stays cheap)."""
    try:
        document = json.loads(policy_text)
    except ValueError:
        return ()
    return tuple(s for s in _as_list(document.get("Statement")) if isinstance(s, dict))


def _action_matches(statement: dict[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        patterns = _as_list(statement["NotAction"])
        return not any(_wildcard(p, True).match(action) for p in patterns)
    return any(_wildcard(p, True).match(action) for p in _as_list(statement.get("Action")))


def _names(statement: dict[str, Any], caller: Caller, *, for_deny: bool) -> bool:
    """Whether the statement applies to ``caller`` (through Principal or NotPrincipal)."""
    if "NotPrincipal" in statement:
        # IAM checks the account, then the role (or its session): the caller escapes the
        # Deny only when NotPrincipal lists both.
        listed = _aws_principals(statement["NotPrincipal"])
        account_listed = caller.account in listed or "*" in listed
        self_listed = caller.arn in listed or caller.session_arn in listed or "*" in listed
        return not (account_listed and self_listed)
    listed = _aws_principals(statement.get("Principal"))
    if "*" in listed or caller.arn in listed or caller.session_arn in listed:
        return True
    # The account names every principal in it for a Deny; for an Allow it only delegates
    # to the principals' own IAM policies (see the module's docstring).
    return for_deny and caller.account in listed


def _aws_principals(principal: Any) -> set[str]:
    """The AWS principals a Principal element names; accounts as their 12-digit ids."""
    if principal == "*":
        return {"*"}
    if not isinstance(principal, dict):
        return set()
    names = set()
    for value in _as_list(principal.get("AWS")):
        root = _ROOT.match(str(value))
        names.add(root.group(1) if root else str(value))
    return names


def _condition_holds(statement: dict[str, Any], caller: Caller) -> bool:
    condition = statement.get("Condition") or {}
    if not isinstance(condition, dict):
        raise _Unevaluable("Condition")
    for operator, block in condition.items():
        if not isinstance(block, dict):
            raise _Unevaluable(operator)
        for key, values in block.items():
            if key.lower() not in CONTEXT_KEYS:
                raise _Unevaluable(key)
            if not _operator_holds(operator, caller.context.get(key.lower()), _as_list(values)):
                return False
    return True


class _Unevaluable(Exception):
    """A condition outside what ``check_repository_policy`` lets through."""


def _operator_holds(operator: str, value: str | None, wanted: list[Any]) -> bool:
    base = operator.removesuffix("IfExists")
    if base not in OPERATORS or operator == "NullIfExists":
        raise _Unevaluable(operator)
    if base == "Null":  # "true": the key must be absent; "false": present
        return any((value is None) == (_text(w).lower() == "true") for w in wanted)
    if value is None:
        # IfExists: a missing key passes; a negated operator is true of a missing key.
        return operator.endswith("IfExists") or base in _NEGATED
    matches = any(_value_matches(base, value, _text(w)) for w in wanted)
    return not matches if base in _NEGATED else matches


def _value_matches(base: str, value: str, wanted: str) -> bool:
    kind = base.replace("Not", "")
    if kind == "StringEquals":
        return value == wanted
    if kind == "StringEqualsIgnoreCase":
        return value.lower() == wanted.lower()
    if kind == "StringLike":
        return _wildcard(wanted, False).match(value) is not None
    if kind in ("ArnEquals", "ArnLike"):
        # Each of the six colon-separated parts is matched on its own.
        got, pattern = value.split(":", 5), wanted.split(":", 5)
        return len(got) == len(pattern) == 6 and all(
            _wildcard(p, False).match(g) for p, g in zip(pattern, got, strict=True)
        )
    if kind == "Bool":
        return value.lower() == wanted.lower()
    return False


@functools.lru_cache(maxsize=512)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run, ``?`` one character; everything else literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in str(pattern))
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
