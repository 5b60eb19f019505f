"""Plan the evaluation fan-out: one item per model × subject, as the JSON lists `withParam` reads.

Writes `baseline-items.json`, `finetuned-items.json` (each a list of
`{"model", "slug", "role", "label", "subject"}`) and `models.json` (the models alone), which
`aggregate` reads to know which results to expect.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer

from steps.common import StepInputError, step_errors, step_main, write_json_atomic
from steps.contract import (BASELINE_ITEMS, FINETUNED_ITEMS, FINETUNED_SLUG, PLAN_FOLDER, PLANNED_MODELS,
                            ROLE_BASELINE, ROLE_FINETUNED, plan_file)
from steps.mmlu_pro.subjects import parse_subjects


def model_slug(model: str) -> str:
    """The folder name of a baseline's results: the hub id with `/` replaced by `--`
    (for a local path, without its leading `/` or `./`, so the name never starts with `--`)."""
    return "--".join(part for part in PurePosixPath(model).parts if part not in ("/", "."))


def parse_baselines(value: str) -> list[str]:
    try:
        baselines = json.loads(value) if value.strip() else []
    except json.JSONDecodeError:
        raise StepInputError(f'--baselines {value!r} is not a JSON list of hub ids, e.g. ["google/gemma-2-2b"]') from None
    if not isinstance(baselines, list) or not all(isinstance(b, str) and b.strip() for b in baselines):
        raise StepInputError(f'--baselines {value!r} must be a JSON list of hub ids, e.g. ["google/gemma-2-2b"]')
    if len(set(baselines)) != len(baselines):
        raise StepInputError(f"--baselines {value!r} names a model twice")
    clashing = [b for b in baselines if model_slug(b) == FINETUNED_SLUG]
    if clashing:
        raise StepInputError(f"--baselines: {clashing[0]!r} would share the results folder of the fine-tuned model")
    by_slug: dict[str, str] = {}
    for baseline in baselines:
        # Each model's results need a folder of their own directly under RUN/eval: two models in one
        # folder overwrite each other's results, and aggregate would report one under the other's name.
        slug = model_slug(baseline)
        if slug in ("", ".", "..", PLAN_FOLDER):
            raise StepInputError(f"--baselines: {baseline!r} gives no results folder of its own under RUN/eval "
                                 f"(its folder name would be {slug!r}); give a hub id (ORG/NAME) or a model directory")
        if slug in by_slug:
            raise StepInputError(f"--baselines: {by_slug[slug]!r} and {baseline!r} would share one results folder "
                                 f"({slug!r}); evaluate one of them in another run")
        by_slug[slug] = baseline
    return baselines


def plan(baselines: list[str], subjects: list[str], finetuned_model: str | None = None,
         finetuned_label: str | None = None) -> dict[str, list[dict[str, Any]]]:
    models = [{"model": b, "slug": model_slug(b), "role": ROLE_BASELINE, "label": b} for b in baselines]
    if finetuned_model and (finetuned_label or finetuned_model) in baselines:
        # The summary, the history and the metrics name a model by its label: one name for two models
        # would file the baseline's scores and the fine-tuned model's under each other.
        raise StepInputError(f"--baselines names {finetuned_label or finetuned_model!r}, the fine-tuned model's "
                             "name in reports: drop it from the baselines, or give --finetuned-label another name")
    if finetuned_model:
        models.append({"model": finetuned_model, "slug": FINETUNED_SLUG, "role": ROLE_FINETUNED,
                       "label": finetuned_label or finetuned_model})
    items = [{**model, "subject": subject} for model in models for subject in subjects]
    return {
        BASELINE_ITEMS: [item for item in items if item["role"] == ROLE_BASELINE],
        FINETUNED_ITEMS: [item for item in items if item["role"] == ROLE_FINETUNED],
        PLANNED_MODELS: models,
    }


def write_plan(out_dir: Path, planned: dict[str, list[dict[str, Any]]]) -> None:
    for name, content in planned.items():
        write_json_atomic(Path(out_dir) / plan_file(name), content)


@step_errors
def plan_eval_command(
    baselines: Annotated[str, typer.Option(help='JSON list of hub ids evaluated as baselines, e.g. ["google/gemma-2-2b"].')],
    subjects: Annotated[str, typer.Option(help='JSON list of MMLU-Pro subjects, or "all" for the 14.')],
    out_dir: Annotated[Path, typer.Option(help="Folder for baseline-items.json, finetuned-items.json and models.json.")],
    finetuned_model: Annotated[str, typer.Option(help="Path or hub id of the fine-tuned model; empty for baselines only.")] = "",
    finetuned_label: Annotated[str, typer.Option(help="Its name in reports (default: the model itself).")] = "",
) -> None:
    """Write the model × subject items the evaluation fan-out iterates over."""
    planned = plan(parse_baselines(baselines), parse_subjects(subjects), finetuned_model.strip() or None,
                   finetuned_label.strip() or None)
    if not planned["models"]:
        raise StepInputError("nothing to evaluate: --baselines is empty and no --finetuned-model was given")
    write_plan(out_dir, planned)
    print(f"{len(planned[BASELINE_ITEMS])} baseline and {len(planned[FINETUNED_ITEMS])} fine-tuned "
          f"evaluations planned in {out_dir}")


def main() -> None:
    step_main(plan_eval_command)


if __name__ == "__main__":
    main()
