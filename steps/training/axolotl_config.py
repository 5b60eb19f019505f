"""The final Axolotl config: the user's YAML, their overrides, and the paths and settings the pipeline owns.

Precedence, lowest first: the user's YAML, `--overrides`, then what the pipeline sets
(base model, dataset, run folders). Axolotl's own pydantic schema validates the result,
so a bad config fails before a pod holds GPUs.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from steps.common import StepInputError, write_text_atomic
from steps.contract import FINAL_AXOLOTL_CONFIG, TRAIN_DONE, TRAIN_OUTPUT, TRAIN_PREPARED
from steps.safe_yaml import YamlInputError, read_yaml
from steps.training.distributed import CPU_PLACEMENT_BUDGET

# The converted dataset has `question` and `answer` columns, which this Axolotl strategy reads.
DATASET_TYPE = "alpaca_chat.load_qa"
# Keys the pipeline sets; an override of one would silently point training elsewhere.
PIPELINE_KEYS = ("base_model", "revision_of_model", "datasets", "output_dir", "dataset_prepared_path",
                 "resume_from_checkpoint")
# Axolotl auto-enables these Triton kernels for LoRA; Triton needs CUDA, so on a CPU they crash.
TRITON_LORA_KERNELS = ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel", "lora_embedding_kernel")
DEFAULT_SAVE_STEPS = 100
# Enough to fall back past a damaged newest checkpoint while bounding what the volume holds.
DEFAULT_SAVE_TOTAL_LIMIT = 3
# NCCL's default 30 min can expire while rank 0 tokenizes a large dataset or writes a full
# state dict and the other ranks wait in a collective.
MULTI_GPU_DDP_TIMEOUT_S = 7200
FINAL_CONFIG_HEADER = "# Written by tunebench steps.train: the exact Axolotl config that ran.\n"


class AxolotlConfigError(StepInputError):
    """Axolotl's schema rejected the config; the message is Axolotl's, with the field path."""


@dataclass(frozen=True)
class TrainPaths:
    """The train step's files under the run folder (see docs/design.md)."""

    run_dir: Path

    @property
    def config(self) -> Path:
        return self.run_dir / FINAL_AXOLOTL_CONFIG

    @property
    def prepared(self) -> Path:
        return self.run_dir / TRAIN_PREPARED

    @property
    def output(self) -> Path:
        return self.run_dir / TRAIN_OUTPUT

    @property
    def done(self) -> Path:
        """Written after a training run finished and its adapter (or model) was checked."""
        return self.run_dir / TRAIN_DONE


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline decides about a training run, beside the user's YAML."""

    base_model: str
    dataset: Path
    paths: TrainPaths
    base_model_revision: str | None = None
    gpus: int = 1  # training processes on this node
    on_cpu: bool = False
    save_steps: int | None = None
    nodes: int = 1

    @property
    def world_size(self) -> int:
        return self.gpus * self.nodes


def load_yaml_config(path: str | Path, what: str = "--config") -> dict[str, Any]:
    try:  # bounded: no alias bombs, duplicate keys or non-UTF-8 tracebacks (steps.safe_yaml)
        data = read_yaml(path, f"{what} {path}", kind="the Axolotl config")
    except YamlInputError as error:
        raise StepInputError(str(error)) from None
    if not isinstance(data, dict):
        raise StepInputError(f"{what} {path}: expected a mapping of Axolotl keys, got {type(data).__name__}")
    return data


def parse_overrides(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise StepInputError(f"--overrides {text!r}: not valid JSON ({error.msg}); pass an object such as "
                             '\'{"learning_rate": 0.0001}\'') from None
    if not isinstance(overrides, dict):
        raise StepInputError(f"--overrides {text!r}: expected a JSON object of top-level Axolotl keys")
    owned = sorted(key for key in overrides if key in PIPELINE_KEYS)
    if owned:
        raise StepInputError(f"--overrides sets {', '.join(owned)}, which the pipeline sets itself "
                             f"(from --base-model, --dataset, --run-dir); remove it")
    return overrides


def _is_local(model: str) -> bool:
    return Path(model).exists()


def _with_defaults(cfg: dict[str, Any], settings: PipelineSettings) -> None:
    """Settings a pod restart or the hardware needs, where the user left them unset."""
    if settings.save_steps is not None:
        cfg.pop("saves_per_epoch", None)
        cfg["save_steps"] = settings.save_steps
    elif cfg.get("save_steps") is None and cfg.get("saves_per_epoch") is None:
        cfg["save_steps"] = DEFAULT_SAVE_STEPS
    cfg.setdefault("save_total_limit", DEFAULT_SAVE_TOTAL_LIMIT)
    if settings.world_size > 1 and cfg.get("ddp_timeout") is None:
        cfg["ddp_timeout"] = MULTI_GPU_DDP_TIMEOUT_S
    if settings.on_cpu and settings.world_size > 1 and cfg.get("max_memory") is None \
            and cfg.get("gpu_memory_limit") is None:
        cfg["max_memory"] = {"cpu": CPU_PLACEMENT_BUDGET}
    if settings.on_cpu and cfg.get("adapter") in ("lora", "qlora"):
        for key in TRITON_LORA_KERNELS:
            cfg[key] = False


def build_final_config(user_cfg: dict[str, Any], overrides: dict[str, Any],
                       settings: PipelineSettings) -> dict[str, Any]:
    """The config Axolotl runs; `user_cfg` and `overrides` are not modified."""
    cfg = copy.deepcopy(user_cfg)
    cfg.update(copy.deepcopy(overrides))
    if cfg.get("resume_from_checkpoint") is not None:
        raise StepInputError(
            f"resume_from_checkpoint: {cfg['resume_from_checkpoint']!r} is set in --config; the pipeline resumes "
            f"by itself from the newest complete checkpoint in {settings.paths.output}; remove the key")
    cfg.pop("resume_from_checkpoint", None)
    base_model = str(Path(settings.base_model).resolve()) if _is_local(settings.base_model) else settings.base_model
    cfg["base_model"] = base_model
    if settings.base_model_revision and not _is_local(settings.base_model):
        cfg["revision_of_model"] = settings.base_model_revision
    else:
        cfg.pop("revision_of_model", None)
    cfg["datasets"] = [{"path": str(settings.dataset.resolve()), "ds_type": "parquet", "type": DATASET_TYPE}]
    cfg["dataset_prepared_path"] = str(settings.paths.prepared.resolve())
    cfg["output_dir"] = str(settings.paths.output.resolve())
    _with_defaults(cfg, settings)
    return cfg


def validate_config(cfg: dict[str, Any], capabilities: dict[str, Any] | None = None,
                    env_capabilities: dict[str, Any] | None = None) -> None:
    """Run Axolotl's schema over `cfg` (a copy); raise AxolotlConfigError with Axolotl's message.

    Without capabilities only the schema is checked; with them (`probed_capabilities` on the
    training machine, `assumed_capabilities` elsewhere), also what depends on the hardware
    (bf16, FSDP on N GPUs), as `axolotl train` does.
    """
    from pydantic import ValidationError

    from axolotl.utils.config import prepare_plugins
    from axolotl.utils.config import validate_config as axolotl_validate
    from axolotl.utils.dict import DictDefault

    candidate = DictDefault(copy.deepcopy(cfg))
    try:
        prepare_plugins(candidate)
        axolotl_validate(candidate, capabilities=capabilities, env_capabilities=env_capabilities)
    except ValidationError as error:
        raise AxolotlConfigError(_format_validation_error(error)) from None
    except (ValueError, TypeError, ImportError) as error:
        raise AxolotlConfigError(f"Axolotl rejected the config: {' '.join(str(error).split())}") from None


def unknown_keys(cfg: dict[str, Any]) -> list[str]:
    """Top-level keys Axolotl's schema does not know: it drops them silently, so a typo would go unnoticed.

    The schema is the one Axolotl's validate_config uses: its plugins' keys merged in where the config
    names plugins, the base schema otherwise (merging imports peft: about 1 CPU s before a GPU launch).
    """
    from axolotl.utils.schemas.config import AxolotlInputConfig

    schema = AxolotlInputConfig
    if cfg.get("plugins"):
        from axolotl.integrations.config import merge_input_args
        from axolotl.utils.config import prepare_plugins
        from axolotl.utils.dict import DictDefault

        prepare_plugins(DictDefault(copy.deepcopy(cfg)))
        _, schema = merge_input_args()
    known: set[str] = set()
    for name, field in schema.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", [field.validation_alias])
        known.update(alias for alias in [name, field.alias, *aliases] if isinstance(alias, str))
    return sorted(key for key in cfg if key not in known)


def _format_validation_error(error: Any) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        shown = "" if isinstance(value, dict) or item["type"] == "missing" else f" (got {value!r})"
        parts.append(f"{location}: {message}{shown}" if location else f"{message}")
    return "Axolotl rejected the config: " + "; ".join(" ".join(part.split()) for part in parts)


def probed_capabilities(n_gpu: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """This machine's GPU as `axolotl train` sees it, for `n_gpu` training processes.

    Axolotl reads the process count from WORLD_SIZE, which only the launcher sets, so it is given here.
    """
    from axolotl.cli.config import gpu_capabilities

    capabilities, env_capabilities = gpu_capabilities()
    return {**capabilities, "n_gpu": n_gpu}, env_capabilities


def assumed_capabilities(n_gpu: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """An Ampere-or-newer GPU (bf16, tf32), for checking a GPU config on a machine without one."""
    import torch

    capabilities = {"bf16": True, "fp8": False, "tf32": True, "compute_capability": "sm_86", "n_gpu": n_gpu}
    return capabilities, {"torch_version": torch.__version__.split("+", maxsplit=1)[0]}


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = (set(old) | set(new)) - {"resume_from_checkpoint"}
    return sorted(key for key in keys if old.get(key) != new.get(key))


def write_final_config(cfg: dict[str, Any], path: Path) -> None:
    write_text_atomic(path, FINAL_CONFIG_HEADER + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
