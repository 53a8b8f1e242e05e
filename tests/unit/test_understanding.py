"""Check your understanding (labkit.tasks.understanding) and the course progress: a blank
is ❌ "not answered yet" without stopping the notebook (unless strict), a wrong letter gets
its own reason, the right one the explanation; the answer files agree with the questions."""

from __future__ import annotations

import os
import re

import pytest

import labkit.tasks
from labkit.errors import CheckFailed
from labkit.runner import NOTEBOOK_DIR
from labkit.tasks import task1, task2, task3
from labkit.tasks.exercise import ____
from labkit.tasks.understanding import Question, Quiz

QUIZ = Quiz(
    9,
    (
        Question(
            "Which?",
            {"a": "this", "b": "that"},
            "b",
            "Because that.",
            wrong={"a": "This is not that."},
        ),
    ),
)


def test_ask_prints_the_question_and_choices(capsys):
    QUIZ.ask(1)
    out = capsys.readouterr().out
    assert "Question 9.1: Which?" in out and "a) this" in out and "b) that" in out
    assert 'quiz.check(1, "<letter>")' in out


def test_blank_is_not_answered_yet_and_does_not_raise(capsys):
    QUIZ.check(1, ____)
    out = capsys.readouterr().out
    assert "❌" in out and "not answered yet" in out


def test_blank_raises_when_strict(monkeypatch):
    monkeypatch.setenv("LABKIT_STRICT", "1")
    with pytest.raises(CheckFailed, match="not answered yet"):
        QUIZ.check(1, ____)


def test_right_letter_any_case_explains(capsys):
    QUIZ.check(1, " B ")
    out = capsys.readouterr().out
    assert "✅" in out and "Because that." in out


def test_wrong_letter_says_why_that_choice_is_wrong():
    result = QUIZ.evaluate(1, "a")
    assert not result.passed and "This is not that." in result.message
    assert "Because that." not in result.message  # the answer is not given away


def test_not_a_choice():
    result = QUIZ.evaluate(1, "c")
    assert not result.passed and "not one of the choices (a, b)" in result.message


def test_unknown_question_number():
    with pytest.raises(ValueError, match="questions 1 to 1"):
        QUIZ.ask(2)


def test_answer_must_be_a_choice():
    with pytest.raises(ValueError):
        Question("?", {"a": "x"}, "b", "")


@pytest.mark.parametrize("module", [task1, task2, task3])
def test_each_task_has_two_or_three_questions_and_answer_files(module):
    quiz = module.quiz
    assert 2 <= len(quiz.questions) <= 3
    for number, question in enumerate(quiz.questions, start=1):
        answer_file = NOTEBOOK_DIR / "solutions" / f"task{quiz.task}_quiz_{number}.py"
        found = re.fullmatch(rf'quiz\.check\({number}, "([a-z])"\)\n?', answer_file.read_text())
        assert found and found.group(1) == question.answer, answer_file.name


def test_progress_reads_each_task_from_the_state(lab, capsys):
    lab.ecr.create_repository(repositoryName="myrepo")
    assert labkit.tasks.progress(lab) is None  # a cell's last line shows no dict
    out = capsys.readouterr().out
    done = labkit.tasks.course_progress(lab)
    assert done[1] is False and done[2] is False  # a repository, no statement, no image
    assert "Course progress: 0 of" in out and "❌ Task 1" in out
    assert "permission statement" in out  # the reason, from Task 1's own check


def test_repository_pasted_with_its_tag_is_named_and_not_set(lab, monkeypatch):
    from labkit.errors import InputError

    monkeypatch.delenv("REPOSITORY", raising=False)
    uri = lab.ecr.create_repository(repositoryName="myrepo")["repository"]["repositoryUri"]
    with pytest.raises(InputError, match="ends with a tag"):
        task2.use_repository(lab, f"{uri}:latest")
    assert "REPOSITORY" not in os.environ


def test_repository_set_then_restored_after_a_restart(lab, monkeypatch, capsys):
    monkeypatch.delenv("REPOSITORY", raising=False)
    uri = lab.ecr.create_repository(repositoryName="myrepo")["repository"]["repositoryUri"]
    assert task2.use_repository(lab, f" {uri} ") == uri
    assert os.environ["REPOSITORY"] == uri
    monkeypatch.delenv("REPOSITORY")  # a new kernel
    task2.on_open(lab)
    assert os.environ["REPOSITORY"] == uri and "as you set it" in capsys.readouterr().out
    monkeypatch.delenv("REPOSITORY")
    lab.ecr.delete_repository(repositoryName="myrepo")  # the lab was reset
    task2.on_open(lab)
    assert "REPOSITORY" not in os.environ
