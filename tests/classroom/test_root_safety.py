"""A learner cannot steer root, and no secret of the classroom is on a command line.

A learner owns their home and ``/run/user/<uid>``: there they can put a symlink at any
name root once used (dockerd's log, RootlessKit's state, the Docker socket, the
notebooks). Here the learner plants one to a root-owned canary at each, the instructor runs
``up`` again, the learner restarts their server through the hub's REST API, and the
canaries are unchanged while the learner's lab starts as usual. One hub, one learner.
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from labkit.classroom import host, hub
from labkit.classroom.state import Classroom
from labkit.errors import InputError
from tests.classroom.test_classroom import PASSWORD, LearnerSession, _require_classroom_host
from tests.conftest import free_port

pytestmark = pytest.mark.classroom


class Canary:
    """A root-owned file, folder and listening socket, and what they were at the start."""

    def __init__(self, folder: Path) -> None:
        self.file, self.folder, self.socket_path = (
            folder / "canary.txt",
            folder / "canary-dir",
            folder / "canary.sock",
        )
        self.file.write_text("root's own canary\n")
        self.file.chmod(0o640)
        self.folder.mkdir(mode=0o750)
        (self.folder / "inside.txt").write_text("root's own folder\n")
        self.connections = 0
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.socket_path))
        self.server.listen()
        threading.Thread(target=self._accept, daemon=True).start()
        self.before = self.snapshot()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def snapshot(self) -> dict[str, Any]:
        def owner_mode(path: Path) -> tuple[int, int, int]:
            info = path.lstat()
            return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)

        return {
            "file": (owner_mode(self.file), self.file.read_bytes()),
            "folder": (owner_mode(self.folder), sorted(os.listdir(self.folder))),
            "inside": (
                owner_mode(self.folder / "inside.txt"),
                (self.folder / "inside.txt").read_bytes(),
            ),
            "socket": owner_mode(self.socket_path),
        }


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _require_classroom_host()
    base = tmp_path_factory.mktemp("root-safety")
    state = base / "state"
    state.mkdir()
    state.chmod(0o755)  # made beforehand, readable by every user: `up` must tighten it
    name = f"rs{secrets.token_hex(2)}-eve"
    roster = base / "roster.txt"
    roster.write_text(name + "\n")
    quiet = {"say": lambda *_: None}
    up = {"ip": "127.0.0.1", "port": free_port(), "board_port": free_port(), **quiet}
    hub.up(roster, state, shared_password=PASSWORD, **up)
    try:
        session = LearnerSession(Classroom.load(state), name)
        yield base, state, session, lambda: hub.up(roster, state, shared_password=PASSWORD, **up)
    finally:
        hub.down(state, delete_accounts=True, **quiet)


def _stop_server(session: LearnerSession, timeout: float = 180) -> None:
    session.hub("DELETE", f"/users/{session.name}/server")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not session.hub("GET", f"/users/{session.name}")["servers"]:
            return
        time.sleep(1)
    raise AssertionError(f"{session.name}'s server did not stop")


def test_up_tightens_a_state_folder_made_beforehand(room: Any) -> None:
    _, state, session, _ = room
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "jupyterhub_config.py").stat().st_mode) == 0o600
    for secret_file in ("jupyterhub.sqlite", "hub.log", "classroom.json"):
        done = session.as_unix_user(["cat", str(state / secret_file)])
        assert done.returncode != 0 and "Permission denied" in done.stderr, secret_file


def test_notebooks_are_the_learners_own(room: Any) -> None:
    _, _, session, _ = room
    notebooks = Path(session.entry.pw_dir) / "notebooks"
    files = [notebooks, *notebooks.rglob("*")]
    assert any(path.name == "00_start_here.ipynb" for path in files)
    assert {path.lstat().st_uid for path in files} == {session.entry.pw_uid}


def test_symlinks_planted_by_a_learner_do_not_steer_root(room: Any) -> None:
    base, _, session, up_again = room
    entry = session.entry
    session.start_server()
    session.wait_ready()
    _stop_server(session)
    canary = Canary(base)
    home, run = Path(entry.pw_dir), host.runtime_dir(entry)
    planted = {
        home / host.DOCKER_LOG: canary.file,
        home / "notebooks": canary.folder,
        host.rootlesskit_dir(entry): canary.folder,
        host.docker_socket(entry): canary.socket_path,
    }
    for link, target in planted.items():
        done = session.as_unix_user(
            ["sh", "-c", 'rm -rf -- "$1" && ln -s "$2" "$1"', "sh", str(link), str(target)]
        )
        assert done.returncode == 0, done.stderr
        assert link.is_symlink()
    up_again()  # the instructor runs `up` again: the notebooks are offered once more
    assert (home / "notebooks").is_symlink()
    session.start_server()
    try:
        session.wait_ready()
        not_ready = None
    except AssertionError as error:  # the canaries first: they say why
        not_ready = error
    assert canary.snapshot() == canary.before
    assert canary.connections == 0
    if not_ready is not None:
        raise not_ready
    # The learner's own processes replaced what they planted with the real things.
    log = (home / host.DOCKER_LOG).lstat()
    assert stat.S_ISREG(log.st_mode) and log.st_uid == entry.pw_uid
    assert stat.S_ISSOCK(host.docker_socket(entry).lstat().st_mode)
    assert run.lstat().st_uid == entry.pw_uid
    # And their lab runs: sandbox and Docker Engine up, as the notebooks see them.
    output = session.execute(
        "from labkit import sandbox\ns = sandbox.status()\nprint('SANDBOX', s.running, s.docker)\n"
    )
    assert "SANDBOX True True" in output, output


def _secrets_of(state: Path, session: LearnerSession) -> dict[str, str]:
    room = Classroom.load(state)
    found = {
        "workshop password": PASSWORD,
        "hub service token": room.service_token,
        "board token": room.board_token,
        "learner's hub token": session.token,
        "cookie secret": (state / "cookie_secret").read_text().strip(),
        "sandbox secret key": session.sandbox_keys()["secret_access_key"],
    }
    found["server's hub token"] = _learner_server(session).environ()["JUPYTERHUB_API_TOKEN"]
    return found


def _learner_server(session: LearnerSession) -> psutil.Process:
    for process in psutil.process_iter(["uids", "cmdline"]):
        uids, cmdline = process.info["uids"], process.info["cmdline"] or []
        if uids and uids.real == session.entry.pw_uid and "jupyterhub.singleuser" in cmdline:
            return process
    raise AssertionError(f"{session.name}'s server is not running")


def test_no_password_or_token_on_any_command_line(room: Any) -> None:
    _, state, session, _ = room
    session.start_server()
    session.wait_ready()
    found = _secrets_of(state, session)
    assert all(len(value) >= 8 for value in found.values()), found
    leaks = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        leaks += [(entry.name, what) for what, value in found.items() if value in cmdline]
    assert leaks == []
    # The hub, its proxy, the board and the learner's server are among those read.
    commands = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    for part in ("jupyterhub -f", "configurable-http-proxy", "board_page", "jupyterhub.singleuser"):
        assert any(part in command for command in commands), part


def test_the_learners_server_cannot_read_the_hubs_log_it_writes_to(room: Any) -> None:
    """The server's output is the hub's log (inherited): reopening it through /proc, which
    skips the 0700 state folder, must still be refused."""
    _, state, session, _ = room
    session.start_server()
    session.wait_ready()
    server = _learner_server(session)
    assert Path(f"/proc/{server.pid}/fd/1").resolve() == (state / "hub.log").resolve()
    assert stat.S_IMODE((state / "hub.log").stat().st_mode) == 0o600
    done = session.as_unix_user(["cat", f"/proc/{server.pid}/fd/1"])
    assert done.returncode != 0 and "Permission denied" in done.stderr, done.stdout[-300:]


def test_up_refuses_a_state_folder_that_is_a_symlink(tmp_path: Path) -> None:
    _require_classroom_host()
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "state").symlink_to(real)
    roster = tmp_path / "roster.txt"
    roster.write_text("nobody-here\n")
    with pytest.raises(InputError, match="not a folder"):
        hub.up(roster, tmp_path / "state", say=lambda *_: None)
    assert os.listdir(real) == []
    with pytest.raises(KeyError):  # refused before any account was made
        pwd.getpwnam(host.USER_PREFIX + "nobody-here")
