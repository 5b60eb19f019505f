"""Download each model (and the eval dataset) into the shared HF cache once, before the pods that read it.

Many eval pods downloading the same repo into one ReadWriteMany cache corrupt it or wait on
stale lock files (huggingface_hub issues #2543, #4306); after this step they load offline
(`HF_HUB_OFFLINE=1`). One `snapshot_download` per model, at the requested revision (the cache
then maps that revision to the commit it got, which is what offline loads resolve), and the
commit is recorded. A local model directory or dataset folder (the local runner's tiny
assets) is only checked. For the base model it also sizes the merge-lora pod from the
weights' parameter count (`--merge-memory-out`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import StepInputError, hub_errors, step_main, write_json_atomic, write_text_atomic
from steps.contract import REPO_ID

# What vLLM and transformers read; other formats' copies of the weights would only take space.
IGNORED_FILES = ("*.pth", "*.pt", "original/*", "*.gguf", "*.onnx", "*.h5", "*.msgpack", "*.ot",
                 "flax_model*", "tf_model*", "*.tflite", "*.mlmodel")
GIB = 2**30
# merge-lora holds the base model in bf16, the merged copy of each weight as it is saved, and the
# load check of the result: twice the bf16 weights, plus the interpreter, torch and Axolotl.
MERGE_BF16_COPIES = 2
MERGE_OVERHEAD_GIB = 2
MERGE_MIN_GIB = 4


def merge_memory(parameters: int) -> str:
    """The merge-lora pod's memory request and limit, as a Kubernetes quantity in whole GiB."""
    needed = MERGE_BF16_COPIES * parameters * 2 / GIB + MERGE_OVERHEAD_GIB
    return f"{max(MERGE_MIN_GIB, math.ceil(needed))}Gi"


def parse_models(value: str) -> list[str]:
    """`--models`: a JSON list of hub ids or local directories (empty items are skipped)."""
    try:
        models = json.loads(value or "[]")
    except json.JSONDecodeError as error:
        raise StepInputError(f"--models {value!r} is not JSON ({error.msg}); give a list, e.g. "
                             '["google/gemma-2-2b"]') from None
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise StepInputError(f"--models {value!r} must be a JSON list of strings")
    return [m.strip() for m in models if m.strip()]


def _ignored_weights(repo_id: str, revision: str) -> list[str]:
    """Skip PyTorch .bin weights when the repo also has safetensors (many repos hold both)."""
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(repo_id, revision=revision)
    has_safetensors = any(name.endswith(".safetensors") for name in files)
    return [*IGNORED_FILES, *(["*.bin"] if has_safetensors else [])]


def fetch_model(model: str, revision: str | None = None) -> dict[str, Any]:
    """One model in the cache: a local directory is checked, a hub repo downloaded once."""
    local = Path(model)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise StepInputError(f"--model {model}: no config.json in this directory")
        return {"model": model, "local": True, "path": str(local)}
    if not REPO_ID.fullmatch(model):
        raise StepInputError(f"--model {model}: no such directory, and not a hub repo id (ORG/NAME)")
    from huggingface_hub import snapshot_download

    wanted = revision or "main"
    what = f"--model {model} (revision {wanted})"
    with hub_errors(what):
        ignored = _ignored_weights(model, wanted)
        path = snapshot_download(model, revision=wanted, ignore_patterns=ignored)
    return {"model": model, "local": False, "revision": wanted, "commit": Path(path).name, "path": path}


def fetch_dataset(dataset: str, revision: str | None = None) -> dict[str, Any]:
    """The MMLU-Pro dataset loaded once the way eval loads it, so eval pods find it offline."""
    from steps.mmlu_pro.data import load_splits

    splits, resolved = load_splits(dataset, revision or None)
    return {"dataset": dataset, "revision": resolved, "rows": {name: len(rows) for name, rows in splits.items()}}


def model_parameters(path: str) -> int:
    from steps.memory.inventory import load_inventory

    return load_inventory(path).parameters


def prefetch(models: list[str], model: str | None = None, revision: str | None = None,
             dataset: str | None = None, dataset_revision: str | None = None) -> dict[str, Any]:
    """Everything fetched or checked: `models` at their default branch, `model` at `revision`, `dataset`."""
    record: dict[str, Any] = {"models": [fetch_model(m) for m in dict.fromkeys(models)]}
    if model:
        record["model"] = fetch_model(model, revision)
    if dataset:
        record["dataset"] = fetch_dataset(dataset, dataset_revision)
    return record


def prefetch_model_command(
    out: Annotated[Path, typer.Option(help="JSON record of what was fetched (model commits, dataset revision).")],
    models: Annotated[str, typer.Option(help='JSON list of hub ids or model directories, at their default branch, e.g. ["google/gemma-2-2b"].')] = "[]",
    model: Annotated[str, typer.Option(help="One more model, fetched at --revision; empty for none.")] = "",
    revision: Annotated[str, typer.Option(help="Hub revision of --model (branch, tag or commit); empty means main.")] = "",
    dataset: Annotated[str, typer.Option(help="MMLU-Pro dataset: hub id or folder; empty for none.")] = "",
    dataset_revision: Annotated[str, typer.Option(help="Hub revision of --dataset; empty means main.")] = "",
    merge_memory_out: Annotated[Path | None, typer.Option(
        help="Write the merge-lora pod's memory (e.g. 12Gi), sized from --model's parameters, to this file.")] = None,
) -> None:
    """Fill the shared HF cache once, so the pods after this step can run with HF_HUB_OFFLINE=1."""
    wanted = parse_models(models)
    if merge_memory_out is not None and not model.strip():
        raise StepInputError("--merge-memory-out needs --model (the base model it sizes the merge for)")
    record = prefetch(wanted, model.strip() or None, revision.strip() or None,
                      dataset.strip() or None, dataset_revision.strip() or None)
    if merge_memory_out is not None:
        parameters = model_parameters(record["model"]["path"])
        record["model"].update(parameters=parameters, merge_memory=merge_memory(parameters))
        write_text_atomic(merge_memory_out, record["model"]["merge_memory"])
    write_json_atomic(out, record)
    fetched = [m["model"] for m in record["models"]] + ([record["model"]["model"]] if "model" in record else [])
    print(f"prefetched {len(fetched)} model(s){' and the dataset' if 'dataset' in record else ''}: "
          f"{', '.join(fetched) or 'none'} -> {out}")


def main() -> None:
    step_main(prefetch_model_command)


if __name__ == "__main__":
    main()
