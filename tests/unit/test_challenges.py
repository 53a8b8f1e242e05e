"""`labkit challenge` without a lab: the list, the score, the board's column, bad input."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from labkit.challenges import all_scenarios, engine
from labkit.classroom.board import LearnerRow, as_text
from labkit.cli import main
from labkit.errors import InputError, PrerequisiteError
from labkit.state import state_path


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    return tmp_path


def test_list_json_names_each_scenario_with_title_clues_and_aws_cost(capsys) -> None:
    assert main(["challenge", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in listed]
    assert names == ["pull-denied", "missing-tag", "wrong-port", "port-conflict", "memory", "exits"]
    for entry in listed:
        assert entry["title"] and entry["symptom"] and entry["aws_cost"]
        assert [c["cost"] for c in entry["clues"]] == sorted(c["cost"] for c in entry["clues"])
        assert sum(c["cost"] for c in entry["clues"]) < entry["points"]


def test_clues_cost_points_and_the_board_shows_name_and_score() -> None:
    engine._save({"name": "memory", "started": engine._now().isoformat(), "clues": []})
    assert stat.S_IMODE(state_path().stat().st_mode) == 0o600
    first, second = (c.cost for c in all_scenarios()[4].clues[:2])
    assert f"−{first} points" in engine.hint("memory")
    assert f"−{second} points" in engine.hint()
    assert engine.board_summary() == {
        "name": "memory",
        "score": 100 - first - second,
        "fixed": False,
    }
    row = LearnerRow("ada", "healthy", challenge=engine.board_summary())
    assert f"challenge memory: {100 - first - second} points" in as_text([row])
    assert "Challenge memory" in engine.status_text()


def test_no_challenge_running_and_unknown_names_say_what_to_do(capsys) -> None:
    assert engine.board_summary() is None
    with pytest.raises(PrerequisiteError, match="labkit challenge start"):
        engine.hint()
    with pytest.raises(InputError, match="pull-denied"):
        engine.start(None, "no-such")  # type: ignore[arg-type]
    assert main(["challenge", "hint"]) == 2
    assert "is not running" in capsys.readouterr().err


def test_the_board_probe_reports_the_learners_challenge(tmp_path: Path, monkeypatch) -> None:
    from labkit.classroom import board

    monkeypatch.setenv("LABKIT_SANDBOX_HOME", str(tmp_path / "no-sandbox"))
    assert board.probe()["challenge"] is None
    engine._save({"name": "exits", "started": engine._now().isoformat(), "clues": [1]})
    cost = all_scenarios()[5].clues[0].cost
    assert board.probe()["challenge"] == {"name": "exits", "score": 100 - cost, "fixed": False}


def test_an_endpoint_without_containers_names_the_scenarios_it_cannot_serve(
    monkeypatch, capsys
) -> None:
    from labkit.challenges import notebook
    from labkit.lab import Lab

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never called here
    lab = Lab.from_parameters(backend="endpoint")
    # What the endpoint's probes found (probing needs a live endpoint: tests/notebooks).
    monkeypatch.setattr(engine.endpoint, "unserved_tasks", lambda _lab: frozenset({2, 4}))
    assert notebook.overview(lab) == []
    out = capsys.readouterr().out
    assert "This backend cannot serve: pull-denied, missing-tag" in out
    assert "cannot serve Task(s) 2, 4" in out
    assert notebook.start(lab, "memory") is False
    assert "Skipping memory: this endpoint cannot serve Task(s) 2, 4" in capsys.readouterr().out
