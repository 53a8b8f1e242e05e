"""The instructor's board believes only the kit: the probe runs isolated from the learner's
files, its report is checked field by field, every text is escaped, and a probe that
hangs or lies costs one row, never the board.

The isolation test runs the real probe (with no sandbox: it reports one down) against a
home full of planted code, after proving each plant does take over an ordinary run.
"""

from __future__ import annotations

import html
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from labkit.classroom import board, host
from labkit.classroom.state import Classroom

KIT_ROOT = str(host.KIT_ROOT)
USER_SITE = f".local/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def perfect_report(marker: str = "") -> dict:
    """What a learner who did nothing would like the board to read."""
    tasks = [
        {
            "number": n,
            "label": f"Task {n}",
            "title": "done",
            "passed": True,
            "message": f"all good {marker}",
            "hint": "",
            "exercises": [
                {"label": f"Exercise {n}.1", "passed": True, "message": "ok", "caught_up": False}
            ],
        }
        for n in (1, 2, 3, 4)
    ]
    return {"sandbox": {"running": True, "problem": "", "docker": True}, "tasks": tasks}


def _plant_code(name: str) -> str:
    """Prints a perfect report and exits, when PLANTS names this plant."""
    report = json.dumps(perfect_report(f"planted-{name}"))
    return (
        f"import os\nif {name!r} in os.environ.get('PLANTS', '').split(','):\n"
        f"    print({report!r}, flush=True)\n    os._exit(0)\n"
    )


def plant_home(home: Path) -> None:
    """Where an ordinary run of the probe from the learner's home takes code from: the
    working folder (sys.path[0] under -m) and the user site folder (a .pth file,
    usercustomize, sitecustomize), which Pythons outside a virtual environment read."""
    package = home / "labkit" / "classroom"
    package.mkdir(parents=True)
    (home / "labkit" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "board.py").write_text(_plant_code("package"))
    site = home / USER_SITE
    site.mkdir(parents=True)
    (site / "usercustomize.py").write_text(_plant_code("usercustomize"))
    (site / "sitecustomize.py").write_text(_plant_code("sitecustomize"))
    (site / "plant.py").write_text(_plant_code("pth"))
    (site / "zz-plant.pth").write_text("import plant\n")


def learner_like_env(home: Path, plants: str) -> dict[str, str]:
    return {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "PLANTS": plants,
        "PYTHONPATH": KIT_ROOT,  # as host.learner_env sets it
        "LABKIT_SANDBOX_HOME": str(home / ".labkit" / "sandbox"),
        "LABKIT_STATE_DIR": str(home / ".labkit"),
        "LABKIT_SANDBOX_API_PORT": "9",  # nothing listens: no sandbox
    }


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout + done.stderr


ALL_PLANTS = "package,pth,usercustomize,sitecustomize"


def test_planted_code_takes_over_an_ordinary_run_but_not_the_isolated_probe(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    plant_home(home)
    # Each plant, alone, takes over an ordinary run from the home folder. The package
    # does in any Python; the user site ones in a Python outside a virtual environment
    # (a virtual environment turns the user site off), as the kit's may be.
    ordinary = [sys.executable, "-m", "labkit.classroom.board", "--probe"]
    output = _run(ordinary, learner_like_env(home, "package"), home)
    assert "planted-package" in output, output
    base = getattr(sys, "_base_executable", sys.executable)
    for plant in ("pth", "usercustomize", "sitecustomize"):
        output = _run([base, "-c", "pass"], learner_like_env(home, plant), home)
        assert f"planted-{plant}" in output, (plant, output)
    # Isolated, with every plant armed and Python's variables pointing home: none runs.
    env = learner_like_env(home, ALL_PLANTS)
    env.update(PYTHONHOME=str(home), PYTHONPATH=str(home), PYTHONUSERBASE=str(home / ".local"))
    env["PYTHONSTARTUP"] = str(home / "labkit" / "classroom" / "board.py")
    isolated = [base, *board.probe_argv(base)[1:-1], "print('the kit only')"]
    assert _run(isolated, env, home) == "the kit only\n"
    # The board's probe itself: the kit's answers (no sandbox runs here), no task on the row.
    stdout = board.run_probe(board.probe_argv(sys.executable), env, 60)
    assert "planted" not in stdout
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report == {
        "sandbox": {"running": False, "problem": "no sandbox process", "docker": False},
        "tasks": [],
        "challenge": None,
    }
    row = board.row_from_report("eve", stdout)
    assert (row.sandbox, row.tasks, row.done) == ("down (no sandbox process)", [], 0)


def test_a_valid_report_is_read() -> None:
    stdout = "a stray line\n" + json.dumps(perfect_report()) + "\n"
    row = board.row_from_report("ann", stdout)
    assert row.sandbox == "healthy" and row.done == 4 and row.stuck == ""
    report = perfect_report()
    report["tasks"][1]["passed"] = False
    report["tasks"][1]["exercises"][0].update(passed=False, message="no image")
    row = board.row_from_report("ann", json.dumps(report))
    assert row.done == 3 and row.stuck == "Exercise 2.1: no image"


def test_a_task_the_catch_up_did_shows_as_caught_up_not_done() -> None:
    report = perfect_report()
    report["tasks"][1]["exercises"][0]["caught_up"] = True
    report["tasks"][2]["exercises"].append(
        {"label": "Exercise 3.2", "passed": True, "message": "ok", "caught_up": True}
    )
    row = board.row_from_report("cat", json.dumps(report))
    assert row.done == 4 and row.stuck == ""  # the lab's state is right: Task 2 counts
    text = board.as_text([row])
    assert "✅ ⏩ ⏩ ✅" in text and board.CAUGHT_UP_LEGEND in text
    page = board.as_html([row])
    assert page.count("<td title='all good  (by catch-up: Exercise 2.1)'>⏩</td>") == 1
    assert "(by catch-up: Exercise 3.2)'>⏩</td>" in page
    assert page.count("✅") == 2 and html.escape(board.CAUGHT_UP_LEGEND) in page
    # Nobody caught up: no legend.
    plain = board.row_from_report("ann", json.dumps(perfect_report()))
    assert board.CAUGHT_UP_LEGEND not in board.as_text([plain])
    assert "⏩" not in board.as_html([plain])


def test_a_failed_task_shows_failed_whatever_its_caught_up_exercises() -> None:
    report = perfect_report()
    report["tasks"][0]["passed"] = False
    report["tasks"][0]["exercises"][0]["caught_up"] = True
    row = board.row_from_report("cat", json.dumps(report))
    assert "❌ ✅ ✅ ✅" in board.as_text([row])


def _with(change) -> str:
    report = perfect_report()
    change(report)
    return json.dumps(report)


@pytest.mark.parametrize(
    ("stdout", "why"),
    [
        ("", "printed no report"),
        ("Traceback (most recent call last):", "last line is not JSON"),
        ("[1, 2]", "the report is list, not dict"),
        (json.dumps({"tasks": []}), "sandbox is NoneType, not dict"),
        (_with(lambda r: r["sandbox"].update(running="yes")), "sandbox.running is str"),
        (_with(lambda r: r.update(tasks={"1": {}})), "tasks is dict, not list"),
        (_with(lambda r: r["tasks"].append("Task 5")), "tasks[4] is str, not dict"),
        (
            _with(lambda r: r["tasks"][0].update(number="<script>alert(1)</script>")),
            "tasks[0].number is str, not int",
        ),
        (_with(lambda r: r["tasks"][0].update(number=True)), "tasks[0].number is bool"),
        (_with(lambda r: r["tasks"][0].update(number=10**9)), "not a task's number"),
        (_with(lambda r: r["tasks"][0].update(number=2)), "numbers tasks twice"),
        (_with(lambda r: r["tasks"][2].update(passed=1)), "tasks[2].passed is int, not bool"),
        (_with(lambda r: r["tasks"][2].update(message=None)), "tasks[2].message is NoneType"),
        (_with(lambda r: r["tasks"][3].pop("exercises")), "tasks[3].exercises is NoneType"),
        (
            _with(lambda r: r["tasks"][3]["exercises"][0].update(passed="true")),
            "exercises.passed is str",
        ),
        (
            _with(lambda r: r["tasks"][3]["exercises"][0].pop("caught_up")),
            "exercises.caught_up is NoneType, not bool",
        ),
        (
            _with(lambda r: r["tasks"][3]["exercises"][0].update(caught_up="no")),
            "exercises.caught_up is str, not bool",
        ),
        (
            _with(lambda r: r["sandbox"].update(running=False, problem="down")),
            "tasks but no running sandbox",
        ),
    ],
)
def test_a_report_of_the_wrong_shape_fails_that_row_only(stdout: str, why: str) -> None:
    rows = [board.row_from_report("mal", stdout), board.row_from_report("ann", "")]
    rows.append(board.row_from_report("bob", json.dumps(perfect_report())))
    assert rows[0].sandbox.startswith("probe failed: ") and why in rows[0].sandbox
    assert rows[0].tasks == [] and rows[0].done == 0
    # The rest of the board renders, in every form.
    page, text = board.as_html(rows), board.as_text(rows)
    assert "<tr><td>bob</td>" in page and "probe failed: " in page
    assert "bob" in text and "✅ ✅ ✅ ✅" in text
    json.dumps([row.__dict__ for row in rows])
    assert "<script" not in page


def test_every_text_on_the_page_is_escaped() -> None:
    evil = "<script>alert('x')</script>\"'&"
    report = perfect_report()
    report["sandbox"]["docker"] = True
    report["tasks"][0].update(passed=False, message=evil, label=evil, hint=evil, title=evil)
    report["tasks"][0]["exercises"][0].update(passed=False, label=evil, message=evil)
    rows = [board.row_from_report("eve", json.dumps(report))]
    rows.append(board.LearnerRow(name=evil, sandbox=evil, stuck=evil))
    page = board.as_html(rows)
    assert "<script" not in page and "alert('x')" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;&#x27;&amp;" in page
    # eve's task title and stuck ("label: message"); the other's name, sandbox, stuck.
    assert page.count("&lt;script&gt;") == 6


def test_report_texts_become_one_short_printable_line() -> None:
    report = perfect_report()
    report["tasks"][0].update(passed=False)
    report["tasks"][0]["exercises"][0].update(
        passed=False, message="red \x1b[31mtext\x1b[0m\nsecond line\r" + "x" * 5000
    )
    row = board.row_from_report("eve", json.dumps(report))
    assert "\x1b" not in row.stuck and "\n" not in row.stuck and "\r" not in row.stuck
    assert row.stuck.startswith("Exercise 1.1: red  [31mtext [0m second line ")
    assert len(row.stuck) <= len("Exercise 1.1: ") + board.TEXT_LIMIT
    assert "\x1b" not in board.as_text([row])


def test_a_probe_that_hangs_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        # One that leaves the probe's session and keeps its pipes open.
        "runaway = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],\n"
        "                           start_new_session=True)\n"
        f"open({str(pids)!r}, 'w').write(f'{{child.pid}} {{runaway.pid}}')\n"
        "time.sleep(120)\n"
    )
    started = time.monotonic()
    with pytest.raises(board.ProbeFailed, match="no report within 2 s; the probe was stopped"):
        board.run_probe([sys.executable, "-c", hang], {"PATH": "/usr/bin:/bin"}, timeout=2)
    assert time.monotonic() - started < 15
    child, runaway = (int(pid) for pid in pids.read_text().split())
    try:
        # Killed with the probe's group, and reaped by init.
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child)
        assert _alive(runaway)  # out of the probe's group: not the board's to signal
    finally:
        os.kill(runaway, signal.SIGKILL)  # ours: this test started it


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_probe_that_fails_says_how() -> None:
    argv = [sys.executable, "-c", "import sys; sys.exit('the sandbox settings are wrong')"]
    with pytest.raises(board.ProbeFailed, match="exited with 1: the sandbox settings are wrong"):
        board.run_probe(argv, {"PATH": "/usr/bin:/bin"}, timeout=30)


def _entry(uid: int = 54321, gid: int = 54321) -> pwd.struct_passwd:
    return pwd.struct_passwd(("lk-eve", "x", uid, gid, "", "/home/lk-eve", "/bin/bash"))


def test_the_probe_env_has_no_python_or_aws_configuration_of_the_learners() -> None:
    room = Classroom(state_dir=Path("/nonexistent"), python=sys.executable)
    env = board.probe_env(_entry(), host.Learner("eve", 4710, 4780), room)
    assert not [key for key in env if key.startswith(("PYTHON", "JUPYTER"))]
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert env["HOME"] == "/home/lk-eve" and env["LABKIT_SANDBOX_API_PORT"] == "4710"
    argv = board.probe_argv(sys.executable)
    assert argv[:3] == [sys.executable, "-I", "-c"] and repr(KIT_ROOT) in argv[3]


@pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user (chown)")
def test_the_board_does_not_probe_while_a_learner_could_change_the_kit(tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    (kit / "labkit").mkdir(parents=True)
    module = kit / "labkit" / "board.py"
    module.write_text("")
    for path in (tmp_path, kit, kit / "labkit"):
        path.chmod(0o755)
    module.chmod(0o644)
    eve = _entry()
    assert board.kit_writable_by(eve, [kit], [kit / "labkit"]) == ""
    module.chmod(0o666)  # anyone may write the module
    assert f"lk-eve can change {module} (owner uid 0, mode 666)" in board.kit_writable_by(
        eve, [], [kit / "labkit"]
    )
    module.chmod(0o644)
    kit.chmod(0o775)
    os.chown(kit, 0, eve.pw_gid)  # the learner's group may write a folder above the kit
    assert f"can change {kit} " in board.kit_writable_by(eve, [], [kit / "labkit"])
    assert board.kit_writable_by(_entry(gid=54322), [], [kit / "labkit"]) == ""
    kit.chmod(0o755)
    os.chown(module, eve.pw_uid, 0)  # the learner owns a file: they may chmod it
    assert f"can change {module} " in board.kit_writable_by(eve, [], [kit / "labkit"])
    os.chown(module, 0, 0)
    # A sticky, world-writable folder above (as /tmp) lets them add names, not change ours.
    kit.chmod(0o1777)
    assert board.kit_writable_by(eve, [], [kit / "labkit"]) == ""
    # ...but not where the code is.
    assert "can change" in board.kit_writable_by(eve, [kit], [])


def test_the_kit_here_is_out_of_a_new_learners_reach() -> None:
    """What `classroom status` checks for each learner holds for this checkout."""
    folders, trees = board.kit_folders(sys.executable)
    assert host.KIT_ROOT / "labkit" in trees
    assert board.kit_writable_by(_entry(), folders, trees) == ""


def test_a_challenge_in_the_report_is_checked_and_escaped() -> None:
    """The break-and-fix field: shown on the row when well formed, a failed probe when not."""
    sandbox = {"running": True, "problem": None, "docker": True}
    good = {"name": "<b>exits</b>", "score": 80, "fixed": True}
    row = board.row_from_report(
        "eve", json.dumps({"sandbox": sandbox, "tasks": [], "challenge": good})
    )
    assert row.challenge == good
    assert "challenge <b>exits</b>: 80 points (fixed)" in board.as_text([row])
    assert "&lt;b&gt;exits&lt;/b&gt;" in board.as_html(
        [row], 5
    ) and "<b>exits" not in board.as_html([row], 5)
    bad = {"name": "exits", "score": "100", "fixed": True}
    row = board.row_from_report(
        "eve", json.dumps({"sandbox": sandbox, "tasks": [], "challenge": bad})
    )
    assert row.sandbox == "probe failed: challenge.score is str, not int"


def test_the_probe_reports_an_exercise_the_catch_up_did(lab, catch_up) -> None:
    """The probe's entry for each exercise, from the kit's real checks on moto."""
    from labkit.tasks import task1

    assert board.exercise_entry(task1.q1, lab)["passed"] is False  # nothing done yet
    catch_up(lab, task1.TASK)
    for exercise in (task1.q1, task1.q2):
        entry = board.exercise_entry(exercise, lab)
        assert (entry["passed"], entry["caught_up"]) == (True, True)
    # What the board makes of it: Task 1 done, by catch-up.
    report = perfect_report()
    report["tasks"][0]["exercises"] = [board.exercise_entry(e, lab) for e in task1.TASK.exercises]
    assert "⏩ ✅ ✅ ✅" in board.as_text([board.row_from_report("cat", json.dumps(report))])
