"""No free pass after a catch-up (issue 20), on moto: ``q.solve()`` makes the state right
and counts toward the task, but the learner's own ``q.check()`` stays ❌ until their cell
changes that state (or meets AlreadyExists, or holds 1.2's policy), or the state changes
since the catch-up.

The cells below are the notebooks' exercise cells: as shipped (a blank) and filled in.
"""

from __future__ import annotations

import json
import os

import boto3
import pytest

from labkit import ecr as lab_ecr
from labkit import taskdef
from labkit.errors import CheckFailed
from labkit.state import load_state
from labkit.tasks import task1, task3
from labkit.tasks.exercise import CATCH_UP_KEY, Exercise, Solution, Task, Verdict, ____

REGION = "us-west-2"


def _mine(exercise: Exercise, lab) -> tuple[bool, str, str]:
    result = exercise.evaluate(lab, learner=True)
    return result.passed, result.message, result.hint


def _shipped_q1_cell() -> None:
    """Notebook 01's exercise 1.1 as shipped."""
    ecr = boto3.client("ecr", region_name=REGION)
    with task1.q1.attempt():
        response = ____
        print("Repository URI (step 8):", response["repository"]["repositoryUri"])
    assert ecr  # the cell's client, unused while the blank stands


def test_catch_up_counts_for_the_task_not_for_the_learners_check(
    lab, catch_up, capsys, monkeypatch
):
    catch_up(lab, task1.TASK)
    assert task1.TASK.evaluate(lab).passed  # progress, require(): done, the learner moves on
    for exercise in (task1.q1, task1.q2):
        assert exercise.evaluate(lab).passed
        passed, message, hint = _mine(exercise, lab)
        assert not passed and "the catch-up made it" in message and "not your cell" in message
        assert f"q{exercise.number}.solve()" in message and "counts toward Task 1" in hint
    # The marks are in the state file: a kernel restart keeps them.
    marks = load_state()[CATCH_UP_KEY]
    assert set(next(iter(marks.values()))) == {"1.1", "1.2"}

    _shipped_q1_cell()  # the blank: not the learner's work
    capsys.readouterr()
    task1.q1.check(lab)
    out = capsys.readouterr().out
    assert "❌ Exercise 1.1" in out and "Fill in each ____" in out
    assert "RepositoryAlreadyExistsException counts" in out
    monkeypatch.setenv("LABKIT_STRICT", "1")
    with pytest.raises(CheckFailed):
        task1.q1.check(lab)


def test_the_learners_call_meeting_already_exists_clears_the_mark(lab, catch_up, capsys):
    catch_up(lab, task1.q1)
    assert not _mine(task1.q1, lab)[0]
    ecr = boto3.client("ecr", region_name=REGION)
    with task1.q1.attempt():
        response = ecr.create_repository(repositoryName="myrepo", tags=lab.tags())
        print("Repository URI (step 8):", response["repository"]["repositoryUri"])
    assert "RepositoryAlreadyExistsException" in capsys.readouterr().out
    passed, message, _ = _mine(task1.q1, lab)
    assert passed and "myrepo exists" in message


def test_other_refusals_and_the_learners_bugs_leave_the_mark(lab, catch_up):
    catch_up(lab, task1.TASK)
    iam = boto3.client("iam", region_name=REGION)
    with task1.q2.attempt():
        iam.get_role(RoleName="EC2InstanceRole")  # NoSuchEntity: a wrong name
    with pytest.raises(NameError):
        with task1.q2.attempt():
            ecr_client.get_repository_policy(repositoryName="myrepo")  # noqa: F821
    assert not _mine(task1.q2, lab)[0]


def test_the_learners_cell_setting_the_same_policy_clears_the_mark(lab, catch_up):
    """Setting the identical policy leaves its text as it was: the cell's policy dict,
    equal to the live one, is what says the learner wrote it."""
    catch_up(lab, task1.TASK)
    iam = boto3.client("iam", region_name=REGION)
    ecr = boto3.client("ecr", region_name=REGION)
    with task1.q2.attempt():
        role_arn = iam.get_role(RoleName="Ec2instanceRole")["Role"]["Arn"]
        statement = {
            "Sid": "my_repository_statement",
            "Effect": "Allow",
            "Principal": {"AWS": role_arn},
            "Action": list(lab_ecr.REPOSITORY_ACTIONS),
        }
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        ecr.set_repository_policy(repositoryName="myrepo", policyText=json.dumps(policy))
    assert _mine(task1.q2, lab)[0]
    assert not _mine(task1.q1, lab)[0]  # 1.1's mark is its own


def test_the_state_redone_elsewhere_clears_the_mark(lab, catch_up):
    """A terminal's set-repository-policy with another text, a registration: the
    fingerprint of the state the check reads differs from the catch-up's."""
    catch_up(lab, task1.TASK, task3.TASK)
    assert not _mine(task1.q2, lab)[0] and not _mine(task3.q2, lab)[0]
    statement = {
        "Sid": "my_repository_statement",
        "Effect": "Allow",
        "Principal": {"AWS": lab.instance_role_arn},
        "Action": ["ecr:*"],
    }
    lab.ecr.set_repository_policy(
        repositoryName="myrepo",
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    assert _mine(task1.q2, lab)[0]
    request = taskdef.request_from_file(task3.my_file(), lab, request_file=None)
    lab.ecs.register_task_definition(**request, requiresCompatibilities=["EC2"])
    assert _mine(task3.q2, lab)[0]
    assert not _mine(task1.q1, lab)[0]  # the repository is still the catch-up's


def test_task3_file_saved_again_is_the_learners(lab, catch_up):
    catch_up(lab, task1.q1, task3.TASK)
    assert task3.TASK.evaluate(lab).passed
    passed, message, hint = _mine(task3.q1, lab)
    assert not passed and "the catch-up made it" in message
    path = task3.my_file()
    taskdef.copy_lab_json(path)  # notebook 03's copy cell: an existing copy is kept
    assert not _mine(task3.q1, lab)[0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # saved in an editor
    assert _mine(task3.q1, lab)[0]


def test_no_mark_when_the_catch_up_did_not_make_the_state_right(lab, catch_up, capsys):
    catch_up(lab, task1.q2)  # no repository yet: ECR refuses the policy
    assert "RepositoryNotFoundException" in capsys.readouterr().out
    assert CATCH_UP_KEY not in load_state()


def test_an_exercise_that_takes_the_learners_result_is_not_marked(lab, tmp_path):
    """Its check already wants the learner's value: ``q.check(value)``."""
    solution = tmp_path / "solution.py"
    solution.write_text("with q1.attempt():\n    found = 'x'\n")
    exercise = Exercise(
        task=9,
        number=1,
        title="a lookup",
        evaluate_fn=lambda lab_: Verdict.ok("the state is right"),
        hints=("look it up",),
        solution_=Solution(file=str(solution), cli="", console=""),
        answer_fn=lambda lab_, value: Verdict.ok(f"you found {value}"),
    )
    exercise.solve(lab)
    assert CATCH_UP_KEY not in load_state()
    assert not exercise.evaluate(lab, (____,), learner=True).passed  # the blank
    assert exercise.evaluate(lab, ("x",), learner=True).passed
    assert Task(9, "t", (exercise,)).evaluate(lab).passed


def test_a_cell_that_runs_but_makes_the_wrong_call_keeps_the_mark(lab, catch_up):
    catch_up(lab, task1.TASK)
    ecr = boto3.client("ecr", region_name=REGION)
    with task1.q1.attempt():
        ecr.create_repository(repositoryName="my-repo")  # not the lab's name
    assert not _mine(task1.q1, lab)[0]
    with task1.q2.attempt():
        reply = ecr.get_repository_policy(repositoryName="myrepo")  # get, not set
    assert reply["policyText"] and not _mine(task1.q2, lab)[0]
    wrong = {"Version": "2012-10-17", "Statement": []}  # a policy dict, not the live one
    with task1.q2.attempt():
        assert wrong
    assert not _mine(task1.q2, lab)[0]


def _counted(tmp_path, fingerprint_now: list[str | None]) -> Exercise:
    """An exercise whose state is always right and whose fingerprint reads
    ``fingerprint_now[0]`` (a test changes it to change the state)."""
    solution = tmp_path / "solution.py"
    solution.write_text("with q1.attempt():\n    done = True\n")

    def fingerprint(lab_) -> str | None:
        return fingerprint_now[0]

    return Exercise(
        task=9,
        number=1,
        title="a step",
        evaluate_fn=lambda lab_: Verdict.ok("the state is right"),
        hints=("do it",),
        solution_=Solution(file=str(solution), cli="", console=""),
        fingerprint_fn=fingerprint,
    )


def test_a_fingerprint_that_cannot_be_read_keeps_the_mark(lab, tmp_path):
    lab.export_environment()
    fingerprint_now: list[str | None] = ["made"]
    exercise = _counted(tmp_path, fingerprint_now)
    exercise.solve(lab)
    assert exercise.caught_up(lab) and not _mine(exercise, lab)[0]
    fingerprint_now[0] = None  # a transient error: the state cannot be read
    assert exercise.caught_up(lab) and not _mine(exercise, lab)[0]
    with exercise.attempt():  # the cell runs; the state's fingerprint cannot be read
        pass
    assert exercise.caught_up(lab)
    fingerprint_now[0] = "redone"
    assert not exercise.caught_up(lab)


def test_state_file_errors_never_break_the_learners_cell(lab, tmp_path, monkeypatch, capsys):
    from labkit import state as state_module

    lab.export_environment()
    fingerprint_now: list[str | None] = ["made"]
    exercise = _counted(tmp_path, fingerprint_now)

    def unwritable(state) -> None:
        raise PermissionError(13, "Permission denied", "state.json")

    monkeypatch.setattr(state_module, "save_state", unwritable)
    exercise.solve(lab)  # the catch-up's work is done; its mark could not be kept
    assert "could not keep the catch-up's mark" in capsys.readouterr().out
    monkeypatch.undo()
    exercise.solve(lab)
    assert exercise.caught_up(lab)
    monkeypatch.setattr(state_module, "save_state", unwritable)
    with exercise.attempt():  # changes the state: the mark would go, the save fails
        fingerprint_now[0] = "redone"
    monkeypatch.undo()
    assert _mine(exercise, lab)[0]  # the check sees the change itself


def test_a_challenge_restores_without_marking(lab, catch_up):
    """``labkit challenge`` puts Task 1 back with its solutions: the learner's own Task 1
    stays theirs (pull-denied removes the statement, its fix sets it again)."""
    from labkit.challenges import pull_denied

    lab.export_environment()
    lab.ecr.create_repository(repositoryName="myrepo")  # the learner's own Task 1
    statement = {
        "Sid": "my_repository_statement",
        "Effect": "Allow",
        "Principal": {"AWS": lab.instance_role_arn},
        "Action": list(lab_ecr.REPOSITORY_ACTIONS),
    }
    lab.ecr.set_repository_policy(
        repositoryName="myrepo",
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    assert _mine(task1.q2, lab)[0]
    lab.ecr.delete_repository_policy(repositoryName="myrepo")  # the challenge's fault
    pull_denied.solve(lab)
    assert task1.TASK.evaluate(lab).passed
    assert _mine(task1.q1, lab)[0] and _mine(task1.q2, lab)[0]
    assert CATCH_UP_KEY not in load_state()
