"""The sandbox's own access key and secret: generated once per home, kept in an owner-only file.

Apart from :mod:`labkit.sandbox.auth` (the SigV4 check, which needs botocore and werkzeug)
so that ``labkit sandbox up`` and ``labkit.aws`` can read or create the keys cheaply.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from labkit.files import write_private

CREDENTIALS_FILE = "credentials.json"

_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class SandboxCredentials:
    access_key_id: str
    secret_access_key: str


def credentials_path(home: Path) -> Path:
    return Path(home) / CREDENTIALS_FILE


def read_credentials(home: Path) -> SandboxCredentials | None:
    """The sandbox's keys, or None when this home has none (yet) or they are unreadable."""
    try:
        data = json.loads(credentials_path(home).read_text())
        return SandboxCredentials(data["access_key_id"], data["secret_access_key"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_credentials(home: Path) -> SandboxCredentials:
    """This home's keys, generated (owner-only file) on first use and kept across restarts."""
    existing = read_credentials(home)
    if existing is not None:
        return existing
    # The shape of an IAM user's long-term key: AKIA + 16, and a 40-character secret.
    access = "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    Path(home).mkdir(parents=True, exist_ok=True, mode=0o700)
    payload = {"access_key_id": access, "secret_access_key": secret}
    write_private(credentials_path(home), json.dumps(payload).encode())
    return SandboxCredentials(access, secret)
