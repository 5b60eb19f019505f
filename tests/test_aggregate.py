"""steps.aggregate: overall and macro scores, deltas, missing/partial results, the report files,
the history folder (one file per run) and the regression check (same model and revision only)."""
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
from steps.mmlu_pro.history import HISTORY_COLUMNS, read_history
from steps.mmlu_pro.results import subject_summary

BASE = {"model": "google/gemma-2-2b", "slug": "google--gemma-2-2b", "role": "baseline", "label": "google/gemma-2-2b"}
BIG = {"model": "google/gemma-3-12b-it", "slug": "google--gemma-3-12b-it", "role": "baseline", "label": "google/gemma-3-12b-it"}
TUNED = {"model": "/ws/runs/r/train/output/merged", "slug": "finetuned", "role": "finetuned", "label": "org/tuned"}


def write_result(eval_dir: Path, model: dict, subject: str, correct: int, n: int, n_questions: int | None = None,
                 settings_hash: str = "settings-1", model_revision: str = "rev-1") -> None:
    records = [{"correct": i < correct, "method": "l1", "k": 5, "hit_token_limit": False} for i in range(n)]
    summary = subject_summary(records, n_questions=n_questions or n, subject=subject, model=model["model"],
                              label=model["label"], role=model["role"], engine="hf", model_revision=model_revision,
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
    math = dict(tuned["subjects"]["math"])
    assert math.pop("interval") == [pytest.approx(0.1755, abs=1e-4), pytest.approx(0.3430, abs=1e-4)]   # Wilson
    assert math == {"n": 100, "correct": 25, "accuracy": 0.25, "complete": True,
                    "n_questions": 100, "settings_hash": "settings-1", "model_revision": "rev-1"}
    assert {k: v for k, v in tuned["overall"].items() if k != "interval"} == {"n": 150, "correct": 60,
                                                                             "accuracy": pytest.approx(0.4)}
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
    # No per-question records in this fixture: the Δ has no paired interval.
    assert ("| math | 0.1000 [0.055, 0.174] (10/100) | 0.4000 [0.309, 0.498] (40/100) | "
            "0.2500 [0.175, 0.343] (25/100) | +0.1500 | -0.1500 |") in lines
    assert any(line.startswith("| **overall** |") and "**0.4000 [0.325, 0.480] (60/150)**" in line for line in lines)
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
    # 10 questions against 100, and no law at all: nothing is compared, so no overall at all
    assert summary["models"][0]["missing"] == ["law"] and summary["comparable_subjects"] == []
    assert [m["overall"] for m in summary["models"]] == [None, None]
    assert summary["deltas"][0]["subjects"] == {} and summary["deltas"][0]["overall"] is None
    markdown = (tmp_path / "summary" / "summary.md").read_text()
    assert "| math | 0.1000 [0.055, 0.174] (10/100) | 0.3000 [0.108, 0.603] (3/10)* | – |" in markdown
    assert "| law | missing | missing | – |" in markdown
    assert "only the subjects every model has on the same questions: none" in markdown
    assert "**Missing results** (not in overall or macro): google/gemma-2-2b law; org/tuned law" in markdown
    assert "0.3000 [0.108, 0.603] (3/10)*" in markdown and "org/tuned math (10 of 100 questions)" in markdown


def _history_run(tmp_path, run_id, math, law, settings_hash="settings-1", threshold="0.02", revision="rev-1",
                 significance="--no-require-significance"):
    eval_dir = tmp_path / run_id / "eval"
    write_result(eval_dir, TUNED, "math", math, 100, settings_hash=settings_hash, model_revision=revision)
    write_result(eval_dir, TUNED, "law", law, 100, settings_hash=settings_hash, model_revision=revision)
    models = write_models(tmp_path / run_id / "models.json", TUNED)
    return _aggregate_cli("--eval-dir", str(eval_dir), "--models", str(models), "--subjects", '["math", "law"]',
                          "--out-dir", str(tmp_path / run_id / "summary"), "--run-id", run_id,
                          "--history", str(tmp_path / "history"), "--regression-threshold", threshold, significance)


def _history_files(tmp_path) -> list[str]:
    return sorted(path.name for path in (tmp_path / "history").iterdir())


def test_each_run_writes_its_own_history_file_and_a_drop_beyond_the_threshold_exits_4(tmp_path):
    assert _history_run(tmp_path, "run-1", math=30, law=50).exit_code == 0
    result = _history_run(tmp_path, "run-2", math=25, law=49)   # math −0.05, law −0.01
    assert result.exit_code == EXIT_REGRESSION
    assert "math (org/tuned: 0.3000 in run-1 → 0.2500" in result.output and "law (" not in result.output.split("regressed")[1]

    assert _history_files(tmp_path) == ["run-1.parquet", "run-2.parquet"]
    assert [(r["run"], r["subject"], r["correct"]) for r in read_history(tmp_path / "history")] == [
        ("run-1", "math", 30), ("run-1", "law", 50), ("run-2", "math", 25), ("run-2", "law", 49)]
    rows = pq.read_table(tmp_path / "history" / "run-1.parquet").to_pylist()
    assert set(rows[0]) == set(HISTORY_COLUMNS)
    assert rows[0]["model"] == "org/tuned" and rows[0]["model_revision"] == "rev-1"
    summary = json.loads((tmp_path / "run-2" / "summary" / "summary.json").read_text())
    assert [(r["subject"], r["model_revision"], r["previous_run"]) for r in summary["regressions"]] == [
        ("math", "rev-1", "run-1")]
    assert "**Regressions**" in (tmp_path / "run-2" / "summary" / "summary.md").read_text()

    # A retry of run-2's aggregate replaces its own file: no rows added, none compared with itself.
    assert _history_run(tmp_path, "run-2", math=24, law=49).exit_code == EXIT_REGRESSION
    assert _history_files(tmp_path) == ["run-1.parquet", "run-2.parquet"]
    assert [r["correct"] for r in pq.read_table(tmp_path / "history" / "run-2.parquet").to_pylist()] == [24, 49]
    assert len(read_history(tmp_path / "history")) == 4


def test_runs_aggregating_at_the_same_time_keep_both_their_rows(tmp_path, monkeypatch):
    import steps.mmlu_pro.history as history

    def run(run_id, correct):
        eval_dir = tmp_path / run_id / "eval"
        write_result(eval_dir, TUNED, "math", correct, 100)
        return aggregate(eval_dir, write_models(tmp_path / run_id / "models.json", TUNED), ["math"],
                         tmp_path / run_id / "summary", run_id, history=tmp_path / "history")

    # The pipeline's aggregate reads the history; the cron's aggregate runs from start to end;
    # then the pipeline's writes. With one shared file the cron's rows would be lost.
    real_write_run = history.write_run

    def write_run_after_the_cron(directory, run_id, rows):
        if run_id == "pipeline":
            run("cron", 40)
        return real_write_run(directory, run_id, rows)

    monkeypatch.setattr(history, "write_run", write_run_after_the_cron)
    run("pipeline", 30)

    assert _history_files(tmp_path) == ["cron.parquet", "pipeline.parquet"]
    assert sorted((r["run"], r["correct"]) for r in read_history(tmp_path / "history")) == [("cron", 40), ("pipeline", 30)]


def test_only_earlier_runs_of_the_same_model_revision_are_compared(tmp_path):
    assert _history_run(tmp_path, "run-1", math=40, law=50).exit_code == 0
    # A new fine-tune published under the same label: another revision, so not a regression of run-1.
    assert _history_run(tmp_path, "run-2", math=20, law=30, revision="rev-2").exit_code == 0
    # A re-benchmark of each: compared with the previous run of its own revision.
    assert _history_run(tmp_path, "run-3", math=20, law=30, revision="rev-2").exit_code == 0
    result = _history_run(tmp_path, "run-4", math=39, law=40, revision="rev-1")
    assert result.exit_code == EXIT_REGRESSION
    regressed = result.output.split("regressed")[1]
    assert "law (org/tuned: 0.5000 in run-1 → 0.4000" in regressed and "math (" not in regressed


def test_history_rows_keep_the_revision_each_subject_was_measured_at(tmp_path):
    # An unpinned hub model moved between two tasks of the fan-out.
    eval_dir = tmp_path / "eval"
    write_result(eval_dir, BASE, "math", 10, 100, model_revision="commit-a")
    write_result(eval_dir, BASE, "law", 10, 100, model_revision="commit-b")
    aggregate(eval_dir, write_models(tmp_path / "models.json", BASE), ["math", "law"], tmp_path / "summary", "r1",
              history=tmp_path / "history")
    assert [(r["subject"], r["model_revision"]) for r in read_history(tmp_path / "history")] == [
        ("math", "commit-a"), ("law", "commit-b")]


def test_runs_with_other_settings_or_within_the_threshold_are_no_regression(tmp_path):
    assert _history_run(tmp_path, "run-1", math=40, law=50).exit_code == 0
    assert _history_run(tmp_path, "run-2", math=20, law=50, settings_hash="settings-2").exit_code == 0
    assert _history_run(tmp_path, "run-3", math=38, law=50).exit_code == 0   # −0.02 is not more than 0.02
    assert _history_run(tmp_path, "run-4", math=30, law=50, threshold="0.1").exit_code == 0


def test_the_previous_run_is_the_latest_earlier_one_of_the_same_revision(tmp_path):
    from steps.mmlu_pro.history import find_regressions

    def row(run, time, accuracy, revision="r1"):
        return {"run": run, "time": time, "model": "m", "model_revision": revision, "subject": "math",
                "settings_hash": "h", "n": 10, "accuracy": accuracy}

    history = [row("a", "2025-01-01T00:00:00+00:00", 0.9), row("b", "2025-02-01T00:00:00+00:00", 0.5),
               row("other-weights", "2025-02-15T00:00:00+00:00", 0.95, revision="r2"),
               row("later", "2025-04-01T00:00:00+00:00", 0.95)]
    current = [row("c", "2025-03-01T00:00:00+00:00", 0.45)]
    assert find_regressions(history, current, "c", 0.02)[0].previous_run == "b"
    assert find_regressions(history, current, "c", 0.1) == []


def test_an_empty_or_missing_history_folder_is_no_history_and_other_files_are_ignored(tmp_path):
    assert read_history(tmp_path / "nowhere") == []
    folder = tmp_path / "history"
    folder.mkdir()
    assert read_history(folder) == []
    # A write in progress (atomic_path's temporary name), stray files, and a file that is not parquet.
    (folder / ".run-9.parquet.x1y2.tmp").write_bytes(b"PAR1 half written")
    (folder / "README.txt").write_text("notes")
    (folder / "broken.parquet").write_bytes(b"not parquet")
    assert _history_run(tmp_path, "run-1", math=40, law=50).exit_code == 0
    warnings = []
    assert [r["run"] for r in read_history(folder, warn=warnings.append)] == ["run-1", "run-1"]
    assert len(warnings) == 1 and "broken.parquet cannot be read" in warnings[0]


def test_a_history_file_or_a_run_id_that_is_no_file_name_is_refused(tmp_path):
    (tmp_path / "history").write_bytes(b"")   # the old single-file layout
    result = _history_run(tmp_path, "run-1", math=40, law=50)
    assert result.exit_code == 2 and "--history" in result.output and "must be a folder" in result.output
    (tmp_path / "history").unlink()
    for run_id in ("../escape", ".hidden", ""):
        result = _history_run(tmp_path, run_id, math=40, law=50)
        assert result.exit_code == 2 and "--run-id" in result.output
    assert not (tmp_path / "history").exists()


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


# --- issue 11 item 2: like with like; a torn result is an error ---------------------------------

def test_item2_overall_and_deltas_count_only_subjects_every_model_has_on_the_same_questions(tmp_path, capsys):
    eval_dir = tmp_path / "eval"
    write_result(eval_dir, BASE, "math", 10, 100)
    write_result(eval_dir, BASE, "law", 30, 50)
    write_result(eval_dir, BASE, "physics", 5, 20)
    write_result(eval_dir, TUNED, "math", 25, 100)                        # law: missing
    write_result(eval_dir, TUNED, "physics", 0, 0, n_questions=20)        # physics: empty
    models = write_models(tmp_path / "models.json", BASE, TUNED)
    summary, _ = aggregate(eval_dir, models, ["math", "law", "physics"], tmp_path / "summary", "r1")

    assert summary["comparable_subjects"] == ["math"]
    base, tuned = summary["models"]
    assert base["overall"] | {"interval": None} == {"n": 100, "correct": 10, "accuracy": 0.1, "interval": None}  # not 45/170
    assert tuned["overall"] | {"interval": None} == {"n": 100, "correct": 25, "accuracy": 0.25, "interval": None}
    assert tuned["missing"] == ["law", "physics"] and "empty" not in summary
    delta = summary["deltas"][0]
    assert delta["overall"] == pytest.approx(0.15) and delta["macro"] == pytest.approx(0.15)
    assert delta["subjects"] == {"math": pytest.approx(0.15)}
    assert "org/tuned physics: its summary counts no question answered" in capsys.readouterr().err
    markdown = (tmp_path / "summary" / "summary.md").read_text()
    assert "only the subjects every model has on the same questions: math" in markdown


def test_item2_results_on_other_questions_or_settings_are_not_compared(tmp_path):
    eval_dir = tmp_path / "eval"
    write_result(eval_dir, BASE, "math", 10, 100)
    write_result(eval_dir, TUNED, "math", 3, 10, n_questions=100)           # the first 10 questions only
    write_result(eval_dir, BASE, "law", 30, 50)
    write_result(eval_dir, TUNED, "law", 20, 50, settings_hash="strict-extraction")
    models = write_models(tmp_path / "models.json", BASE, TUNED)
    summary, _ = aggregate(eval_dir, models, ["math", "law"], tmp_path / "summary", "r1")
    assert summary["comparable_subjects"] == [] and summary["deltas"][0]["subjects"] == {}
    assert summary["deltas"][0]["overall"] is None and [m["overall"] for m in summary["models"]] == [None, None]


@pytest.mark.parametrize("content, says", [
    ('{"n": 100, "correct": 4', "is torn or not JSON"),
    ("", "is torn or not JSON"),
    ('{"n": 100, "correct": 40}', "is not a complete subject summary (bad or missing: accuracy, complete"),
    ('{"n": 10, "correct": 40, "accuracy": 4.0, "complete": true, "n_questions": 10, "settings_hash": "s"}',
     "is not a complete subject summary (bad or missing: n, correct, n_questions)"),
    ("[1, 2]", "is not a complete subject summary"),
    ('{"n": 10, "correct": 4, "accuracy": 0.9, "complete": true, "n_questions": 10, "settings_hash": "s"}',
     "is not a complete subject summary (bad or missing: accuracy (not correct/n))"),
    ('{"n": 10, "correct": 4, "accuracy": NaN, "complete": true, "n_questions": 10, "settings_hash": "s"}',
     "is not a complete subject summary (bad or missing: accuracy"),
])
def test_item2_a_torn_subject_summary_is_an_error_naming_it(tmp_path, content, says):
    eval_dir = tmp_path / "eval"
    write_result(eval_dir, BASE, "math", 10, 100)
    torn = eval_dir / TUNED["slug"] / "math.summary.json"
    torn.parent.mkdir(parents=True)
    torn.write_text(content)
    models = write_models(tmp_path / "models.json", BASE, TUNED)
    result = _aggregate_cli("--eval-dir", str(eval_dir), "--models", str(models), "--subjects", '["math"]',
                            "--out-dir", str(tmp_path / "summary"), "--run-id", "r1")
    assert result.exit_code == 2
    assert f"error: {torn} {says}" in result.output and "rerun eval-mmlu-pro" in result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "summary").exists()


def test_item10_a_directory_where_summary_json_goes_is_one_line(run, tmp_path):
    eval_dir, models = run
    (tmp_path / "summary" / "summary.json").mkdir(parents=True)
    result = _aggregate_cli("--eval-dir", str(eval_dir), "--models", str(models), "--subjects", '["math"]',
                            "--out-dir", str(tmp_path / "summary"), "--run-id", "r1", "--history",
                            str(tmp_path / "history"))
    assert result.exit_code == 2, result.output
    assert result.output == (f"error: {tmp_path / 'summary' / 'summary.json'} is a directory; an output must be a "
                             "regular file or a new path, so it is not replaced\n")
    assert not (tmp_path / "history").exists()   # refused before anything was written


def test_item1_a_failed_aggregate_leaves_no_summary_id_behind(run, tmp_path):
    eval_dir, models = run
    out = tmp_path / "summary"
    aggregate(eval_dir, models, ["math", "law"], out, "r1")
    assert (out / "summary.id").read_text() == json.loads((out / "summary.json").read_text())["summary_id"]
    (eval_dir / "finetuned" / "law.summary.json").write_text("{")
    with pytest.raises(Exception, match="is torn"):
        aggregate(eval_dir, models, ["math", "law"], out, "r1")
    assert not (out / "summary.id").exists()
