"""Merge the trained LoRA into the base model with `axolotl merge-lora`, then prove the result complete and loadable.

Axolotl's merge runs in this interpreter (its `axolotl merge-lora` command's function), so the
step pays for importing torch, transformers and Axolotl once, not once more in a child process
for a megabyte-sized adapter. Axolotl writes `<output_dir>/merged`. A merged model that is complete and was made from
the current adapter is kept; one left incomplete by a killed pod, or made from another
adapter, is removed and merged again.
"""
from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import StepFailure, StepInputError, read_json, step_errors, step_main, write_json_atomic
from steps.contract import MERGED_FOLDER, MERGED_RECORD
from steps.torch_threads import match_interop_threads
from steps.training.axolotl_config import load_yaml_config
from steps.training.in_process import prepare_axolotl_environment
from steps.training.launch import require_axolotl
from steps.training.logs import step_logger
from steps.training.model_folder import adapter_problems, model_folder_problems

LOG = step_logger("steps.merge_lora")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
HASH_CHUNK_BYTES = 1 << 20
LOAD_CHECK_TEXT = "The answer is"


class MergeCheckError(StepFailure):
    """The merged model is incomplete or does not load."""


def merged_dir(cfg: dict[str, Any]) -> Path:
    return Path(cfg["output_dir"]) / MERGED_FOLDER


def merge_record_path(cfg: dict[str, Any]) -> Path:
    """Beside `merged/`, not in it, so the uploaded folder holds only the model."""
    return Path(cfg["output_dir"]) / MERGED_RECORD


def adapter_fingerprint(adapter_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        path = adapter_dir / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as handle:
                while chunk := handle.read(HASH_CHUNK_BYTES):
                    digest.update(chunk)
    return digest.hexdigest()


def load_check(model_dir: Path) -> None:
    """Load the merged model and tokenizer with transformers and run one forward pass."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
        with torch.no_grad():
            logits = model(**tokenizer(LOAD_CHECK_TEXT, return_tensors="pt")).logits
    except Exception as error:  # any failure to load is the finding itself
        raise MergeCheckError(f"{model_dir} does not load with transformers: {error}") from error
    if not torch.isfinite(logits).all():
        raise MergeCheckError(f"{model_dir} loads but its logits are not finite (NaN/inf weights?)")


def axolotl_merge(config: Path, adapter_dir: Path) -> None:
    """What `axolotl merge-lora CONFIG --lora-model-dir DIR` does, in this interpreter."""
    prepare_axolotl_environment()
    match_interop_threads()
    from axolotl.cli.merge_lora import do_cli

    do_cli(config=str(config), lora_model_dir=str(adapter_dir))


def _read_train_config(config: Path) -> dict[str, Any]:
    cfg = load_yaml_config(config)
    if not cfg.get("output_dir"):
        raise StepInputError(f"--config {config}: no output_dir; pass RUN/train/axolotl.yaml written by steps.train")
    if cfg.get("adapter") not in ("lora", "qlora"):
        raise StepInputError(f"--config {config}: adapter is {cfg.get('adapter')!r}; only a lora or qlora "
                             f"adapter can be merged")
    return cfg


def _is_current(cfg: dict[str, Any], fingerprint: str) -> bool:
    record = merge_record_path(cfg)
    if not record.is_file() or model_folder_problems(merged_dir(cfg)):
        return False
    try:
        recorded = read_json(record)
    except (ValueError, UnicodeDecodeError):  # torn by a killed pod: merge again
        return False
    return isinstance(recorded, dict) and recorded.get("adapter_sha256") == fingerprint


def merge_lora(config: Path, lora_model_dir: Path | None = None) -> int:
    """Merge (or keep a current merge); returns the exit code; raises MergeCheckError on a bad result."""
    require_axolotl()
    cfg = _read_train_config(config)
    adapter_dir = Path(lora_model_dir or cfg["output_dir"])
    problems = adapter_problems(adapter_dir)
    if problems:
        raise StepInputError(f"--lora-model-dir {adapter_dir}: no complete adapter ({'; '.join(problems)}); "
                             f"did steps.train finish?")
    fingerprint = adapter_fingerprint(adapter_dir)
    merged = merged_dir(cfg)
    if _is_current(cfg, fingerprint):
        LOG.info("%s is complete and merged from the current adapter; nothing to do", merged)
        return 0
    if merged.exists():
        LOG.warning("removing %s: incomplete, or merged from another adapter", merged)
        shutil.rmtree(merged)
    merge_record_path(cfg).unlink(missing_ok=True)

    LOG.info("running axolotl merge-lora %s --lora-model-dir %s", config, adapter_dir)
    try:
        axolotl_merge(config, adapter_dir)
    except Exception as error:  # noqa: BLE001 - Axolotl's own failure: exit 1, as its CLI would
        raise StepFailure(f"axolotl merge-lora {config} failed: {type(error).__name__}: {error}") from error
    problems = model_folder_problems(merged)
    if problems:
        raise MergeCheckError(f"axolotl merge-lora finished but {merged} is incomplete: {'; '.join(problems)}")
    load_check(merged)
    write_json_atomic(merge_record_path(cfg), {
        "adapter_dir": str(adapter_dir),
        "adapter_sha256": fingerprint,
        "merged_dir": str(merged),
        "merged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    LOG.info("merged model is complete and loads: %s", merged)
    return 0


# --- command line ------------------------------------------------------------------------

@step_errors
def merge_lora_command(
    config: Annotated[Path, typer.Option(help="The final config steps.train wrote (RUN/train/axolotl.yaml).")],
    lora_model_dir: Annotated[Path | None, typer.Option(help="Adapter folder (default: the config's output_dir).")] = None,
) -> None:
    """Merge the LoRA adapter into the base model (<output_dir>/merged) and check it loads."""
    raise typer.Exit(merge_lora(config, lora_model_dir))


def main() -> None:
    step_main(merge_lora_command)


if __name__ == "__main__":
    main()
