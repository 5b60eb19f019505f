"""The training settings memory depends on, read from an Axolotl config.

Settings arrive as Axolotl's own top-level keys (a YAML file, then --overrides, then the CLI
flags, each merged over the last) and missing keys take Axolotl's defaults, so the estimate
describes the run Axolotl would actually start.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steps.common import StepInputError
from steps.memory.architectures import MAX_DIMENSION

Method = Literal["full", "lora", "qlora"]
Quantisation = Literal["none", "int8", "nf4"]
Dtype = Literal["fp32", "bf16", "fp16"]
Sharding = Literal["none", "zero1", "zero2", "zero3", "fsdp"]
# How the loss meets the vocabulary: transformers' full fp32 cross entropy, Axolotl's
# chunked_cross_entropy (the logits kept in the compute dtype, one chunk upcast at a time), or a
# fused kernel (cut_cross_entropy, Liger) that never materialises the logits. "shifted" is the
# full path of transformers before 4.48, which sliced a shifted fp32 copy of the logits; no
# Axolotl setting selects it (Axolotl 0.19 runs transformers 5), published measurements used it.
LossPath = Literal["full", "chunked", "fused", "shifted"]
METHODS: tuple[Method, ...] = ("full", "lora", "qlora")
ALL_LINEAR = "all-linear"
PEFT_DEFAULT_TARGETS = ("q_proj", "v_proj")  # what peft targets in Llama-like models when none are named

# A config people actually write, used when no --axolotl-config is given: bf16, gradient
# checkpointing, 2k tokens, LoRA on every linear layer (Axolotl's bare defaults, fp32 and
# 512 tokens without checkpointing, describe no real fine-tuning run).
TYPICAL_AXOLOTL_CONFIG: dict[str, Any] = {
    "bf16": "auto", "sequence_len": 2048, "micro_batch_size": 1, "gradient_checkpointing": True,
    "lora_r": 16, "lora_target_linear": True, "optimizer": "adamw_torch_fused",
}


# Sizes past 2**53 describe no run and would overflow the byte counts' floats.
PositiveInt = Annotated[int, Field(gt=0, le=MAX_DIMENSION)]


class AxolotlSettings(BaseModel):
    """The subset of Axolotl's config schema that decides memory; other keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    adapter: Literal["lora", "qlora"] | None = None
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    bnb_config_kwargs: dict[str, Any] | None = None
    sequence_len: PositiveInt = 512
    micro_batch_size: PositiveInt = 1
    lora_r: PositiveInt = 8
    lora_target_modules: list[str] | str | None = None
    lora_target_linear: bool | None = None
    lora_modules_to_save: list[str] | None = None
    gradient_checkpointing: bool | Literal["offload", "offload_disk"] = False
    optimizer: str = "adamw_torch_fused"
    bf16: bool | Literal["auto"] | None = None
    fp16: bool | None = None
    attn_implementation: str | None = None
    eager_attention: bool | None = None
    cut_cross_entropy: bool | None = None
    liger_fused_linear_cross_entropy: bool | None = None
    chunked_cross_entropy: bool | None = None
    chunked_cross_entropy_num_chunks: PositiveInt | None = None
    fsdp: list[str] | None = None
    fsdp_config: dict[str, Any] | None = None
    deepspeed: str | dict[str, Any] | None = None


@dataclass(frozen=True)
class TrainingSetup:
    method: Method
    dtype: Dtype                       # weights and activations (the compute dtype under QLoRA)
    base_quantisation: Quantisation
    double_quant: bool                 # NF4 constants themselves quantised (Axolotl's default)
    optimizer: str
    seq_len: int
    micro_batch_size: int
    gradient_checkpointing: Literal["off", "recompute", "offload"]
    eager_attention: bool              # materialises the seq × seq attention scores
    loss: LossPath
    lora_r: int
    lora_targets: tuple[str, ...] | str  # module names, a regex, or ALL_LINEAR
    lora_modules_to_save: tuple[str, ...]
    sharding: Sharding | None          # None: the config does not say (then it depends on the GPU count)
    offloaded: frozenset[str]          # components kept in CPU memory
    chunked_loss_chunks: int = 8       # Axolotl's chunked_cross_entropy_num_chunks default
    # Plain peft's prepare_model_for_kbit_training leaves every unquantised tensor (embeddings,
    # lm_head, norms) in fp32, and with them the residual stream. Axolotl casts them back to the
    # compute dtype, so its runs never set this; it describes other stacks' measurements.
    fp32_unquantised: bool = False

    def with_method(self, method: Method) -> TrainingSetup:
        quantisation: Quantisation = ("none" if method == "full" else "nf4" if method == "qlora"
                                      else "int8" if self.base_quantisation == "int8" else "none")
        return replace(self, method=method, base_quantisation=quantisation)


def training_setup(config: dict[str, Any], source: str) -> TrainingSetup:
    """Resolve merged Axolotl settings; `source` names where they came from in error messages."""
    try:
        settings = AxolotlSettings.model_validate(config)
    except ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        raise StepInputError(f"{source}: {key}: {problem.get('input')!r} is not valid ({problem['msg']})") from None

    quantisation: Quantisation = "nf4" if settings.adapter == "qlora" or settings.load_in_4bit else \
        "int8" if settings.load_in_8bit else "none"
    method: Method = settings.adapter or "full"
    if method == "full" and quantisation != "none":
        raise StepInputError(f"{source}: load_in_4bit/load_in_8bit need adapter: qlora or lora; "
                             "full fine-tuning cannot train quantised weights")
    attention = settings.attn_implementation or ("eager" if settings.eager_attention else "sdpa")
    sharding, offloaded = _configured_sharding(settings, source)
    # FSDP can checkpoint activations itself (fsdp_config.activation_checkpointing): the same memory.
    checkpointing = settings.gradient_checkpointing or _fsdp_options(settings).get("activation_checkpointing")
    return TrainingSetup(
        method=method,
        dtype="bf16" if settings.bf16 else "fp16" if settings.fp16 else "fp32",
        base_quantisation=quantisation,
        double_quant=bool((settings.bnb_config_kwargs or {}).get("bnb_4bit_use_double_quant", True)),
        optimizer=settings.optimizer,
        seq_len=settings.sequence_len,
        micro_batch_size=settings.micro_batch_size,
        gradient_checkpointing="off" if not checkpointing else
        "offload" if checkpointing in ("offload", "offload_disk") else "recompute",
        eager_attention=attention == "eager",
        loss="fused" if settings.cut_cross_entropy or settings.liger_fused_linear_cross_entropy else
        "chunked" if settings.chunked_cross_entropy else "full",
        chunked_loss_chunks=settings.chunked_cross_entropy_num_chunks or 8,
        lora_r=settings.lora_r,
        lora_targets=_lora_targets(settings),
        lora_modules_to_save=tuple(settings.lora_modules_to_save or ()),
        sharding=sharding,
        offloaded=offloaded,
    )


def _lora_targets(settings: AxolotlSettings) -> tuple[str, ...] | str:
    if settings.lora_target_linear:
        return ALL_LINEAR
    targets = settings.lora_target_modules
    if isinstance(targets, str):
        return ALL_LINEAR if targets in ("all-linear", "all_linear") else targets
    return tuple(targets) if targets else PEFT_DEFAULT_TARGETS


SHARDED_STATE = frozenset({"weights", "adapter", "gradients", "optimizer"})


def _configured_sharding(settings: AxolotlSettings, source: str) -> tuple[Sharding | None, frozenset[str]]:
    if settings.fsdp_config is not None or settings.fsdp:
        options = _fsdp_options(settings)
        legacy = set(settings.fsdp or ())
        keeps_params_gathered = ("shard_grad_op" in legacy or options.get("reshard_after_forward") is False
                                 or str(options.get("sharding_strategy", "")).upper() in ("SHARD_GRAD_OP", "2"))
        offload = "offload" in legacy or bool(options.get("offload_params"))
        return ("zero2" if keeps_params_gathered else "fsdp"), (SHARDED_STATE if offload else frozenset())
    if settings.deepspeed:
        return _deepspeed_sharding(settings.deepspeed, source)
    return None, frozenset()


def _fsdp_options(settings: AxolotlSettings) -> dict[str, Any]:
    """fsdp_config without the fsdp_ prefix FSDP1 spelled its keys with (fsdp_offload_params, ...)."""
    return {key.removeprefix("fsdp_"): value for key, value in (settings.fsdp_config or {}).items()}


def _deepspeed_sharding(deepspeed: str | dict[str, Any], source: str) -> tuple[Sharding, frozenset[str]]:
    config: Any = deepspeed
    if isinstance(deepspeed, str):
        path = Path(deepspeed)
        if not path.is_file():
            # Axolotl's bundled configs (deepspeed_configs/zero3_bf16.json, ...) name their stage.
            stage = re.search(r"zero([0-3])", path.name)
            if not stage:
                raise StepInputError(f"{source}: deepspeed: {deepspeed}: no such file, and its name does not "
                                     "say the ZeRO stage (zero1/zero2/zero3)")
            offloaded = frozenset({"optimizer", "weights"} if "offload" in path.name else ())
            return _stage_sharding(int(stage.group(1))), offloaded
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise StepInputError(f"{source}: deepspeed: {deepspeed}: not a readable JSON file ({error})") from None
    if not isinstance(config, dict):
        raise StepInputError(f"{source}: deepspeed: {deepspeed}: not a DeepSpeed config (a JSON object is expected)")
    zero = config.get("zero_optimization", {})

    def offloads(key: str) -> bool:
        return str(zero.get(key, {}).get("device", "none")) in ("cpu", "nvme")

    offloaded_parts = {"optimizer"} if offloads("offload_optimizer") else set()
    offloaded_parts |= {"weights", "adapter"} if offloads("offload_param") else set()
    return _stage_sharding(int(zero.get("stage", 0))), frozenset(offloaded_parts)


def _stage_sharding(stage: int) -> Sharding:
    return ("none", "zero1", "zero2", "zero3")[stage]


def cli_settings(*, method: Method | None = None, seq_len: int | None = None,
                 micro_batch_size: int | None = None, dtype: Dtype | None = None, optimizer: str | None = None,
                 lora_r: int | None = None, lora_target_modules: str | None = None,
                 gradient_checkpointing: bool | None = None) -> dict[str, Any]:
    """The CLI flags as the Axolotl keys they stand for (only the flags given)."""
    settings: dict[str, Any] = {}
    if method:
        settings.update(adapter=None if method == "full" else method, load_in_4bit=method == "qlora")
        if method != "lora":
            settings["load_in_8bit"] = False
    if dtype:
        settings.update(bf16=dtype == "bf16", fp16=dtype == "fp16")
    if lora_target_modules:
        targets = [name.strip() for name in lora_target_modules.split(",") if name.strip()]
        linear = targets in (["all-linear"], ["all_linear"])
        settings.update(lora_target_linear=linear, lora_target_modules=None if linear else targets)
    given = {"sequence_len": seq_len, "micro_batch_size": micro_batch_size, "optimizer": optimizer,
             "lora_r": lora_r, "gradient_checkpointing": gradient_checkpointing}
    settings.update({key: value for key, value in given.items() if value is not None})
    return settings


def resolve_sharding(requested: Sharding | Literal["auto"], setup: TrainingSetup, gpus: int) -> Sharding:
    """`auto`: what the Axolotl config sets up, else FSDP across several GPUs (the reference run)."""
    if requested != "auto":
        return requested
    return setup.sharding or ("fsdp" if gpus > 1 else "none")
