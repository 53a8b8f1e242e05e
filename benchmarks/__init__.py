"""How fast the lab runs, against a baseline, in one command: ``python -m benchmarks``.

Each area is a module with one :class:`benchmarks.core.Benchmark`; ``ALL`` lists them in
the order they run. Figures are numbers, not pass/fail tests: the command prints a table
and a JSON document (median, min, max, n per figure, and the machine's facts).
"""

from __future__ import annotations

from benchmarks.core import Benchmark


def all_benchmarks() -> list[Benchmark]:
    """Every benchmark, cheapest first (imports stay lazy for ``--help``)."""
    from benchmarks import api_ratio, memory, notebooks, push, service, startup

    return [
        api_ratio.BENCHMARK,
        startup.BENCHMARK,
        push.BENCHMARK,
        service.BENCHMARK,
        memory.BENCHMARK,
        notebooks.FLOOR,
        notebooks.LAB,
    ]


__all__ = ["Benchmark", "all_benchmarks"]
