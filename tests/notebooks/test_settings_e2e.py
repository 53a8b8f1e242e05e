"""Settings that cannot trap you, with real runs on a private sandbox (issue 18).

One ``labkit run -p backend endpoint`` (trying another emulator, a bare moto_server)
must not become the default: the next ``labkit run`` in a shell that exports
LABKIT_BACKEND=sandbox runs on the sandbox. An exported LABKIT_BACKEND beats an endpoint
remembered by an older kit; and with nothing exported, that remembered endpoint without
AWS_ENDPOINT_URL stops ``labkit run`` before anything is done (no reset, no notebook),
naming the fix.

    pytest -m notebooks tests/notebooks/test_settings_e2e.py -v
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from labkit.cli import main
from labkit.names import LAB
from labkit.state import load_state, save_state
from tests.conftest import private_lab_env, require_data_plane, running_sandbox_clients
from tests.moto_server import moto_server_process

pytestmark = pytest.mark.notebooks


@pytest.fixture
def private_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A sandbox and state folder of our own, LABKIT_BACKEND=sandbox exported."""
    require_data_plane()
    with private_lab_env(tmp_path_factory, strict=True) as env:
        yield env


def _printed(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def _repositories() -> list[str]:
    ecr = running_sandbox_clients("ecr")["ecr"]
    return [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]


def test_a_runs_p_does_not_stick_and_the_exported_backend_wins(
    private_sandbox: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = tmp_path / "runs"

    # 1. Try another emulator for one run: 00 runs on it and says the -p is not kept.
    with moto_server_process() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "x")):
            monkeypatch.setenv(name, value)
        main(["run", "-p", "backend", "endpoint", "--until", "00", "--no-reset", "-q"] + [
            "-o", str(runs / "endpoint")
        ])  # fmt: skip
    out = capsys.readouterr().out
    assert "backend=endpoint (-p)" in out and "for this run only, not remembered" in out
    assert "`labkit cleanup -p backend endpoint`" in out  # how to reach that lab again
    printed = _printed(runs / "endpoint" / "00_start_here.ipynb")
    assert "Saved for notebooks 01–06" in printed, printed[-2000:]
    assert "backend=endpoint (-p of this labkit run, not remembered)" in printed
    assert "backend" not in load_state().get("settings", {})
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)

    # 2. The next run, LABKIT_BACKEND=sandbox exported: the sandbox, Task 1 done there.
    started = time.monotonic()
    assert main(["run", "--until", "01", "-q", "-o", str(runs / "sandbox")]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"\nlabkit run --until 01 on the sandbox: {time.monotonic() - started:.1f} s")
    assert "backend=sandbox (from LABKIT_BACKEND)" in out
    printed = _printed(runs / "sandbox" / "01_task1_repository.ipynb")
    assert "backend=sandbox (from LABKIT_BACKEND)" in printed
    assert _repositories() == [LAB.repository]

    # 3. An endpoint remembered (as the old kit left it): the exported variable still wins.
    save_state({**load_state(), "settings": {"backend": "endpoint"}})
    main(["check"])
    out = capsys.readouterr().out
    assert "backend=sandbox (from LABKIT_BACKEND)" in out and "✅ done" in out

    # 4. Nothing exported, no AWS_ENDPOINT_URL: stops before the reset or notebook 00.
    monkeypatch.delenv("LABKIT_BACKEND")
    started = time.monotonic()
    assert main(["run", "--until", "01", "-q", "-o", str(runs / "trapped")]) == 2
    seconds = time.monotonic() - started
    captured = capsys.readouterr()
    assert "backend=endpoint (remembered from notebook 00)" in captured.out
    for fix in ("AWS_ENDPOINT_URL is not set", "export AWS_ENDPOINT_URL=", "settings forget"):
        assert fix in captured.err, fix
    assert "-p backend sandbox" in captured.err
    assert "Resetting" not in captured.out and not (runs / "trapped").exists()
    assert _repositories() == [LAB.repository]  # no reset ran: Task 1's repository stays
    with capsys.disabled():
        print(f"stopped in {seconds:.2f} s: {captured.err.strip()}")
    assert seconds < 5

    # The fix it names works: forget, and the same run goes through on the sandbox.
    assert main(["settings", "forget"]) == 0
    state_file = Path(private_sandbox["LABKIT_STATE_DIR"]) / "state.json"
    assert "settings" not in json.loads(state_file.read_text())
    assert main(["run", "--from", "01", "--until", "01", "-q", "-o", str(runs / "after")]) == 0
