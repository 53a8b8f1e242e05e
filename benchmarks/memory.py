"""Sandbox and registry memory: idle after ``up``, and the peak over the whole lab.

VmRSS and VmHWM come from /proc/<pid>/status. The sandbox process and the registry
process it starts are reported separately. Each round is a fresh sandbox that runs the
whole lab headless (``labkit run``, 00-06: 04's service, 05's scale-up, replacement and
two rollouts, 06's cleanup), so VmHWM is the peak of that one lab.
"""

from __future__ import annotations

import time

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, Skipped, repeated
from benchmarks.harness import proc_memory_mb, running_sandbox, temp_dir
from benchmarks.notebooks import run_whole_lab
from labkit.runner import NOTEBOOK_DIR, lab_notebooks

#: Let the sandbox's background threads (agent, health checks) settle before "idle".
SETTLE_SECONDS = 2.0

ROWS = (
    RowSpec("sandbox_rss_idle", "sandbox process VmRSS, idle after up", "MB"),
    RowSpec("sandbox_hwm_lab", "sandbox process VmHWM, peak over the whole lab", "MB", 150.0),
    RowSpec("registry_rss_idle", "registry process VmRSS, idle after up", "MB"),
    RowSpec("registry_hwm_lab", "registry process VmHWM, peak over the whole lab", "MB"),
)


def run(rec: Recorder, options: Options) -> None:
    notebooks = lab_notebooks()
    if not notebooks:
        raise Skipped(f"no lab notebooks in {NOTEBOOK_DIR} yet")

    def once(warmup: bool) -> None:
        with running_sandbox() as box, temp_dir("labkit-bench-memory-") as work:
            time.sleep(SETTLE_SECONDS)
            idle = proc_memory_mb(box.pid)
            registry_idle = proc_memory_mb(box.registry_pid)
            run_whole_lab(box, work)
            peak = proc_memory_mb(box.pid)
            registry_peak = proc_memory_mb(box.registry_pid)
        if not warmup:
            rec.add("sandbox_rss_idle", idle["VmRSS"])
            rec.add("sandbox_hwm_lab", peak["VmHWM"])
            if registry_idle and registry_peak:
                rec.add("registry_rss_idle", registry_idle["VmRSS"])
                rec.add("registry_hwm_lab", registry_peak["VmHWM"])

    repeated(rec, options, BENCHMARK.default_repeat, once)
    rec.note("sandbox_hwm_lab", f"over labkit run of {len(notebooks)} notebooks (00-06)")


BENCHMARK = Benchmark(
    name="memory",
    title="sandbox and registry memory over the whole lab",
    rows=ROWS,
    run=run,
    default_repeat=3,
)
