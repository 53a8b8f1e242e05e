"""The classroom's state folder: roster, password hashes, ports, the hub's config and pid.

Root-only (0700): it holds the password hashes and the hub's service token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from labkit.classroom import limits
from labkit.classroom.host import Learner
from labkit.errors import InputError
from labkit.files import write_private

DEFAULT_STATE_DIR = Path("/var/lib/labkit-classroom")
STATE_FILE = "classroom.json"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        _, salt, _ = stored.split("$")
    except ValueError:
        return False
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


@dataclass
class Classroom:
    state_dir: Path
    learners: list[Learner] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)  # name -> scrypt hash
    python: str = ""
    rootless: bool = True
    ip: str = "127.0.0.1"
    port: int = 8000
    service_token: str = ""
    hub_pid: int | None = None
    problems: list[str] = field(default_factory=list)
    board_ip: str = "127.0.0.1"
    board_port: int = 8001
    board_token: str = ""  # the live board page answers only this (learners share loopback)
    limits: dict = field(default_factory=dict)  # limits.Plan.as_dict(): per-learner cgroups

    @classmethod
    def load(cls, state_dir: Path) -> Classroom:
        path = Path(state_dir) / STATE_FILE
        if not path.exists():
            raise InputError(
                f"No classroom is set up in {state_dir}.",
                fix="Run `labkit classroom up --roster learners.txt` first.",
            )
        data = json.loads(path.read_text())
        data["learners"] = [Learner(**item) for item in data["learners"]]
        data["state_dir"] = Path(state_dir)
        return cls(**data)

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = {
            key: value
            for key, value in self.__dict__.items()
            if key not in ("state_dir", "learners")
        }
        payload["learners"] = [learner.as_dict() for learner in self.learners]
        write_private(self.state_dir / STATE_FILE, json.dumps(payload, indent=1).encode())

    def learner(self, name: str) -> Learner:
        for learner in self.learners:
            if learner.name == name:
                return learner
        raise InputError(f"{name!r} is not on the classroom's roster.")

    def cell(self, learner: Learner, make: bool = False) -> limits.Cell | None:
        """The learner's cgroup: made (and its limits written) with ``make``, else only
        if it exists (between `up` and `down`). None where nothing can be limited."""
        cell = limits.Plan.from_dict(self.limits).cell(learner.unix_user)
        if cell is not None and make:
            cell.ensure()
        return cell if cell is not None and cell.exists() else None

    def password_ok(self, name: str, password: str) -> bool:
        stored = self.passwords.get(name)
        return stored is not None and password_matches(password, stored)

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    @property
    def board_url(self) -> str:
        return f"http://{self.board_ip}:{self.board_port}/?token={self.board_token}"
