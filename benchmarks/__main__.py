"""``python -m benchmarks [--repeat N] [--only NAME[,NAME]] [--json PATH]``.

Runs each selected benchmark (a warm-up round, then N measured rounds), then prints a
table and the JSON document (or writes the JSON to PATH). Progress goes to stderr.
Exit status: 0 when every selected benchmark ran (missed targets included: these are
figures, not tests), 1 when one could not run, 2 for a bad option.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import all_benchmarks
from benchmarks.core import (
    Benchmark,
    Options,
    Recorder,
    Skipped,
    document,
    format_table,
    stderr_log,
)


def build_parser(names: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="How fast the lab runs against the embedded sandbox: a table and JSON.",
        epilog="benchmarks: " + ", ".join(names),
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="measured rounds per benchmark, after the warm-up (default: each "
        "benchmark's own, 3 to 7)",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, metavar="N", help="warm-up rounds (default 1)"
    )
    parser.add_argument(
        "--only", metavar="NAME[,NAME]", help="run only these benchmarks (comma-separated)"
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="write the JSON document here, not stdout"
    )
    return parser


def select(benchmarks: list[Benchmark], only: str | None) -> list[Benchmark]:
    if not only:
        return benchmarks
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    known = {b.name: b for b in benchmarks}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [b for b in benchmarks if b.name in wanted]


def prepare_docker() -> str:
    """Docker Engine warm and the sample image built; '' or why not."""
    from benchmarks.harness import docker_client, ensure_sample_image

    try:
        client = docker_client()
        client.ping()
        ensure_sample_image(client)
    except Exception as exc:  # reported on every row that needs Docker
        return f"{exc.__class__.__name__}: {exc}"
    return ""


def run_one(benchmark: Benchmark, options: Options, docker_problem: str) -> Recorder:
    rec = Recorder(benchmark.name, benchmark.rows, stderr_log)
    if benchmark.needs_docker and docker_problem:
        rec.fail(f"Docker is not ready: {docker_problem}")
        return rec
    rec.log(f"{benchmark.title} ...")
    started = time.perf_counter()
    try:
        benchmark.run(rec, options)
    except Skipped as exc:
        rec.skip(str(exc))
    except KeyboardInterrupt:
        rec.fail("interrupted")
        raise
    except Exception as exc:  # one failed area must not lose the other figures
        rec.fail(f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}")
    rec.log(f"done in {time.perf_counter() - started:.1f} s")
    return rec


def main(argv: Sequence[str] | None = None) -> int:
    benchmarks = all_benchmarks()
    parser = build_parser([b.name for b in benchmarks])
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    try:
        selected = select(benchmarks, args.only)
    except ValueError as exc:
        parser.error(str(exc))

    from benchmarks.machine import facts

    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    machine = facts()
    options = Options(repeat=args.repeat, warmup=args.warmup)
    docker_problem = ""
    if any(b.needs_docker for b in selected):
        stderr_log("[setup] Docker Engine and the sample image ...")
        docker_problem = prepare_docker()
    recorders = [run_one(b, options, docker_problem) for b in selected]

    summaries = [row.summary() for rec in recorders for row in rec.rows.values()]
    settings = {
        "repeat": args.repeat,
        "repeat_used": {b.name: options.repeats(b.default_repeat) for b in selected},
        "warmup": args.warmup,
        "only": [b.name for b in selected],
    }
    from benchmarks.machine import load_average

    machine["load_average_at_end"] = load_average()
    doc = document(summaries, machine, settings, started_at, time.perf_counter() - started)
    m = machine
    print(
        f"ECS Lab Kit benchmarks — {m['cores']} cores, {m['memory_mb']} MB, Python "
        f"{m['python']}, Docker Engine {m['docker_engine']}, moto {m['moto']}, "
        f"commit {m['git_commit']}; load average {m['load_average_at_start']} at start, "
        f"{m['load_average_at_end']} at end"
    )
    print(format_table(summaries))
    for s in summaries:
        for note in s["notes"]:
            print(f"  note ({s['name']}): {note}")
        if s["error"] and s["n"]:
            print(f"  error ({s['name']}): {s['error']}")
    text = json.dumps(doc, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
        print(f"JSON: {args.json}")
    else:
        print(text)
    failed = any(s["error"] and not s["n"] for s in summaries)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
