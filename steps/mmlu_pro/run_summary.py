"""What `tunebench run` prints after a run of the pipeline: the aggregate's score table, how
fine-tuning changed the answers, and where summary.md, scores.png and trend.png are. Reads the files
steps.aggregate and steps.eval_mmlu_pro write; anything missing or unexpected is skipped, never
an error (a workflow that is not this pipeline prints nothing here)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from steps.contract import (EVAL_FOLDER, LOCAL_VOLUMES_FOLDER, SCORES_PNG, SUMMARY_JSON, SUMMARY_MD, TREND_PNG,
                            run_folder, subject_summary_file)


def summary_dir(workdir: Path, run_name: str) -> Path | None:
    """RUN/summary of this run: `<volume>/runs/<workflow name>/summary` on whichever volume holds it."""
    volumes = workdir / LOCAL_VOLUMES_FOLDER
    if not volumes.is_dir():
        return None
    for volume in sorted(volumes.iterdir()):
        candidate = Path(run_folder(str(volume), run_name).summary)
        if (candidate / SUMMARY_MD).exists() or (candidate / SUMMARY_JSON).exists():
            return candidate
    return None


def first_pattern_shares(summary_folder: Path) -> list[tuple[str, str, int, int]]:
    """(label, role, answers found by the first pattern `answer is (X)`, questions) per model."""
    try:
        summary = json.loads((summary_folder / SUMMARY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    eval_dir = summary_folder.parent / EVAL_FOLDER
    shares = []
    for model in summary.get("models") or []:
        first = total = 0
        for subject in (model.get("subjects") or {}):
            path = eval_dir / str(model.get("slug", "")) / subject_summary_file(subject)
            try:
                data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                methods = data["methods"]
                first += int(methods.get("l1", 0))
                total += int(data["n"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if total:
            shares.append((str(model.get("label")), str(model.get("role")), first, total))
    return shares


def print_run_summary(workdir: Path, run_name: str, console: Console) -> Path | None:
    """After `tunebench run` (its workdir and run name): the scores, if this run wrote them."""
    folder = summary_dir(workdir, run_name)
    if folder is None:
        return None
    markdown = folder / SUMMARY_MD
    if markdown.exists():
        console.print()
        console.print(markdown.read_text(encoding="utf-8").rstrip(), markup=False, highlight=False, emoji=False)
    shares = first_pattern_shares(folder)
    if shares:
        console.print()
        console.print("answers found by the first pattern, 'answer is (X)' (the rest by the fallbacks):",
                      markup=False, highlight=False)
        for label, role, first, total in shares:
            console.print(f"  {label} ({role}): {first}/{total} = {first / total:.0%}", markup=False, highlight=False)
    console.print()
    if markdown.exists():
        console.print(f"summary: {markdown}", highlight=False, markup=False)
    plot = folder / SCORES_PNG
    if plot.exists():
        console.print(f"plot:    {plot}", highlight=False, markup=False)
    trend = folder / TREND_PNG   # from the second run of a model on (aggregate draws it)
    if trend.exists():
        console.print(f"trend:   {trend}", highlight=False, markup=False)
    return folder
