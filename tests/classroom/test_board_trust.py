"""The board shows what a learner did, not what they planted.

One learner, Eve, starts her server and does nothing; then, from her own account, she
plants a ``labkit/classroom/board.py`` in her home and a usercustomize, sitecustomize and
``.pth`` file in her user site folder, each printing a perfect report. The planted package
does take over an ordinary run of the probe from her home (checked first); the board
still shows none of her tasks passed. Task 1 done for real (with her sandbox keys) shows;
an image named with a script shows escaped on the live board page; and the board's
reset of her lab runs the kit's reset, not her planted one.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from labkit import ecr
from labkit.classroom import board, hub
from labkit.classroom.state import Classroom
from labkit.names import KIT_TAG_KEY, KIT_TAG_VALUE, LAB
from tests.classroom.test_classroom import PASSWORD, LearnerSession, _require_classroom_host
from tests.conftest import free_port

pytestmark = pytest.mark.classroom

_loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SCRIPT_NAME = "<script>alert('eve')</script>"


def _perfect_report(planted_by: str) -> str:
    tasks = [
        {
            "number": n,
            "label": f"Task {n}",
            "title": "done",
            "passed": True,
            "message": f"planted by {planted_by}",
            "hint": "",
            "exercises": [
                {"label": f"Exercise {n}.1", "passed": True, "message": "ok", "caught_up": False}
            ],
        }
        for n in (1, 2, 3, 4)
    ]
    report = {"sandbox": {"running": True, "problem": "", "docker": True}, "tasks": tasks}
    return json.dumps(report)


def _plant(planted_by: str) -> str:
    return f"import os\nprint({_perfect_report(planted_by)!r}, flush=True)\nos._exit(0)\n"


# A `labkit reset` that resets nothing and retitles the instructor's terminal.
PLANTED_CLI = "print('\\x1b]0;planted\\x07reset done (planted)')\n"

# Run by Eve herself: her files, made by her process (root writes nothing in her home).
PLANT = f"""
import os, pathlib, site, sys
home = pathlib.Path.home()
package = home / "labkit" / "classroom"
package.mkdir(parents=True, exist_ok=True)
(home / "labkit" / "__init__.py").write_text("")
(package / "__init__.py").write_text("")
(package / "board.py").write_text({_plant("a planted package")!r})
(home / "labkit" / "cli.py").write_text({PLANTED_CLI!r})
user_site = home / ".local/lib/python{{}}.{{}}/site-packages".format(*sys.version_info[:2])
user_site.mkdir(parents=True, exist_ok=True)
(user_site / "usercustomize.py").write_text({_plant("usercustomize")!r})
(user_site / "sitecustomize.py").write_text({_plant("sitecustomize")!r})
(user_site / "zz_plant.py").write_text({_plant("a .pth file")!r})
(user_site / "zz-plant.pth").write_text("import zz_plant\\n")
(home / "sitecustomize.py").write_text({_plant("sitecustomize in home")!r})
print("planted")
"""


@pytest.fixture(scope="module")
def eve(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _require_classroom_host()
    state = tmp_path_factory.mktemp("classroom-board") / "state"
    name = f"bt{secrets.token_hex(2)}-eve"
    roster = state.parent / "roster.txt"
    roster.write_text(name + "\n")
    room = hub.up(
        roster,
        state,
        "127.0.0.1",
        free_port(),
        PASSWORD,
        say=lambda *_: None,
        board_port=free_port(),
    )
    try:
        session = LearnerSession(room, name)
        session.start_server()
        session.wait_ready()
        yield session
    finally:
        hub.down(state, say=lambda *_: None, delete_accounts=True)


def _board_row(room: Classroom, name: str) -> board.LearnerRow:
    rows = {row.name: row for row in board.board(room)}
    return rows[name]


def test_planted_code_does_not_reach_the_board(eve: LearnerSession) -> None:
    room = eve.room
    done = eve.as_unix_user([room.python, "-c", PLANT])
    assert done.stdout.strip() == "planted", done.stderr
    # The plant works: an ordinary run of the probe from her home answers with it.
    ordinary = eve.as_unix_user([room.python, "-m", "labkit.classroom.board", "--probe"])
    assert "planted by a planted package" in ordinary.stdout, ordinary.stdout + ordinary.stderr
    # The board's probe reads her sandbox: healthy, and not one task done.
    row = _board_row(room, eve.name)
    assert row.sandbox == "healthy", row
    assert [task["number"] for task in row.tasks] == [1, 2, 3, 4], row
    assert [task["passed"] for task in row.tasks] == [False] * 4, row
    assert row.done == 0 and row.stuck.startswith("Exercise 1.1: "), row
    assert "planted" not in json.dumps(row.__dict__)
    text = board.as_text([row])
    assert f"{eve.name:<16} ❌ ❌ ❌ ❌  healthy" in text, text


def test_what_she_really_does_shows(eve: LearnerSession) -> None:
    """Task 1 done with her own sandbox keys, as her notebook would: the board shows it."""
    ecr_client, iam = eve.client("ecr", eve), eve.client("iam", eve)
    ecr_client.create_repository(
        repositoryName=LAB.repository, tags=[{"Key": KIT_TAG_KEY, "Value": KIT_TAG_VALUE}]
    )
    role_arn = iam.get_role(RoleName=LAB.instance_role)["Role"]["Arn"]
    statement = {
        "Sid": LAB.repository_statement,
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": list(ecr.REPOSITORY_ACTIONS),
    }
    ecr_client.set_repository_policy(
        repositoryName=LAB.repository,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    row = _board_row(eve.room, eve.name)
    assert [task["passed"] for task in row.tasks] == [True, False, False, False], row
    assert row.stuck.startswith("Exercise 2."), row


def test_what_she_typed_shows_escaped_on_the_live_page(eve: LearnerSession) -> None:
    """A task definition whose image is a script (ECS refuses one in a container's name,
    not in its image): Task 3's check quotes the image, and the board page shows it as
    text, under a policy that runs no script."""
    eve.client("ecs", eve).register_task_definition(
        family=LAB.task_family,
        containerDefinitions=[{"name": LAB.container_name, "image": SCRIPT_NAME, "memory": 64}],
    )
    room = eve.room
    deadline, page, headers = time.monotonic() + 240, "", None
    while time.monotonic() < deadline:
        with _loopback.open(room.board_url, timeout=180) as reply:
            page, headers = reply.read().decode(), reply.headers
        if "alert(" in page:  # the page's rows are refreshed in the background
            break
        time.sleep(3)
    assert "&lt;script&gt;alert(&#x27;eve&#x27;)&lt;/script&gt;" in page, page
    assert "<script" not in page
    assert headers is not None and "default-src 'none'" in headers["Content-Security-Policy"]
    row = _board_row(room, eve.name)
    assert SCRIPT_NAME in row.tasks[2]["message"] and not row.tasks[2]["passed"], row
    assert "planted" not in page
    assert Path(eve.entry.pw_dir, "labkit", "classroom", "board.py").exists()  # still planted


def test_the_boards_reset_runs_the_kits_code_not_hers(eve: LearnerSession) -> None:
    room = eve.room
    # Her plant answers an ordinary `labkit reset` from her home...
    ordinary = eve.as_unix_user([room.python, "-m", "labkit.cli", "reset"])
    assert "reset done (planted)" in ordinary.stdout, ordinary.stdout + ordinary.stderr
    assert _board_row(room, eve.name).tasks[0]["passed"]  # ...and resets nothing.
    # The board's reset is the kit's: Task 1 is undone, no control code reaches the terminal.
    output = board.reset(room, eve.name)
    assert "planted" not in output and "\x1b" not in output and "\x07" not in output, output
    row = _board_row(room, eve.name)
    assert [task["passed"] for task in row.tasks] == [False] * 4, (output, row)
