"""The whole lab headless (``labkit run``) and papermill's floor (one trivial cell).

Each round of the lab starts a fresh sandbox first and times only ``labkit run``: the
figure is the lab with the sandbox already up (``labkit sandbox up`` is the startup row).
The sandbox's memory over the same run is the memory benchmark's.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, Skipped, repeated
from benchmarks.harness import BenchSandbox, running_sandbox, temp_dir
from labkit.runner import KERNEL_NAME, NOTEBOOK_DIR, lab_notebooks

#: A hung run must not hang the benchmark.
RUN_TIMEOUT_SECONDS = 900

LAB_ROWS = (
    RowSpec("lab_run", "labkit run, every notebook (sandbox already up, not timed)", "s", 45.0),
)
FLOOR_ROWS = (RowSpec("papermill_floor", "papermill, one notebook with one trivial cell", "s"),)


def run_lab(rec: Recorder, options: Options) -> None:
    notebooks = lab_notebooks()
    if not notebooks:
        raise Skipped(f"no lab notebooks in {NOTEBOOK_DIR} yet")
    rec.log(f"{len(notebooks)} notebooks: {', '.join(p.name for p in notebooks)}")
    per_notebook: dict[str, list[float]] = {}
    slowest: list[tuple[float, str]] = []

    def once(warmup: bool) -> None:
        # A fresh sandbox each round, up before the clock starts: the lab starts from the
        # pre-provisioned environment, as after `labkit sandbox up`.
        with running_sandbox() as box, temp_dir("labkit-bench-run-") as work:
            seconds, stdout = run_whole_lab(box, work)
            if not warmup:
                for name, nb_seconds in notebook_seconds(stdout).items():
                    per_notebook.setdefault(name, []).append(nb_seconds)
                slowest[:] = slowest_cells(work / "out")
        if not warmup:
            rec.add("lab_run", seconds)

    repeated(rec, options, LAB.default_repeat, once)
    if per_notebook:
        medians = ", ".join(
            f"{name.split('_')[0]} {statistics.median(values):.1f} s"
            for name, values in sorted(per_notebook.items())
        )
        rec.note("lab_run", f"per notebook (median, as labkit run reports): {medians}")
    for cell_seconds, where in slowest:
        rec.note("lab_run", f"slow cell (last round): {cell_seconds:.1f} s {where}")
    rec.note(
        "lab_run", f"{len(notebooks)} notebooks: compare with {len(notebooks)} x papermill_floor"
    )


def run_whole_lab(box: BenchSandbox, work: Path) -> tuple[float, str]:
    """``labkit run`` of every notebook (00-06) against ``box``: its seconds and stdout."""
    env = dict(os.environ, **box.child_env(work / "state"))
    env.pop("LABKIT_STRICT", None)  # `labkit run` is strict by default
    command = [sys.executable, "-m", "labkit.cli", "run", "-q", "-o", str(work / "out")]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env=env,
        cwd=str(work),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).split())[-400:]
        raise RuntimeError(f"labkit run exited {done.returncode}: {tail}")
    return seconds, done.stdout


_RUN_LINE = re.compile(r"(\d\d_[\w.-]+\.ipynb) \(([\d.]+) s\)")


def notebook_seconds(stdout: str) -> dict[str, float]:
    """``labkit run``'s own per-notebook times, from its summary lines."""
    return {m.group(1): float(m.group(2)) for m in _RUN_LINE.finditer(stdout)}


def slowest_cells(
    output_dir: Path, count: int = 3, at_least: float = 1.0
) -> list[tuple[float, str]]:
    """The slowest cells of the executed notebooks (papermill records each cell's duration)."""
    cells = []
    for path in sorted(output_dir.glob("*.ipynb")):
        try:
            nb = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for index, cell in enumerate(nb.get("cells", [])):
            duration = cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0
            if cell.get("cell_type") == "code" and duration >= at_least:
                source = " | ".join(
                    line.strip() for line in "".join(cell["source"]).splitlines() if line.strip()
                )
                cells.append((duration, f"{path.stem} cell {index}: {source[:90]}"))
    return sorted(cells, reverse=True)[:count]


def run_floor(rec: Recorder, options: Options) -> None:
    import nbformat
    import papermill

    with temp_dir("labkit-bench-floor-") as work:
        source = work / "empty.ipynb"
        nb = nbformat.v4.new_notebook()
        nb.cells.append(nbformat.v4.new_code_cell("1 + 1"))
        nb.metadata["kernelspec"] = {
            "name": KERNEL_NAME,
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(nb, str(source))

        def once(warmup: bool) -> None:
            started = time.perf_counter()
            papermill.execute_notebook(
                str(source),
                str(work / "out.ipynb"),
                kernel_name=KERNEL_NAME,
                progress_bar=False,
                log_output=False,
                cwd=str(work),
            )
            seconds = time.perf_counter() - started
            if not warmup:
                rec.add("papermill_floor", seconds)

        repeated(rec, options, FLOOR.default_repeat, once)


LAB = Benchmark(
    name="lab",
    title="the whole lab headless",
    rows=LAB_ROWS,
    run=run_lab,
    default_repeat=3,
)
FLOOR = Benchmark(
    name="papermill_floor",
    title="papermill's floor",
    rows=FLOOR_ROWS,
    run=run_floor,
    default_repeat=5,
    needs_docker=False,
)
