"""Measure what LoRA and full fine-tuning really allocate on one GPU, beside the memory estimate.

    python benchmarks/gpu_calibrate.py [--configs ../shared/data/model-configs]
        [--models llama-3.2-1b,gemma-2-2b] [--methods lora,full] [--seq-lens 1024,2048]
        [--steps 3] [--budget-s 420]

Needs one NVIDIA GPU and only torch, transformers, peft and accelerate: no Axolotl, no vLLM, no
network. Each model is built with random weights from its config.json (the numbers do not
depend on the values), trained for a few real steps as Axolotl would run it (bf16 weights,
gradient checkpointing, sdpa attention, fused torch AdamW, LoRA r16 on every linear layer in
fp32 as peft makes it), and torch's peak allocated/reserved memory is printed beside
`steps.memory`'s estimate without the CUDA context (which torch's counters do not see).
Runs that would pass --budget-s are skipped, saying so. `--device cpu` runs the same mechanics
without memory counters (the tests use it with a tiny config).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from steps.memory.inventory import inventory_from_config  # noqa: E402
from steps.memory.model import CUDA_CONTEXT_BYTES, GIB, memory_totals, per_gpu_bytes  # noqa: E402
from steps.memory.settings import training_setup  # noqa: E402

LORA_RANK = 16


@dataclass(frozen=True)
class Run:
    model: str
    method: str
    seq_len: int
    allocated_gib: float | None   # None on a CPU: torch counts only CUDA memory
    reserved_gib: float | None
    estimate_gib: float
    seconds: float

    @property
    def ratio(self) -> float | None:
        return None if self.reserved_gib is None else self.estimate_gib / self.reserved_gib


def axolotl_settings(method: str, seq_len: int) -> dict[str, Any]:
    settings = {"bf16": True, "sequence_len": seq_len, "micro_batch_size": 1, "gradient_checkpointing": True,
                "optimizer": "adamw_torch_fused", "attn_implementation": "sdpa"}
    if method == "lora":
        settings.update(adapter="lora", lora_r=LORA_RANK, lora_target_linear=True)
    return settings


def estimate_gib(name: str, config: dict[str, Any], method: str, seq_len: int) -> float:
    setup = training_setup(axolotl_settings(method, seq_len), f"{name} {method}")
    parts = per_gpu_bytes(memory_totals(inventory_from_config(name, config), setup), gpus=1, sharding="none")
    return (sum(parts.values()) - CUDA_CONTEXT_BYTES) / GIB


def train_steps(config: dict[str, Any], method: str, seq_len: int, steps: int, device: str) -> tuple[float | None, float | None]:
    """A few real optimizer steps; torch's peak allocated and reserved GiB (None off CUDA)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    hf_config = AutoConfig.for_model(**{**config, "use_cache": False})
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.gradient_checkpointing_enable()
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules="all-linear"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=cuda)
    generator = torch.Generator(device="cpu").manual_seed(0)
    for _ in range(steps):
        ids = torch.randint(0, hf_config.vocab_size, (1, seq_len), generator=generator).to(device)
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    peaks = (torch.cuda.max_memory_allocated() / GIB, torch.cuda.max_memory_reserved() / GIB) if cuda else (None, None)
    del model, optimizer, loss
    gc.collect()
    return peaks


def calibrate(configs: dict[str, dict[str, Any]], methods: list[str], seq_lens: list[int], *, steps: int,
              device: str, budget_s: float, log=print) -> list[Run]:
    runs: list[Run] = []
    started = time.monotonic()
    longest = 0.0
    for name, config in configs.items():
        for method in methods:
            for seq_len in seq_lens:
                if time.monotonic() - started + longest > budget_s:
                    log(f"skipped {name} {method} {seq_len}: the {budget_s:g} s budget would be passed")
                    continue
                began = time.monotonic()
                allocated, reserved = train_steps(config, method, seq_len, steps, device)
                took = time.monotonic() - began
                longest = max(longest, took)
                runs.append(Run(name, method, seq_len, allocated, reserved,
                                estimate_gib(name, config, method, seq_len), took))
    return runs


def format_runs(runs: list[Run]) -> str:
    def gib(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = ["| model | method | tokens | allocated GiB | reserved GiB | estimate GiB | estimate / reserved |",
             "|---|---|---|---|---|---|---|"]
    for run in runs:
        ratio = "-" if run.ratio is None else f"{run.ratio:.2f}"
        lines.append(f"| {run.model} | {run.method} | {run.seq_len} | {gib(run.allocated_gib)} | "
                     f"{gib(run.reserved_gib)} | {run.estimate_gib:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, default=ROOT.parent / "shared" / "data" / "model-configs")
    parser.add_argument("--models", default="llama-3.2-1b,gemma-2-2b")
    parser.add_argument("--methods", default="lora,full")
    parser.add_argument("--seq-lens", default="1024,2048")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=420)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("gpu_calibrate: no CUDA GPU here; nothing measured (--device cpu runs the mechanics only)")
            return 0
    configs = {}
    for name in args.models.split(","):
        path = args.configs / f"{name}.json"
        if not path.is_file():
            print(f"gpu_calibrate: {path} not found; pass --configs (the shared reference data's model-configs)")
            return 2
        configs[name] = json.loads(path.read_text(encoding="utf-8"))
    runs = calibrate(configs, args.methods.split(","), [int(n) for n in args.seq_lens.split(",")],
                     steps=args.steps, device=args.device, budget_s=args.budget_s)
    print(format_runs(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
