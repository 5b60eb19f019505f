"""Find the checkpoint a restarted training resumes from.

The Hugging Face Trainer writes `trainer_state.json` last when it saves `checkpoint-N/`
(after the weights, optimizer, scheduler and RNG state), so a checkpoint whose state file
parses and names step N is complete; a pod killed mid-save leaves one without it.
Axolotl's own auto-resume takes the highest-numbered folder whatever its state, which
would crash on such a partial save; hence this module.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
# What a checkpoint holds as model weights: a PEFT adapter, full weights, or FSDP shards.
WEIGHT_PATTERNS = ("adapter_model.*", "model*.safetensors", "pytorch_model*.bin", "pytorch_model_fsdp_*")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def list_checkpoints(output_dir: str | Path) -> list[Checkpoint]:
    """Every `checkpoint-N` folder in `output_dir`, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and path.is_dir():
            found.append(Checkpoint(path, int(match.group(1))))
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def is_complete(checkpoint: Checkpoint) -> bool:
    try:
        state = json.loads((checkpoint.path / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(state, dict) or state.get("global_step") != checkpoint.step:
        return False
    return any(any(checkpoint.path.glob(pattern)) for pattern in WEIGHT_PATTERNS)


def newest_complete(output_dir: str | Path) -> Checkpoint | None:
    complete = [checkpoint for checkpoint in list_checkpoints(output_dir) if is_complete(checkpoint)]
    return complete[-1] if complete else None


def remove_incomplete(output_dir: str | Path) -> list[Checkpoint]:
    """Delete partial checkpoints (they can never be resumed from); returns what was removed."""
    removed = [checkpoint for checkpoint in list_checkpoints(output_dir) if not is_complete(checkpoint)]
    for checkpoint in removed:
        shutil.rmtree(checkpoint.path)
    return removed
