"""Aggregate a run's MMLU-Pro results: per model and subject, overall, deltas, history, regressions.

Reads `models.json` (from `plan_eval`) and every `<eval-dir>/<slug>/<subject>.summary.json`
it implies; writes `summary.json`, `summary.md`, `scores.png` (every accuracy with a 95 %
interval, every Δ with a paired interval and test: `steps.mmlu_pro.uncertainty`), `trend.png`
once the history holds another run of a model, the Argo output parameters
(`steps.mmlu_pro.node_outputs`) and, last, `summary.id` (see `steps.mmlu_pro.summary_file`); writes the run's rows to its own file in the history folder
(`<history>/<run-id>.parquet`) and exits 4 when a subject fell by more than the threshold
since the last accepted (not regressed) run of the same model, at the same revision, with the same settings
(and, unless `--no-require-significance`, significantly) (`--on-regression record` writes the regression into summary.json and exits 0, leaving the
verdict to `steps.verdict`, as the DAG does). A missing or partial result is reported, never
averaged away: overall, macro and every Δ compare the same questions only.
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from steps.common import (
    EXIT_REGRESSION,
    StepInputError,
    check_output_file,
    read_json,
    step_errors,
    step_main,
    write_json_atomic,
    write_text_atomic,
)
from steps.contract import (ROLE_BASELINE, ROLE_FINETUNED, SCORES_PNG, SUMMARY_ID, SUMMARY_JSON, SUMMARY_MD,
                            TREND_PNG, subject_results_file, subject_summary_file)
from steps.mmlu_pro.history import Drops, Regression, check_run_id, record_run
from steps.mmlu_pro.node_outputs import write_aggregate_outputs
from steps.mmlu_pro.report import plot_scores, render_markdown
from steps.mmlu_pro.results import Score
from steps.mmlu_pro.subjects import parse_subjects
from steps.mmlu_pro.summary_file import new_summary_id, regression_message
from steps.mmlu_pro.trend import plot_trend_beside
from steps.mmlu_pro.uncertainty import add_uncertainty, question_outcomes, with_outcomes

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


_RESULT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "n": int, "correct": int, "accuracy": (int, float), "complete": bool, "n_questions": int, "settings_hash": str}


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    # bool is an int in Python: a count or an accuracy of true/false is neither
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _read_summary(path: Path) -> dict[str, Any] | None:
    """One `<subject>.summary.json` as eval_mmlu_pro writes it, or None when there is none.

    A file that is there but unreadable, cut short or lacking a field is an error naming it:
    a torn result must be redone, not skipped or averaged.
    """
    redo = "rerun eval-mmlu-pro for that model and subject"
    if path.is_dir():
        raise StepInputError(f"{path} is a directory, not a subject summary; remove it and {redo}")
    try:
        found = read_json(path)
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as error:
        raise StepInputError(f"{path} is torn or not JSON ({error}); {redo}") from None
    fields = found if isinstance(found, dict) else {}
    wrong = [name for name, kind in _RESULT_FIELDS.items() if not _is_kind(fields.get(name), kind)]
    if not wrong and not 0 <= found["correct"] <= found["n"] <= found["n_questions"]:
        wrong = ["n", "correct", "n_questions"]
    expected_accuracy = found["correct"] / found["n"] if not wrong and found["n"] else 0.0
    # `not <=` rather than `>`: a NaN accuracy compares false with everything and must not pass.
    if not wrong and not abs(found["accuracy"] - expected_accuracy) <= 1e-9:
        wrong = ["accuracy (not correct/n)"]
    if wrong:
        raise StepInputError(f"{path} is not a complete subject summary (bad or missing: {', '.join(wrong)}); {redo}")
    return found


def _score_of(results: dict[str, dict[str, Any]]) -> Score:
    return Score(sum(r["n"] for r in results.values()), sum(r["correct"] for r in results.values()))


def _macro(results: dict[str, dict[str, Any]]) -> float | None:
    return sum(r["accuracy"] for r in results.values()) / len(results) if results else None


def _model_results(model: dict[str, str], subjects: list[str],
                   eval_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    found = {s: _read_summary(eval_dir / model["slug"] / subject_summary_file(s)) for s in subjects}
    empty = [s for s, f in found.items() if f is not None and f["n"] == 0]
    for subject in empty:
        _warn(f"{model['label']} {subject}: its summary counts no question answered; it is reported as missing")
    # Each subject keeps the revision it was measured at: an unpinned hub model can move
    # between the tasks of one fan-out, and the history compares like with like.
    results = {s: {"n": f["n"], "correct": f["correct"], "accuracy": f["accuracy"], "complete": f["complete"],
                   "n_questions": f["n_questions"], "settings_hash": f["settings_hash"],
                   "model_revision": f.get("model_revision")}
               for s, f in found.items() if f is not None and s not in empty}
    first = next((f for s, f in found.items() if f is not None and s in results), {})
    return results, first


def _same_questions(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two results of one subject measured on the same questions: the same settings (dataset,
    revision, prompt, extraction) and the same count (the first n questions of the subject)."""
    return a["n"] == b["n"] and a["settings_hash"] == b["settings_hash"]


def comparable_subjects(subjects: list[str], results: list[dict[str, dict[str, Any]]]) -> list[str]:
    """The subjects every model has a result for, all on the same questions."""
    if not results:
        return []
    return [s for s in subjects
            if all(s in r for r in results) and all(_same_questions(results[0][s], r[s]) for r in results[1:])]


def _model_entry(model: dict[str, str], subjects: list[str], results: dict[str, Any], first: dict[str, Any],
                 comparable: list[str]) -> dict[str, Any]:
    counted = {s: results[s] for s in comparable}
    return {
        **{key: model.get(key) for key in ("label", "model", "role", "slug")},
        **{key: first.get(key) for key in _PROVENANCE},
        "subjects": results,
        "overall": _score_of(counted).as_dict() if counted else None,
        "macro_accuracy": _macro(counted),
        "missing": [s for s in subjects if s not in results],
        "partial": [s for s, r in results.items() if not r["complete"]],
    }


def _delta(finetuned: dict[str, Any], baseline: dict[str, Any], comparable: list[str]) -> dict[str, Any]:
    """Fine-tuned minus baseline: per subject where both measured the same questions; overall and
    macro over the run's comparable subjects, the set every model's overall is computed on."""
    common = [s for s in finetuned["subjects"]
              if s in baseline["subjects"] and _same_questions(finetuned["subjects"][s], baseline["subjects"][s])]
    return {
        "model": finetuned["label"], "baseline": baseline["label"], "common_subjects": common,
        "subjects": {s: finetuned["subjects"][s]["accuracy"] - baseline["subjects"][s]["accuracy"] for s in common},
        "overall": finetuned["overall"]["accuracy"] - baseline["overall"]["accuracy"] if comparable else None,
        "macro": finetuned["macro_accuracy"] - baseline["macro_accuracy"] if comparable else None,
    }


def summarize(run_id: str, subjects: list[str], models: list[dict[str, str]], eval_dir: Path,
              time: str, threshold: float) -> dict[str, Any]:
    read = [_model_results(model, subjects, eval_dir) for model in models]
    comparable = comparable_subjects(subjects, [results for results, _ in read])
    entries = [_model_entry(model, subjects, results, first, comparable)
               for model, (results, first) in zip(models, read, strict=True)]
    baselines = [e for e in entries if e["role"] == ROLE_BASELINE]
    return {
        "run_id": run_id, "time": time, "subjects": subjects, "regression_threshold": threshold,
        "comparable_subjects": comparable,
        "models": entries,
        "deltas": [_delta(ft, base, comparable) for ft in entries if ft["role"] == ROLE_FINETUNED for base in baselines],
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


def _inputs(run_id: str, subjects: list[str], models: list[dict[str, str]], threshold: float,
            require_significance: bool) -> dict[str, Any]:
    return {"run_id": run_id, "subjects": subjects, "models": models, "regression_threshold": threshold,
            "regression_requires_significance": require_significance}


def aggregate(eval_dir: Path, models_file: Path, subjects: list[str], out_dir: Path, run_id: str,
              history: Path | None = None, threshold: float = 0.02,
              now: datetime | None = None, require_significance: bool = True) -> tuple[dict[str, Any], list[Regression]]:
    if not 0 <= threshold <= 1:
        raise StepInputError(f"--regression-threshold {threshold} must be between 0 and 1 (an accuracy difference)")
    if history:
        check_run_id(run_id)
    out_dir = Path(out_dir)
    outputs = [check_output_file(out_dir / name) for name in (SUMMARY_JSON, SUMMARY_MD, SCORES_PNG, SUMMARY_ID)]
    # The id goes first, so that no summary of an earlier attempt passes for this invocation's
    # while it runs, or after it fails.
    outputs[-1].unlink(missing_ok=True)
    models = load_models(models_file)
    time = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    read = {"models": Path(models_file)} | {f"{m['slug']}/{name}": Path(eval_dir) / m["slug"] / name
                                             for m in models for s in subjects
                                             for name in (subject_summary_file(s), subject_results_file(s))}
    summary_id = new_summary_id(_inputs(run_id, subjects, models, threshold, require_significance), read)
    summary = summarize(run_id, subjects, models, Path(eval_dir), time, threshold)
    outcomes = question_outcomes(summary, Path(eval_dir))
    add_uncertainty(summary, outcomes)
    drops = (record_run(Path(history), with_outcomes(history_rows(summary), outcomes), run_id, threshold,
                        require_significance) if history else Drops([], []))
    summary["regression_requires_significance"] = require_significance
    summary["regressions"] = [r.as_dict() for r in drops.regressions]
    summary["drops_not_significant"] = [r.as_dict() for r in drops.not_significant]
    summary["summary_id"] = summary_id
    write_json_atomic(out_dir / SUMMARY_JSON, summary)
    write_text_atomic(out_dir / SUMMARY_MD, render_markdown(summary))
    plot_scores(summary, out_dir / SCORES_PNG)
    if history:
        plot_trend_beside(Path(history), summary, out_dir / TREND_PNG)
    write_aggregate_outputs(out_dir, summary)
    write_text_atomic(out_dir / SUMMARY_ID, summary_id)
    return summary, drops.regressions


@step_errors
def aggregate_command(
    eval_dir: Annotated[Path, typer.Option(help="RUN/eval: one folder per model slug with <subject>.summary.json.")],
    models: Annotated[Path, typer.Option(help="models.json written by plan_eval.")],
    subjects: Annotated[str, typer.Option(help='JSON list of the subjects evaluated, or "all".')],
    out_dir: Annotated[Path, typer.Option(
        help="Folder for summary.json, summary.md, scores.png and summary.id (the summary's id, written last).")],
    run_id: Annotated[str, typer.Option(help="Name of this run in the history (the workflow name); with --history it names the run's file.")],
    history: Annotated[Path | None, typer.Option(
        metavar="DIR",
        help="History folder shared by runs (created if missing): this run's rows are written to "
             "DIR/<run-id>.parquet, replacing an earlier attempt's, after comparing them with the last "
             "accepted (not regressed) run of the same model, revision and settings among the other *.parquet "
             "files there.")] = None,
    regression_threshold: Annotated[float, typer.Option(help="A regression: a subject's accuracy fell by more than this.")] = 0.02,
    on_regression: Annotated[Literal["fail", "record"], typer.Option(
        help="fail: exit 4 on a regression; record: only write it into summary.json and exit 0, for "
             "`steps.verdict` to fail the run once the scores are published (what the DAG does).")] = "fail",
    require_significance: Annotated[bool, typer.Option(
        help="A drop beyond the threshold is a regression only when significant as well (two-sided p < 0.05: "
             "McNemar exact over the same questions, Fisher exact without per-question records).")] = True,
) -> None:
    """Collect the run's per-subject results into a summary, a table and a chart; check for regressions."""
    summary, regressions = aggregate(eval_dir, models, parse_subjects(subjects), out_dir, run_id,
                                     history, regression_threshold, require_significance=require_significance)
    print(render_markdown(summary))
    if regressions and on_regression == "fail":
        print(f"error: {regression_message(summary)}", file=sys.stderr)
        raise SystemExit(EXIT_REGRESSION)


def main() -> None:
    step_main(aggregate_command)


if __name__ == "__main__":
    main()
