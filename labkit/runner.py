"""Run the lab's notebooks headless with papermill, in order (``labkit run``).

As AWS's own sample-notebook CI does: a kernel name, ``log_output``, an execution
timeout per cell, and every executed notebook kept (even a failed one) as an artifact.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from labkit.backends.report import TeardownReport
from labkit.config import SETTINGS
from labkit.errors import InputError
from labkit.kit_files import copy_notebooks, editable_in_place, kit_notebooks
from labkit.names import NOTEBOOKS
from labkit.state import RUN_SETTINGS_VARIABLE

NOTEBOOK_DIR = kit_notebooks()
KERNEL_NAME = "python3"
#: Per-cell timeout: the slowest cell waits for a steady state (up to 5 minutes on AWS).
DEFAULT_CELL_TIMEOUT = 900


def lab_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """``00_*.ipynb`` … ``07_*.ipynb``, in order."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def _index(notebooks: list[Path], key: str | None, default: int) -> int:
    if key is None or key == "":
        return default
    wanted = str(key).strip()
    for i, path in enumerate(notebooks):
        number = path.name[:2]
        if wanted in (path.name, path.stem) or (wanted.isdigit() and int(wanted) == int(number)):
            return i
    names = ", ".join(p.name for p in notebooks)
    raise InputError(
        f"No notebook matches {key!r}.",
        why=f"The notebooks are: {names}.",
        fix="Use a number (e.g. 02) or a file name.",
    )


#: Without ``until`` a run ends with the cleanup notebook (06); the optional ones after it
#: (07, break and fix) run when asked for (``--from 07``), so a full run leaves nothing behind.
CLEANUP_NUMBER = 6


def select(notebooks: list[Path], start: str | None = None, until: str | None = None) -> list[Path]:
    """The notebooks from ``start`` to ``until`` inclusive (numbers like ``02`` or names);
    without ``until``, up to the cleanup notebook (or the last, when starting after it)."""
    first = _index(notebooks, start, 0)
    core = [i for i, path in enumerate(notebooks) if int(path.name[:2]) <= CLEANUP_NUMBER]
    last = _index(notebooks, until, core[-1] if core and core[-1] >= first else len(notebooks) - 1)
    if first > last:
        raise InputError(f"--from {start} comes after --until {until}.", fix="Swap the two values.")
    return notebooks[first : last + 1]


@dataclass(frozen=True)
class NotebookRun:
    notebook: str
    output: Path
    seconds: float
    ok: bool
    error: str = ""  # "cell 7 (In [6]): CheckFailed: …" when not ok

    def __str__(self) -> str:
        mark = "✅" if self.ok else "❌"
        text = f"{mark} {self.notebook} ({self.seconds:.1f} s) → {self.output}"
        return text if self.ok else f"{text}\n   {self.error}"


def with_solutions(notebook: Path) -> Any:
    """The notebook with each exercise cell replaced by its reference solution.

    An exercise cell is tagged ``exercise`` and ``solution:<file>``; the file in
    ``notebooks/solutions/`` is a complete cell (what ``%load`` would put there)."""
    import nbformat

    from labkit.tasks.exercise import EXERCISE_TAG, SOLUTION_TAG_PREFIX

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if EXERCISE_TAG not in tags:
            continue
        files = [t[len(SOLUTION_TAG_PREFIX) :] for t in tags if t.startswith(SOLUTION_TAG_PREFIX)]
        if len(files) != 1:
            raise InputError(
                f"An exercise cell of {notebook.name} names {len(files)} solution files.",
                why=f"Exercise cells carry exactly one '{SOLUTION_TAG_PREFIX}<file>' tag.",
                fix="Fix the cell's tags in JupyterLab (Property Inspector → Tags).",
            )
        # The solutions beside the notebook: a copied notebooks folder brings its own.
        cell.source = solution_cell(notebook.parent / "solutions" / files[0])
    return nb


def solution_cell(path: Path) -> str:
    """A solution file as the exercise cell it fills: Python as it is; a shell solution
    (``.sh``, the lab's own lines, runnable in a terminal too) as a ``%%bash`` cell."""
    text = path.read_text().rstrip("\n")
    return f"%%bash\n{text}" if path.suffix == ".sh" else text


def default_output_dir() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def run_notebooks(
    start: str | None = None,
    until: str | None = None,
    output_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    notebook_dir: Path = NOTEBOOK_DIR,
    strict: bool = True,
    log_output: bool = True,
    solutions: bool = True,
) -> list[NotebookRun]:
    """Execute the selected notebooks in order; stop at the first failure.

    ``strict`` sets LABKIT_STRICT=1 for the kernels, so a failed check fails the run.
    ``solutions`` fills each exercise cell with its reference solution (an instructor's
    run, CI); without it the notebooks run as shipped, blanks and all.
    """
    if log_output:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Kernels inherit this process's environment; set strictness for the run only.
    # LABKIT_HEADLESS tells live displays (labkit.dashboard) that no one is watching:
    # show one snapshot and return instead of refreshing.
    # LABKIT_STRICT is set either way: without it, CI=true alone would make checks strict.
    run_env = {"LABKIT_HEADLESS": "1", "LABKIT_STRICT": "1" if strict else "0"}
    saved = {key: os.environ.get(key) for key in [*run_env, RUN_SETTINGS_VARIABLE]}
    for key, value in run_env.items():
        if saved[key] is None:
            os.environ[key] = value
    # The -p settings reach every notebook as parameters, for this run only: named here,
    # notebook 00 does not remember them (labkit.state).
    os.environ[RUN_SETTINGS_VARIABLE] = " ".join(sorted(set(parameters or {}) & set(SETTINGS)))
    try:
        return _run_all(
            start, until, output_dir, parameters, cell_timeout, notebook_dir, log_output, solutions
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            elif key == RUN_SETTINGS_VARIABLE:
                os.environ[key] = value


def _run_all(
    start: str | None,
    until: str | None,
    output_dir: Path | None,
    parameters: dict[str, Any] | None,
    cell_timeout: int,
    notebook_dir: Path,
    log_output: bool,
    solutions: bool,
) -> list[NotebookRun]:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output_dir = Path(output_dir or default_output_dir())
    output_dir.mkdir(parents=True, exist_ok=True)
    notebook_dir = working_folder(Path(notebook_dir), output_dir)
    docs_beside_outputs(notebook_dir, output_dir)
    runs: list[NotebookRun] = []
    with tempfile.TemporaryDirectory(prefix="labkit-kernels-") as kernels:
        for number, notebook in enumerate(select(lab_notebooks(notebook_dir), start, until)):
            output = output_dir / notebook.name
            print(f"▶ {notebook.name}", flush=True)
            started = time.monotonic()
            try:
                papermill.execute_notebook(
                    with_solutions(notebook) if solutions else str(notebook),
                    str(output),
                    parameters=parameters or {},
                    kernel_name=KERNEL_NAME,
                    log_output=log_output,
                    progress_bar=False,
                    execution_timeout=cell_timeout,
                    cwd=str(notebook.parent),
                    config=private_kernel(Path(kernels) / f"kernel-{number}.json"),
                )
            except Exception as exc:  # a failed cell; or the kernel died, a timeout…
                if isinstance(exc, PapermillExecutionError):
                    evalue = " ".join(str(exc.evalue).split())[:300]
                    error = f"cell {exc.cell_index} (In [{exc.exec_count}]): {exc.ename}: {evalue}"
                else:
                    error = f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}"
                runs.append(
                    NotebookRun(notebook.name, output, time.monotonic() - started, False, error)
                )
                break
            runs.append(NotebookRun(notebook.name, output, time.monotonic() - started, True))
    return runs


def working_folder(notebook_dir: Path, output_dir: Path) -> Path:
    """Where the notebooks run (their working directory: notebook 03 writes its task
    definition there): ``notebook_dir`` itself, or, for the installed kit's copy or a
    folder this user cannot write to, a copy in the run's output folder."""
    if not lab_notebooks(notebook_dir):
        raise InputError(
            f"No lab notebooks in {notebook_dir}.",
            why=f"Expected files like {NOTEBOOKS[0]} there.",
            fix="Leave out --notebooks to run the kit's own, or pass the folder that holds "
            f"{NOTEBOOKS[0]}.",
        )
    if editable_in_place(notebook_dir, NOTEBOOKS[0]):
        return notebook_dir
    work = copy_notebooks(notebook_dir, output_dir / "notebooks")
    print(f"Running a copy of {notebook_dir} in {work} (the original stays as it is).")
    return work


def docs_beside_outputs(notebook_dir: Path, output_dir: Path) -> None:
    """The docs the notebooks link to (``docs/sandbox.md``…), beside the executed copies
    too, so those links open from the run's folder (only missing files are added)."""
    docs = notebook_dir / "docs"
    if docs.is_dir() and (output_dir / "docs").resolve() != docs.resolve():
        copy_notebooks(docs, output_dir / "docs")


def private_kernel(connection_file: Path) -> Any:
    """A kernel on Unix sockets beside ``connection_file`` (in a 0700 folder): over TCP,
    runs at once (a classroom) can pick the same free port before their kernels bind it
    ("Address already in use"). Windows keeps TCP."""
    from traitlets.config import Config

    if os.name != "posix":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "connection_file": str(connection_file)}})


def reset_lab(parameters: dict[str, Any] | None = None) -> TeardownReport:
    """A clean lab on the same backend: delete what the kit created, forget local state.

    The lab environment stays (the AWS stack, the endpoint's cluster), and so does the
    sandbox (it is started if it is the backend and is down, since its resources survive
    restarts). Prints and returns the teardown report.
    """
    from labkit.config import Backend
    from labkit.lab import Lab
    from labkit.state import FROM_COMMAND_LINE, resolve_settings
    from labkit.teardown import teardown

    settings = {k: v for k, v in (parameters or {}).items() if k in SETTINGS}
    lab = Lab(resolve_settings(FROM_COMMAND_LINE, **settings).config)
    if lab.backend is Backend.SANDBOX:
        lab.start()
    print(f"↺ Resetting the lab ({lab.backend.value}): deleting what the kit created.")
    return teardown(lab, delete_environment=False, raise_on_failure=True)
