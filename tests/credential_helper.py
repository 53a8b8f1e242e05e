"""A Docker credential helper of the tests' own: a real program Docker runs.

``docker-credential-<name>`` speaks Docker's credential-helper protocol (the action as
its one argument; ``store`` reads ``{"ServerURL","Username","Secret"}`` on stdin, ``get``
and ``erase`` read the server address, ``list`` prints ``{address: username}``) and keeps
the credentials in a JSON file beside it, as a keychain would. Docker Desktop's
``desktop``, ``osxkeychain`` or ``wincred`` behave the same for the docker CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_PROGRAM = """#!{python}
import json, sys
from pathlib import Path

STORE = Path({store!r})
saved = json.loads(STORE.read_text()) if STORE.exists() else {{}}
action, given = sys.argv[1], sys.stdin.read()
if action == "store":
    credential = json.loads(given)
    saved[credential["ServerURL"]] = credential
elif action == "get":
    if given.strip() not in saved:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(saved[given.strip()]))
elif action == "erase":
    saved.pop(given.strip(), None)
elif action == "list":
    print(json.dumps({{url: c["Username"] for url, c in saved.items()}}))
else:
    sys.exit(f"unknown action {{action}}")
STORE.write_text(json.dumps(saved))
"""


def install_credential_helper(folder: Path, name: str) -> Path:
    """Write ``folder/docker-credential-<name>`` (executable); returns its store file,
    which does not exist until the first ``store``. Put ``folder`` on PATH to use it."""
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / f"{name}-store.json"
    program = folder / f"docker-credential-{name}"
    program.write_text(_PROGRAM.format(python=sys.executable, store=str(store)))
    program.chmod(0o700)
    return store


def store_credential(folder: Path, name: str, server: str, username: str, secret: str) -> None:
    """What ``docker login`` does with a helper: ``store`` with the credential on stdin."""
    credential = {"ServerURL": server, "Username": username, "Secret": secret}
    subprocess.run(
        [str(folder / f"docker-credential-{name}"), "store"],
        input=json.dumps(credential),
        text=True,
        check=True,
        timeout=30,
    )
