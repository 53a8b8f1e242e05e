"""Sandbox and registry memory: idle after ``up``, and the peak over the lab's data path.

VmRSS and VmHWM come from /proc/<pid>/status. The sandbox process and the registry
process it starts are reported separately. Each round is a fresh sandbox, so VmHWM is
the peak of that one lab.
"""

from __future__ import annotations

import time

from benchmarks.core import Benchmark, Options, Recorder, RowSpec, repeated
from benchmarks.harness import LabService, docker_client, proc_memory_mb, running_sandbox

#: Let the sandbox's background threads (agent, health checks) settle before "idle".
SETTLE_SECONDS = 2.0

ROWS = (
    RowSpec("sandbox_rss_idle", "sandbox process VmRSS, idle after up", "MB"),
    RowSpec("sandbox_hwm_lab", "sandbox process VmHWM, peak over the lab", "MB", 150.0),
    RowSpec("registry_rss_idle", "registry process VmRSS, idle after up", "MB"),
    RowSpec("registry_hwm_lab", "registry process VmHWM, peak over the lab", "MB"),
)


def run(rec: Recorder, options: Options) -> None:
    docker = docker_client()

    def once(warmup: bool) -> None:
        with running_sandbox() as box:
            time.sleep(SETTLE_SECONDS)
            idle = proc_memory_mb(box.pid)
            registry_idle = proc_memory_mb(box.registry_pid)
            # The lab's data path: Tasks 1-3, then Task 4's service, a kill, the recovery.
            lab = LabService.prepare(box, docker)
            name = "MYSERVICE0001"
            lab.create_service(name)
            try:
                lab.time_to_serving()
                lab.kill_and_time_recovery()
            finally:
                lab.delete_service(name)
            peak = proc_memory_mb(box.pid)
            registry_peak = proc_memory_mb(box.registry_pid)
        if not warmup:
            rec.add("sandbox_rss_idle", idle["VmRSS"])
            rec.add("sandbox_hwm_lab", peak["VmHWM"])
            if registry_idle:
                rec.add("registry_rss_idle", registry_idle["VmRSS"])
                rec.add("registry_hwm_lab", registry_peak["VmHWM"])

    repeated(rec, options, BENCHMARK.default_repeat, once)


BENCHMARK = Benchmark(
    name="memory",
    title="sandbox and registry memory",
    rows=ROWS,
    run=run,
    default_repeat=3,
)
