"""The repository policy evaluator: IAM's rules, case by case (no sandbox needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labkit.sandbox.registry.policy import (
    INVALID_POLICY,
    PRINCIPAL_NOT_FOUND,
    Caller,
    Decision,
    PolicyRefused,
    check_repository_policy,
    decide,
    ecr_actions,
)

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Ec2instanceRole"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Other"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/Ec2instanceRole/container-instance"
USER = f"arn:aws:iam::{ACCOUNT}:user/moto"
PULL = "ecr:BatchGetImage"
ROLE_CALLER = Caller.role(ROLE, ACCOUNT)
ALLOW, IMPLICIT, EXPLICIT = Decision.ALLOW, Decision.IMPLICIT_DENY, Decision.EXPLICIT_DENY


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any = None, action: Any = PULL, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal or {"AWS": ROLE}, "Action": action, **extra}


def deny(principal: Any = "*", action: Any = PULL, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Principal": principal, "Action": action, **extra}


def when(operator: str, key: str, values: Any) -> dict[str, Any]:
    return {"Condition": {operator: {key: values}}}


def test_no_policy_and_no_statement_for_the_caller_deny_implicitly() -> None:
    assert decide(None, ROLE_CALLER, PULL) is IMPLICIT
    assert decide(policy(allow({"AWS": OTHER_ROLE})), ROLE_CALLER, PULL) is IMPLICIT


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ({"AWS": ROLE}, ALLOW),
        ({"AWS": [OTHER_ROLE, ROLE]}, ALLOW),
        ({"AWS": SESSION}, ALLOW),
        ("*", ALLOW),
        ({"AWS": "*"}, ALLOW),
        # An account principal delegates to the role's own IAM policies: alone, no pull.
        ({"AWS": ACCOUNT}, IMPLICIT),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, IMPLICIT),
        ({"Service": "ecs-tasks.amazonaws.com"}, IMPLICIT),
        ({"AWS": "arn:aws:iam::210987654321:role/Ec2instanceRole"}, IMPLICIT),
    ],
)
def test_allow_names_the_role_its_session_or_everyone(principal: Any, expected: Decision) -> None:
    assert decide(policy(allow(principal)), ROLE_CALLER, PULL) is expected


@pytest.mark.parametrize(
    "principal", [{"AWS": ACCOUNT}, {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "*", {"AWS": ROLE}]
)
def test_a_deny_to_the_account_or_everyone_wins_over_an_allow(principal: Any) -> None:
    assert decide(policy(allow(), deny(principal)), ROLE_CALLER, PULL) is EXPLICIT
    # ...whichever comes first
    assert decide(policy(deny(principal), allow()), ROLE_CALLER, PULL) is EXPLICIT


def test_a_deny_for_another_action_or_principal_leaves_the_allow() -> None:
    text = policy(allow(), deny(action="ecr:PutImage"), deny({"AWS": OTHER_ROLE}))
    assert decide(text, ROLE_CALLER, PULL) is ALLOW
    assert decide(text, ROLE_CALLER, "ecr:PutImage") is EXPLICIT


def test_the_accounts_user_is_refused_only_by_a_deny() -> None:
    user = Caller.user(USER, ACCOUNT)
    assert decide(policy(deny({"AWS": ACCOUNT})), user, PULL) is EXPLICIT
    assert decide(policy(deny({"AWS": ROLE})), user, PULL) is IMPLICIT


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("ecr:BatchGetImage", True),
        ("ecr:batchgetimage", True),  # actions are case-insensitive
        ("ECR:BATCHGETIMAGE", True),
        ("ecr:*", True),
        ("*", True),
        ("ecr:Batch*", True),
        ("ecr:BatchGet?mage", True),
        ("ecr:Batch?Image", False),
        ("ecr:Get*", False),
        ("ecr:[B]atchGetImage", False),  # [ is a plain character in IAM, not a set
        ("ecr:BatchGetImag", False),
    ],
)
def test_action_wildcards_are_star_and_question_mark_only(pattern: str, matches: bool) -> None:
    expected = ALLOW if matches else IMPLICIT
    assert decide(policy(allow(action=pattern)), ROLE_CALLER, PULL) is expected


def test_a_literal_bracket_matches_itself() -> None:
    assert decide(policy(allow(action="ecr:[x]")), ROLE_CALLER, "ecr:[x]") is ALLOW


def test_not_action_applies_to_every_other_action() -> None:
    everything_but_push = {"Effect": "Allow", "Principal": {"AWS": ROLE}, "NotAction": "ecr:Put*"}
    assert decide(policy(everything_but_push), ROLE_CALLER, PULL) is ALLOW
    assert decide(policy(everything_but_push), ROLE_CALLER, "ecr:PutImage") is IMPLICIT
    deny_all_but_pull = {"Effect": "Deny", "Principal": "*", "NotAction": ["ecr:BatchGet*"]}
    text = policy(allow(action="ecr:*"), deny_all_but_pull)
    assert decide(text, ROLE_CALLER, PULL) is ALLOW
    assert decide(text, ROLE_CALLER, "ecr:PutImage") is EXPLICIT


@pytest.mark.parametrize(
    ("not_principal", "escapes"),
    [
        ([ROLE, ACCOUNT], True),
        ([SESSION, f"arn:aws:iam::{ACCOUNT}:root"], True),
        ([ROLE], False),  # the account is not listed: IAM denies the whole account
        ([ACCOUNT], False),  # the role is not listed
        ([OTHER_ROLE, ACCOUNT], False),
    ],
)
def test_not_principal_with_deny_spares_only_the_listed(
    not_principal: list[str], escapes: bool
) -> None:
    guard = {"Effect": "Deny", "NotPrincipal": {"AWS": not_principal}, "Action": "ecr:*"}
    expected = ALLOW if escapes else EXPLICIT
    assert decide(policy(allow(), guard), ROLE_CALLER, PULL) is expected


# -- conditions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "key", "values", "holds"),
    [
        ("StringEquals", "aws:PrincipalArn", ROLE, True),
        ("StringEquals", "aws:principalarn", ROLE, True),  # keys are case-insensitive
        ("StringEquals", "aws:PrincipalArn", ROLE.upper(), False),  # values are not
        ("StringEquals", "aws:PrincipalArn", [OTHER_ROLE, ROLE], True),  # OR within a key
        ("StringNotEquals", "aws:PrincipalArn", OTHER_ROLE, True),
        ("StringNotEquals", "aws:PrincipalArn", [OTHER_ROLE, ROLE], False),
        ("StringEqualsIgnoreCase", "aws:PrincipalArn", ROLE.upper(), True),
        ("StringNotEqualsIgnoreCase", "aws:PrincipalArn", ROLE.upper(), False),
        ("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/Ec2*", True),
        ("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/Ec?instanceRole", True),
        ("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/[E]c2instanceRole", False),
        ("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/ec2*", False),
        ("StringNotLike", "aws:PrincipalArn", "*:role/Other", True),
        ("StringNotLike", "aws:PrincipalArn", "*:role/Ec2*", False),
        ("ArnEquals", "aws:PrincipalArn", ROLE, True),
        ("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT}:role/*", True),
        ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:role/Ec2instance*", True),
        ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:user/*", False),
        ("ArnLike", "aws:PrincipalArn", "arn:aws:*", False),  # ARNs match part by part
        ("ArnNotEquals", "aws:PrincipalArn", OTHER_ROLE, True),
        ("ArnNotLike", "aws:PrincipalArn", "arn:aws:iam::*:role/Ec2*", False),
        ("StringEquals", "aws:PrincipalAccount", ACCOUNT, True),
        ("StringEquals", "aws:PrincipalAccount", int(ACCOUNT), True),
        ("StringEquals", "aws:PrincipalType", "AssumedRole", True),
        ("Bool", "aws:SecureTransport", "true", True),
        ("Bool", "aws:SecureTransport", True, True),
        ("Bool", "aws:SecureTransport", "false", False),
        ("Bool", "aws:PrincipalIsAWSService", "false", True),
        # A role's pull carries no aws:SourceAccount / aws:SourceArn:
        ("StringEquals", "aws:SourceAccount", ACCOUNT, False),
        ("StringEqualsIfExists", "aws:SourceAccount", "999999999999", True),
        ("ArnLike", "aws:SourceArn", "arn:aws:ecs:*", False),
        ("ArnLikeIfExists", "aws:SourceArn", "arn:aws:ecs:*", True),
        ("StringNotEquals", "aws:SourceAccount", ACCOUNT, True),  # negated: missing is true
        ("ArnNotLike", "aws:SourceArn", "arn:aws:ecs:*", True),
        ("Null", "aws:SourceArn", "true", True),
        ("Null", "aws:SourceArn", "false", False),
        ("Null", "aws:PrincipalArn", "false", True),
        ("StringEqualsIfExists", "aws:PrincipalArn", OTHER_ROLE, False),  # present: compared
        ("BoolIfExists", "aws:SecureTransport", "false", False),
    ],
)
def test_condition_operators(operator: str, key: str, values: Any, holds: bool) -> None:
    text = policy(allow(**when(operator, key, values)))
    check_repository_policy(text, ACCOUNT, lambda arn: True)  # each is one the sandbox takes
    assert decide(text, ROLE_CALLER, PULL) is (ALLOW if holds else IMPLICIT)


def test_conditions_are_anded_across_keys_and_operators() -> None:
    both = {
        "StringEquals": {"aws:PrincipalAccount": ACCOUNT, "aws:PrincipalType": "AssumedRole"},
        "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Ec2*"},
    }
    assert decide(policy(allow(Condition=both)), ROLE_CALLER, PULL) is ALLOW
    one_fails = {**both, "Bool": {"aws:SecureTransport": "false"}}
    assert decide(policy(allow(Condition=one_fails)), ROLE_CALLER, PULL) is IMPLICIT


def test_a_conditional_deny_blocks_only_whom_it_matches() -> None:
    guard = deny(**when("ArnNotEquals", "aws:PrincipalArn", OTHER_ROLE))
    text = policy(allow(), guard)
    assert decide(text, ROLE_CALLER, PULL) is EXPLICIT
    assert decide(text, Caller.role(OTHER_ROLE, ACCOUNT), PULL) is IMPLICIT


# -- what SetRepositoryPolicy refuses ------------------------------------------------------


def refusal(text: str, existing: tuple[str, ...] = (ROLE,)) -> str:
    with pytest.raises(PolicyRefused) as caught:
        check_repository_policy(text, ACCOUNT, lambda arn: arn in existing)
    return str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"Version": "2012-10-17"}),
        json.dumps({"Version": "2012-10-18", "Statement": [allow()]}),
        policy(allow(Resource="*")),
        policy({"Effect": "Allow", "Action": PULL}),  # no Principal
        policy({**allow(), "NotPrincipal": {"AWS": ROLE}}),
        policy({**allow(), "NotAction": "ecr:PutImage"}),
        policy(allow(action="BatchGetImage")),
        policy(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/*"})),  # no wildcard in an ARN
        policy(allow({"AWS": "Ec2instanceRole"})),
        policy(allow({"Role": ROLE})),
        policy(allow("arn:aws:iam::123456789012:root")),  # a bare string must be "*"
        policy({**allow(), "Effect": "Permit"}),
    ],
)
def test_what_ecr_refuses_as_an_invalid_policy(text: str) -> None:
    assert refusal(text) == INVALID_POLICY


@pytest.mark.parametrize(
    "statement",
    [
        allow(action="ecr:Pull"),  # no such ECR action
        allow(action=[PULL, "ecr:pull"]),
        allow(action="ecr:Fetch*"),  # a wildcard that matches no ECR action
        deny(action="ecr:Push"),
        {"Effect": "Deny", "Principal": "*", "NotAction": "ecr:Pull"},
    ],
)
def test_an_action_ecr_does_not_have_is_refused(statement: dict[str, Any]) -> None:
    assert refusal(policy(statement)) == INVALID_POLICY


@pytest.mark.parametrize(
    "action",
    [
        "ecr:*",
        "*",
        "ecr:Batch*",  # matches BatchGetImage and others
        "ecr:BatchGet?mage",
        "ECR:batchgetimage",  # IAM's action names are case-insensitive
        "ecr:ReplicateImage",  # permission-only: no API operation of that name
        "ecr:BatchImportUpstreamImage",
        "s3:GetObject",  # other services' actions are not looked up
    ],
)
def test_ecr_actions_and_wildcards_that_match_one_are_accepted(action: str) -> None:
    check_repository_policy(policy(allow(action=action)), ACCOUNT, lambda arn: arn == ROLE)


def test_every_api_operation_is_an_ecr_action() -> None:
    for operation in ("SetRepositoryPolicy", "GetAuthorizationToken", "PutImage", "ListImages"):
        assert f"ecr:{operation}" in ecr_actions()
    assert "ecr:Pull" not in ecr_actions()


@pytest.mark.parametrize(
    "principal",
    [
        f"arn:aws:iam::{ACCOUNT}:role/NoSuchRole",
        f"arn:aws:iam::{ACCOUNT}:user/nobody",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/NoSuchRole/session",
    ],
)
def test_a_principal_that_does_not_exist_is_refused(principal: str) -> None:
    assert refusal(policy(allow({"AWS": [ROLE, principal]}))) == PRINCIPAL_NOT_FOUND
    assert refusal(policy(deny({"AWS": principal}))) == PRINCIPAL_NOT_FOUND


def test_other_accounts_and_services_are_not_looked_up() -> None:
    text = policy(
        allow({"AWS": ["210987654321", "arn:aws:iam::210987654321:role/Anything"]}),
        allow({"Service": "codebuild.amazonaws.com"}),
    )
    check_repository_policy(text, ACCOUNT, lambda arn: False)


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ({"ForAllValues:StringEquals": {"aws:PrincipalArn": ROLE}}, "'ForAllValues:StringEquals'"),
        ({"ForAnyValue:StringLike": {"aws:PrincipalArn": ROLE}}, "'ForAnyValue:StringLike'"),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, "operator 'IpAddress'"),
        ({"StringEquals": {"aws:SourceVpce": "vpce-1"}}, "key 'aws:SourceVpce'"),
        ({"StringEquals": {"ecr:ResourceTag/team": "a"}}, "key 'ecr:ResourceTag/team'"),
        ({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}, "operator 'DateGreaterThan'"),
        ({"stringequals": {"aws:PrincipalArn": ROLE}}, "operator 'stringequals'"),
        ({"NullIfExists": {"aws:SourceArn": "true"}}, "operator 'NullIfExists'"),
    ],
)
def test_what_the_sandbox_cannot_evaluate_is_refused_and_says_so(
    condition: dict[str, Any], says: str
) -> None:
    message = refusal(policy(allow(Condition=condition)))
    assert message.startswith("The labkit sandbox cannot evaluate") and says in message


def test_not_principal_with_allow_is_refused() -> None:
    text = policy({"Effect": "Allow", "NotPrincipal": {"AWS": ROLE}, "Action": PULL})
    assert "NotPrincipal" in refusal(text) and "Deny" in refusal(text)


def test_the_lab_policy_and_the_2008_version_are_accepted() -> None:
    check_repository_policy(policy(allow(action="ecr:*")), ACCOUNT, lambda arn: arn == ROLE)
    old = json.dumps({"Version": "2008-10-17", "Statement": allow()})
    check_repository_policy(old, ACCOUNT, lambda arn: arn == ROLE)
    assert decide(old, ROLE_CALLER, PULL) is ALLOW


def test_a_stored_policy_the_checker_would_refuse_fails_closed() -> None:
    """An older sandbox's ecr.json may hold one: an Allow is not granted, a Deny applies."""
    unknown = {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}}
    assert decide(policy(allow(Condition=unknown)), ROLE_CALLER, PULL) is IMPLICIT
    assert decide(policy(allow(), deny(Condition=unknown)), ROLE_CALLER, PULL) is EXPLICIT
    key = {"StringEquals": {"aws:SourceVpce": "vpce-1"}}
    assert decide(policy(allow(), deny(Condition=key)), ROLE_CALLER, PULL) is EXPLICIT
