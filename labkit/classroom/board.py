"""The instructor's board: every learner's real lab state, read by the lab's own checks.

For each learner a probe runs as that learner, with their sandbox's settings, and asks
their sandbox through ``labkit.tasks`` exactly what the notebooks' checks ask. Nothing of
the learner's own code runs in it: its interpreter starts isolated (``-I``: no ``PYTHON*``
variables, no user site folder, neither the working nor the script folder on
``sys.path``) in a root-owned folder, with the kit's own folder first on its path; and the
board does not probe a learner who could change the kit's code. The probe's report is
then checked field by field: a report of the wrong shape, or no report in time, becomes
"probe failed: …" on that learner's row, never a ✅ nor a crash of the board.
"""

from __future__ import annotations

import html
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.classroom import host
from labkit.classroom.limits import Cell
from labkit.classroom.state import Classroom

if TYPE_CHECKING:
    from labkit.lab import Lab
    from labkit.tasks.exercise import Exercise

#: A probe that has not answered by then is stopped (with everything it started).
PROBE_SECONDS = 120.0
#: The probe's working folder: root's, so nothing in it is the learner's.
PROBE_FOLDER = "/"
#: Longest text kept from a report's field (a message, a hint): the rest is cut.
TEXT_LIMIT = 400
#: The probe's own code: the kit's folder first, then the report on stdout's last line.
_PROBE_CODE = (
    "import sys; sys.path.insert(0, {kit!r}); "
    "from labkit.classroom.board import print_probe; print_probe()"
)

#: The same for `reset` and `goto`: the kit's command line, run as the learner.
_CLI_CODE = (
    "import sys; sys.path.insert(0, {kit!r}); "
    "from labkit.cli import main; sys.exit(main(sys.argv[1:]))"
)


class ProbeFailed(Exception):
    """Why a learner's probe gave no usable report (shown on their row)."""


@dataclass
class LearnerRow:
    name: str
    sandbox: str  # "healthy", or what is wrong
    tasks: list[dict[str, Any]] = field(default_factory=list)
    stuck: str = ""  # the first failed check's label and message
    challenge: dict[str, Any] | None = None  # `labkit challenge`: {name, score, fixed}

    @property
    def done(self) -> int:
        return sum(1 for task in self.tasks if task["passed"])


def probe() -> dict[str, Any]:
    """Run as the learner: their sandbox's health and every task's and exercise's check."""
    from labkit import sandbox
    from labkit.lab import Lab
    from labkit.tasks import all_tasks

    status = sandbox.status()
    report: dict[str, Any] = {
        "sandbox": {"running": status.running, "problem": status.problem, "docker": status.docker},
        "challenge": _challenge(),
    }
    if not status.running:
        report["tasks"] = []
        return report
    lab = Lab.from_parameters(backend="sandbox")
    tasks = []
    for task in all_tasks():
        result = task.evaluate(lab)
        exercises = [exercise_entry(exercise, lab) for exercise in task.exercises]
        tasks.append(
            {
                "number": task.number,
                "label": result.label,
                "title": result.title,
                "passed": result.passed,
                "message": result.message,
                "hint": result.hint,
                "exercises": exercises,
            }
        )
    report["tasks"] = tasks
    return report


def exercise_entry(exercise: Exercise, lab: Lab) -> dict[str, Any]:
    """One exercise in the probe's report: its check, and whether a passed check reads
    what the catch-up (``q.solve()``) made rather than the learner's own cells."""
    check = exercise.evaluate(lab)
    return {
        "label": check.label,
        "passed": check.passed,
        "message": check.message,
        "caught_up": check.passed and exercise.caught_up(lab),
    }


def print_probe() -> None:
    """The probe's output: its report as one JSON line."""
    print(json.dumps(probe(), default=str))


# -- running the probe as the learner, and reading its report -----------------------


def probe_argv(python: str) -> list[str]:
    """The probe's command: isolated mode, and only the kit's folder added to the path."""
    return [python, "-I", "-c", _PROBE_CODE.format(kit=str(host.KIT_ROOT))]


def probe_env(entry: pwd.struct_passwd, learner: host.Learner, room: Classroom) -> dict[str, str]:
    """The learner's lab settings (their sandbox's ports, home and Docker Engine), without
    Python's variables (``-I`` ignores them, but the probe's children would not) and with
    no AWS configuration file of theirs: the sandbox's own keys and endpoint only."""
    env = host.learner_env(entry, learner, room.python, rootless=room.rootless)
    env = {key: value for key, value in env.items() if not key.startswith(("PYTHON", "JUPYTER"))}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def run_probe(
    argv: list[str],
    env: dict[str, str],
    timeout: float = PROBE_SECONDS,
    entry: pwd.struct_passwd | None = None,
    cell: Cell | None = None,
) -> str:
    """Run ``argv`` (as ``entry``'s user and group only, when given; inside the learner's
    cgroup when ``cell`` is given) in its own session, from ``PROBE_FOLDER``; its stdout.
    Stopped with all it started after ``timeout``."""
    as_learner: dict[str, Any] = {}
    if entry is not None:
        as_learner = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    process = (subprocess.Popen if cell is None else cell.popen)(
        argv,
        env=env,
        cwd=PROBE_FOLDER,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
        **as_learner,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProbeFailed(f"no report within {timeout:g} s; the probe was stopped") from None
    finally:
        if process.returncode is None:
            _stop_session(process)
    if process.returncode != 0:
        last = (stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise ProbeFailed(f"the probe exited with {process.returncode}: {_text(last)}")
    return stdout


def _stop_session(process: subprocess.Popen) -> None:
    """Kill the probe's process group: the probe's own (its session, started above), and
    still ours to signal, since the probe is not reaped yet so its id is not reused."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # A child that left the group still holds the pipes: stop reading them.
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        process.wait()


def read_report(stdout: str) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None]:
    """The sandbox's health, the tasks and the challenge under way (or None), from the
    probe's output, each field checked
    for its type and its text made printable and short; ProbeFailed says what is wrong."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ProbeFailed("the probe printed no report")
    try:
        report = json.loads(lines[-1])
    except ValueError:
        raise ProbeFailed(f"the probe's last line is not JSON: {_text(lines[-1], 80)!r}") from None
    report = _field(report, dict, "the report")
    sandbox = _field(report.get("sandbox"), dict, "sandbox")
    running = _field(sandbox.get("running"), bool, "sandbox.running")
    docker = _field(sandbox.get("docker"), bool, "sandbox.docker")
    problem = sandbox.get("problem")
    problem = "" if problem is None else _text(_field(problem, str, "sandbox.problem"))
    raw_tasks = _field(report.get("tasks"), list, "tasks")
    if not running and raw_tasks:
        raise ProbeFailed("the report has tasks but no running sandbox")
    tasks = [_task(raw, f"tasks[{index}]") for index, raw in enumerate(raw_tasks)]
    numbers = [task["number"] for task in tasks]
    if len(set(numbers)) != len(numbers):
        raise ProbeFailed(f"the report numbers tasks twice: {numbers}")
    challenge = _challenge_field(report.get("challenge"))
    if not running:
        return f"down ({problem or 'no reason given'})", [], challenge
    return ("healthy" if docker else "no Docker (API only)"), tasks, challenge


def _challenge_field(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    challenge = _field(raw, dict, "challenge")
    score = _field(challenge.get("score"), int, "challenge.score")
    return {
        "name": _text(_field(challenge.get("name"), str, "challenge.name"), 80),
        "score": score,
        "fixed": _field(challenge.get("fixed"), bool, "challenge.fixed"),
    }


def _task(raw: Any, where: str) -> dict[str, Any]:
    task = _field(raw, dict, where)
    number = _field(task.get("number"), int, f"{where}.number")
    if not 1 <= number <= 99:
        raise ProbeFailed(f"{where}.number is {number}, not a task's number")
    exercises = []
    for index, item in enumerate(_field(task.get("exercises"), list, f"{where}.exercises")):
        exercise = _field(item, dict, f"{where}.exercises[{index}]")
        exercises.append(
            {
                "label": _text(_field(exercise.get("label"), str, f"{where}.exercises.label")),
                "passed": _field(exercise.get("passed"), bool, f"{where}.exercises.passed"),
                "caught_up": _field(
                    exercise.get("caught_up"), bool, f"{where}.exercises.caught_up"
                ),
                "message": _text(
                    _field(exercise.get("message"), str, f"{where}.exercises.message")
                ),
            }
        )
    checked: dict[str, Any] = {"number": number}
    for name in ("label", "title", "message", "hint"):
        checked[name] = _text(_field(task.get(name), str, f"{where}.{name}"))
    checked["passed"] = _field(task.get("passed"), bool, f"{where}.passed")
    checked["exercises"] = exercises
    return checked


def _field(value: Any, kind: type, where: str) -> Any:
    # type(), not isinstance: True is an int, and a task numbered True is not a task.
    if type(value) is not kind:
        raise ProbeFailed(f"{where} is {type(value).__name__}, not {kind.__name__}")
    return value


def _text(value: str, limit: int = TEXT_LIMIT) -> str:
    """One printable line (no terminal control codes for `classroom status`), cut short."""
    line = "".join(char if char.isprintable() else " " for char in value)
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- the kit's code, out of the learners' reach -------------------------------------


def kit_folders(python: str) -> tuple[list[Path], list[Path]]:
    """Where the probe's code comes from: (folders checked with their parents, folders
    checked with everything in them). The kit's package; this interpreter's standard
    library and site folders; and a shared environment of ``host.learner_python``,
    whose ``.pth`` file adds this interpreter's site folder."""
    paths = sysconfig.get_paths()
    folders = [Path(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    trees = [host.KIT_ROOT / "labkit"]
    environment = Path(python).parent.parent
    if (environment / "pyvenv.cfg").exists() and environment != Path(sys.prefix):
        trees.append(environment)
    return folders, trees


def kit_writable_by(entry: pwd.struct_passwd, folders: list[Path], trees: list[Path]) -> str:
    """Why ``entry``'s user could change code the probe runs ("" when they cannot)."""
    for folder in [*folders, *trees]:
        real = folder.resolve()
        if not real.exists():
            continue
        for path in [real, *real.parents]:
            status = path.stat()
            # A sticky folder (/tmp) lets them add names, not rename or remove others'.
            sticky = path != real and status.st_mode & stat.S_ISVTX
            if _writable_by(entry, status) and not (sticky and status.st_uid != entry.pw_uid):
                return _writable_message(entry, path, status)
    for tree in trees:
        for root, names, files in os.walk(tree.resolve()):
            for name in [*names, *files]:
                status = os.lstat(Path(root, name))
                if not stat.S_ISLNK(status.st_mode) and _writable_by(entry, status):
                    return _writable_message(entry, Path(root, name), status)
    return ""


def _writable_by(entry: pwd.struct_passwd, status: os.stat_result) -> bool:
    # Their own file they may chmod; the probe runs with their group only (extra_groups=[]).
    if status.st_uid == entry.pw_uid or status.st_mode & stat.S_IWOTH:
        return True
    return bool(status.st_mode & stat.S_IWGRP) and status.st_gid == entry.pw_gid


def _writable_message(entry: pwd.struct_passwd, path: Path, status: os.stat_result) -> str:
    return (
        f"{entry.pw_name} can change {path} (owner uid {status.st_uid}, mode "
        f"{stat.S_IMODE(status.st_mode):o}), so the probe could run their code; "
        f"make it root's and not writable by others: chown root {path}; chmod go-w {path}"
    )


# -- the board ----------------------------------------------------------------------


# -- break-and-fix challenges (labkit.challenges): the probe adds challenge: {name, score,
# fixed} from the learner's own state file (no API call); the board shows it after "stuck".


def _challenge() -> dict[str, Any] | None:
    from labkit.challenges.engine import board_summary

    return board_summary()


def challenge_text(row: LearnerRow) -> str:
    c = row.challenge
    if not c:
        return ""
    fixed = " (fixed)" if c["fixed"] else ""
    return f" · challenge {c['name']}: {c['score']} points{fixed}"


def learner_row(room: Classroom, learner: host.Learner) -> LearnerRow:
    """The learner's row; a probe that fails says so in it and never stops the board."""
    try:
        entry = pwd.getpwnam(learner.unix_user)
    except KeyError:
        return LearnerRow(learner.name, "no account")
    if not host.is_classroom_account(entry):
        refused = f"probe refused: {entry.pw_name} is not a classroom account"
        return LearnerRow(learner.name, refused)
    try:
        refused = kit_writable_by(entry, *kit_folders(room.python))
        if refused:
            return LearnerRow(learner.name, f"probe refused: {refused}")
        argv, env = probe_argv(room.python), probe_env(entry, learner, room)
        output = run_probe(argv, env, PROBE_SECONDS, entry, cell=room.cell(learner))
        return row_from_report(learner.name, output)
    except ProbeFailed as failed:
        return LearnerRow(learner.name, f"probe failed: {failed}")
    except Exception as exc:  # noqa: BLE001 — one learner's row, not the whole board
        return LearnerRow(learner.name, f"probe failed: {type(exc).__name__}: {_text(str(exc))}")


def row_from_report(name: str, stdout: str) -> LearnerRow:
    """The row a probe's output makes: its tasks and where the learner is stuck, or
    "probe failed: …" with what is wrong with the report."""
    try:
        health, tasks, challenge = read_report(stdout)
    except ProbeFailed as failed:
        return LearnerRow(name, f"probe failed: {failed}")
    row = LearnerRow(name, health, tasks, challenge=challenge)
    for task in row.tasks:
        if not task["passed"]:
            failed = next((e for e in task["exercises"] if not e["passed"]), None)
            row.stuck = f"{(failed or task)['label']}: {(failed or task)['message']}"
            break
    return row


def board(room: Classroom, parallel: int = 4) -> list[LearnerRow]:
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(lambda learner: learner_row(room, learner), room.learners))


def _stuck(row: LearnerRow) -> str:
    return row.stuck or ("all done" if row.tasks else "")


#: A passed task with an exercise the catch-up (q.solve()) did, not the learner's cells.
CAUGHT_UP_MARK = "⏩"
CAUGHT_UP_LEGEND = f"{CAUGHT_UP_MARK} passed by catch-up (q.solve()), not the learner's own cells"


def caught_up_exercises(task: dict[str, Any]) -> list[str]:
    """The labels of the task's exercises the catch-up did."""
    return [exercise["label"] for exercise in task["exercises"] if exercise["caught_up"]]


def task_mark(task: dict[str, Any]) -> str:
    """✅ done, ⏩ done but (partly) by catch-up, ❌ not done."""
    if task["passed"] is not True:
        return "❌"
    return CAUGHT_UP_MARK if caught_up_exercises(task) else "✅"


def _task_title(task: dict[str, Any]) -> str:
    caught_up = caught_up_exercises(task)
    if task["passed"] is True and caught_up:
        return f"{task['message']} (by catch-up: {', '.join(caught_up)})"
    return str(task["message"])


def _any_caught_up(rows: list[LearnerRow]) -> bool:
    return any(task_mark(task) == CAUGHT_UP_MARK for row in rows for task in row.tasks)


def as_text(rows: list[LearnerRow]) -> str:
    numbers = sorted({task["number"] for row in rows for task in row.tasks}) or [1, 2, 3, 4]
    header = f"{'learner':<16} " + " ".join(f"T{n}" for n in numbers) + "  sandbox    stuck at"
    lines = [header, "-" * len(header)]
    for row in rows:
        marks = {task["number"]: task_mark(task) for task in row.tasks}
        cells = " ".join(f"{marks.get(n, '··')}" for n in numbers)
        stuck = _stuck(row) + challenge_text(row)
        lines.append(f"{row.name:<16} {cells}  {row.sandbox:<10} {stuck}")
    if _any_caught_up(rows):
        lines.append(CAUGHT_UP_LEGEND)
    return "\n".join(lines)


def as_html(rows: list[LearnerRow], refresh_seconds: int = 30) -> str:
    """The board as a page; every text in it is escaped (the checks' messages quote what
    learners typed: a container's name, a family)."""
    numbers = sorted({task["number"] for row in rows for task in row.tasks}) or [1, 2, 3, 4]
    head = "".join(f"<th>Task {html.escape(str(n))}</th>" for n in numbers)
    body = []
    for row in rows:
        marks = {task["number"]: task for task in row.tasks}
        cells = "".join(
            f"<td title='{html.escape(_task_title(marks[n]))}'>" + task_mark(marks[n]) + "</td>"
            if n in marks
            else "<td>·</td>"
            for n in numbers
        )
        body.append(
            f"<tr><td>{html.escape(row.name)}</td>{cells}<td>{html.escape(row.sandbox)}</td>"
            f"<td>{html.escape(_stuck(row) + challenge_text(row))}</td></tr>"
        )
    return (
        "<!doctype html><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{int(refresh_seconds)}'>"
        "<title>Classroom board</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        "</style><h1>Classroom board</h1>"
        f"<table><tr><th>learner</th>{head}<th>sandbox</th><th>stuck at</th></tr>"
        + "".join(body)
        + "</table>"
        + (f"<p>{html.escape(CAUGHT_UP_LEGEND)}</p>" if _any_caught_up(rows) else "")
    )


def reset(room: Classroom, name: str) -> str:
    """Back to a clean lab for one learner (as they would with `labkit reset`)."""
    return _as_learner(room, name, ["reset"])


def bring_to(room: Classroom, name: str, task: int) -> str:
    """Run the solved notebooks up to task ``task`` for one learner (their lab, their runs)."""
    run = ["run", "--until", f"{task:02d}", "-q", "-o", "runs/catch-up", "--notebooks", "notebooks"]
    return _as_learner(room, name, run)


def _as_learner(room: Classroom, name: str, args: list[str]) -> str:
    """``labkit ARGS`` as the learner, from the kit's own code (isolated, as the probe;
    what it starts, notebooks' kernels, is their lab as usual); its output, without
    terminal control codes, for the instructor's terminal."""
    learner = room.learner(name)
    entry = pwd.getpwnam(learner.unix_user)
    env = host.learner_env(entry, learner, room.python, rootless=room.rootless)
    argv = [room.python, "-I", "-c", _CLI_CODE.format(kit=str(host.KIT_ROOT)), *args]
    done = host.run_as(entry, env, argv, 1800, cell=room.cell(learner))
    output = (done.stdout + done.stderr).strip()
    return "\n".join(_text(line, 10_000) for line in output.splitlines())


if __name__ == "__main__" and sys.argv[1:] == ["--probe"]:
    print_probe()  # by hand, to see a report; the board runs it isolated (probe_argv)
