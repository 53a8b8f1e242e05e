"""JupyterHub's side: the roster's passwords, and a spawner that starts the learner's lab.

Imported by the hub process only (the generated ``jupyterhub_config.py`` names these
classes); the rest of the kit never needs JupyterHub installed.
"""

from __future__ import annotations

import asyncio
import pwd
import threading
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode

from labkit.classroom import limits
from labkit.classroom import state as classroom_state
from labkit.classroom.host import (
    Learner,
    demoted,
    learner_env,
    run_as,
    start_docker,
    stop_everything,
)
from labkit.sandbox.context import free_port_block


class RosterAuthenticator(Authenticator):
    """Checks the password against the classroom's hashed roster passwords."""

    state_dir = Unicode(help="the classroom's state folder").tag(config=True)

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        name = (data.get("username") or "").strip().lower()
        password = data.get("password") or ""
        room = classroom_state.Classroom.load(Path(self.state_dir))
        return name if room.password_ok(name, password) else None


class LearnerSpawner(LocalProcessSpawner):
    """The learner's server, as their Unix user, with their own Docker and sandbox.

    Before the server: the learner's rootless Docker Engine and sandbox (on their ports,
    in their home). After it stops: the sandbox, containers and Docker Engine stop too.
    """

    state_dir = Unicode(help="the classroom's state folder").tag(config=True)

    def _learner(self) -> tuple[classroom_state.Classroom, Learner, pwd.struct_passwd]:
        room = classroom_state.Classroom.load(Path(self.state_dir))
        learner = room.learner(self.user.name)
        return room, learner, pwd.getpwnam(learner.unix_user)

    def make_preexec_fn(self, name: str) -> Any:
        # None: the hub has threads (asyncio.to_thread), and a fork running Python before
        # exec may deadlock there. Popen drops to the learner itself (popen_kwargs, start).
        return None

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        room, learner, entry = self._learner()
        env.update(learner_env(entry, learner, room.python, rootless=room.rootless))
        return env

    async def start(self) -> Any:
        self.log.info("classroom: starting %s's Docker Engine and sandbox", self.user.name)
        room, entry, env, cell = await asyncio.to_thread(self._start_backend)
        self.cmd = [room.python, "-m", "jupyterhub.singleuser"]
        if cell is not None:  # it waits to be moved into the learner's cgroup (below)
            self.cmd = cell.command(self.cmd)
        # Kernels on Unix sockets in the learner's private runtime folder, not on TCP
        # ports: no other user can knock, and no port can be taken between pick and bind.
        self.args = [a for a in self.args if "transport" not in a]
        self.args.append("--KernelManager.transport=ipc")
        # As the learner's account (lk-<name>; the hub's name is the roster's).
        self.popen_kwargs = demoted(entry)
        try:
            started = await super().start()
            if cell is not None:
                cell.admit(self.pid)
            return started
        except BaseException:
            await asyncio.to_thread(stop_everything, entry, env, room.python)
            raise

    def _start_backend(
        self,
    ) -> tuple[classroom_state.Classroom, pwd.struct_passwd, dict, limits.Cell | None]:
        """Fresh ports, then the learner's Docker Engine and sandbox, in their cgroup. A
        port picked free can be taken before the sandbox binds it (a room starts at
        once): then again, with other ports."""
        for _ in range(3):
            _assign_ports(Path(self.state_dir), self.user.name)
            room, learner, entry = self._learner()
            env = learner_env(entry, learner, room.python, rootless=room.rootless)
            cell = room.cell(learner, make=True)
            if room.rootless:
                start_docker(entry, env, cell=cell)
            up = [room.python, "-m", "labkit.cli", "sandbox", "up"]
            done = run_as(entry, env, up, 180, cell=cell)
            if done.returncode == 0:
                return room, entry, env, cell
            if "already in use" not in done.stderr:
                break
            self.log.warning("classroom: %s's ports were taken; new ones", learner.name)
        raise RuntimeError(f"{entry.pw_name}'s sandbox did not start: {done.stderr[-800:]}")

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        room, learner, entry = self._learner()
        env = learner_env(entry, learner, room.python, rootless=room.rootless)
        self.log.info("classroom: stopping %s's sandbox and Docker Engine", learner.name)
        await asyncio.to_thread(stop_everything, entry, env, room.python)


_ports_lock = threading.Lock()
_ports_handed_out: set[int] = set()


def _free_block(size: int) -> int:
    while True:
        base = free_port_block(size)
        block = set(range(base, base + size))
        if not block & _ports_handed_out:
            _ports_handed_out.update(block)
            return base


def _assign_ports(state_dir: Path, name: str) -> None:
    """Fresh free ports at each start: ports chosen at `up` may be taken by now (the hub
    gives single-user servers random ports too). Handed-out ones are never reused here."""
    with _ports_lock:
        room = classroom_state.Classroom.load(state_dir)
        learner = room.learner(name)
        learner.api_port = _free_block(2)
        learner.lb_port = _free_block(4)
        room.save()
