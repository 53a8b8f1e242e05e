"""One learner on the host: a Unix account, a rootless Docker Engine, a sandbox.

Everything here runs as root (the instructor's ``labkit classroom up``, or the hub's
spawner) and starts the learner's processes as the learner. What belongs to a learner is
provable: the account carries the classroom's comment, and every process it runs was
started by the classroom, so ``down`` may stop all of them.
"""

from __future__ import annotations

import io
import os
import pwd
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from labkit.classroom import learner_paths
from labkit.classroom.limits import Cell
from labkit.errors import BackendError, InputError

#: The comment (GECOS) on every account the classroom creates; nothing else is touched.
ACCOUNT_COMMENT = "labkit classroom learner"
USER_PREFIX = "lk-"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,24}$")
ROOTLESS_SCRIPT_DIRS = ("/usr/share/docker.io/contrib", "/usr/bin", "/usr/local/bin")
KIT_ROOT = Path(__file__).resolve().parents[2]
#: The environment the kit runs in (the hub's); JupyterLab's config and pages are there.
KIT_PREFIX = Path(sys.prefix)


@dataclass
class Learner:
    """A learner's name on the hub, their Unix account, and their sandbox's ports."""

    name: str
    api_port: int = 0
    lb_port: int = 0

    @property
    def unix_user(self) -> str:
        return USER_PREFIX + self.name

    @property
    def registry_port(self) -> int:
        return self.api_port + 1

    def as_dict(self) -> dict:
        return asdict(self)


def read_roster(path: Path) -> list[str]:
    """Learner names, one a line (``#`` comments, blank lines ignored)."""
    names: list[str] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        name = line.split("#", 1)[0].strip().lower()
        if not name:
            continue
        if not NAME_PATTERN.match(name):
            raise InputError(
                f"Roster line {number}: {name!r} is not a usable learner name.",
                why="Names become Unix accounts (lk-<name>): a letter, then letters, digits "
                "or '-', at most 25 characters.",
                fix="Edit the roster, e.g. 'ada' or 'ada-lovelace'.",
            )
        if name in names:
            raise InputError(
                f"Roster line {number}: {name!r} appears twice.", fix="Remove the duplicate."
            )
        names.append(name)
    if not names:
        raise InputError(f"The roster {path} names no learner.", fix="One name a line.")
    return names


# -- accounts -------------------------------------------------------------------------


def account(learner: Learner) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(learner.unix_user)
    except KeyError:
        return None


def is_classroom_account(entry: pwd.struct_passwd) -> bool:
    return entry.pw_gecos.split(",")[0] == ACCOUNT_COMMENT


def ensure_account(learner: Learner) -> pwd.struct_passwd:
    """The learner's Unix account with a private home (0700), created if missing."""
    entry = account(learner)
    if entry is None:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", "--comment", ACCOUNT_COMMENT]
            + [learner.unix_user],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(learner.unix_user)
    elif not is_classroom_account(entry):
        raise InputError(
            f"The account {learner.unix_user} exists and is not a classroom account.",
            why="The classroom only uses accounts it created (comment "
            f"{ACCOUNT_COMMENT!r}); it will not take over someone's account.",
            fix="Rename the learner in the roster.",
        )
    home = Path(entry.pw_dir)
    learner_paths.private_folder(home.parent, home.name, entry.pw_uid, entry.pw_gid)
    _ensure_subordinate_ids(learner.unix_user)
    return entry


def _ensure_subordinate_ids(user: str) -> None:
    """Rootless Docker maps the containers' users onto the learner's /etc/subuid range."""
    for path in (Path("/etc/subuid"), Path("/etc/subgid")):
        text = path.read_text() if path.exists() else ""
        if any(line.split(":")[0] == user for line in text.splitlines()):
            continue
        starts = [int(line.split(":")[1]) + int(line.split(":")[2]) for line in text.splitlines()]
        start = max([100000, *starts])
        with path.open("a") as handle:
            handle.write(f"{user}:{start}:65536\n")


def delete_account(learner: Learner) -> bool:
    """Remove a classroom account, its home and its runtime folder (after ``stop_everything``).

    Refused while the account still runs a process: only then is nothing of the learner's
    left that could change their folders while root removes them.
    """
    entry = account(learner)
    if entry is None or not is_classroom_account(entry):
        return False
    if learner_processes(entry):
        raise BackendError(
            f"The account {learner.unix_user} still runs processes; it was not deleted.",
            fix="Run `labkit classroom down` again, then delete the accounts.",
        )
    done = subprocess.run(["userdel", "--remove", learner.unix_user], capture_output=True)
    if done.returncode not in (0, 12):  # 12: the home could not be removed (already gone)
        raise BackendError(
            f"The account {learner.unix_user} could not be deleted.",
            why=done.stderr.decode(errors="replace").strip(),
        )
    learner_paths.remove_folder(RUNTIME_ROOT, str(entry.pw_uid))
    return True


#: What the learner's own tar runs in their home: the notebooks arrive only if the learner
#: has no ``notebooks`` there yet (not even a symlink), and only with the learner's rights.
_UNPACK_NOTEBOOKS = "test -e notebooks || test -L notebooks || exec tar -x -f - --no-same-owner"


def install_notebooks(entry: pwd.struct_passwd, notebooks: Path) -> Path:
    """A copy of the lab's notebooks in the learner's home (kept if already there).

    Root packs them (they are the kit's); the learner's own ``tar`` unpacks them.
    """
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as archive:
        archive.add(
            notebooks,
            arcname="notebooks",
            filter=lambda info: None if ".ipynb_checkpoints" in info.name else info,
        )
    done = subprocess.run(
        ["sh", "-c", _UNPACK_NOTEBOOKS],
        input=packed.getvalue(),
        env={"PATH": "/usr/bin:/bin", "HOME": entry.pw_dir, "LANG": "C.UTF-8"},
        capture_output=True,
        check=False,
        **demoted(entry),
    )
    if done.returncode != 0:
        raise BackendError(
            f"The notebooks could not be copied into {entry.pw_name}'s home.",
            why=done.stderr.decode(errors="replace").strip(),
        )
    return Path(entry.pw_dir) / "notebooks"


# -- running things as the learner ------------------------------------------------------


def demoted(entry: pwd.struct_passwd, cwd: str | None = None) -> dict[str, Any]:
    """``Popen`` arguments that start the child as the learner, in a session of its own.

    No ``preexec_fn``: a fork in a process with threads (the hub, the board's pool) may
    deadlock running Python in the child; Popen drops the privileges itself, in C.
    """
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        "extra_groups": os.getgrouplist(entry.pw_name, entry.pw_gid),
        "start_new_session": True,
        "cwd": cwd or entry.pw_dir,
    }


#: Root's folder of the users' runtime folders (systemd's ``/run/user``).
RUNTIME_ROOT = Path("/run/user")


def runtime_dir(entry: pwd.struct_passwd) -> Path:
    return RUNTIME_ROOT / str(entry.pw_uid)


def rootlesskit_dir(entry: pwd.struct_passwd) -> Path:
    return runtime_dir(entry) / "labkit-rootlesskit"


def docker_socket(entry: pwd.struct_passwd) -> Path:
    return runtime_dir(entry) / "docker.sock"


def learner_env(
    entry: pwd.struct_passwd, learner: Learner, python: str, *, rootless: bool = True
) -> dict[str, str]:
    """What the learner's server, kernels, sandbox and the board's probe run with."""
    home = Path(entry.pw_dir)
    bin_dirs = [str(Path(python).parent), *ROOTLESS_SCRIPT_DIRS, "/usr/sbin", "/usr/bin", "/bin"]
    env = {
        "HOME": str(home),
        "USER": entry.pw_name,
        "LOGNAME": entry.pw_name,
        "SHELL": entry.pw_shell,
        "PATH": ":".join(bin_dirs),
        "LANG": "C.UTF-8",
        "XDG_RUNTIME_DIR": str(runtime_dir(entry)),
        "LABKIT_BACKEND": "sandbox",
        "LABKIT_SANDBOX_HOME": str(home / ".labkit" / "sandbox"),
        "LABKIT_STATE_DIR": str(home / ".labkit"),
        "LABKIT_SANDBOX_API_PORT": str(learner.api_port),
        "LABKIT_SANDBOX_REGISTRY_PORT": str(learner.registry_port),
        "LABKIT_SANDBOX_LB_PORT": str(learner.lb_port),
        "PYTHONPATH": str(KIT_ROOT),
        # The learners' Python may be a venv of its own (learner_python): without these,
        # their server finds neither JupyterLab's server extension (etc/jupyter) nor its
        # pages (share/jupyter/lab) in the kit's environment, and /lab answers 404.
        "JUPYTER_CONFIG_PATH": str(KIT_PREFIX / "etc" / "jupyter"),
        "JUPYTER_PATH": str(KIT_PREFIX / "share" / "jupyter"),
        "JUPYTERLAB_DIR": str(KIT_PREFIX / "share" / "jupyter" / "lab"),
    }
    if rootless:
        env["DOCKER_HOST"] = f"unix://{docker_socket(entry)}"
        env["LABKIT_SANDBOX_ROOTLESSKIT"] = str(rootlesskit_dir(entry))
    return env


def run_as(
    entry: pwd.struct_passwd,
    env: dict[str, str],
    argv: list[str],
    timeout: float = 300,
    cwd: str | None = None,
    cell: Cell | None = None,
) -> subprocess.CompletedProcess:
    """``argv`` as the learner (in their home, or ``cwd``), its output captured; inside
    their cgroup when ``cell`` is given."""
    return (subprocess.run if cell is None else cell.run)(
        argv,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **demoted(entry, cwd),
    )


# -- what the host offers ---------------------------------------------------------------


def isolation_problems() -> list[str]:
    """Why learners' containers cannot be isolated here (empty: rootless Docker works)."""
    problems = []
    if not any(Path(d, "dockerd-rootless.sh").exists() for d in ROOTLESS_SCRIPT_DIRS):
        problems.append("dockerd-rootless.sh is missing (Debian package docker.io)")
    for tool, package in (
        ("rootlesskit", "rootlesskit"),
        ("newuidmap", "uidmap"),
        ("slirp4netns", "slirp4netns"),
    ):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is missing (Debian package {package})")
    tun = Path("/dev/net/tun")
    if not tun.exists():
        problems.append("/dev/net/tun does not exist (slirp4netns needs it)")
    elif tun.stat().st_mode & 0o006 != 0o006:
        problems.append(
            "/dev/net/tun is not usable by ordinary users (mode "
            f"{oct(tun.stat().st_mode & 0o777)}; Debian's default is 0666): "
            "chmod 0666 /dev/net/tun"
        )
    return problems


#: Where a learners' Python is made when the kit's is out of their reach (root-owned, 0755).
SHARED_DIR = Path("/opt/labkit-classroom")


def learner_python(shared: Path = SHARED_DIR) -> str:
    """A Python that learners may run, with the kit's packages.

    The kit's interpreter may sit where other users cannot enter (a pyenv under /root);
    then a virtual environment of the system's Python of the same version is made, and
    it imports the kit's packages through a ``.pth`` file.
    """
    if _others_can_run(Path(sys.executable)):
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = shutil.which(version, path="/usr/bin:/usr/local/bin")
    if system_python is None:
        raise BackendError(
            f"Learners cannot run this Python ({sys.executable}).",
            why=f"Other users cannot enter its folder, and there is no system {version}.",
            fix="Install the kit in a virtual environment all users can read "
            "(scripts/setup.sh makes one in the kit's folder).",
        )
    import hashlib

    tag = hashlib.sha256(sys.executable.encode()).hexdigest()[:10]
    venv = shared / f"python-{tag}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([system_python, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    target = next((venv / "lib").glob("python*/site-packages"))
    (target / "labkit-kit.pth").write_text(f"import site; site.addsitedir({site!r})\n")
    # The lab's own lines (`aws ecr get-login-password | docker login …`) need the aws CLI
    # on the learners' PATH: the kit's awscli, run by this environment's Python.
    aws = venv / "bin" / "aws"
    aws.write_text(f"#!{python}\nimport sys\nfrom awscli.clidriver import main\nsys.exit(main())\n")
    aws.chmod(0o755)
    for path in [shared, venv, *venv.rglob("*")]:
        if not path.is_symlink():  # readable by all, writable by root only (the board checks)
            mode = path.stat().st_mode | 0o004 | (0o001 if path.is_dir() else 0)
            path.chmod(mode & ~0o022)
    return str(python)


def _others_can_run(path: Path) -> bool:
    real = path.resolve()
    for parent in [*reversed(real.parents)]:
        if not parent.stat().st_mode & 0o001:
            return False
    return bool(real.stat().st_mode & 0o001)


# -- the learner's Docker Engine --------------------------------------------------------


#: Run by the learner's own shell (so with their rights only): RootlessKit's old state and
#: the old log go, the log is opened, and dockerd-rootless.sh takes the shell's place.
_LAUNCH_DOCKER = 'umask 077; rm -rf -- "$1" "$4" || exit; exec "$2" --data-root "$3" >"$4" 2>&1'
DOCKER_LOG = ".labkit-dockerd.log"


def start_docker(
    entry: pwd.struct_passwd, env: dict[str, str], timeout: float = 60, cell: Cell | None = None
) -> None:
    """The learner's own rootless dockerd (idempotent): it sees only their containers;
    with its containers inside the learner's cgroup when ``cell`` is given.

    Root makes only the runtime folder (its name is in root's ``/run/user``); every file
    below it and in the home is made by the learner's own processes.
    """
    learner_paths.private_folder(RUNTIME_ROOT, str(entry.pw_uid), entry.pw_uid, entry.pw_gid)
    if docker_engine(entry) is not None and _docker_answers(entry):
        return
    script = next(
        str(Path(d, "dockerd-rootless.sh"))
        for d in ROOTLESS_SCRIPT_DIRS
        if Path(d, "dockerd-rootless.sh").exists()
    )
    state = rootlesskit_dir(entry)
    child_env = dict(env, DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS=f"--state-dir={state}")
    log_path = Path(entry.pw_dir) / DOCKER_LOG
    data_root = Path(entry.pw_dir) / ".local/share/docker"
    (subprocess.Popen if cell is None else cell.popen)(
        ["sh", "-c", _LAUNCH_DOCKER, "sh", str(state), script, str(data_root), str(log_path)],
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **demoted(entry),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_engine(entry) is not None and _docker_answers(entry):
            return
        time.sleep(0.5)
    tail = run_as(entry, env, ["tail", "-c", "1500", str(log_path)], 30).stdout
    raise BackendError(
        f"{entry.pw_name}'s rootless Docker Engine did not start.",
        why=tail.strip(),
        fix=f"Read {log_path}.",
    )


def _docker_answers(entry: pwd.struct_passwd) -> bool:
    """A ping on the learner's Docker socket: cheaper than running the CLI as them every
    half second while a whole room starts at once. The socket is the learner's own (a
    symlink put in its place is not followed)."""
    try:
        with learner_paths.connect_socket(
            runtime_dir(entry), docker_socket(entry).name, uid=entry.pw_uid, timeout=5
        ) as sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


def docker_engine(entry: pwd.struct_passwd) -> psutil.Process | None:
    """RootlessKit's parent process (the learner's Docker Engine), if it runs."""
    try:
        state = rootlesskit_dir(entry)
        recorded = learner_paths.read_small_file(
            state.parent, state.name, "child_pid", uid=entry.pw_uid
        )
        parent = psutil.Process(int(recorded)).parent()
    except (OSError, ValueError, psutil.Error):
        return None
    if parent is None or parent.uids().real != entry.pw_uid:
        return None
    return parent if "rootlesskit" in " ".join(parent.cmdline()) else None


def learner_processes(entry: pwd.struct_passwd) -> list[psutil.Process]:
    """The account's processes (exited ones waiting for their parent's wait left out)."""
    found = []
    for process in psutil.process_iter(["uids", "status"]):
        uids = process.info.get("uids")
        if process.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if uids is not None and entry.pw_uid in (uids.real, uids.effective):
            found.append(process)
    return found


def stop_everything(entry: pwd.struct_passwd, env: dict[str, str], python: str) -> list[str]:
    """Stop the learner's sandbox, containers, Docker Engine and every process left.

    Only for classroom accounts: every process such an account runs, the classroom
    started (learners have no other way in).
    """
    if not is_classroom_account(entry):
        return []
    stopped = []

    def as_learner(argv: list[str], timeout: float) -> subprocess.CompletedProcess | None:
        try:
            return run_as(entry, env, argv, timeout)
        except (OSError, subprocess.SubprocessError):
            return None  # what it would have stopped is stopped below, by process

    as_learner([python, "-m", "labkit.cli", "sandbox", "down"], 60)
    if docker_engine(entry) is not None:
        listed = as_learner(["docker", "ps", "-aq"], 30)
        left = listed.stdout.split() if listed is not None else []
        if left:
            as_learner(["docker", "rm", "-f", *left], 60)
            stopped.append(f"{len(left)} container(s)")
        engine = docker_engine(entry)
        if engine is not None:
            stop_processes([engine], 30)
            stopped.append("Docker Engine")
    remaining = learner_processes(entry)
    stop_processes(remaining, 10)
    if remaining:
        stopped.append(f"{len(remaining)} process(es)")
    return stopped


def stop_processes(processes: list[psutil.Process], timeout: float) -> None:
    """Terminate them; kill those still running after ``timeout`` seconds; reap them all."""
    for process in processes:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
