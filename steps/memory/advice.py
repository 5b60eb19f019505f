"""What would fit instead: the fewest GPUs for a method, a cheaper method, a setting that saves memory."""
from __future__ import annotations

from collections.abc import Mapping

from steps.memory.model import COMPONENT_LABELS, GIB, MemoryTotals, per_gpu_bytes
from steps.memory.settings import METHODS, Method, Sharding

MAX_GPUS = 1024
METHOD_LABELS: dict[Method, str] = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA"}
SHARDING_LABELS: dict[Sharding, str] = {"none": "no sharding", "zero1": "DeepSpeed ZeRO-1",
                                        "zero2": "ZeRO-2 / FSDP SHARD_GRAD_OP", "zero3": "DeepSpeed ZeRO-3",
                                        "fsdp": "FSDP"}


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f}"


def gpu_count(gpus: int) -> str:
    return f"{gpus} GPU{'s' if gpus != 1 else ''}"


def fewest_gpus(totals: MemoryTotals, gpu_memory: float, offloaded: frozenset[str]) -> int | None:
    """The fewest GPUs this fits on: one GPU as it is, more with FSDP; None if no number will do."""
    for gpus in range(1, MAX_GPUS + 1):
        sharding: Sharding = "fsdp" if gpus > 1 or offloaded else "none"
        if sum(per_gpu_bytes(totals, gpus=gpus, sharding=sharding, offloaded=offloaded).values()) <= gpu_memory:
            return gpus
    return None


def advise(totals_by_method: Mapping[Method, MemoryTotals], method: Method, *, gpus: int, gpu_memory: float,
           sharding: Sharding, offloaded: frozenset[str], savings: Mapping[str, float]) -> list[str]:
    """Plain sentences: the verdict first, then what would fit. `savings`: setting -> bytes per GPU it saves."""
    label = METHOD_LABELS[method]
    parts = per_gpu_bytes(totals_by_method[method], gpus=gpus, sharding=sharding, offloaded=offloaded)
    used = sum(parts.values())
    setting = f"{gpus} × {gpu_memory / GIB:g} GiB with {SHARDING_LABELS[sharding]}"
    fewest = fewest_gpus(totals_by_method[method], gpu_memory, offloaded)
    if used <= gpu_memory:
        lines = [f"{label} fits on {setting}: {gib(used)} GiB per GPU, {gib(gpu_memory - used)} GiB headroom"]
        if fewest is not None and fewest < gpus:
            lines.append(f"{label} also fits on {gpu_count(fewest)}{' with FSDP' if fewest > 1 else ''}")
        return lines

    largest = max(parts, key=parts.__getitem__)
    lines = [f"{label} does not fit on {setting}: it needs {gib(used)} GiB per GPU; "
             f"the largest part is {COMPONENT_LABELS[largest]} ({gib(parts[largest])} GiB)"]
    if fewest is None:
        unshardable = parts["activations"] + parts["logits"] + parts["cuda_overhead"]
        lines.append(f"{label} does not fit on any number of {gpu_memory / GIB:g} GiB GPUs: activations, logits "
                     f"and CUDA overhead alone take {gib(unshardable)} GiB per GPU")
    else:
        lines.append(f"{label} needs {gpu_count(fewest)} of {gpu_memory / GIB:g} GiB"
                     f"{' with FSDP' if fewest > 1 else ''}")
    fits_here = fewest is not None and fewest <= gpus
    for cheaper in METHODS[METHODS.index(method) + 1:]:
        if cheaper not in totals_by_method:
            continue
        cheaper_fewest = fewest_gpus(totals_by_method[cheaper], gpu_memory, offloaded)
        if cheaper_fewest is not None and cheaper_fewest <= gpus:
            fits_here = True
            lines.append(f"{METHOD_LABELS[cheaper]} fits on {gpu_count(cheaper_fewest)}"
                         f"{' with FSDP' if cheaper_fewest > 1 else ''}")
    if not fits_here:
        lines.append(f"no method fits on {gpus} × {gpu_memory / GIB:g} GiB GPUs")
    lines += [f"{change} would save {gib(saved)} GiB per GPU" for change, saved in savings.items() if saved > 0]
    return lines
