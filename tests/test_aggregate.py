"""steps.aggregate: overall and macro scores, deltas, missing/partial results, the report files,
the history and the regression check."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from steps.aggregate import aggregate, aggregate_command
from steps.common import EXIT_REGRESSION, write_json_atomic
from steps.mmlu_pro.results import subject_summary

BASE = {"model": "google/gemma-2-2b", "slug": "google--gemma-2-2b", "role": "baseline", "label": "google/gemma-2-2b"}
BIG = {"model": "google/gemma-3-12b-it", "slug": "google--gemma-3-12b-it", "role": "baseline", "label": "google/gemma-3-12b-it"}
TUNED = {"model": "/ws/runs/r/train/output/merged", "slug": "finetuned", "role": "finetuned", "label": "org/tuned"}


def write_result(eval_dir: Path, model: dict, subject: str, correct: int, n: int, n_questions: int | None = None,
                 settings_hash: str = "settings-1") -> None:
    records = [{"correct": i < correct, "method": "l1", "k": 5, "hit_token_limit": False} for i in range(n)]
    summary = subject_summary(records, n_questions=n_questions or n, subject=subject, model=model["model"],
                              label=model["label"], role=model["role"], engine="hf", model_revision="rev-1",
                              dataset="TIGER-Lab/MMLU-Pro", dataset_revision="abc", extract="tiger",
                              settings_hash=settings_hash)
    write_json_atomic(eval_dir / model["slug"] / f"{subject}.summary.json", summary)


def write_models(path: Path, *models: dict) -> Path:
    path.write_text(json.dumps(list(models)))
    return path


@pytest.fixture
def run(tmp_path):
    eval_dir = tmp_path / "eval"
    for model, scores in ((BASE, {"math": (10, 100), "law": (30, 50)}),
                          (BIG, {"math": (40, 100), "law": (20, 50)}),
                          (TUNED, {"math": (25, 100), "law": (35, 50)})):
        for subject, (correct, n) in scores.items():
            write_result(eval_dir, model, subject, correct, n)
    return eval_dir, write_models(tmp_path / "models.json", BASE, BIG, TUNED)


def _aggregate_cli(*args: str):
    app = typer.Typer()
    app.command()(aggregate_command)
    return CliRunner().invoke(app, list(args))


def test_overall_is_total_correct_over_total_questions_and_deltas_are_against_each_baseline(run, tmp_path):
    eval_dir, models = run
    summary, regressions = aggregate(eval_dir, models, ["math", "law"], tmp_path / "summary", "r1")
    base, big, tuned = summary["models"]
    assert tuned["subjects"]["math"] == {"n": 100, "correct": 25, "accuracy": 0.25, "complete": True,
                                         "n_questions": 100, "settings_hash": "settings-1"}
    assert tuned["overall"] == {"n": 150, "correct": 60, "accuracy": pytest.approx(0.4)}
    assert tuned["macro_accuracy"] == pytest.approx((0.25 + 0.7) / 2)
    assert base["overall"]["accuracy"] == pytest.approx(40 / 150)
    delta_base, delta_big = summary["deltas"]
    assert (delta_base["baseline"], delta_big["baseline"]) == ("google/gemma-2-2b", "google/gemma-3-12b-it")
    assert delta_base["subjects"] == {"math": pytest.approx(0.15), "law": pytest.approx(0.1)}
    assert delta_big["overall"] == pytest.approx(60 / 150 - 60 / 150)
    assert delta_big["macro"] == pytest.approx((0.25 + 0.7) / 2 - (0.4 + 0.4) / 2)
    assert summary["complete"] and summary["missing"] == [] and regressions == []
    assert json.loads((tmp_path / "summary" / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_the_markdown_table_and_the_chart_are_written(run, tmp_path):
    eval_dir, models = run
    aggregate(eval_dir, models, ["math", "law"], tmp_path / "summary", "r1")
    markdown = (tmp_path / "summary" / "summary.md").read_text()
    lines = markdown.splitlines()
    table_header = next(line for line in lines if line.startswith("| subject |"))
    assert "google/gemma-2-2b (baseline)" in table_header and "org/tuned (fine-tuned)" in table_header
    assert "Δ org/tuned vs google/gemma-2-2b" in table_header
    assert "| math | 0.1000 (10/100) | 0.4000 (40/100) | 0.2500 (25/100) | +0.1500 | -0.1500 |" in lines
    assert any(line.startswith("| **overall** |") and "**0.4000 (60/150)**" in line for line in lines)
    assert any(line.startswith("| macro |") for line in lines)

    from matplotlib.image import imread

    image = imread(tmp_path / "summary" / "scores.png")
    height, width = image.shape[:2]
    assert width >= 800 and height >= 600


def test_missing_and_partial_results_are_listed_not_averaged_away(tmp_path):
    eval_dir = tmp_path / "eval"
    write_result(eval_dir, BASE, "math", 10, 100)
    write_result(eval_dir, TUNED, "math", 3, 10, n_questions=100)   # a --limit run
    models = write_models(tmp_path / "models.json", BASE, TUNED)
    summary, _ = aggregate(eval_dir, models, ["math", "law"], tmp_path / "summary", "r1")

    assert not summary["complete"]
    assert summary["missing"] == [{"model": "google/gemma-2-2b", "subject": "law"}, {"model": "org/tuned", "subject": "law"}]
    assert summary["partial"] == [{"model": "org/tuned", "subject": "math", "n": 10, "n_questions": 100}]
    assert summary["models"][0]["missing"] == ["law"] and summary["models"][0]["overall"]["n"] == 100
    markdown = (tmp_path / "summary" / "summary.md").read_text()
    assert "| law | missing | missing | – |" in markdown
    assert "**Missing results** (not in overall or macro): google/gemma-2-2b law; org/tuned law" in markdown
    assert "0.3000 (3/10)*" in markdown and "org/tuned math (10 of 100 questions)" in markdown


def _history_run(tmp_path, run_id, math, law, settings_hash="settings-1", threshold="0.02", when=None):
    eval_dir = tmp_path / run_id / "eval"
    write_result(eval_dir, TUNED, "math", math, 100, settings_hash=settings_hash)
    write_result(eval_dir, TUNED, "law", law, 100, settings_hash=settings_hash)
    models = write_models(tmp_path / run_id / "models.json", TUNED)
    return _aggregate_cli("--eval-dir", str(eval_dir), "--models", str(models), "--subjects", '["math", "law"]',
                          "--out-dir", str(tmp_path / run_id / "summary"), "--run-id", run_id,
                          "--history", str(tmp_path / "history" / "mmlu-pro.parquet"),
                          "--regression-threshold", threshold)


def test_history_gets_a_row_per_model_and_subject_and_a_drop_beyond_the_threshold_exits_4(tmp_path):
    assert _history_run(tmp_path, "run-1", math=30, law=50).exit_code == 0
    result = _history_run(tmp_path, "run-2", math=25, law=49)   # math −0.05, law −0.01
    assert result.exit_code == EXIT_REGRESSION
    assert "math (org/tuned: 0.3000 in run-1 → 0.2500" in result.output and "law (" not in result.output.split("regressed")[1]

    rows = pq.read_table(tmp_path / "history" / "mmlu-pro.parquet").to_pylist()
    assert [(r["run"], r["subject"], r["correct"]) for r in rows] == [
        ("run-1", "math", 30), ("run-1", "law", 50), ("run-2", "math", 25), ("run-2", "law", 49)]
    assert set(rows[0]) >= {"time", "run", "model", "model_revision", "subject", "n", "correct", "accuracy", "settings_hash"}
    assert rows[0]["model"] == "org/tuned" and rows[0]["model_revision"] == "rev-1"
    summary = json.loads((tmp_path / "run-2" / "summary" / "summary.json").read_text())
    assert [r["subject"] for r in summary["regressions"]] == ["math"]
    assert "**Regressions**" in (tmp_path / "run-2" / "summary" / "summary.md").read_text()

    # Retrying the aggregate of run-2 replaces its rows instead of adding them again.
    assert _history_run(tmp_path, "run-2", math=25, law=49).exit_code == EXIT_REGRESSION
    assert len(pq.read_table(tmp_path / "history" / "mmlu-pro.parquet")) == 4


def test_runs_with_other_settings_or_within_the_threshold_are_no_regression(tmp_path):
    assert _history_run(tmp_path, "run-1", math=40, law=50).exit_code == 0
    assert _history_run(tmp_path, "run-2", math=20, law=50, settings_hash="settings-2").exit_code == 0
    assert _history_run(tmp_path, "run-3", math=38, law=50).exit_code == 0   # −0.02 is not more than 0.02
    assert _history_run(tmp_path, "run-4", math=30, law=50, threshold="0.1").exit_code == 0


def test_the_previous_run_is_the_latest_earlier_one(tmp_path):
    from steps.mmlu_pro.history import find_regressions

    history = [{"run": run, "time": time, "model": "m", "subject": "math", "settings_hash": "h", "n": 10, "accuracy": acc}
               for run, time, acc in (("a", "2025-01-01T00:00:00+00:00", 0.9), ("b", "2025-02-01T00:00:00+00:00", 0.5))]
    current = [{"model": "m", "subject": "math", "settings_hash": "h", "n": 10, "accuracy": 0.45}]
    assert find_regressions(history, current, "c", 0.02)[0].previous_run == "b"
    assert find_regressions(history, current, "c", 0.1) == []


def test_bad_models_file_is_refused(tmp_path):
    for content in ("not json", '{"slug": "x"}'):
        (tmp_path / "models.json").write_text(content)
        result = _aggregate_cli("--eval-dir", str(tmp_path), "--models", str(tmp_path / "models.json"),
                                "--subjects", "all", "--out-dir", str(tmp_path / "out"), "--run-id", "r")
        assert result.exit_code == 2 and "--models" in result.output


def test_time_is_recorded_in_utc(run, tmp_path):
    eval_dir, models = run
    now = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    summary, _ = aggregate(eval_dir, models, ["math"], tmp_path / "s", "r1", now=now)
    assert summary["time"] == "2025-03-01T12:00:00+00:00"
