"""The benchmark machinery: rows, samples, statistics, the table and the JSON document.

Nothing here touches Docker, the sandbox or the network, so it is cheap to import and
to test (``tests/unit/test_benchmarks_cli.py``).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Bumped when the JSON document's shape changes.
SCHEMA = "labkit-benchmarks/1"


class Skipped(Exception):  # noqa: N818 - a state, not an error
    """A measurement cannot run here (say, no notebooks yet); the reason goes in the table."""


@dataclass(frozen=True)
class RowSpec:
    """One figure a benchmark reports."""

    name: str
    label: str
    unit: str  # "s", "MB" or "x" (a ratio)
    target: float | None = None  # the figure's median must be <= target; None: reference


@dataclass
class Row:
    spec: RowSpec
    benchmark: str
    samples: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    skipped: str = ""

    def summary(self) -> dict[str, Any]:
        """median/min/max/n, the target and whether the median meets it."""
        out: dict[str, Any] = {
            "benchmark": self.benchmark,
            "name": self.spec.name,
            "label": self.spec.label,
            "unit": self.spec.unit,
            "target": self.spec.target,
            "n": len(self.samples),
            "median": None,
            "min": None,
            "max": None,
            "samples": [round(s, 4) for s in self.samples],
            "meets_target": None,
            "notes": self.notes,
            "error": self.error,
            "skipped": self.skipped,
        }
        if self.samples:
            median = statistics.median(self.samples)
            out.update(
                median=round(median, 4),
                min=round(min(self.samples), 4),
                max=round(max(self.samples), 4),
            )
            if self.spec.target is not None:
                out["meets_target"] = median <= self.spec.target
        return out


class Recorder:
    """What a benchmark writes its samples and notes to, row by row."""

    def __init__(self, benchmark: str, specs: Sequence[RowSpec], log: Callable[[str], None]):
        self.benchmark = benchmark
        self.rows = {spec.name: Row(spec, benchmark) for spec in specs}
        self._log = log

    def add(self, row: str, value: float) -> None:
        self.rows[row].samples.append(float(value))
        spec = self.rows[row].spec
        n = len(self.rows[row].samples)
        self.log(f"{row} #{n}: {format_value(value, spec.unit)}")

    def note(self, row: str, text: str) -> None:
        if text not in self.rows[row].notes:
            self.rows[row].notes.append(text)

    def log(self, text: str) -> None:
        self._log(f"[{self.benchmark}] {text}")

    def fail(self, error: str) -> None:
        """Mark every row that has no sample yet (the run stopped before it)."""
        for row in self.rows.values():
            if not row.samples:
                row.error = error
            else:
                row.notes.append(f"run stopped early: {error}")

    def skip(self, reason: str) -> None:
        for row in self.rows.values():
            row.skipped = reason


@dataclass(frozen=True)
class Options:
    repeat: int | None  # None: each benchmark's own default
    warmup: int = 1

    def repeats(self, default: int) -> int:
        return self.repeat if self.repeat is not None else default


@dataclass(frozen=True)
class Benchmark:
    """A measurement area: its rows, its default repeat count, and how to run it."""

    name: str
    title: str
    rows: tuple[RowSpec, ...]
    run: Callable[[Recorder, Options], None]
    default_repeat: int = 5
    needs_docker: bool = True


def repeated(rec: Recorder, options: Options, default: int, once: Callable[[bool], None]) -> None:
    """Call ``once(warmup)`` for the warm-up rounds, then ``repeat`` measured rounds.

    ``once`` records its own samples (``rec.add``) only when ``warmup`` is False.
    """
    for i in range(options.warmup):
        rec.log(f"warm-up {i + 1}/{options.warmup}")
        once(True)
    for _ in range(options.repeats(default)):
        once(False)


class Stopwatch:
    """``with Stopwatch() as sw: ...; sw.seconds``: monotonic wall time."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.1f} ms"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g} {unit}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _status(summary: dict[str, Any]) -> str:
    if summary["skipped"]:
        return "skipped: " + summary["skipped"]
    if summary["error"] and not summary["n"]:
        return "error: " + summary["error"]
    if summary["meets_target"] is None:
        return "reference"
    return "meets" if summary["meets_target"] else "MISSED"


def format_table(summaries: Iterable[dict[str, Any]], status_width: int = 60) -> str:
    """A plain-text table, one line per figure (long statuses are cut to ``status_width``)."""
    header = ["benchmark", "measurement", "median", "min", "max", "n", "target", "status"]
    lines = []
    for s in summaries:
        target = "-" if s["target"] is None else "≤ " + format_value(s["target"], s["unit"])
        lines.append(
            [
                s["benchmark"],
                s["label"],
                format_value(s["median"], s["unit"]),
                format_value(s["min"], s["unit"]),
                format_value(s["max"], s["unit"]),
                str(s["n"]),
                target,
                _cut(_status(s), status_width),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header) - 1)]
    right = {2, 3, 4, 5}

    def render(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells[:-1]):
            out.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return "  ".join(out) + "  " + cells[-1]

    rule = "-" * (len(render(header)) + 4)
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


def document(
    summaries: list[dict[str, Any]],
    machine: dict[str, Any],
    settings: dict[str, Any],
    started_at: str,
    seconds: float,
) -> dict[str, Any]:
    """The JSON document: machine facts, settings and every figure."""
    missed = [s["name"] for s in summaries if s["meets_target"] is False]
    return {
        "schema": SCHEMA,
        "started_at": started_at,
        "duration_seconds": round(seconds, 1),
        "machine": machine,
        "settings": settings,
        "missed_targets": missed,
        "results": summaries,
    }


def stderr_log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
