"""Intervals and paired tests for a run's summary, from the per-question records of each task.

`aggregate` calls `question_outcomes` once and `add_uncertainty` on its summary: every accuracy
(per subject and overall) gets a Wilson interval, and every Δ (per subject and overall) a paired
interval and McNemar's exact test over the questions both models answered (joined on question
id). Where the records do not match the summary (missing, or a different number of questions)
the Δ gets no paired result rather than one over other questions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from steps.contract import subject_results_file
from steps.mmlu_pro.results import read_records
from steps.mmlu_pro.stats import Difference, paired_outcomes, wilson_interval

Outcomes = dict[str, bool]   # question id -> answered correctly


def _task_outcomes(eval_dir: Path, slug: str, subject: str, n: int) -> Outcomes | None:
    try:
        records = read_records(Path(eval_dir) / slug / subject_results_file(subject))
    except (OSError, ValueError):
        return None
    outcomes = {str(record["question_id"]): bool(record["correct"]) for record in records
                if "question_id" in record and "correct" in record}
    # A resumed task can keep answers beyond its current --limit; only an exact match is trusted.
    return outcomes if len(outcomes) == n else None


def question_outcomes(summary: dict[str, Any], eval_dir: Path) -> dict[tuple[str, str], Outcomes]:
    """(model label, subject) → per-question outcomes, for every result in the summary that has them."""
    found = {}
    for entry in summary["models"]:
        for subject, result in entry["subjects"].items():
            outcomes = _task_outcomes(eval_dir, entry["slug"], subject, result["n"])
            if outcomes is not None:
                found[(entry["label"], subject)] = outcomes
    return found


def _with_interval(result: dict[str, Any] | None) -> None:
    if result is None:
        return
    interval = wilson_interval(result["correct"], result["n"])
    result["interval"] = interval.as_list() if interval else None


def _compare(outcomes: dict[tuple[str, str], Outcomes], model: str, baseline: str,
             subjects: list[str]) -> Difference | None:
    new: dict[str, bool] = {}
    reference: dict[str, bool] = {}
    for subject in subjects:
        if (model, subject) not in outcomes or (baseline, subject) not in outcomes:
            return None
        new.update({f"{subject}/{q}": c for q, c in outcomes[(model, subject)].items()})
        reference.update({f"{subject}/{q}": c for q, c in outcomes[(baseline, subject)].items()})
    if new.keys() != reference.keys():
        return None   # not the same questions: a paired result would be over a subset only
    return paired_outcomes(new, reference)


def _as_dict(difference: Difference | None) -> dict[str, Any] | None:
    return difference.as_dict() if difference else None


def add_uncertainty(summary: dict[str, Any], outcomes: dict[tuple[str, str], Outcomes]) -> dict[str, Any]:
    """Add `interval` to every accuracy and `paired` / `overall_paired` to every Δ of `summary`."""
    for entry in summary["models"]:
        for result in entry["subjects"].values():
            _with_interval(result)
        _with_interval(entry["overall"])
    # overall is counted over the subjects every model measured on the same questions
    comparable = summary.get("comparable_subjects", summary["subjects"])
    for delta in summary["deltas"]:
        model, baseline = delta["model"], delta["baseline"]
        delta["paired"] = {s: _as_dict(_compare(outcomes, model, baseline, [s])) for s in delta["common_subjects"]}
        delta["overall_paired"] = (_as_dict(_compare(outcomes, model, baseline, comparable))
                                   if delta["overall"] is not None and comparable else None)
    summary["confidence"] = 0.95
    summary["statistics"] = {"accuracy_interval": "Wilson score",
                          "paired_interval": "Newcombe hybrid score (paired, method 10)",
                          "paired_test": "McNemar exact (two-sided)"}
    return summary


def with_outcomes(rows: list[dict[str, Any]], outcomes: dict[tuple[str, str], Outcomes]) -> list[dict[str, Any]]:
    """History rows with the outcome of every question, for paired comparisons with later runs."""
    for row in rows:
        found = outcomes.get((row["model"], row["subject"]))
        if found is not None:
            ids = sorted(found)
            row.update(question_ids=ids, question_correct=[found[q] for q in ids])
    return rows
