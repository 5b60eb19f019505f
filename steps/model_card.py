"""The README.md model card of an uploaded model: where it came from, how it was trained, how it scored.

Scores come from the summary.json that steps.aggregate writes (`summarize`: `subjects`, and
`models: [{label, role, subjects: {subject: {n, correct, accuracy, complete, n_questions}},
overall: {n, correct, accuracy}, macro_accuracy}]`, and `deltas: [{model, baseline, subjects:
{subject: delta}, overall, macro}]`, with the 95 % `interval` of each accuracy and the `paired` /
`overall_paired` interval and p of each Δ that `steps.mmlu_pro.uncertainty` adds): one row per
subject, one column per model (the fine-tuned one first) and per delta. When the JSON lists no models the card embeds the summary.md written
beside it, so the card never invents a number.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import yaml
from huggingface_hub import ModelCardData

from steps.contract import REPO_ID, ROLE_FINETUNED, ROLE_NAMES
from steps.mmlu_pro.report import p_text
from steps.mmlu_pro.summary_file import read_summary
from steps.training.axolotl_config import DATASET_TYPE

MMLU_PRO = "TIGER-Lab/MMLU-Pro"
# Values of keys like these never reach a public card, whatever the user put in their config.
SECRET_KEY = re.compile(r"(^|_)(token|secret|password|api_?key|credentials?)$", re.IGNORECASE)
REDACTED = "<redacted>"
TRAINING_SETTINGS = (
    "adapter", "load_in_4bit", "lora_r", "lora_alpha", "lora_dropout", "lora_target_linear",
    "lora_target_modules", "lora_modules_to_save", "sequence_len", "sample_packing", "micro_batch_size",
    "gradient_accumulation_steps", "num_epochs", "max_steps", "learning_rate", "lr_scheduler", "optimizer",
    "warmup_steps", "warmup_ratio", "weight_decay", "bf16", "fsdp_version", "seed",
)


@dataclass(frozen=True)
class Result:
    """One accuracy: a subject's, or a model's overall (total correct over total questions)."""
    accuracy: float
    correct: int | None = None
    n: int | None = None
    complete: bool = True
    n_questions: int | None = None
    interval: tuple[float, float] | None = None   # 95 % Wilson


@dataclass(frozen=True)
class Paired:
    """A Δ's paired 95 % interval and the p-value of its test over the same questions."""
    low: float
    high: float
    p_value: float


@dataclass(frozen=True)
class ModelScores:
    label: str
    role: str
    overall: Result | None
    subjects: dict[str, Result] = field(default_factory=dict)
    macro: float | None = None


@dataclass(frozen=True)
class Delta:
    """Fine-tuned minus a baseline, in accuracy (aggregate's `deltas`: over the subjects both have)."""
    model: str
    baseline: str
    subjects: dict[str, float] = field(default_factory=dict)
    overall: float | None = None
    macro: float | None = None
    paired: dict[str, Paired] = field(default_factory=dict)
    overall_paired: Paired | None = None


@dataclass(frozen=True)
class Scores:
    subjects: list[str]
    models: list[ModelScores]
    deltas: list[Delta] = field(default_factory=list)
    run_id: str | None = None
    comparable_subjects: list[str] | None = None  # what overall, macro and Δ count; None: every subject

    def __bool__(self) -> bool:
        return bool(self.models)


@dataclass(frozen=True)
class CardInputs:
    repo_id: str
    base_model: str | None = None
    dataset: str | None = None
    dataset_revision: str | None = None
    axolotl_config: dict[str, Any] | None = None
    scores: Scores | None = None
    scores_markdown: str | None = None


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: REDACTED if SECRET_KEY.search(str(key)) and item else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _interval(value: Any) -> tuple[float, float] | None:
    bounds = [_number(v) for v in value] if isinstance(value, list) and len(value) == 2 else []
    return (bounds[0], bounds[1]) if len(bounds) == 2 and bounds[0] is not None and bounds[1] is not None else None


def _paired(value: Any) -> Paired | None:
    interval = _interval(value.get("interval")) if isinstance(value, dict) else None
    p_value = _number(value.get("p_value")) if isinstance(value, dict) else None
    return None if interval is None or p_value is None else Paired(*interval, p_value)


def _result(value: Any) -> Result | None:
    """aggregate's `{n, correct, accuracy[, complete, n_questions]}`, or a bare accuracy."""
    if not isinstance(value, dict):
        accuracy = _number(value)
        return None if accuracy is None else Result(accuracy)
    accuracy = _number(value.get("accuracy"))
    if accuracy is None:
        return None
    return Result(accuracy, _count(value.get("correct")), _count(value.get("n")), value.get("complete") is not False,
                  _count(value.get("n_questions")), _interval(value.get("interval")))


def _model_scores(entry: Any) -> ModelScores | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("label"), str):
        return None
    subjects: dict[str, Any] = entry["subjects"] if isinstance(entry.get("subjects"), dict) else {}
    per_subject = {str(name): result for name, value in subjects.items() if (result := _result(value)) is not None}
    overall = _result(entry.get("overall", entry.get("accuracy")))
    if overall is not None and overall.n == 0:  # no subject results at all: 0 correct of 0 is no score
        overall = None
    if overall is None and not per_subject:
        return None
    return ModelScores(entry["label"], str(entry.get("role") or ""), overall, per_subject,
                       _number(entry.get("macro_accuracy")))


def _delta(entry: Any) -> Delta | None:
    if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) for key in ("model", "baseline")):
        return None
    subjects: dict[str, Any] = entry["subjects"] if isinstance(entry.get("subjects"), dict) else {}
    paired: dict[str, Any] = entry["paired"] if isinstance(entry.get("paired"), dict) else {}
    return Delta(entry["model"], entry["baseline"],
                 {str(name): value for name, raw in subjects.items() if (value := _number(raw)) is not None},
                 _number(entry.get("overall")), _number(entry.get("macro")),
                 {str(name): found for name, raw in paired.items() if (found := _paired(raw)) is not None},
                 _paired(entry.get("overall_paired")))


def parse_scores(summary: Any) -> Scores | None:
    """The scores in aggregate's summary.json (see steps/aggregate.py `summarize`); None when it lists none.

    The fine-tuned model comes first, then the baselines, each in the summary's order.
    """
    if not isinstance(summary, dict) or not isinstance(summary.get("models"), list):
        return None
    models = [m for m in map(_model_scores, summary["models"]) if m is not None]
    if not models:
        return None
    models.sort(key=lambda m: m.role != ROLE_FINETUNED)
    listed: list[Any] = summary["subjects"] if isinstance(summary.get("subjects"), list) else []
    subjects = [str(s) for s in listed]
    subjects += sorted({s for m in models for s in m.subjects} - set(subjects))
    deltas = [d for d in map(_delta, summary.get("deltas") or []) if d is not None]
    run_id = summary.get("run_id")
    comparable = summary.get("comparable_subjects")
    comparable = [str(s) for s in comparable] if isinstance(comparable, list) else None
    return Scores(subjects, models, deltas, str(run_id) if run_id else None, comparable)


def load_summary(path: Path, summary_id: str | None = None) -> tuple[Scores | None, str | None]:
    """Scores from summary.json (only the one aggregate wrote under `summary_id`, when given), and
    summary.md beside it for when the JSON lists none."""
    summary = read_summary(path, summary_id)
    markdown = path.with_suffix(".md")
    return parse_scores(summary), markdown.read_text(encoding="utf-8") if markdown.is_file() else None


def _is_hub_id(name: str | None) -> TypeGuard[str]:
    return name is not None and REPO_ID.fullmatch(name) is not None and not Path(name).exists()


def _link(name: str, kind: str = "") -> str:
    return f"[{name}](https://huggingface.co/{kind}{name})" if _is_hub_id(name) else f"`{name}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _result_cell(result: Result | None) -> str:
    if result is None:
        return "missing"
    counts = f" ({result.correct}/{result.n})" if result.correct is not None and result.n else ""
    interval = f" [{result.interval[0]:.1%}, {result.interval[1]:.1%}]" if result.interval else ""
    return f"{result.accuracy:.1%}{interval}{counts}{'' if result.complete else '*'}"


def _points(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} pp"


def _delta_cell(value: float | None, paired: Paired | None) -> str:
    """Δ in points, its paired 95 % interval and p; ▲/▼ when the interval lies above/below 0."""
    if value is None or paired is None:
        return _points(value)
    mark = " ▲" if paired.low > 0 else " ▼" if paired.high < 0 else ""
    return (f"{_points(value)} [{paired.low * 100:+.1f}, {paired.high * 100:+.1f}] "
            f"{p_text(paired.p_value)}{mark}")


def _model_column(score: ModelScores) -> str:
    role = ROLE_NAMES.get(score.role, score.role)
    return f"{_cell(score.label)} ({role})" if role else _cell(score.label)


def scores_table(scores: Scores) -> str:
    """One row per subject, then overall (and macro); one column per model, then one per delta."""
    one_model = len({d.model for d in scores.deltas}) == 1
    columns = [_model_column(m) for m in scores.models] + [
        f"Δ vs {_cell(d.baseline)}" if one_model else f"Δ {_cell(d.model)} vs {_cell(d.baseline)}"
        for d in scores.deltas]
    lines = ["| subject | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for subject in scores.subjects:
        cells = [_result_cell(m.subjects.get(subject)) for m in scores.models]
        cells += [_delta_cell(d.subjects.get(subject), d.paired.get(subject)) for d in scores.deltas]
        lines.append(f"| {_cell(subject)} | " + " | ".join(cells) + " |")
    overall = [f"**{_result_cell(m.overall)}**" if m.overall else "–" for m in scores.models]
    lines.append("| **overall** | " + " | ".join(overall + [f"**{_delta_cell(d.overall, d.overall_paired)}**" for d in scores.deltas]) + " |")
    if len(scores.subjects) > 1:
        macro = [_percent(m.macro) for m in scores.models] + [_points(d.macro) for d in scores.deltas]
        lines.append("| macro | " + " | ".join(macro) + " |")
    return "\n".join(lines)


def _scores_notes(scores: Scores) -> list[str]:
    partial = [f"{m.label} {s} ({r.n} of {r.n_questions} questions)" if r.n_questions else f"{m.label} {s}"
               for m in scores.models for s, r in m.subjects.items() if not r.complete]
    missing = [f"{m.label} {s}" for m in scores.models for s in scores.subjects if s not in m.subjects]
    notes = []
    if scores.comparable_subjects is not None and scores.comparable_subjects != scores.subjects:
        notes.append("Overall, macro and Δ count only the subjects every model has on the same questions: "
                     + (", ".join(scores.comparable_subjects) or "none"))
    if partial:
        notes.append("\\* partial: " + "; ".join(partial))
    if missing:
        notes.append("Missing results (left out of overall and macro): " + "; ".join(missing))
    return [line for note in notes for line in (note, "")]


def _metadata(inputs: CardInputs) -> str:
    cfg = inputs.axolotl_config or {}
    tags = ["axolotl", "tunebench", *([cfg["adapter"]] if cfg.get("adapter") else [])]
    data = ModelCardData(
        base_model=inputs.base_model if _is_hub_id(inputs.base_model) else None,
        datasets=[inputs.dataset] if _is_hub_id(inputs.dataset) else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=tags,
    )
    return data.to_yaml()


def _training_section(cfg: dict[str, Any]) -> list[str]:
    settings = [(key, cfg[key]) for key in TRAINING_SETTINGS if cfg.get(key) is not None]
    lines = ["## Training", "",
             "Fine-tuned with [Axolotl](https://github.com/axolotl-ai-cloud/axolotl); the adapter was merged "
             "into the base weights (`axolotl merge-lora`).", ""]
    if any(isinstance(d, dict) and d.get("type") == DATASET_TYPE for d in cfg.get("datasets") or []):
        lines += [f"Prompt format (Axolotl's `{DATASET_TYPE}`): Axolotl's one-line system prompt, then "
                  "`USER: <question>` and `ASSISTANT:` lines; the model was trained on the answer only.", ""]
    if settings:
        lines += ["| setting | value |", "|---|---|", *(f"| {key} | `{value}` |" for key, value in settings), ""]
    lines += ["<details><summary>The full Axolotl config that ran</summary>", "", "```yaml",
              yaml.safe_dump(redact(cfg), sort_keys=False, allow_unicode=True).rstrip(), "```", "", "</details>", ""]
    return lines


def _has_uncertainty(scores: Scores) -> bool:
    results = [r for m in scores.models for r in (m.overall, *m.subjects.values()) if r is not None]
    return any(r.interval for r in results) or any(d.paired or d.overall_paired for d in scores.deltas)


def _scores_section(inputs: CardInputs) -> list[str]:
    scores = inputs.scores
    if scores:
        run = f", run `{_cell(scores.run_id)}`" if scores.run_id else ""
        intro = (f"Accuracy on [{MMLU_PRO}](https://huggingface.co/datasets/{MMLU_PRO}){run}: 5-shot chain of "
                 "thought, as in MMLU-Pro's `evaluate_from_local.py`; per subject, correct/questions. **overall** is "
                 "total correct over total questions, as MMLU-Pro reports it")
        intro += "; **macro** is the mean of the subject accuracies" if len(scores.subjects) > 1 else ""
        if scores.deltas:
            intro += ("; Δ is the fine-tuned model minus a baseline, in percentage points, on the same "
                      "questions only")
        if _has_uncertainty(scores):
            intro += ". [low, high] is a 95 % interval: Wilson for an accuracy"
            if scores.deltas:
                intro += ("; for a Δ, paired over the same questions (Newcombe), with the p-value of McNemar's "
                          "exact test; ▲/▼ mark a Δ whose interval lies above/below 0")
        return ["## MMLU-Pro", "", intro + ".", "", scores_table(scores), "", *_scores_notes(scores)]
    if inputs.scores_markdown:
        return ["## MMLU-Pro", "", inputs.scores_markdown.strip(), ""]
    return []


def render_model_card(inputs: CardInputs) -> str:
    name = inputs.repo_id.split("/")[-1]
    lines = ["---", _metadata(inputs).rstrip(), "---", "", f"# {name}", ""]
    origin = []
    if inputs.base_model:
        origin.append(f"Fine-tuned from {_link(inputs.base_model)}")
    if inputs.dataset:
        revision = f" (revision `{inputs.dataset_revision}`)" if inputs.dataset_revision else ""
        origin.append(f"on {_link(inputs.dataset, 'datasets/')}{revision}")
    if origin:
        lines += [" ".join(origin) + ", by the tunebench pipeline.", ""]
    if inputs.axolotl_config:
        lines += _training_section(inputs.axolotl_config)
    lines += _scores_section(inputs)
    lines += ["## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              f'tokenizer = AutoTokenizer.from_pretrained("{inputs.repo_id}")',
              f'model = AutoModelForCausalLM.from_pretrained("{inputs.repo_id}")', "```", ""]
    return "\n".join(lines)
