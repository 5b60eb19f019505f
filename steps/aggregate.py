"""Aggregate a run's MMLU-Pro results: per model and subject, overall, deltas, history, regressions.

Reads `models.json` (from `plan_eval`) and every `<eval-dir>/<slug>/<subject>.summary.json`
it implies; writes `summary.json`, `summary.md` and `scores.png` (with 95 % intervals and paired tests),
`trend.png` when the history holds earlier runs of a model, and the Argo output parameters;
writes the run's rows to its own file in the history folder (`<history>/<run-id>.parquet`) and
exits 4 when a subject fell by more than the threshold (and, by default, significantly) since
the previous run of the same model, at the same revision, with the same settings. A missing or partial result is reported, never averaged away.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import EXIT_REGRESSION, StepInputError, fail, read_json, write_json_atomic, write_text_atomic
from steps.mmlu_pro.history import Drops, Regression, check_run_id, record_run
from steps.mmlu_pro.node_outputs import write_aggregate_outputs
from steps.mmlu_pro.report import plot_scores, render_markdown
from steps.mmlu_pro.trend import plot_trend_beside
from steps.mmlu_pro.uncertainty import add_uncertainty, question_outcomes, with_outcomes
from steps.mmlu_pro.results import Score
from steps.mmlu_pro.subjects import parse_subjects

# Provenance copied from the first subject summary of a model.
_PROVENANCE = ("model_revision", "engine", "extract", "dataset", "dataset_revision", "settings_hash")


def load_models(path: Path) -> list[dict[str, str]]:
    try:
        models = read_json(path)
    except FileNotFoundError:
        raise StepInputError(f"--models {path} does not exist (plan_eval writes it)") from None
    except ValueError as error:
        raise StepInputError(f"--models {path} is not JSON: {error}") from None
    if not isinstance(models, list) or not all(isinstance(m, dict) and {"slug", "label", "role"} <= m.keys()
                                               for m in models):
        raise StepInputError(f"--models {path} must be a JSON list of objects with slug, label and role")
    return models


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise StepInputError(f"{path} is not JSON ({error}); rerun that evaluation") from None


def _score_of(results: dict[str, dict[str, Any]]) -> Score:
    return Score(sum(r["n"] for r in results.values()), sum(r["correct"] for r in results.values()))


def _macro(results: dict[str, dict[str, Any]]) -> float | None:
    return sum(r["accuracy"] for r in results.values()) / len(results) if results else None


def _model_entry(model: dict[str, str], subjects: list[str], eval_dir: Path) -> dict[str, Any]:
    found = {s: _read_summary(eval_dir / model["slug"] / f"{s}.summary.json") for s in subjects}
    # Each subject keeps the revision it was measured at: an unpinned hub model can move
    # between the tasks of one fan-out, and the history compares like with like.
    results = {s: {"n": f["n"], "correct": f["correct"], "accuracy": f["accuracy"], "complete": f["complete"],
                   "n_questions": f["n_questions"], "settings_hash": f["settings_hash"],
                   "model_revision": f.get("model_revision")}
               for s, f in found.items() if f is not None}
    first = next((f for f in found.values() if f is not None), {})
    return {
        **{key: model.get(key) for key in ("label", "model", "role", "slug")},
        **{key: first.get(key) for key in _PROVENANCE},
        "subjects": results,
        "overall": _score_of(results).as_dict(),
        "macro_accuracy": _macro(results),
        "missing": [s for s in subjects if s not in results],
        "partial": [s for s, r in results.items() if not r["complete"]],
    }


def _delta(finetuned: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Fine-tuned minus baseline, on the subjects both have results for."""
    common = [s for s in finetuned["subjects"] if s in baseline["subjects"]]
    ft = {s: finetuned["subjects"][s] for s in common}
    base = {s: baseline["subjects"][s] for s in common}
    return {
        "model": finetuned["label"], "baseline": baseline["label"], "common_subjects": common,
        "subjects": {s: ft[s]["accuracy"] - base[s]["accuracy"] for s in common},
        "overall": _score_of(ft).accuracy - _score_of(base).accuracy if common else None,
        "macro": _macro(ft) - _macro(base) if common else None,
    }


def summarize(run_id: str, subjects: list[str], models: list[dict[str, str]], eval_dir: Path,
              time: str, threshold: float) -> dict[str, Any]:
    entries = [_model_entry(model, subjects, eval_dir) for model in models]
    baselines = [e for e in entries if e["role"] == "baseline"]
    return {
        "run_id": run_id, "time": time, "subjects": subjects, "regression_threshold": threshold,
        "models": entries,
        "deltas": [_delta(ft, base) for ft in entries if ft["role"] == "finetuned" for base in baselines],
        "missing": [{"model": e["label"], "subject": s} for e in entries for s in e["missing"]],
        "partial": [{"model": e["label"], "subject": s, "n": e["subjects"][s]["n"],
                     "n_questions": e["subjects"][s]["n_questions"]} for e in entries for s in e["partial"]],
        "complete": all(not e["missing"] and not e["partial"] for e in entries),
        "regressions": [],
    }


def history_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"time": summary["time"], "run": summary["run_id"], "model": entry["label"], "role": entry["role"],
         "source": entry["model"], "model_revision": result.get("model_revision") or entry["model_revision"],
         "subject": subject,
         "n": result["n"], "correct": result["correct"], "accuracy": result["accuracy"],
         "settings_hash": result["settings_hash"]}
        for entry in summary["models"] for subject, result in entry["subjects"].items()
    ]


def aggregate(eval_dir: Path, models_file: Path, subjects: list[str], out_dir: Path, run_id: str,
              history: Path | None = None, threshold: float = 0.02,
              now: datetime | None = None, require_significance: bool = True) -> tuple[dict[str, Any], list[Regression]]:
    if not 0 <= threshold <= 1:
        raise StepInputError(f"--regression-threshold {threshold} must be between 0 and 1 (an accuracy difference)")
    if history:
        check_run_id(run_id)
    time = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    summary = summarize(run_id, subjects, load_models(models_file), Path(eval_dir), time, threshold)
    outcomes = question_outcomes(summary, Path(eval_dir))
    add_uncertainty(summary, outcomes)
    drops = (record_run(Path(history), with_outcomes(history_rows(summary), outcomes), run_id, threshold,
                        require_significance) if history else Drops([], []))
    summary["regression_requires_significance"] = require_significance
    summary["regressions"] = [r.as_dict() for r in drops.regressions]
    summary["drops_not_significant"] = [r.as_dict() for r in drops.not_significant]
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "summary.json", summary)
    write_text_atomic(out_dir / "summary.md", render_markdown(summary))
    plot_scores(summary, out_dir / "scores.png")
    if history:
        plot_trend_beside(Path(history), summary, out_dir / "trend.png")
    write_aggregate_outputs(out_dir, summary)
    return summary, drops.regressions


def aggregate_command(
    eval_dir: Annotated[Path, typer.Option(help="RUN/eval: one folder per model slug with <subject>.summary.json.")],
    models: Annotated[Path, typer.Option(help="models.json written by plan_eval.")],
    subjects: Annotated[str, typer.Option(help='JSON list of the subjects evaluated, or "all".')],
    out_dir: Annotated[Path, typer.Option(help="Folder for summary.json, summary.md and scores.png.")],
    run_id: Annotated[str, typer.Option(help="Name of this run in the history (the workflow name); with --history it names the run's file.")],
    history: Annotated[Path | None, typer.Option(
        metavar="DIR",
        help="History folder shared by runs (created if missing): this run's rows are written to "
             "DIR/<run-id>.parquet, replacing an earlier attempt's, after comparing them with the previous "
             "run of the same model, revision and settings among the other *.parquet files there.")] = None,
    regression_threshold: Annotated[float, typer.Option(help="Exit 4 when a subject's accuracy fell by more than this.")] = 0.02,
    require_significance: Annotated[bool, typer.Option(
        help="A drop beyond the threshold is a regression only when significant as well (two-sided p < 0.05: "
             "McNemar exact over the same questions, Fisher exact without per-question records).")] = True,
) -> None:
    """Collect the run's per-subject results into a summary, a table and a chart; check for regressions."""
    try:
        summary, regressions = aggregate(eval_dir, models, parse_subjects(subjects), out_dir, run_id,
                                         history, regression_threshold, require_significance=require_significance)
    except StepInputError as error:
        fail(str(error))
    print(render_markdown(summary))
    if regressions:
        significantly = " (and significantly)" if require_significance else ""
        fail(f"accuracy regressed by more than {regression_threshold:g}{significantly} in: {'; '.join(str(r) for r in regressions)}", code=EXIT_REGRESSION)


def main() -> None:
    typer.run(aggregate_command)


if __name__ == "__main__":
    main()
