"""Small files the Argo templates declare as output parameters (`valueFrom.path`), so the UI's
node panel shows the scores and the templates' Prometheus metrics can read them.

An output parameter is a whole file's text, so each value is its own file. The names are used
by the steps that write the files and by `workflows.builders`, which declares them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from steps.common import write_text_atomic
from steps.contract import SUMMARY_OUTPUTS, subject_outputs_folder

# eval-mmlu-pro: one model × subject, under <out-dir>/<subject>.outputs/
EVAL_ACCURACY = "accuracy"
EVAL_MODEL_REVISION = "model-revision"
EVAL_SETTINGS_HASH = "settings-hash"
EVAL_QUESTIONS = "questions"
EVAL_OUTPUTS = (EVAL_ACCURACY, EVAL_MODEL_REVISION, EVAL_SETTINGS_HASH, EVAL_QUESTIONS)

# aggregate: under <out-dir>/outputs/
OVERALL_ACCURACY = "overall-accuracy"
LARGEST_DELTA = "largest-delta"
REGRESSIONS = "regressions"
AGGREGATE_OUTPUTS = (OVERALL_ACCURACY, LARGEST_DELTA, REGRESSIONS)


def eval_outputs_dir(out_dir: str | Path, subject: str) -> str:
    """Where an eval task's output files are (a string: also used inside Argo paths with placeholders)."""
    return f"{out_dir}/{subject_outputs_folder(subject)}"


def aggregate_outputs_dir(out_dir: str | Path) -> str:
    return f"{out_dir}/{SUMMARY_OUTPUTS}"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def write_eval_outputs(out_dir: Path, subject: str, summary: dict[str, Any]) -> None:
    folder = Path(eval_outputs_dir(out_dir, subject))
    values = {EVAL_ACCURACY: f"{summary['accuracy']:.6f}", EVAL_MODEL_REVISION: str(summary.get("model_revision") or "unknown"),
              EVAL_SETTINGS_HASH: str(summary["settings_hash"]), EVAL_QUESTIONS: str(summary["n"])}
    for name, text in values.items():
        write_text_atomic(folder / name, text)


def largest_delta(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The Δ of largest size over every fine-tuned × baseline pair, per subject and overall."""
    candidates = []
    for delta in summary["deltas"]:
        for subject, value in delta["subjects"].items():
            candidates.append((subject, value, (delta.get("paired") or {}).get(subject), delta))
        if delta["overall"] is not None and len(summary.get("comparable_subjects", summary["subjects"])) > 1:
            candidates.append(("overall", delta["overall"], delta.get("overall_paired"), delta))
    if not candidates:
        return None
    subject, value, paired, delta = max(candidates, key=lambda c: abs(c[1]))
    return {"model": delta["model"], "baseline": delta["baseline"], "subject": subject, "delta": round(value, 4),
            "interval": [round(v, 4) for v in paired["interval"]] if paired else None,
            "p_value": float(f"{paired['p_value']:.3g}") if paired else None}


def write_aggregate_outputs(out_dir: Path, summary: dict[str, Any]) -> None:
    folder = Path(aggregate_outputs_dir(out_dir))
    overall = {entry["label"]: round(entry["overall"]["accuracy"], 4) for entry in summary["models"] if entry["overall"]}
    write_text_atomic(folder / OVERALL_ACCURACY, _compact(overall))
    write_text_atomic(folder / LARGEST_DELTA, _compact(largest_delta(summary)))
    write_text_atomic(folder / REGRESSIONS, str(len(summary["regressions"])))
