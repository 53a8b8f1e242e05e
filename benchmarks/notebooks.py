"""The whole lab headless (``labkit run``) and papermill's floor (one trivial cell)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, Skipped, repeated
from benchmarks.harness import proc_memory_mb, running_sandbox, temp_dir
from labkit.runner import KERNEL_NAME, NOTEBOOK_DIR, lab_notebooks

#: A hung run must not hang the benchmark.
RUN_TIMEOUT_SECONDS = 900

LAB_ROWS = (
    RowSpec("lab_run", "labkit run, every notebook (sandbox already up)", "s", 45.0),
    RowSpec("sandbox_hwm_labkit_run", "sandbox process VmHWM after labkit run", "MB", 200.0),
)
FLOOR_ROWS = (RowSpec("papermill_floor", "papermill, one notebook with one trivial cell", "s"),)


def run_lab(rec: Recorder, options: Options) -> None:
    notebooks = lab_notebooks()
    if not notebooks:
        raise Skipped(f"no lab notebooks in {NOTEBOOK_DIR} yet")
    rec.log(f"{len(notebooks)} notebooks: {', '.join(p.name for p in notebooks)}")

    def once(warmup: bool) -> None:
        # A fresh sandbox each round: the lab starts from the pre-provisioned environment.
        with running_sandbox() as box, temp_dir("labkit-bench-run-") as work:
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
            peak = proc_memory_mb(box.pid)
        if not warmup:
            rec.add("lab_run", seconds)
            rec.add("sandbox_hwm_labkit_run", peak["VmHWM"])

    repeated(rec, options, LAB.default_repeat, once)
    floor = _floor_guess(rec)
    if floor:
        rec.note("lab_run", floor)


def _floor_guess(rec: Recorder) -> str:
    notebooks = len(lab_notebooks())
    return f"{notebooks} notebooks; compare with {notebooks} x papermill_floor"


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
