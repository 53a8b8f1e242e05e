"""Task 1's exercises on moto: the right answer passes, each wrong one gets its own hint,
and ``with q1.attempt():`` keeps the notebook tidy without hiding the learner's bugs."""

from __future__ import annotations

import json

import boto3
import pytest

from labkit import ecr as lab_ecr
from labkit.errors import CheckFailed
from labkit.tasks import task1
from labkit.tasks.task1 import ____, q1, q2

REGION = "us-west-2"


@pytest.fixture
def clients(lab):
    """The learner's own boto3 clients (moto serves them, as it serves the lab's)."""
    return boto3.client("ecr", region_name=REGION), boto3.client("iam", region_name=REGION)


def _policy(statement: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _statement(lab, **changes) -> dict:
    statement = {
        "Sid": "my_repository_statement",
        "Effect": "Allow",
        "Principal": {"AWS": lab.instance_role_arn},
        "Action": list(lab_ecr.REPOSITORY_ACTIONS),
    }
    statement.update(changes)
    return statement


def test_no_repository_yet(lab):
    result = q1.evaluate(lab)
    assert not result.passed and "does not exist yet" in result.message
    assert "create_repository" in result.hint


def test_a_repository_with_another_name(lab, clients):
    clients[0].create_repository(repositoryName="my-repo")
    result = q1.evaluate(lab)
    assert not result.passed
    assert "no repository named 'myrepo'" in result.message and "my-repo" in result.message
    assert "step 6" in result.hint


def test_the_repository_passes(lab, clients):
    clients[0].create_repository(repositoryName="myrepo")
    result = q1.evaluate(lab)
    assert result.passed and "myrepo exists" in result.message


def test_no_policy_yet(lab, clients):
    clients[0].create_repository(repositoryName="myrepo")
    result = q2.evaluate(lab)
    assert not result.passed and "no permission statement" in result.message
    assert "set_repository_policy" in result.hint


def test_statement_before_the_repository(lab):
    result = q2.evaluate(lab)
    assert not result.passed and "Exercise 1.1" in result.hint


@pytest.mark.parametrize(
    ("changes", "message", "hint"),
    [
        (
            {"Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]},
            "lacks 18 of the 20 actions",
            "Step 15 selects all actions",
        ),
        (
            {"Principal": {"AWS": "arn:aws:iam::123456789012:role/ecsServiceRole"}},
            "not the role Ec2instanceRole",
            "iam.get_role(RoleName='Ec2instanceRole')",
        ),
        ({"Principal": "*"}, "not the role Ec2instanceRole", "step 14"),
        ({"Sid": "MyRepositoryStatement"}, "no statement named", "step 13"),
        ({"Effect": "Deny"}, "Effect 'Deny'", "Allow"),
    ],
    ids=["missing-actions", "wrong-principal", "everyone", "wrong-sid", "deny"],
)
def test_wrong_statements_get_the_hint_for_their_cause(lab, clients, changes, message, hint):
    ecr, _ = clients
    ecr.create_repository(repositoryName="myrepo")
    ecr.set_repository_policy(
        repositoryName="myrepo", policyText=_policy(_statement(lab, **changes))
    )
    result = q2.evaluate(lab)
    assert not result.passed
    assert message in result.message
    assert hint in result.hint


@pytest.mark.parametrize("actions", [list(lab_ecr.REPOSITORY_ACTIONS), ["ecr:*"], "ecr:*"])
def test_the_statement_passes(lab, clients, actions):
    ecr, iam = clients
    ecr.create_repository(repositoryName="myrepo")
    role_arn = iam.get_role(RoleName="Ec2instanceRole")["Role"]["Arn"]
    statement = _statement(lab, Principal={"AWS": role_arn}, Action=actions)
    ecr.set_repository_policy(repositoryName="myrepo", policyText=_policy(statement))
    assert q2.evaluate(lab).passed
    assert task1.TASK.evaluate(lab).passed


def test_attempt_turns_a_blank_into_a_note(lab, clients, capsys):
    ecr, _ = clients
    with q1.attempt():
        ecr.create_repository(repositoryName=____)
    out = capsys.readouterr().out
    assert "⏳ Exercise 1.1 is not done yet" in out and "q1.hint()" in out
    assert ecr.describe_repositories()["repositories"] == []  # nothing was created


def test_attempt_turns_a_blank_in_json_into_a_note(lab, clients, capsys):
    with q2.attempt():
        json.dumps({"Sid": ____})
    assert "not done yet" in capsys.readouterr().out


def test_attempt_explains_an_existing_repository(lab, clients, capsys):
    ecr, _ = clients
    ecr.create_repository(repositoryName="myrepo")
    with q1.attempt():
        ecr.create_repository(repositoryName="myrepo")
    out = capsys.readouterr().out
    assert "RepositoryAlreadyExistsException" in out
    assert "The repository exists already" in out
    assert "Traceback" not in out and len(out.splitlines()) <= 3


def test_attempt_explains_a_role_that_does_not_exist(lab, clients, capsys):
    _, iam = clients
    with q2.attempt():
        iam.get_role(RoleName="EC2InstanceRole")
    out = capsys.readouterr().out
    assert "NoSuchEntity" in out and "Ec2instanceRole" in out


def test_attempt_reraises_the_learners_own_bug(lab):
    with pytest.raises(NameError):
        with q1.attempt():
            ecr_client.create_repository(repositoryName="myrepo")  # noqa: F821 — a typo


def test_solve_catches_up_and_a_second_run_explains_itself(lab, capsys):
    task1.TASK.solve(lab)
    assert task1.TASK.evaluate(lab).passed
    capsys.readouterr()
    q1.solve(lab)  # the solution run again: the repository exists already
    assert "RepositoryAlreadyExistsException" in capsys.readouterr().out
    assert task1.TASK.evaluate(lab).passed


def test_check_shows_the_hint_and_strict_raises(lab, monkeypatch, capsys):
    q1.check(lab)
    out = capsys.readouterr().out
    assert "❌ Exercise 1.1" in out and "Hint:" in out and "q1.hint(2)" in out
    monkeypatch.setenv("LABKIT_STRICT", "1")
    with pytest.raises(CheckFailed):
        q1.check(lab)


def test_hints_are_tiered_and_the_solution_shows_three_ways(capsys):
    q2.hint()
    q2.hint(9)  # beyond the last: the last
    q2.solution()
    out = capsys.readouterr().out
    assert "Hint 1/3" in out and "Hint 3/3" in out and "(more: q2.hint(2))" in out
    assert "set_repository_policy" in out and "aws ecr set-repository-policy" in out
    assert "steps 10–16" in out and "%load solutions/task1_q2_repository_statement.py" in out


def test_a_role_name_for_its_arn_is_named_as_the_cause(capsys):
    """ECR answers only 'Invalid repository policy provided'; the note names the cause
    from the policy the learner's cell held."""
    from botocore.exceptions import ClientError

    refusal = {
        "Error": {
            "Code": "InvalidParameterException",
            "Message": "Invalid "
            "parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository "
            "policy provided'",
        }
    }
    with q2.attempt():
        policy = {"Version": "2012-10-17", "Statement": [_statement_for("Ec2instanceRole")]}
        raise ClientError(refusal, "SetRepositoryPolicy")
    out = capsys.readouterr().out
    assert "names the role by its name, 'Ec2instanceRole'" in out and "get_role" in out
    assert policy  # the cell's own variable, as in the notebook


def _statement_for(principal: str) -> dict:
    return {
        "Sid": "my_repository_statement",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": ["ecr:*"],
    }
