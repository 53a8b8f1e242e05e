"""``labkit classroom up`` / ``down``: JupyterHub, the learners' accounts, and cleanup."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from labkit.classroom import host, limits
from labkit.classroom.state import Classroom, hash_password
from labkit.errors import BackendError, InputError
from labkit.files import write_private
from labkit.kit_files import kit_notebooks
from labkit.sandbox.context import free_port_block, open_private_log
from labkit.sandbox.processes import ProcessRecord, find_own

HUB_RECORD = "hub.pid"
BOARD_RECORD = "board.pid"
SERVICE_NAME = "labkit-classroom"
_loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))

CONFIG_TEMPLATE = """\
# Written by `labkit classroom up`; rewritten at every `up`.
c = get_config()  # noqa: F821
c.JupyterHub.ip = {ip!r}
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = {proxy_pid!r}
c.JupyterHub.db_url = "sqlite:///" + {db!r}
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.pid_file = {hub_pid!r}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "labkit.classroom.spawn.RosterAuthenticator"
c.RosterAuthenticator.state_dir = {state!r}
c.Authenticator.allowed_users = set({names!r})
c.JupyterHub.spawner_class = "labkit.classroom.spawn.LearnerSpawner"
c.LearnerSpawner.state_dir = {state!r}
c.Spawner.default_url = "/lab/tree/notebooks"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 240
c.Spawner.http_timeout = 120
c.JupyterHub.services = [{{"name": {service!r}, "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "labkit-classroom-board",
        "scopes": ["list:users", "read:users", "admin:servers", "read:servers"],
        "services": [{service!r}],
    }}
]
"""


def _require_root() -> None:
    if os.geteuid() != 0:
        raise InputError(
            "The classroom needs root.",
            why="It creates one Unix account per learner and starts their servers as them.",
            fix="Run it as root (sudo labkit classroom …).",
        )


def up(
    roster: Path,
    state_dir: Path,
    ip: str = "127.0.0.1",
    port: int = 8000,
    shared_password: str | None = None,
    say: Any = print,
    board_ip: str = "127.0.0.1",
    board_port: int = 8001,
    learner_limits: limits.Settings | None = None,
) -> Classroom:
    """Accounts from the roster (each with a cgroup of their own), then the hub and the
    live board; prints generated passwords once."""
    _require_root()
    names = host.read_roster(roster)
    state_dir = root_only_folder(Path(state_dir))
    try:
        room = Classroom.load(state_dir)
    except InputError:
        room = Classroom(state_dir=state_dir)
    room.ip, room.port = ip, port
    room.board_ip, room.board_port = board_ip, board_port
    problems = host.isolation_problems()
    room.rootless = not problems
    room.problems = problems
    if problems:
        bar = "!" * 78
        say(bar)
        say("!! CONTAINERS CANNOT BE ISOLATED ON THIS MACHINE: learners get no Docker.")
        for problem in problems:
            say(f"!!   - {problem}")
        say("!! Their sandboxes run API-only: tasks 2-4 (push, run, serve) cannot pass.")
        say("!! Fix the above and run `labkit classroom up` again.")
        say(bar)
    room.python = host.learner_python()
    plan = limits.prepare(learner_limits or limits.Settings(), len(names))
    room.limits = plan.as_dict()
    _say_limits(plan, say)
    known = {learner.name: learner for learner in room.learners}
    room.learners = []
    new_passwords: dict[str, str] = {}
    for name in names:
        learner = known.get(name) or host.Learner(name)
        if not learner.api_port:
            learner.api_port = free_port_block(2)
            learner.lb_port = free_port_block(4)
        entry = host.ensure_account(learner)
        room.cell(learner, make=True)
        host.install_notebooks(entry, kit_notebooks())
        if shared_password is not None:
            room.passwords[name] = hash_password(shared_password)
        elif name not in room.passwords:
            new_passwords[name] = secrets.token_urlsafe(9)
            room.passwords[name] = hash_password(new_passwords[name])
        room.learners.append(learner)
    if not room.service_token:
        room.service_token = secrets.token_hex(32)
    if not room.board_token:
        room.board_token = secrets.token_urlsafe(24)
    room.save()
    # Before the hub starts: if it fails, the passwords are still known.
    if shared_password is not None:
        say("Every learner logs in with the workshop password you gave.")
    if new_passwords:
        say("Passwords (shown once; they are stored hashed):")
        for name, password in new_passwords.items():
            say(f"  {name:<24} {password}")
    _start_hub(room)
    say(f"JupyterHub: {room.url}/  ({len(room.learners)} learners)")
    _start_board_page(room)
    say(f"The board (keep this address to yourself): {room.board_url}")
    return room


def workshop_password(given: str | bool | None, password_file: str | None) -> str | None:
    """The one password for all learners: asked (``given`` is True), read from a file or
    standard input (``password_file``, ``-``), or None (each learner gets their own).

    Never from the command line: ``ps`` shows every process's arguments to every user.
    """
    if isinstance(given, str):
        raise InputError(
            "A password on the command line is visible to every user of this machine "
            "(ps shows it); it was not used.",
            fix="Use --password alone to be asked for it, --password-file FILE, or "
            "--password-file - to read it from standard input.",
        )
    if given and password_file:
        raise InputError("Give --password or --password-file, not both.")
    if password_file:
        source = "standard input" if password_file == "-" else password_file
        try:
            text = sys.stdin.readline() if password_file == "-" else Path(password_file).read_text()
        except OSError as error:
            raise InputError(f"The password file {source} cannot be read: {error}.") from None
        password = text.splitlines()[0] if text.strip() else ""
        if not password:
            raise InputError(f"The first line of {source} is empty: no password was read.")
        return password
    if not given:
        return None
    if not sys.stdin.isatty():
        raise InputError(
            "--password asks at a prompt, and standard input is not a terminal.",
            fix="Use --password-file - to read it from standard input, or --password-file FILE.",
        )
    password = getpass.getpass("Workshop password: ")
    if not password or password != getpass.getpass("The same again: "):
        raise InputError("The two passwords differ (or are empty); nothing was changed.")
    return password


def root_only_folder(path: Path) -> Path:
    """The state folder, made or tightened to 0700 at every ``up``.

    It holds the password hashes, the hub's token, its database and log: one made
    beforehand with looser modes (0755) would show them to every learner. It must be a
    real folder of root's; a symlink or someone else's folder is refused, not changed.
    """
    with contextlib.suppress(FileExistsError):  # a dangling symlink: refused below
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for parent in path.resolve().parents:  # none of them may be renamed by a learner
        info = parent.stat()
        if info.st_uid != 0 or (info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX):
            raise InputError(
                f"The classroom's state folder {path} is inside {parent}, which others "
                "than root can change.",
                why="Whoever can rename a folder on the way can swap the state for theirs.",
                fix="Give a folder under root's folders with --state (the default is "
                "/var/lib/labkit-classroom).",
            )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        raise InputError(
            f"The classroom's state folder {path} is not a folder ({error.strerror}).",
            why="It must be a real folder of root's (a symlink there is not followed).",
            fix="Remove it, or give another one with --state.",
        ) from None
    try:
        owner = os.fstat(fd).st_uid
        if owner != 0:
            raise InputError(
                f"The classroom's state folder {path} belongs to user {owner}, not root.",
                why="It holds the learners' password hashes and the hub's token.",
                fix="Give a folder of root's with --state (or remove that one).",
            )
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def _say_limits(plan: limits.Plan, say: Any) -> None:
    if not plan.problems:
        say(f"Per-learner limits: {plan.describe()}.")
        return
    bar = "!" * 78
    say(bar)
    if plan.limited:
        say(f"!! LEARNERS ARE ONLY PARTLY LIMITED: {plan.describe()}.")
    else:
        say("!! LEARNERS' MEMORY, PROCESSES AND CPU CANNOT BE LIMITED ON THIS MACHINE.")
    for problem in plan.problems:
        say(f"!!   - {problem}")
    unlimited = [c for c in limits.CONTROLLERS if c not in plan.limited]
    say(f"!! Without {', '.join(unlimited)} limits, one learner's memory hog or fork bomb")
    say("!! can stop every learner's lab and the hub. Everything else runs as usual.")
    say("!! Fix: a Linux host with cgroups (v2, or v1 with cpu, memory and pids) and root.")
    say(bar)


def _start_board_page(room: Classroom) -> None:
    """``labkit.classroom.board_page``, as root (its probes run as each learner)."""
    state = room.state_dir
    record = state / BOARD_RECORD
    running, _ = find_own(record, "board page")
    if running is not None:  # restarted: `up` may have changed its address or the roster
        host.stop_processes([running], 10)
    argv = [sys.executable, "-m", "labkit.classroom.board_page", "--state", str(state)]
    argv += ["--ip", room.board_ip, "--port", str(room.board_port)]

    def answers() -> bool:
        try:
            _loopback.open(f"http://{room.board_ip}:{room.board_port}/nothing", timeout=2)
        except urllib.error.HTTPError:
            return True  # it answers (403 without its token)
        except OSError:
            return False
        return True

    env = dict(os.environ, PYTHONPATH=str(host.KIT_ROOT))
    _start_child(state, argv, env, record, "board.log", "The board page", answers, 30)


def _start_child(
    state: Path,
    argv: list[str],
    env: dict[str, str],
    record: Path,
    log_name: str,
    what: str,
    answers: Callable[[], bool],
    timeout: float,
) -> None:
    """Start a classroom process in its own session, logging to ``state/log_name``; record
    it (pid, start time, command line) and wait until ``answers()``, or say why not."""
    # Root's only (0600, also an older kit's 0644 one): the learners' servers inherit the
    # hub's log as their output, and could reopen it through /proc/<pid>/fd to read it.
    log = open_private_log(state / log_name)
    os.fchmod(log.fileno(), 0o600)
    process = subprocess.Popen(
        argv,
        cwd=state,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    # With argv: on a busy host the child may not have exec'd yet, and a record of the
    # parent's command line would not match it at `down`, which would then leave it.
    ProcessRecord.of(process.pid, argv).save(record)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (state / log_name).read_text(errors="replace")[-2000:]
            raise BackendError(f"{what} stopped while starting.", why=tail.strip())
        if answers():
            return
        time.sleep(0.3)
    raise BackendError(
        f"{what} did not answer within {timeout:.0f} s.", why=f"See {state}/{log_name}"
    )


def _start_hub(room: Classroom) -> None:
    state = room.state_dir
    record = state / HUB_RECORD
    running, _ = find_own(record, "hub")
    if running is not None:
        return
    config = CONFIG_TEMPLATE.format(
        ip=room.ip,
        port=room.port,
        hub_port=free_port_block(1),
        proxy_api_port=free_port_block(1),
        proxy_pid=str(state / "proxy.pid"),
        db=str(state / "jupyterhub.sqlite"),
        cookie=str(state / "cookie_secret"),
        hub_pid=str(state / "jupyterhub.pid"),
        state=str(state),
        names=sorted(learner.name for learner in room.learners),
        service=SERVICE_NAME,
        token=room.service_token,
    )
    write_private(state / "jupyterhub_config.py", config.encode())  # it holds a token
    env = dict(os.environ, PYTHONPATH=str(host.KIT_ROOT))
    # Debian's configurable-http-proxy finds its modules there; a Node.js from elsewhere
    # (nodesource) does not look in Debian's folder by itself.
    node_path = [p for p in (env.get("NODE_PATH", ""), "/usr/share/nodejs") if p]
    env["NODE_PATH"] = ":".join(node_path)

    def answers() -> bool:
        try:
            api(room, "GET", "/hub/api/")
        except (OSError, urllib.error.HTTPError):
            return False
        return True

    argv = [sys.executable, "-m", "jupyterhub", "-f", str(state / "jupyterhub_config.py")]
    _start_child(state, argv, env, record, "hub.log", "JupyterHub", answers, 90)


def api(room: Classroom, method: str, path: str, body: Any = None, token: str = "") -> Any:
    """The hub's REST API, as the classroom's service (or with ``token``)."""
    request = urllib.request.Request(
        room.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token or room.service_token}"},
    )
    with _loopback.open(request, timeout=30) as reply:
        text = reply.read()
    return json.loads(text) if text else None


def down(state_dir: Path, say: Any = print, delete_accounts: bool = False) -> list[str]:
    """Stop the hub, every learner's server, sandbox, containers and Docker Engine."""
    _require_root()
    room = Classroom.load(Path(state_dir))
    stopped: list[str] = []
    # The hub first: stopping, it stops every server (so their sandboxes) and its proxy.
    for record, what, label, timeout in (
        (HUB_RECORD, "hub", "JupyterHub", 120),
        (BOARD_RECORD, "board page", "the board page", 15),
    ):
        process, note = find_own(room.state_dir / record, what)
        if note:
            say(f"Note: {note}")
        if process is not None:
            host.stop_processes([process], timeout)
            stopped.append(label)
        (room.state_dir / record).unlink(missing_ok=True)
    proxy = _proxy_process(room)
    if proxy is not None:
        proxy.terminate()
        stopped.append("its proxy")

    def sweep(learner: host.Learner) -> list[str]:
        entry = host.account(learner)
        left = []
        if entry is not None:
            env = host.learner_env(entry, learner, room.python, rootless=room.rootless)
            left = host.stop_everything(entry, env, room.python)
        cell = room.cell(learner)
        if cell is not None:  # what is left in it, then the cgroup itself
            left += cell.remove()
        return [f"{learner.name}: " + ", ".join(left)] if left else []

    # At once: one learner's Docker Engine may take half a minute to stop.
    with ThreadPoolExecutor(8) as pool:
        stopped += [line for found in pool.map(sweep, room.learners) for line in found]
    for problem in limits.Plan.from_dict(room.limits).remove_parents():
        say(f"Note: {problem}")
    if delete_accounts:  # one by one: userdel locks /etc/passwd
        for learner in room.learners:
            try:
                if host.delete_account(learner):
                    stopped.append(f"account {learner.unix_user}")
            except BackendError as error:
                say(f"Note: {error}")
    say("Stopped: " + ("; ".join(stopped) if stopped else "nothing was running"))
    return stopped


def _proxy_process(room: Classroom) -> psutil.Process | None:
    try:
        pid = int((room.state_dir / "proxy.pid").read_text())
        process = psutil.Process(pid)
    except (OSError, ValueError, psutil.Error):
        return None
    return process if "configurable-http-proxy" in " ".join(process.cmdline()) else None
