"""The README.md model card of an uploaded model: where it came from, how it was trained, how it scored.

Scores come from the aggregate step's summary.json when it lists per-model accuracies
(`models: [{label, role, accuracy, subjects: {subject: accuracy}}]`; an accuracy may also
be an object with an `accuracy` field); otherwise the card embeds the summary.md written
beside it, so the card never invents a number.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCardData

from steps.common import StepInputError
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
class ModelScores:
    label: str
    role: str
    accuracy: float | None
    subjects: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CardInputs:
    repo_id: str
    base_model: str | None = None
    dataset: str | None = None
    dataset_revision: str | None = None
    axolotl_config: dict[str, Any] | None = None
    scores: list[ModelScores] = field(default_factory=list)
    scores_markdown: str | None = None


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: REDACTED if SECRET_KEY.search(str(key)) and item else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _accuracy(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("accuracy")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_scores(summary: Any) -> list[ModelScores]:
    """Per-model accuracies from a summary.json; empty when it does not list them."""
    models = summary.get("models") if isinstance(summary, dict) else None
    if not isinstance(models, list):
        return []
    scores = []
    for entry in models:
        if not isinstance(entry, dict) or "label" not in entry:
            continue
        overall = _accuracy(entry.get("accuracy", entry.get("overall")))
        subjects = entry.get("subjects") if isinstance(entry.get("subjects"), dict) else {}
        per_subject = {name: acc for name, value in subjects.items() if (acc := _accuracy(value)) is not None}
        if overall is not None or per_subject:
            scores.append(ModelScores(str(entry["label"]), str(entry.get("role", "")), overall, per_subject))
    return scores


def load_summary(path: Path) -> tuple[list[ModelScores], str | None]:
    """Scores from summary.json, and summary.md beside it for when the JSON lists none."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise StepInputError(f"--summary {path}: cannot read it ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise StepInputError(f"--summary {path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    markdown = path.with_suffix(".md")
    return parse_scores(summary), markdown.read_text(encoding="utf-8") if markdown.is_file() else None


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not Path(name).exists()


def _link(name: str, kind: str = "") -> str:
    return f"[{name}](https://huggingface.co/{kind}{name})" if _is_hub_id(name) else f"`{name}`"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def scores_table(scores: list[ModelScores]) -> str:
    subjects = sorted({name for score in scores for name in score.subjects})
    header = ["model", "role", "overall", *subjects]
    rows = [[score.label, score.role, _percent(score.accuracy),
             *(_percent(score.subjects.get(name)) for name in subjects)] for score in scores]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


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


def _scores_section(inputs: CardInputs) -> list[str]:
    if inputs.scores:
        return ["## MMLU-Pro", "", f"Accuracy on [{MMLU_PRO}](https://huggingface.co/datasets/{MMLU_PRO}) "
                "(5-shot chain of thought, as in MMLU-Pro's `evaluate_from_local.py`).", "",
                scores_table(inputs.scores), ""]
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
