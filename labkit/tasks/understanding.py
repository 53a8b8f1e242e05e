"""Check your understanding: a few multiple-choice questions per task, answered in a cell.

    quiz.ask(1)              # prints the question and its choices (plain text, no widget)
    quiz.check(1, "b")       # ✅/❌ with the explanation

As shipped the answer is the blank ``____``: the check shows ❌ "not answered yet" and the
notebook runs on. Under CI (``LABKIT_STRICT=1``) a ❌ raises
:class:`~labkit.errors.CheckFailed`, as an exercise's check does. A headless run fills
each answer cell (tagged ``exercise`` and ``solution:<file>``) from its solution file,
as it fills every exercise cell.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.display import show
from labkit.tasks.exercise import Blank, CheckResult, _show_result


@dataclass(frozen=True)
class Question:
    """One question: the prompt, its choices by letter, the right letter and why.

    ``wrong`` may say, for a wrong letter, why that choice is wrong."""

    prompt: str
    choices: dict[str, str]
    answer: str
    why: str
    wrong: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.answer not in self.choices:
            raise ValueError(f"answer {self.answer!r} is not one of {sorted(self.choices)}")


class Quiz:
    """The questions of one task, numbered from 1."""

    def __init__(self, task: int, questions: Sequence[Question]) -> None:
        self.task = task
        self.questions = tuple(questions)

    def _question(self, number: int) -> Question:
        if not 1 <= number <= len(self.questions):
            raise ValueError(
                f"Task {self.task} has questions 1 to {len(self.questions)}, not {number}."
            )
        return self.questions[number - 1]

    def _label(self, number: int) -> str:
        return f"Question {self.task}.{number}"

    def ask(self, number: int) -> None:
        """Show question ``number`` and its choices; answer with ``quiz.check(number, "a")``."""
        question = self._question(number)
        lines = [f"{letter}) {text}" for letter, text in question.choices.items()]
        plain = (
            f"❓ {self._label(number)}: {question.prompt}\n"
            + "\n".join(f"   {line}" for line in lines)
            + f'\n   Answer with quiz.check({number}, "<letter>").'
        )
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        show(
            f"<div>❓ <b>{html.escape(self._label(number))}</b>: {html.escape(question.prompt)}"
            f"<ul style='list-style:none'>{items}</ul>"
            f'Answer with <code>quiz.check({number}, "&lt;letter&gt;")</code>.</div>',
            plain,
        )

    def evaluate(self, number: int, answer: Any) -> CheckResult:
        """The verdict on ``answer`` (a letter, any case), without showing it."""
        question = self._question(number)
        label, title = self._label(number), "check your understanding"
        if isinstance(answer, Blank) or answer is None or str(answer).strip() == "":
            return CheckResult(
                label,
                title,
                False,
                "not answered yet",
                f'Replace ____ with the letter of your answer, e.g. quiz.check({number}, "a"); '
                f"quiz.ask({number}) shows the question again.",
            )
        letter = str(answer).strip().lower().rstrip(")")
        if letter not in question.choices:
            return CheckResult(
                label,
                title,
                False,
                f"{answer!r} is not one of the choices ({', '.join(question.choices)})",
                "Answer with one letter, in quotes.",
            )
        if letter == question.answer:
            return CheckResult(label, title, True, f"{letter}, right. {question.why}")
        reason = question.wrong.get(letter, "")
        message = f"{letter} is not it." + (f" {reason}" if reason else "")
        return CheckResult(label, title, False, message, "Think again, then try another letter.")

    def check(self, number: int, answer: Any) -> None:
        """Show ✅/❌ with the explanation; under CI a ❌ raises CheckFailed."""
        _show_result(self.evaluate(number, answer))
