"""A lasting regression keeps failing: a run is compared with the latest earlier run of the same
measurement that was not itself a regression, so a regressed run never becomes the reference."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from typer.testing import CliRunner

from steps.aggregate import aggregate
from steps.mmlu_pro.history import find_regressions, read_history
from tests.test_uncertainty import TUNED, models_file, write_outcomes
from workflows.cli import app

QUESTIONS = 200
START = datetime(2026, 1, 1, 3, tzinfo=timezone.utc)


def _run(tmp_path: Path, day: int, math: int, law: int = 100) -> list[dict]:
    """One cron re-benchmark of the same weights: `math` and `law` of 200 questions right."""
    run = f"cron-{day}"
    eval_dir = tmp_path / run / "eval"
    write_outcomes(eval_dir, TUNED, "math", [i < math for i in range(QUESTIONS)])
    write_outcomes(eval_dir, TUNED, "law", [i < law for i in range(QUESTIONS)])
    summary, _ = aggregate(eval_dir, models_file(tmp_path / run / "models.json", TUNED), ["math", "law"],
                           tmp_path / run / "summary", run, tmp_path / "history",
                           now=START + timedelta(days=day))
    return summary["regressions"]


def _regressed_flags(tmp_path: Path) -> dict[tuple[str, str], bool]:
    return {(row["run"], row["subject"]): row["regressed"] for row in read_history(tmp_path / "history")}


def test_a_lasting_regression_fails_every_run_until_it_recovers(tmp_path):
    assert _run(tmp_path, 1, math=150) == []
    [first] = _run(tmp_path, 2, math=120)
    assert (first["subject"], first["previous_run"]) == ("math", "cron-1")
    # Still as low: compared with cron-1, the last run that did not regress, not with cron-2.
    [still] = _run(tmp_path, 3, math=120)
    assert (still["subject"], still["previous_run"], still["previous_accuracy"]) == ("math", "cron-1", 0.75)
    assert still["significant"] and still["test"]["lost"] == 30
    assert _run(tmp_path, 4, math=150) == []             # recovered: accepted, the reference from now on
    [after] = _run(tmp_path, 5, math=120)
    assert after["previous_run"] == "cron-4"
    assert _regressed_flags(tmp_path) == {
        ("cron-1", "math"): False, ("cron-1", "law"): False, ("cron-2", "math"): True, ("cron-2", "law"): False,
        ("cron-3", "math"): True, ("cron-3", "law"): False, ("cron-4", "math"): False, ("cron-4", "law"): False,
        ("cron-5", "math"): True, ("cron-5", "law"): False}


def test_the_reference_is_chosen_per_subject(tmp_path):
    _run(tmp_path, 1, math=150, law=100)
    _run(tmp_path, 2, math=120, law=140)                 # math regressed; law rose and is accepted
    [law] = [r for r in _run(tmp_path, 3, math=150, law=100) if r["subject"] == "law"]
    assert law["previous_run"] == "cron-2" and law["previous_accuracy"] == 0.7


def test_a_drop_that_is_not_significant_is_no_regression_and_becomes_the_reference(tmp_path):
    _run(tmp_path, 1, math=150)
    assert _run(tmp_path, 2, math=146) == []            # −0.02 is within the threshold: accepted
    [regression] = _run(tmp_path, 3, math=120)
    assert regression["previous_run"] == "cron-2"


def test_rows_written_before_the_regressed_column_count_as_accepted():
    def row(run, day, accuracy, regressed=None):
        return {"run": run, "time": f"2026-01-0{day}T00:00:00+00:00", "model": "m", "model_revision": "r",
                "subject": "math", "settings_hash": "h", "n": 10, "accuracy": accuracy, "regressed": regressed}

    history = [row("a", 1, 0.9), row("b", 2, 0.5), row("c", 3, 0.5, regressed=True)]
    [regression] = find_regressions(history, [row("d", 4, 0.4)], "d", 0.02)
    assert regression.previous_run == "b"


def test_tunebench_history_marks_the_regressed_runs(tmp_path):
    for day, math in ((1, 150), (2, 120), (3, 150)):
        _run(tmp_path, day, math=math)
    lines = CliRunner().invoke(app, ["history", str(tmp_path / "history"), "--subject", "math"]).output.splitlines()
    assert [line.split()[1] for line in lines if line.endswith("  regressed")] == ["cron-2"]
    found = json.loads(CliRunner().invoke(app, ["history", str(tmp_path / "history"), "--subject", "math",
                                                "--json"]).output)
    assert [(p["run"], p["regressed"]) for p in found] == [("cron-1", False), ("cron-2", True), ("cron-3", False)]
