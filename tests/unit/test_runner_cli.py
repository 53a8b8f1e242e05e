from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from labkit import runner
from labkit.cli import build_parser, main
from labkit.errors import InputError


def test_all_lab_notebooks_in_order():
    names = [p.name[:2] for p in runner.lab_notebooks()]
    assert names == ["00", "01", "02", "03", "04", "05", "06", "07"]


def test_select_ranges():
    notebooks = runner.lab_notebooks()
    picked = runner.select(notebooks, "02", "04")
    assert [p.name[:2] for p in picked] == ["02", "03", "04"]
    assert runner.select(notebooks, "6") == notebooks[6:7]  # a full run ends with cleanup
    assert runner.select(notebooks) == notebooks[:7]
    assert runner.select(notebooks, "07") == runner.select(notebooks, "5", "7")[-1:]
    assert runner.select(notebooks, until="00_start_here.ipynb") == notebooks[:1]
    with pytest.raises(InputError):
        runner.select(notebooks, "09")
    with pytest.raises(InputError):
        runner.select(notebooks, "04", "02")


def test_cli_has_the_command_groups():
    parser = build_parser()
    args = parser.parse_args(
        ["run", "--from", "01", "--until", "03", "-o", "out", "-p", "account_id", "012345678901"]
    )
    assert (args.start, args.until, args.output) == ("01", "03", Path("out"))
    assert args.parameter == [["account_id", "012345678901"]]
    for command in (["check"], ["cleanup"], ["sandbox", "status"]):
        assert parser.parse_args(command).handler


def _notebook(path: Path, *sources: str) -> None:
    cells = [new_code_cell(s) for s in sources]
    cells[0].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_run_stops_at_the_failing_notebook_and_names_the_cell(tmp_path, capsys):
    notebooks = tmp_path / "nbs"
    notebooks.mkdir()
    _notebook(notebooks / "00_ok.ipynb", "x = 1", "print(x)")
    _notebook(notebooks / "01_fails.ipynb", "x = 1", "y = 2", "raise ValueError('boom')")
    _notebook(notebooks / "02_never.ipynb", "x = 1")
    runs = runner.run_notebooks(
        output_dir=tmp_path / "out", notebook_dir=notebooks, cell_timeout=60, log_output=False
    )
    assert [r.ok for r in runs] == [True, False]
    assert runs[1].notebook == "01_fails.ipynb"
    assert "cell 2" in runs[1].error and "ValueError: boom" in runs[1].error
    assert (tmp_path / "out" / "01_fails.ipynb").exists()  # kept even though it failed


def test_cli_check_reports_a_table_and_fails_without_backend(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_BACKEND", "endpoint")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing answers there
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "backend=endpoint (from LABKIT_BACKEND)" in out
    assert "Task 1: repository and permission statement" in out and "❌" in out


def test_cli_stops_when_the_exported_backend_cannot_be_used(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_BACKEND", "endpoint")  # no AWS_ENDPOINT_URL set
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "AWS_ENDPOINT_URL is not set" in err and "unset LABKIT_BACKEND" in err


def test_concurrent_runs_start_their_kernels_on_private_unix_sockets(tmp_path):
    """Three `labkit run`s at once (a classroom's learners): each kernel on Unix sockets
    in its own 0700 folder, not on TCP ports picked free and bound later, which two runs
    can pick alike ("Address already in use")."""
    notebooks = tmp_path / "nbs"
    notebooks.mkdir()
    _notebook(
        notebooks / "00_where.ipynb",
        "out = ''",
        "import json, os, ipykernel.connect as c\n"
        "info = json.loads(c.get_connection_info())\n"
        "folder = os.path.dirname(c.get_connection_file())\n"
        "info['folder'], info['mode'] = folder, os.stat(folder).st_mode & 0o777\n"
        "open(out, 'w').write(json.dumps(info))",
    )
    env = dict(os.environ, LABKIT_BACKEND="sandbox")
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "labkit.cli", "run", "-q", "--notebooks", str(notebooks)]
            + ["-o", str(tmp_path / f"run{i}"), "-p", "out", str(tmp_path / f"kernel{i}.json")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    kernels = [json.loads((tmp_path / f"kernel{i}.json").read_text()) for i in range(3)]
    assert {kernel["transport"] for kernel in kernels} == {"ipc"}
    folders = {kernel["folder"] for kernel in kernels}
    assert len(folders) == 3 and {kernel["mode"] for kernel in kernels} == {0o700}
    assert all(kernel["ip"].startswith(kernel["folder"] + os.sep) for kernel in kernels)
    assert not any(Path(folder).exists() for folder in folders)  # removed after the run


def test_a_runs_p_reaches_its_kernels_for_that_run_only(tmp_path, capsys):
    """The kernels get -p as parameters and learn which settings it gave (so notebook 00
    does not remember them); after the run the variable is gone, the state untouched."""
    notebooks = tmp_path / "nbs"
    notebooks.mkdir()
    out = tmp_path / "seen.json"
    _notebook(
        notebooks / "00_seen.ipynb",
        f"region = ''\nout = {str(out)!r}",
        "import json, os\n"
        "from labkit.state import resolve_settings\n"
        "resolved = resolve_settings(region=region)\n"
        "json.dump({'variable': os.environ.get('LABKIT_RUN_SETTINGS'),\n"
        "           'source': resolved.sources['region']}, open(out, 'w'))",
    )
    argv = ["run", "-q", "--notebooks", str(notebooks), "-o", str(tmp_path / "run")]
    assert main([*argv, "-p", "region", "eu-west-1"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == {
        "variable": "region",
        "source": "-p of this labkit run, not remembered",
    }
    assert "region=eu-west-1 (-p)" in printed
    assert "`labkit cleanup -p region eu-west-1`" in printed
    assert "LABKIT_RUN_SETTINGS" not in os.environ
    assert not (tmp_path / "state" / "state.json").exists()
