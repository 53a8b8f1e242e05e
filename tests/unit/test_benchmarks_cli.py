"""The benchmark command imports, parses its options, and formats fake samples (no Docker)."""

from __future__ import annotations

import json

import pytest

from benchmarks import all_benchmarks
from benchmarks.__main__ import build_parser, run_one, select
from benchmarks.core import (
    Benchmark,
    Options,
    Recorder,
    RowSpec,
    Skipped,
    document,
    format_table,
    format_value,
    repeated,
)

SPECS = (
    RowSpec("up", "sandbox up", "s", 3.0),
    RowSpec("peak", "peak memory", "MB", 200.0),
    RowSpec("ratio", "ratio", "x", 1.3),
    RowSpec("floor", "papermill floor", "s"),
)


def fake_recorder() -> Recorder:
    rec = Recorder("fake", SPECS, log=lambda text: None)
    for value in (2.0, 4.0, 1.0):
        rec.add("up", value)
    for value in (250.0, 260.0):
        rec.add("peak", value)
    rec.add("ratio", 1.1)
    return rec


def test_statistics_are_median_min_max_n_against_the_target() -> None:
    rows = {name: row.summary() for name, row in fake_recorder().rows.items()}
    up = rows["up"]
    assert (up["median"], up["min"], up["max"], up["n"]) == (2.0, 1.0, 4.0, 3)
    assert up["meets_target"] is True
    assert rows["peak"]["median"] == 255.0 and rows["peak"]["meets_target"] is False
    assert rows["ratio"]["meets_target"] is True
    assert rows["floor"]["n"] == 0 and rows["floor"]["meets_target"] is None


def test_table_and_json_document() -> None:
    summaries = [row.summary() for row in fake_recorder().rows.values()]
    table = format_table(summaries)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["benchmark", "measurement", "median"]
    assert len(lines) == 2 + len(SPECS)
    assert "2.00 s" in lines[2] and "≤ 3.00 s" in lines[2] and lines[2].endswith("meets")
    assert "255 MB" in lines[3] and lines[3].endswith("MISSED")
    assert "1.10x" in lines[4]
    assert lines[5].endswith("reference")

    doc = document(summaries, {"cores": 2}, {"repeat": 3}, "2026-11-27T00:00:00+00:00", 1.0)
    again = json.loads(json.dumps(doc))
    assert again["missed_targets"] == ["peak"]
    assert again["machine"] == {"cores": 2}
    assert [r["name"] for r in again["results"]] == ["up", "peak", "ratio", "floor"]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(0.0123, "s", "12.3 ms"), (2.345, "s", "2.35 s"), (199.6, "MB", "200 MB"), (None, "s", "-")],
)
def test_format_value(value: float | None, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_warm_up_rounds_are_not_recorded() -> None:
    rec = Recorder("fake", SPECS, log=lambda text: None)
    calls: list[bool] = []

    def once(warmup: bool) -> None:
        calls.append(warmup)
        if not warmup:
            rec.add("up", 1.0)

    repeated(rec, Options(repeat=3, warmup=1), default=5, once=once)
    assert calls == [True, False, False, False]
    assert rec.rows["up"].summary()["n"] == 3
    repeated(rec, Options(repeat=None, warmup=0), default=2, once=once)
    assert rec.rows["up"].summary()["n"] == 5


def test_a_failing_or_skipped_benchmark_is_reported_not_raised() -> None:
    def boom(rec: Recorder, options: Options) -> None:
        rec.add("up", 1.0)
        raise RuntimeError("the agent is not there")

    def skip(rec: Recorder, options: Options) -> None:
        raise Skipped("no notebooks yet")

    options = Options(repeat=1)
    failed = run_one(Benchmark("boom", "boom", SPECS, boom, needs_docker=False), options, "")
    rows = {name: row.summary() for name, row in failed.rows.items()}
    assert rows["up"]["n"] == 1 and "the agent is not there" in rows["up"]["notes"][0]
    assert "RuntimeError: the agent is not there" in rows["peak"]["error"]
    assert "error: RuntimeError" in format_table(rows.values())

    skipped = run_one(Benchmark("skip", "skip", SPECS, skip, needs_docker=False), options, "")
    assert all(r.skipped == "no notebooks yet" for r in skipped.rows.values())

    no_docker = run_one(Benchmark("d", "d", SPECS, boom), options, "no daemon")
    assert all("Docker is not ready" in r.error for r in no_docker.rows.values())


def test_the_command_line() -> None:
    benchmarks = all_benchmarks()
    names = [b.name for b in benchmarks]
    assert {"startup", "push", "service", "memory", "lab", "papermill_floor", "api_ratio"} <= set(
        names
    )
    args = build_parser(names).parse_args(["--only", "api_ratio,push", "--repeat", "3"])
    assert args.repeat == 3
    assert [b.name for b in select(benchmarks, args.only)] == ["api_ratio", "push"]
    with pytest.raises(ValueError, match="unknown benchmark"):
        select(benchmarks, "nope")
    assert select(benchmarks, None) == benchmarks


def test_labkit_run_summary_lines_are_read_per_notebook() -> None:
    from benchmarks.notebooks import notebook_seconds

    stdout = (
        "✅ 00_start_here.ipynb (1.5 s) → runs/x/00_start_here.ipynb\n"
        "❌ 05_operating_the_service.ipynb (40.1 s) → runs/x/05_operating_the_service.ipynb\n"
        "All 2 notebook(s) passed in 41.6 s.\n"
    )
    assert notebook_seconds(stdout) == {
        "00_start_here.ipynb": 1.5,
        "05_operating_the_service.ipynb": 40.1,
    }


def test_classroom_search_grows_then_bisects_to_the_largest_n_under_5_minutes(monkeypatch, capsys):
    from benchmarks import classroom

    tried = []

    def fake_run(learners: int, log, limit: float) -> dict:
        tried.append(learners)  # a lab that takes 20 s per learner: 14 is the largest
        return {
            "learners": learners,
            "passed": learners,
            "lab_seconds": 20.0 * learners,
            "memory_mb_peak_total": 1.0,
        }

    monkeypatch.setattr(classroom, "run_n", fake_run)
    classroom.main(["--search", "4", "--resolution", "1"])
    summary = json.loads(capsys.readouterr().out)
    assert tried == [4, 8, 15, 11, 13, 14]
    assert summary["largest_n_under_5_minutes"] == 14
    assert summary["smallest_n_over_5_minutes"] == 15

    tried.clear()
    classroom.main(["--learners", "10,15,20"])  # a list stops at the first N over
    assert tried == [10, 15]
    assert json.loads(capsys.readouterr().out)["largest_n_under_5_minutes"] == 10


def test_startup_times_the_commands_a_reader_types(tmp_path, monkeypatch) -> None:
    from benchmarks import startup

    beside = tmp_path / "bin"
    beside.mkdir()
    (beside / "moto_server").touch()
    monkeypatch.setattr(startup.sys, "executable", str(beside / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert startup.command("moto_server", "moto.server") == [str(beside / "moto_server")]
    # Without the console script, the module the script would run.
    assert startup.command("labkit", "labkit.cli") == [str(beside / "python"), "-m", "labkit.cli"]
