"""Exercises in the style of Kaggle's learntools: ``q1.check()``, ``q1.hint()``, ``q1.solution()``.

The learner makes the real call (boto3 or the ``aws`` CLI) in ``with q1.attempt():``, so
a blank (``____``) or AWS's refusal is a short note and a notebook as shipped runs to the
end. An :class:`Exercise` only looks at what really happened: ``q1.check()`` reads the
real state (API, registry, HTTP), never the notebook's variables. The reference solution
``notebooks/solutions/<id>.py`` is what ``%load``, ``q1.solve()`` and headless runs use.

A catch-up (``q1.solve()``) lets the learner move on: the exercise counts toward its
task. But the learner's own ``q1.check()`` stays ❌ on a state the catch-up made (the
state file keeps a mark, see :data:`CATCH_UP_KEY`) until their cell changes that state
(or meets AlreadyExists), or the state changes elsewhere (a terminal, an editor).

Under CI (``LABKIT_STRICT=1`` or ``CI=true``) a failed check raises
:class:`~labkit.errors.CheckFailed` so papermill fails the run.
"""

from __future__ import annotations

import html
import inspect
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.config import strict_checks
from labkit.display import note, show
from labkit.errors import CheckFailed, LabkitError
from labkit.kit_files import kit_notebooks
from labkit.lab import Lab, current_lab
from labkit.names import NOTEBOOKS
from labkit.state import load_state, update_state

#: Where the reference solutions live: one file per exercise, a complete cell each.
SOLUTIONS_DIR = kit_notebooks() / "solutions"

#: The tag of an exercise cell; a second tag ``solution:<id>`` names its solution file.
EXERCISE_TAG = "exercise"
SOLUTION_TAG_PREFIX = "solution:"


#: The state file's record of catch-ups: per lab, the exercises whose state ``solve()``
#: made, each with a fingerprint of that state (its creation time, its text, its digest…).
#: A cleanup leaves it: the fingerprint tells a state made again from the catch-up's (and
#: Task 3's file, which a cleanup keeps, is still the catch-up's).
CATCH_UP_KEY = "caught_up"

#: A refusal that shows the learner's call was right and its result exists already
#: (RepositoryAlreadyExistsException after a catch-up): it counts as their own work.
_ALREADY_DONE = "AlreadyExists"


def _lab_key(lab: Lab) -> str:
    return f"{lab.backend.value}:{lab.account_id}:{lab.region}"


def _catch_up_marks(state: dict[str, Any]) -> dict[str, Any]:
    marks = state.get(CATCH_UP_KEY)
    return marks if isinstance(marks, dict) else {}


def _cell_namespace() -> dict[str, Any]:
    """The names of the cell inside ``with q.attempt():`` (its frame's locals: for a
    notebook cell, the kernel's namespace), read when the cell ends."""
    here = inspect.currentframe()
    frame = here.f_back if here else None
    while frame is not None and frame.f_code.co_filename in (__file__, _CONTEXTLIB):
        frame = frame.f_back
    return dict(frame.f_locals) if frame is not None else {}


_CONTEXTLIB = inspect.getsourcefile(contextmanager) or ""


class Blank:
    """The placeholder ``____``: a value the learner has not filled in yet."""

    _instance: Blank | None = None

    def __new__(cls) -> Blank:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "____"

    def __format__(self, spec: str) -> str:
        raise NotDoneYet()

    def __bool__(self) -> bool:
        raise NotDoneYet()


____ = Blank()


class NotDoneYet(LabkitError):
    """A blank ``____`` is still in the exercise cell."""

    def __init__(self) -> None:
        super().__init__(
            "This exercise still has a blank (____).",
            fix="Replace each ____ with your answer, then run the cell again.",
        )


def _is_blank_error(exc: BaseException) -> bool:
    # botocore's parameter validation and json.dumps name the value they refused;
    # anything else that touched the blank raised NotDoneYet itself.
    if isinstance(exc, NotDoneYet):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return "____" in text or "Blank" in text


@dataclass(frozen=True)
class Verdict:
    """What a check found: passed or not, a message, and the hint for that cause."""

    passed: bool
    message: str
    hint: str = ""

    @classmethod
    def ok(cls, message: str) -> Verdict:
        return cls(True, message)

    @classmethod
    def wrong(cls, message: str, hint: str) -> Verdict:
        return cls(False, message, hint)


@dataclass(frozen=True)
class Solution:
    """The reference answer three ways, as AWS workshops show them side by side."""

    #: ``notebooks/solutions/<file>``: a complete exercise cell (boto3), loadable with %load.
    file: str
    #: The ``aws`` CLI line(s) doing the same.
    cli: str
    #: The console path of the lab guide (with its step numbers).
    console: str

    @property
    def path(self) -> Path:
        return SOLUTIONS_DIR / self.file

    @property
    def code(self) -> str:
        return self.path.read_text()


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome, printable as the line a notebook shows."""

    label: str
    title: str
    passed: bool
    message: str
    hint: str = ""

    def __str__(self) -> str:
        mark = "✅" if self.passed else "❌"
        text = f"{mark} {self.label} ({self.title}): {self.message}"
        return text if self.passed or not self.hint else f"{text}\n   Hint: {self.hint}"


def _run_guarded(evaluate: Callable[[Lab], Verdict], lab: Lab) -> Verdict:
    """A check never crashes the notebook: an error becomes a ❌ with what went wrong."""
    try:
        return evaluate(lab)
    except LabkitError as exc:
        return Verdict.wrong(exc.what, exc.fix or exc.why)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        what = f"AWS answered {code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
        return Verdict.wrong(f"could not check: {what}", "Re-run the earlier cells, then this one.")


def _show_result(result: CheckResult, more: str = "") -> None:
    """Show ✅/❌ (and ``more``); under CI (``strict_checks``) a ❌ raises CheckFailed."""
    color = "#2ca02c" if result.passed else "#d62728"
    body = html.escape(str(result)).replace("\n", "<br>")
    extra = f"<div style='color:#555'>{html.escape(more)}</div>" if more else ""
    show(
        f"<div style='color:{color};font-weight:bold'>{body}</div>{extra}",
        f"{result}\n   {more}" if more else str(result),
    )
    if not result.passed and strict_checks():
        raise CheckFailed(
            f"{result.label} check failed: {result.message}.",
            why="LABKIT_STRICT (or CI=true) makes failed checks fail the run.",
            fix=result.hint,
        )


@dataclass(frozen=True)
class Exercise:
    """One exercise of a lab task: the learner's call, its check, hints and solution.

    ``expected_errors`` maps an AWS error code the learner's call may meet on a re-run
    (``RepositoryAlreadyExistsException``) to a short explanation.
    """

    task: int
    number: int
    title: str
    evaluate_fn: Callable[[Lab], Verdict]
    hints: Sequence[str]
    solution_: Solution
    #: For a step the real state cannot attribute to the learner (a lookup, a wait):
    #: ``answer_fn(lab, *answers)`` judges the learner's own result, passed as
    #: ``q.check(value)``, once ``evaluate_fn`` has found the real state right.
    answer_fn: Callable[..., Verdict] | None = None
    expected_errors: dict[str, str] = field(default_factory=dict)
    #: Names the cause of a refusal from what the learner's cell held (see task1), or None.
    explain_refusal: Callable[[BaseException], str | None] | None = None
    #: A fingerprint of the state ``evaluate_fn`` reads (a creation time, a digest), or
    #: None: when it differs from the one ``solve()`` left, the learner has redone the step.
    fingerprint_fn: Callable[[Lab], str | None] | None = None
    #: What makes a caught-up state the learner's own, when it is more than running the
    #: exercise cell with its blanks filled in (Task 2: the lines, in cells or a terminal).
    own_work: str = ""
    #: ``own_cell_fn(lab, names)``: does the learner's cell (its ``names``) show it made
    #: the step when the fingerprint cannot change (1.2: the identical policy again)?
    own_cell_fn: Callable[[Lab, dict[str, Any]], bool] | None = None

    @property
    def label(self) -> str:
        return f"Exercise {self.task}.{self.number}"

    # -- the learner's cell ---------------------------------------------------------------

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Wrap the learner's cell: blanks and AWS's refusals become a short note.

        Errors of the learner's own Python (a typo, a NameError) still show in full. A
        cell that changes the state a catch-up made (its fingerprint), or meets an
        AlreadyExists refusal, is the learner's own work: the catch-up mark goes. A cell
        that runs but changes nothing (a wrong call, the URI cell of 2.1) leaves it.
        """
        marked = self._marked_lab()
        before = self._fingerprint(marked) if marked is not None else None
        try:
            yield
        except Exception as exc:
            if _is_blank_error(exc):
                note(
                    f"{self.label} is not done yet: replace each ____ with your answer (in "
                    f"this cell, or the earlier one it uses) and run it again. Stuck? "
                    f"{self._var}.hint()",
                    "⏳",
                )
                return
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code:
                message = exc.response["Error"].get("Message", "")  # type: ignore[attr-defined]
                operation = getattr(exc, "operation_name", "the call")
                meaning = (
                    self.explain_refusal(exc) if self.explain_refusal else None
                ) or self.expected_errors.get(
                    code, "Read AWS's message: it names the parameter or resource at fault."
                )
                note(f"AWS refused {operation}: {code}: {message}\n   {meaning}", "⚠️")
                if _ALREADY_DONE in code and marked is not None:
                    self._forget_catch_up(marked)
                return
            if type(exc).__name__ == "ParamValidationError":
                note(
                    f"boto3 refused the call before sending it:\n{exc}\n   "
                    "Compare the parameter names and types with the hint.",
                    "⚠️",
                )
                return
            raise
        else:
            if marked is not None and self._redone_in_cell(marked, before):
                self._forget_catch_up(marked)

    @property
    def _var(self) -> str:
        return f"q{self.number}"

    # -- catch-up marks: whose work the state is -------------------------------------------

    @property
    def _mark(self) -> str:
        return f"{self.task}.{self.number}"

    def _fingerprint(self, lab: Lab) -> str | None:
        if self.fingerprint_fn is None:
            return None
        try:
            return self.fingerprint_fn(lab)
        except Exception:  # noqa: BLE001 — no fingerprint: the mark waits for the cell
            return None

    def _record_catch_up(self, lab: Lab) -> None:
        """After ``solve()``: if it made the state right, mark that state as the catch-up's.

        Not for an exercise whose check takes the learner's result (``answer_fn``): a
        caught-up state gives no result to pass."""
        if self.answer_fn is not None or not self.evaluate(lab).passed:
            return
        record = {"fingerprint": self._fingerprint(lab)}

        def mark(state: dict[str, Any]) -> None:
            marks = _catch_up_marks(state)
            marks.setdefault(key, {})[self._mark] = record
            state[CATCH_UP_KEY] = marks

        try:
            key = _lab_key(lab)  # may ask AWS and write the state: never inside the update
            update_state(mark)
        except OSError as exc:  # an unwritable state file: the catch-up still did its work
            print(f"   (could not keep the catch-up's mark in the state file: {exc})")
            return
        print(
            f"   This counts toward Task {self.task}; {self._var}.check() stays ❌ until "
            "your own work replaces the catch-up's (the check says how)."
        )

    def _marked_lab(self) -> Lab | None:
        """The current lab if this exercise has a catch-up mark in it, else None; never
        raises (bookkeeping never breaks the learner's cell)."""
        try:
            marks = _catch_up_marks(load_state())
            if not any(isinstance(m, dict) and self._mark in m for m in marks.values()):
                return None  # nothing caught up: no need to ask which lab this is
            lab = current_lab()
            lab_marks = marks.get(_lab_key(lab))
            return lab if isinstance(lab_marks, dict) and self._mark in lab_marks else None
        except (LabkitError, OSError):
            return None

    def _redone_in_cell(self, lab: Lab, before: str | None) -> bool:
        """Did the learner's cell (which ran to its end) make the step itself?"""
        if self.fingerprint_fn is None:
            return True  # nothing to compare: a cell without a blank is the learner's
        after = self._fingerprint(lab)
        if before is not None and after is not None and after != before:
            return True
        if self.own_cell_fn is None:
            return False
        try:
            return self.own_cell_fn(lab, _cell_namespace())
        except Exception:  # noqa: BLE001 — unknown is not the learner's work
            return False

    def _forget_catch_up(self, lab: Lab) -> None:
        """The learner's own work (or a change to the state): the mark, if any, goes."""

        try:
            key = _lab_key(lab)  # may ask AWS and write the state: never inside the update
        except (LabkitError, OSError):  # bookkeeping never breaks the learner's cell
            return

        def forget(state: dict[str, Any]) -> None:
            lab_marks = _catch_up_marks(state).get(key)
            if isinstance(lab_marks, dict):
                lab_marks.pop(self._mark, None)

        try:
            update_state(forget)
        except OSError:  # bookkeeping never breaks the learner's cell
            pass

    def caught_up(self, lab: Lab) -> bool:
        """Is the state this exercise's check reads the catch-up's? True from ``solve()``
        until the learner's cell runs without a blank, or that state changes."""
        lab_marks = _catch_up_marks(load_state()).get(_lab_key(lab))
        record = lab_marks.get(self._mark) if isinstance(lab_marks, dict) else None
        if not isinstance(record, dict):
            return False
        made = record.get("fingerprint")
        now = self._fingerprint(lab) if made is not None else None
        # None: the state could not be read (a transient error): unknown is not changed.
        if made is not None and now is not None and now != made:
            self._forget_catch_up(lab)  # redone since (a terminal, an edited file)
            return False
        return True

    def _not_yours(self, lab: Lab, verdict: Verdict) -> Verdict:
        if not self.caught_up(lab):
            return verdict
        already = next((code for code in self.expected_errors if _ALREADY_DONE in code), "")
        counts = f" (a re-run that meets {already} counts)" if already else ""
        do = self.own_work or f"Fill in each ____ of the exercise cell and run it{counts}"
        return Verdict.wrong(
            f"the state is right ({verdict.message}), but the catch-up made it "
            f"({self._var}.solve()), not your cell",
            f"{do}: then this check reads your work. The catch-up counts toward Task "
            f"{self.task} either way, so you can move on.",
        )

    # -- learntools' three -------------------------------------------------------------

    def evaluate(
        self, lab: Lab | None = None, answers: tuple[Any, ...] = (), *, learner: bool = False
    ) -> CheckResult:
        """Check the real state (and, for an exercise with ``answer_fn``, the learner's
        ``answers``); never raises (an error becomes a ❌ result).

        ``learner``: judge the learner's own work, as ``check()`` does: a state the
        catch-up made is ❌ (for the task, :meth:`Task.evaluate`, it counts)."""
        lab = lab or current_lab()
        verdict = _run_guarded(self.evaluate_fn, lab)
        if verdict.passed and learner:
            checked = verdict
            verdict = _run_guarded(lambda lab_: self._not_yours(lab_, checked), lab)
        if verdict.passed and answers and self.answer_fn is not None:
            answer_fn = self.answer_fn
            blank = any(isinstance(a, Blank) for a in answers)
            verdict = (
                Verdict.wrong(
                    f"the real state is right, but your cell's result is still ____ "
                    f"({verdict.message})",
                    f"Run your call in the exercise cell: its result is what "
                    f"{self._var}.check(...) reads. Stuck? {self._var}.hint()",
                )
                if blank
                else _run_guarded(lambda lab_: answer_fn(lab_, *answers), lab)
            )
        return CheckResult(self.label, self.title, verdict.passed, verdict.message, verdict.hint)

    def check(self, *answers: Any, lab: Lab | None = None) -> None:
        """Show ✅/❌ with the hint for the cause; under CI a ❌ raises CheckFailed.

        ``answers``: the learner's own result, for an exercise whose step the real state
        cannot attribute (``q3.check(instances)``)."""
        if answers and isinstance(answers[0], Lab):  # q.check(lab), the older form
            lab, answers = answers[0], answers[1:]
        if self.answer_fn is not None and not answers:
            answers = (____,)  # the check needs the learner's result: none is a blank
        result = self.evaluate(lab, answers, learner=True)
        more = "" if result.passed else f"More help: {self._var}.hint(2), {self._var}.solution()"
        _show_result(result, more)

    def hint(self, level: int = 1) -> None:
        """Hint ``level`` (1 = a nudge … the last one nearly gives it away)."""
        level = max(1, min(int(level), len(self.hints)))
        text = self.hints[level - 1]
        more = f" (more: {self._var}.hint({level + 1}))" if level < len(self.hints) else ""
        show(
            f"<div>💡 <b>Hint {level}/{len(self.hints)}</b>: {html.escape(text)}"
            f"{html.escape(more)}</div>",
            f"💡 Hint {level}/{len(self.hints)}: {text}{more}",
        )

    def solution(self) -> None:
        """The reference answer: boto3 (loadable), the aws CLI, and the console path."""
        sol = self.solution_
        load = f"%load solutions/{sol.file}"
        plain = (
            f"Solution ({self.label}, {self.title})\n"
            f"boto3 (or `{load}` in the exercise cell):\n{textwrap.indent(sol.code, '    ')}\n"
            f"aws CLI:\n{textwrap.indent(sol.cli, '    ')}\n"
            f"Console: {sol.console}"
        )
        show(
            f"<div><b>Solution</b> ({html.escape(self.label)}, {html.escape(self.title)})</div>"
            f"<div>boto3 (or <code>{html.escape(load)}</code> in the exercise cell):</div>"
            f"<pre>{html.escape(sol.code)}</pre><div>aws CLI:</div>"
            f"<pre>{html.escape(sol.cli)}</pre><div>Console: {html.escape(sol.console)}</div>",
            plain,
        )

    def solve(self, lab: Lab | None = None) -> dict[str, Any]:
        """Catch-up: run the reference solution, for a learner who wants to move on;
        returns the names it set. It counts toward the task; this exercise's own check
        waits for the learner's work (see :meth:`caught_up`)."""
        lab = lab or current_lab()
        print(f"⏩ Catch-up: running the reference solution of {self.label} ({self.title}).")
        namespace = self.catch_up(lab)
        self._record_catch_up(lab)
        return namespace

    def catch_up(self, lab: Lab) -> dict[str, Any]:
        """What ``solve()`` runs: the solution file (a task may add its steps after it)."""
        return run_solution(self.solution_, lab, exercise=self)


def run_solution(solution: Solution, lab: Lab, exercise: Exercise | None = None) -> dict[str, Any]:
    """Execute a solution file as its exercise cell would run (with ``lab`` and ``q<n>``);
    returns the names it set (Task 2's catch-up reads ``REPOSITORY`` from them)."""
    namespace: dict[str, Any] = {"lab": lab, "____": ____, "__name__": "__labkit_solution__"}
    if exercise is not None:
        namespace[exercise._var] = exercise
    code = solution.code
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None:
        code = shell.transform_cell(code)  # `!aws …` lines, as in a notebook cell
    exec(compile(code, str(solution.path), "exec"), namespace)
    return namespace


@dataclass(frozen=True)
class Task:
    """A lab task: its exercises, in order. Done when every exercise's check passes."""

    number: int
    title: str
    exercises: Sequence[Exercise]

    @property
    def notebook(self) -> str:
        return NOTEBOOKS[self.number]

    @property
    def label(self) -> str:
        return f"Task {self.number}"

    def evaluate(self, lab: Lab | None = None) -> CheckResult:
        """The first exercise not done, or ✅ with every exercise's message."""
        lab = lab or current_lab()
        messages = []
        for exercise in self.exercises:
            result = exercise.evaluate(lab)
            if not result.passed:
                return CheckResult(self.label, self.title, False, result.message, result.hint)
            messages.append(result.message)
        return CheckResult(self.label, self.title, True, "; ".join(messages))

    def check(self, lab: Lab | None = None) -> None:
        _show_result(self.evaluate(lab))

    def solve(self, lab: Lab | None = None) -> None:
        """Catch-up for the whole task: each exercise not done yet runs its solution (and
        is marked as the catch-up's, see :meth:`Exercise.solve`)."""
        self.run_solutions(lab or current_lab(), mark=True)

    def restore(self, lab: Lab) -> None:
        """The task's state put right by its solutions, marking nothing (a challenge's
        setup or fix): the learner's own work stays theirs."""
        self.run_solutions(lab, mark=False)

    def run_solutions(self, lab: Lab, *, mark: bool) -> None:
        """Each exercise not done yet runs its solution; ``mark``: as ``q.solve()`` does."""
        for exercise in self.exercises:
            if not exercise.evaluate(lab).passed:
                if mark:
                    exercise.solve(lab)
                else:
                    exercise.catch_up(lab)
