"""`tunebench history` (lines, JSON, filters, the trend plot) and the trend.png aggregate writes
beside scores.png once a model has more than one run."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from steps.aggregate import aggregate
from steps.mmlu_pro.history import write_run
from steps.mmlu_pro.trend import Point, _changes, trend_points
from tests.test_uncertainty import BASE, TUNED, models_file, write_outcomes
from workflows.cli import app


def _row(run: str, day: int, model: str, subject: str, correct: int, n: int = 20, revision: str = "rev-1",
         settings: str = "h1") -> dict:
    return {"time": f"2026-01-{day:02d}T03:00:00+00:00", "run": run, "model": model, "role": "baseline",
            "source": model, "model_revision": revision, "subject": subject, "n": n, "correct": correct,
            "accuracy": correct / n, "settings_hash": settings}


def _history(tmp_path: Path) -> Path:
    folder = tmp_path / "history"
    write_run(folder, "run-1", [_row("run-1", 1, "org/a", "math", 7), _row("run-1", 1, "org/b", "math", 5),
                                _row("run-1", 1, "org/a", "law", 9)])
    write_run(folder, "run-2", [_row("run-2", 8, "org/a", "math", 8), _row("run-2", 8, "org/b", "math", 5)])
    write_run(folder, "run-3", [_row("run-3", 15, "org/a", "math", 12, revision="rev-2")])
    return folder


def _history_cli(*args: str):
    return CliRunner().invoke(app, ["history", *args])


def test_one_line_per_run_with_the_interval_oldest_first(tmp_path):
    result = _history_cli(str(_history(tmp_path)), "--model", "org/a", "--subject", "math")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        "2026-01-01T03:00:00+00:00  run-1  org/a  rev rev-1  math  0.3500 [0.181, 0.567] (7/20)  settings h1",
        "2026-01-08T03:00:00+00:00  run-2  org/a  rev rev-1  math  0.4000 [0.219, 0.613] (8/20)  settings h1",
        "2026-01-15T03:00:00+00:00  run-3  org/a  rev rev-2  math  0.6000 [0.387, 0.781] (12/20)  settings h1",
    ]


def test_json_lists_every_point_and_the_plot_has_one_series_per_model_and_subject(tmp_path):
    plot = tmp_path / "trend.png"
    result = _history_cli(str(_history(tmp_path)), "--json", "--plot", str(plot))
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)
    assert [(p["run"], p["model"], p["subject"]) for p in points] == [
        ("run-1", "org/a", "law"), ("run-1", "org/a", "math"), ("run-1", "org/b", "math"),
        ("run-2", "org/a", "math"), ("run-2", "org/b", "math"), ("run-3", "org/a", "math")]
    assert points[1]["low"] < points[1]["accuracy"] < points[1]["high"]
    image = Image.open(plot)
    assert image.format == "PNG"
    assert image.text["Series"].splitlines() == ["org/a | law", "org/a | math", "org/b | math"]


def test_a_new_revision_or_new_settings_is_marked_where_it_starts():
    def point(revision: str, settings: str) -> Point:
        return Point("t", "r", "m", None, revision, "math", 20, 5, 0.25, 0.1, 0.4, settings)

    assert _changes(None, point("rev-1", "h1")) == []
    assert _changes(point("rev-1", "h1"), point("rev-1", "h1")) == []
    assert _changes(point("rev-1", "h1"), point("rev-2", "h2")) == ["rev rev-2", "settings h2"]


def test_bad_history_folders_and_filters_say_what_exists(tmp_path):
    missing = _history_cli(str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "is not a folder" in missing.output
    unknown = _history_cli(str(_history(tmp_path)), "--model", "org/c")
    assert unknown.exit_code == 2 and "models there: org/a, org/b" in unknown.output
    (tmp_path / "empty").mkdir()
    empty = _history_cli(str(tmp_path / "empty"))
    assert empty.exit_code == 0 and "no runs in" in empty.output


def test_a_parquet_file_that_is_not_a_history_file_is_reported_and_left_out(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _history(tmp_path)
    pq.write_table(pa.table({"question": ["q1"], "answer": ["A"]}), folder / "stray.parquet")
    result = _history_cli(str(folder), "--model", "org/c")
    assert result.exit_code == 2
    assert "models there: org/a, org/b;" in result.output   # not "None" from the stray file's absent columns
    assert "stray.parquet has no time, run, model, subject, n, correct, accuracy column" in result.output


def test_aggregate_draws_the_trend_beside_scores_once_a_model_has_two_runs(tmp_path):
    def run(run_id: str, tuned_right: int) -> Path:
        eval_dir = tmp_path / run_id / "eval"
        for subject in ("math", "law"):
            write_outcomes(eval_dir, TUNED, subject, [True] * tuned_right + [False] * (20 - tuned_right))
            write_outcomes(eval_dir, BASE, subject, [True] * 4 + [False] * 16, revision="commit-1")
        out = tmp_path / run_id / "summary"
        aggregate(eval_dir, models_file(tmp_path / f"{run_id}.json", BASE, TUNED), ["math", "law"], out, run_id,
                  history=tmp_path / "history")
        return out

    first = run("run-1", 5)
    assert (first / "scores.png").exists() and not (first / "trend.png").exists()
    second = run("run-2", 6)
    image = Image.open(second / "trend.png")
    assert image.format == "PNG" and len(image.text["Series"].splitlines()) == 4   # 2 models × 2 subjects
    assert len(Image.open(second / "scores.png").text["Series"].splitlines()) == 2  # one bar series per model
    assert len(trend_points([_row("x", 1, "m", "math", 1)], model="other")) == 0


def test_the_local_runner_names_the_trend_plot_after_the_run(tmp_path):
    from rich.console import Console

    from steps.mmlu_pro.run_summary import print_run_summary

    folder = tmp_path / "volumes" / "workspace" / "runs" / "smoke-abc" / "summary"
    folder.mkdir(parents=True)
    (folder / "summary.md").write_text("| table |\n")
    console = Console(record=True, width=200)
    print_run_summary(tmp_path, "smoke-abc", console)
    assert "trend:" not in console.export_text()
    (folder / "trend.png").write_bytes(b"png")
    print_run_summary(tmp_path, "smoke-abc", console)
    assert f"trend:   {folder / 'trend.png'}" in console.export_text()


def test_history_files_without_per_question_columns_still_read_and_compare_by_counts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from steps.mmlu_pro.history import find_drops, read_history

    folder = tmp_path / "history"
    folder.mkdir()
    old = _row("old", 1, "org/a", "math", 540, n=1351)
    pq.write_table(pa.Table.from_pylist([old]), folder / "old.parquet")   # the layout before question_ids
    [row] = read_history(folder)
    assert row["question_ids"] is None and row["correct"] == 540
    current = _row("new", 8, "org/a", "math", 430, n=1351)
    [regression] = find_drops([row], [current], "new", 0.02, require_significance=True).regressions
    assert regression.difference.test == "Fisher exact" and regression.difference.p_value < 0.001
    assert _history_cli(str(folder)).exit_code == 0


def test_the_trend_plot_draws_each_series_it_names_with_a_break_at_a_new_revision(tmp_path, monkeypatch):
    """The PNG's `Series` metadata is written from the points, not from what was drawn: look at the
    figure itself. math: org/a in two segments (rev-1 runs joined, rev-2 apart with a hollow marker)
    and org/b in one; law: org/a alone."""
    from matplotlib.container import ErrorbarContainer

    from steps.mmlu_pro import trend

    drawn: dict[str, list] = {}

    def capture(figure, path, series):
        for axes in figure.axes:
            if axes.get_visible():
                drawn[axes.get_title()] = axes
        figure.savefig(path, format="png")

    monkeypatch.setattr(trend, "save_png", capture)
    assert _history_cli(str(_history(tmp_path)), "--plot", str(tmp_path / "trend.png")).exit_code == 0
    assert sorted(drawn) == ["law", "math"]

    def segments(axes) -> list[int]:   # points per errorbar, in drawing order
        return [len(c.lines[0].get_xdata()) for c in axes.containers if isinstance(c, ErrorbarContainer)]

    assert segments(drawn["math"]) == [2, 1, 2]   # org/a rev-1 (run-1, run-2), org/a rev-2 (run-3), org/b
    assert segments(drawn["law"]) == [1]
    hollow = [line for line in drawn["math"].lines if line.get_markerfacecolor() == "none"]
    assert len(hollow) == 1 and [t.get_text() for t in drawn["math"].texts] == ["rev rev-2"]
    assert sorted(drawn["math"].get_legend_handles_labels()[1]) == ["org/a", "org/b"]
