"""Published GPU memory measurements beside the estimate for the same setup, as ratios.

Each row states its setup as Axolotl keys plus what the measured stack did differently from
Axolotl 0.19 (`stack`: TrainingSetup fields no Axolotl key sets), where it comes from, and what
was measured: `device` rows give the GPU's memory at the longest context that fitted (so the
run used at most that, CUDA context included); `reserved` rows give torch's peak reserved
memory (no CUDA context). Rows whose setup cannot be reproduced are in LEFT_OUT with the reason.
`python -m steps.memory.calibration` prints the table (benchmarks/README.md quotes it).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from steps.memory.inventory import inventory_from_config, load_inventory
from steps.memory.model import CUDA_CONTEXT_BYTES, GIB, memory_totals, per_gpu_bytes
from steps.memory.settings import training_setup

UNSLOTH_CONTEXT_TABLE = "https://docs.unsloth.ai/basics/unsloth-benchmarks (also unsloth.ai/blog/llama3-3)"
# Unsloth's "Hugging Face + FA2" baseline: transformers + peft as of December 2024. Plain peft's
# prepare_model_for_kbit_training leaves embeddings, lm_head and norms in fp32, and transformers
# 4.47's ForCausalLMLoss sliced a shifted fp32 copy of the logits.
HF_PEFT_2024 = {"fp32_unquantised": True, "loss": "shifted"}
UNSLOTH_QLORA = {"adapter": "qlora", "load_in_4bit": True, "lora_r": 32, "lora_target_linear": True,
                 "micro_batch_size": 1, "gradient_checkpointing": True, "bf16": True,
                 "attn_implementation": "flash_attention_2",
                 "optimizer": "adamw_8bit"}  # the optimizer of Unsloth's notebooks; the table does not say

LLAMA_33_70B = {  # meta-llama/Llama-3.3-70B-Instruct config.json (architecture fields)
    "model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
    "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256,
    "tie_word_embeddings": False,
}


@dataclass(frozen=True)
class Measurement:
    label: str
    model: str | dict[str, Any]   # a file in shared/data/model-configs, or an inline config.json
    settings: dict[str, Any]      # Axolotl keys
    measured_gib: float
    kind: Literal["device", "reserved"]
    source: str
    stack: dict[str, Any] = field(default_factory=dict)
    gpus: int = 1


def _unsloth_llama_8b(gpu_gb: int, tokens: int) -> Measurement:
    return Measurement(f"Llama-3.1-8B QLoRA r32, {tokens:,} tokens, {gpu_gb} GB GPU", "llama-3.1-8b",
                       {**UNSLOTH_QLORA, "sequence_len": tokens}, gpu_gb, "device", UNSLOTH_CONTEXT_TABLE,
                       HF_PEFT_2024)


MEASUREMENTS: tuple[Measurement, ...] = (
    *(_unsloth_llama_8b(gpu_gb, tokens) for gpu_gb, tokens in
      ((12, 932), (16, 2551), (24, 5789), (40, 12264), (48, 15502), (80, 28454))),
    Measurement("Llama-3.3-70B QLoRA r32, 6,916 tokens, 80 GB GPU", LLAMA_33_70B,
                {**UNSLOTH_QLORA, "sequence_len": 6916}, 80, "device", UNSLOTH_CONTEXT_TABLE, HF_PEFT_2024),
)

LEFT_OUT: dict[str, str] = {
    "Unsloth, Llama-3.1-8B HF+FA2 on 8 GB": "out of memory at any length: no number to compare",
    "Unsloth, Llama-3.3-70B HF+FA2 on 48 GB": "out of memory at any length: no number to compare",
    "Unsloth, Gemma-2-9B HF+FA2 2.6k tokens on 24 GB (unsloth.ai/blog/gemma2)":
        "the batch size of the context test is not given (the post's speed tests use 2); the estimate is "
        "right at batch 1 and 60% high at batch 2, so the row cannot decide anything",
    "torchtune README, Llama-3.1 8B LoRA / QLoRA on 1x 4090 (16.2 / 7.4 GiB)":
        "measured with torch.compile, which fuses the chunked loss's upcast and the activations, and with "
        "torchtune's chunked output projection, whose logits' gradient never exists whole; Axolotl runs "
        "eager by default. The estimate of the same shapes is 20-35% higher (on the safe side)",
    "torchtune README, Llama-3.1 8B full fine-tune on 1x 4090 (18.9 GiB)":
        "optimizer_in_bwd with a paged 8-bit AdamW: each gradient is freed inside the backward pass and the "
        "state is paged to the CPU, neither of which Axolotl does",
    "torchtune README, A6000 and 8x A100 rows":
        "the README does not say which memory options differ from the 4090 rows (checkpointing, offload)",
    "torchtune's earlier Llama-2 7B table (QLoRA 9.29 GB, LoRA 17.18 GB on a 4090, ...)":
        "alpaca without packing: the sequence lengths, which decide the activations and logits, are not given",
    "Unsloth, Llama-3.1-70B on 80 GB: HF+FA2 fits ~7K tokens (unsloth.ai/blog/llama3-1)":
        "rounded to thousands, and the same setup as the Llama-3.3-70B row kept above (6,916 tokens)",
    "PEFT README (T0_3B, mt0-xxl, bloomz-7b1)":
        "encoder-decoder and BLOOM models, families the estimate does not count from config.json",
}


@dataclass(frozen=True)
class CalibrationRow:
    measurement: Measurement
    estimate_gib: float

    @property
    def ratio(self) -> float:
        return self.estimate_gib / self.measurement.measured_gib


def estimate_for(measurement: Measurement, model_configs: Path) -> float:
    """The estimate in GiB, counted as the measurement counted (without the CUDA context for `reserved`)."""
    if isinstance(measurement.model, dict):
        inventory = inventory_from_config(measurement.label, measurement.model)
    else:
        inventory = load_inventory(str(model_configs / f"{measurement.model}.json"))
    setup = replace(training_setup(measurement.settings, measurement.label), **measurement.stack)
    parts = per_gpu_bytes(memory_totals(inventory, setup), gpus=measurement.gpus,
                          sharding="fsdp" if measurement.gpus > 1 else "none")
    total = sum(parts.values()) - (CUDA_CONTEXT_BYTES if measurement.kind == "reserved" else 0)
    return total / GIB


def calibration_rows(model_configs: Path) -> list[CalibrationRow]:
    return [CalibrationRow(m, estimate_for(m, model_configs)) for m in MEASUREMENTS]


def format_table(rows: list[CalibrationRow]) -> str:
    lines = ["| setup | stack | measured | estimate | ratio | source |", "|---|---|---|---|---|---|"]
    for row in rows:
        m = row.measurement
        stack = ", ".join(f"{key}={value}" for key, value in m.stack.items()) or "Axolotl 0.19"
        measured = f"{m.measured_gib:g} GiB ({'GPU memory, longest fitting context' if m.kind == 'device' else 'torch peak reserved'})"
        lines.append(f"| {m.label} | {stack} | {measured} | {row.estimate_gib:.1f} GiB | {row.ratio:.2f} | {m.source} |")
    lines += ["", "Left out:"] + [f"- {what}: {why}" for what, why in LEFT_OUT.items()]
    return "\n".join(lines)


def main() -> None:
    import sys

    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    print(format_table(calibration_rows(shared / "model-configs")))


if __name__ == "__main__":
    main()
