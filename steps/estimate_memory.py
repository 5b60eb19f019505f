"""The memory gate: will this model, method and settings fit on these GPUs? Exit 3 when not.

Runs before any GPU is requested for training, from the parameter count (safetensors
headers or config.json, never the weights) and the Axolotl settings of the run.
Also the `tunebench estimate` command.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from steps.common import EXIT_FAILURE, EXIT_GATE_CLOSED, StepInputError, TransientFailure, fail, step_main, write_json_atomic

ShardingChoice = Literal["auto", "none", "fsdp", "zero3", "zero2", "zero1"]
MAX_GPUS = 2**20
MAX_GPU_MEMORY_GIB = 2**20  # a mebibyte of GiB: far past any accelerator, and the byte counts stay exact


def _short(value: object) -> str:
    """A number as the user gave it, a 400-digit one cut short."""
    text = str(value)
    return text if len(text) <= 20 else f"{text[:6]}...({len(text)} characters)"
Mode = Literal["fail", "warn"]


def estimate_memory(model: str, *, gpus: int, gpu_memory_gib: float, revision: str | None = None,
                    axolotl_config: str | Path | None = None, settings: dict[str, Any] | None = None,
                    sharding: ShardingChoice = "auto") -> dict[str, Any]:
    """The estimate as the dict written to estimate.json.

    `settings` are Axolotl keys merged over the YAML's top level (--overrides, then CLI flags).
    Without a YAML they go over a typical QLoRA/LoRA config (see TYPICAL_AXOLOTL_CONFIG).
    """
    from steps.memory.advice import advise, fewest_gpus
    from steps.memory.inventory import load_inventory
    from steps.memory.model import COMPONENTS, GIB, memory_totals, per_gpu_bytes
    from steps.memory.settings import METHODS, TYPICAL_AXOLOTL_CONFIG, resolve_sharding, training_setup
    from steps.training.axolotl_config import load_yaml_config

    revision = revision or None  # the DAG passes "" for "not pinned"
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 1 <= gpus <= MAX_GPUS:
        raise StepInputError(f"--gpus {_short(gpus)}: must be a whole number of GPUs from 1 to {MAX_GPUS:,}")
    if not (isinstance(gpu_memory_gib, (int, float)) and 0 < gpu_memory_gib <= MAX_GPU_MEMORY_GIB):
        raise StepInputError(f"--gpu-memory-gib {_short(gpu_memory_gib)}: must be a finite positive size in GiB, "
                             f"at most {MAX_GPU_MEMORY_GIB:,} (e.g. 48, 80)")
    settings = settings or {}
    if not axolotl_config and "adapter" not in settings:
        raise StepInputError("--method: needed when no --axolotl-config says the adapter (full, lora or qlora)")
    config = load_yaml_config(axolotl_config, what="--axolotl-config") if axolotl_config else dict(TYPICAL_AXOLOTL_CONFIG)
    config.update(settings)
    setup = training_setup(config, f"--axolotl-config {axolotl_config}" if axolotl_config else "training settings")
    inventory = load_inventory(model, revision)

    totals_by_method = {setup.method: memory_totals(inventory, setup)}
    for method in METHODS:
        if method not in totals_by_method:
            try:
                totals_by_method[method] = memory_totals(inventory, setup.with_method(method))
            except StepInputError:
                pass  # an alternative the settings cannot describe (LoRA targets absent): no advice about it
    totals = totals_by_method[setup.method]
    resolved = resolve_sharding(sharding, setup, gpus)
    gpu_memory = gpu_memory_gib * GIB
    per_gpu = per_gpu_bytes(totals, gpus=gpus, sharding=resolved, offloaded=setup.offloaded)
    used = sum(per_gpu.values())

    savings = {}
    if setup.gradient_checkpointing == "off":
        checkpointed = memory_totals(inventory, replace(setup, gradient_checkpointing="recompute"))
        savings["gradient_checkpointing: true"] = totals.activations - checkpointed.activations
    if totals.logits:
        savings["cut_cross_entropy: true (the loss in chunks)"] = totals.logits

    # Activations, logits and the CUDA overhead are per GPU whatever the sharding.
    whole_model = {name: totals.component(name) for name in COMPONENTS if name != "cuda_overhead"}
    whole_model["cuda_overhead"] = per_gpu["cuda_overhead"]
    return {
        "model": model,
        "revision": revision,
        "architecture": inventory.dims.architecture,
        "counted_from": inventory.counted_from,
        "parameters": totals.parameters,
        "trainable_parameters": totals.trainable_parameters,
        "setup": {
            "method": setup.method, "dtype": setup.dtype, "base_quantisation": setup.base_quantisation,
            "optimizer": setup.optimizer, "sequence_len": setup.seq_len,
            "micro_batch_size": setup.micro_batch_size, "gradient_checkpointing": setup.gradient_checkpointing,
            "eager_attention": setup.eager_attention, "loss": setup.loss,
            "lora_r": setup.lora_r,
            "lora_target_modules": setup.lora_targets if isinstance(setup.lora_targets, str)
            else list(setup.lora_targets),
            "lora_modules_to_save": list(setup.lora_modules_to_save),
            "offloaded_to_cpu": sorted(setup.offloaded),
            "axolotl_config": str(axolotl_config) if axolotl_config else None,
        },
        "gpus": gpus,
        "gpu_memory_gib": gpu_memory_gib,
        "gpu_memory_bytes": math.floor(gpu_memory),
        "sharding": resolved,
        "bytes": {name: math.ceil(whole_model[name]) for name in COMPONENTS},
        "per_gpu_bytes": {name: math.ceil(per_gpu[name]) for name in COMPONENTS},
        "per_gpu_total_bytes": math.ceil(used),
        "fits": used <= gpu_memory,
        "headroom_bytes": math.floor(gpu_memory - used),
        "headroom_gib": round((gpu_memory - used) / GIB, 2),
        "fewest_gpus": fewest_gpus(totals, gpu_memory, setup.offloaded),
        "advice": advise(totals_by_method, setup.method, gpus=gpus, gpu_memory=gpu_memory, sharding=resolved,
                         offloaded=setup.offloaded, savings=savings),
    }


def estimate_memory_command(
    model: Annotated[str, typer.Option(help="Hub repo id, local model directory, or a config.json.")],
    gpus: Annotated[int, typer.Option(help="GPUs the training step gets.")] = 1,
    gpu_memory_gib: Annotated[float, typer.Option(
        help="Memory of each GPU in GiB (48 for an L40S/A6000, 80 for an H100).")] = 80.0,
    method: Annotated[Literal["full", "lora", "qlora"] | None, typer.Option(
        help="Fine-tuning method (default: the adapter of --axolotl-config).")] = None,
    revision: Annotated[str | None, typer.Option(help="Hub revision of --model.")] = None,
    axolotl_config: Annotated[Path | None, typer.Option(
        help="Axolotl YAML; method, sequence_len, micro_batch_size, LoRA, optimizer, precision, "
             "gradient checkpointing and FSDP/DeepSpeed are read from it.")] = None,
    overrides: Annotated[str | None, typer.Option(
        help="JSON object of Axolotl settings merged over the YAML's top-level keys.")] = None,
    sharding: Annotated[ShardingChoice, typer.Option(
        help="auto: what the Axolotl config sets up, else FSDP on more than one GPU.")] = "auto",
    seq_len: Annotated[int | None, typer.Option(help="Tokens per sequence (Axolotl sequence_len).")] = None,
    micro_batch_size: Annotated[int | None, typer.Option(help="Sequences per GPU per step.")] = None,
    dtype: Annotated[Literal["fp32", "bf16", "fp16"] | None, typer.Option(
        help="Training precision (Axolotl bf16/fp16; neither is fp32).")] = None,
    optimizer: Annotated[str | None, typer.Option(
        help="Axolotl optimizer name, e.g. adamw_torch_fused, adamw_bnb_8bit.")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    lora_target_modules: Annotated[str | None, typer.Option(
        help="Comma-separated LoRA target modules, or all-linear.")] = None,
    gradient_checkpointing: Annotated[bool | None, typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute activations in the backward pass.")] = None,
    mode: Annotated[Mode, typer.Option(
        help="fail: exit 3 when it does not fit (the gate); warn: only warn.")] = "fail",
    out: Annotated[Path | None, typer.Option(help="Write the estimate to this JSON file (estimate.json).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON instead of a table.")] = False,
) -> None:
    """Estimate the GPU memory of a fine-tuning run and say whether it fits (exit 3 if not, in fail mode)."""
    from steps.memory.settings import cli_settings
    from steps.training.axolotl_config import parse_overrides

    try:
        settings = parse_overrides(overrides) | cli_settings(
            method=method, seq_len=seq_len, micro_batch_size=micro_batch_size, dtype=dtype, optimizer=optimizer,
            lora_r=lora_r, lora_target_modules=lora_target_modules, gradient_checkpointing=gradient_checkpointing)
        estimate = estimate_memory(model, gpus=gpus, gpu_memory_gib=gpu_memory_gib, revision=revision,
                                   axolotl_config=axolotl_config, settings=settings, sharding=sharding)
    except StepInputError as error:
        fail(str(error))
    except TransientFailure as error:  # the hub unreachable or failing: Argo's retry may cure it
        fail(str(error), EXIT_FAILURE)
    estimate["mode"] = mode
    if out is not None:
        write_json_atomic(out, estimate)
    if as_json:
        print(json.dumps(estimate, indent=2))
    else:
        from steps.memory.table import print_estimate

        print_estimate(estimate)
    if not estimate["fits"]:
        if mode == "fail":
            raise SystemExit(EXIT_GATE_CLOSED)
        print(f"warning: {estimate['advice'][0]} (mode warn: continuing)", file=sys.stderr)


def main() -> None:
    step_main(estimate_memory_command)


if __name__ == "__main__":
    main()
