"""Workflow parameters: what a person may change when resubmitting from the Argo UI form.

Each carries a description, and an enum where the valid values are few, so the form is
self-explanatory. Values are strings, as Argo passes them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from hera.workflows import Parameter

from steps.contract import SUBJECTS
from workflows.config import PipelineConfig

MAX_GPU_CHOICE = 8


@dataclass(frozen=True)
class WorkflowParam:
    name: str
    value: str
    description: str
    enum: tuple[str, ...] | None = None

    @property
    def ref(self) -> str:
        return "{{workflow.parameters." + self.name + "}}"

    def to_hera(self) -> Parameter:
        return Parameter(
            name=self.name,
            value=self.value,
            description=self.description,
            enum=list(self.enum) if self.enum else None,
        )


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _gpu_choices(configured: int) -> tuple[str, ...]:
    return tuple(str(n) for n in sorted({*range(1, MAX_GPU_CHOICE + 1), configured}))


def _gpus_param(cfg: PipelineConfig) -> WorkflowParam:
    if cfg.train.nodes > 1:
        # The JobSet's GPU request is a literal in its manifest; offering other counts would lie.
        return WorkflowParam("gpus", str(cfg.train.gpus), f"GPUs per node, fixed by the config for "
                             f"{cfg.train.nodes}-node training (train.gpus)", (str(cfg.train.gpus),))
    return WorkflowParam("gpus", str(cfg.train.gpus), "GPUs for training (one pod, accelerate processes; the pod's "
                         "GPU resources follow through podSpecPatch)", _gpu_choices(cfg.train.gpus))


def eval_params(cfg: PipelineConfig) -> list[WorkflowParam]:
    """Parameters both the full pipeline and the benchmark-only template expose."""
    ev = cfg.eval
    return [
        WorkflowParam("eval_dataset", ev.dataset, "MMLU-Pro dataset: hub id or a directory with validation and test files"),
        WorkflowParam("eval_dataset_revision", ev.revision, "hub revision of the MMLU-Pro dataset (pin a commit to compare runs)"),
        WorkflowParam("subjects", _json(ev.subjects), f'JSON list of MMLU-Pro subjects, or "all"; valid: {", ".join(SUBJECTS)}'),
        WorkflowParam("baselines", _json(ev.baselines), 'JSON list of hub ids evaluated beside the fine-tuned model, e.g. ["google/gemma-2-2b"]'),
        WorkflowParam("eval_engine", ev.engine, "vllm (GPU, batched) or hf (transformers; CPU or GPU)", ("vllm", "hf")),
        WorkflowParam("eval_limit", str(ev.limit or 0), "questions per subject; 0 evaluates all (use a small number for a smoke run)"),
        WorkflowParam("regression_threshold", str(ev.regression_threshold), "fail when a subject's accuracy falls by more than this against the previous run"),
    ]


def pipeline_params(cfg: PipelineConfig) -> list[WorkflowParam]:
    """All parameters of the fine-tune → benchmark pipeline."""
    return [
        WorkflowParam("base_model", cfg.model.id, "base model to fine-tune: hub id (org/name)"),
        WorkflowParam("base_model_revision", cfg.model.revision, "hub revision of the base model (branch, tag or commit)"),
        WorkflowParam("dataset", cfg.data.source, "training data: hub dataset id or a parquet/jsonl/csv path on the workspace volume"),
        WorkflowParam("dataset_revision", cfg.data.revision, "hub revision of the training dataset"),
        WorkflowParam("dataset_split", cfg.data.split, "split of the training dataset"),
        WorkflowParam("question_field", cfg.data.fields.question, "source column that becomes the question"),
        WorkflowParam("answer_field", cfg.data.fields.answer, "source column that becomes the answer"),
        WorkflowParam("axolotl_config", cfg.train.axolotl_config, "Axolotl YAML in the image, relative to the project root"),
        WorkflowParam("axolotl_overrides", _json(cfg.train.overrides), 'JSON object of Axolotl keys set over the YAML, e.g. {"num_epochs": 1}'),
        _gpus_param(cfg),
        WorkflowParam("gpu_memory_gib", f"{cfg.gate.gpu_memory_gib:g}", "memory of one GPU in GiB, for the memory gate"),
        WorkflowParam("gate_mode", cfg.gate.mode, "fail stops the run before training when the estimate does not fit; warn only warns", ("fail", "warn")),
        *eval_params(cfg),
        WorkflowParam("hub_repo", cfg.upload.repo_id, "hub repo (org/name) the merged model is uploaded to"),
        WorkflowParam("hub_private", _flag(cfg.upload.private), "create the hub repo as private", ("true", "false")),
        WorkflowParam("upload_enabled", _flag(cfg.upload.enabled), "upload the merged model", ("true", "false")),
    ]


def benchmark_params(cfg: PipelineConfig) -> list[WorkflowParam]:
    """Parameters of the benchmark-only template (what the CronWorkflow runs)."""
    # Only a model that reaches the hub can be re-benchmarked from it.
    published = cfg.upload.enabled and cfg.upload.target == "hub"
    wanted = cfg.schedule is None or cfg.schedule.include_finetuned
    finetuned = cfg.upload.repo_id if published and wanted else ""
    return [
        WorkflowParam("finetuned_model", finetuned, "hub id of the fine-tuned model to re-benchmark; empty for baselines only"),
        *eval_params(cfg),
    ]


def by_name(params: list[WorkflowParam]) -> dict[str, WorkflowParam]:
    return {param.name: param for param in params}
