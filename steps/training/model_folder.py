"""Is a Hugging Face model folder complete: config, tokenizer and every weight shard, none truncated.

Reads only JSON and safetensors headers (no torch), so the upload image can use it too.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

TOKENIZER_VOCAB_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SAFETENSORS_HEADER_LENGTH_BYTES = 8


def _json_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{path.name} is not valid JSON ({error})"
    return None


def safetensors_problem(path: Path) -> str | None:
    """A problem with a .safetensors file, or None: the header parses and the data is all there."""
    if not path.is_file():
        return f"{path.name} is missing"
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (header_length,) = struct.unpack("<Q", handle.read(SAFETENSORS_HEADER_LENGTH_BYTES))
            if header_length > size:
                return f"{path.name} is truncated (header of {header_length} bytes in a {size}-byte file)"
            header = json.loads(handle.read(header_length))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{path.name} has no readable safetensors header ({error})"
    data_end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    expected = SAFETENSORS_HEADER_LENGTH_BYTES + header_length + data_end
    if size < expected:
        return f"{path.name} is truncated ({size} of {expected} bytes)"
    return None


def _weight_files(folder: Path) -> tuple[list[Path], list[str]]:
    for index_name in WEIGHT_INDEXES:
        index = folder / index_name
        if index.exists():
            problem = _json_problem(index)
            if problem:
                return [], [problem]
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map") or {}
            shards = sorted({folder / name for name in weight_map.values()})
            if not shards:
                return [], [f"{index_name} lists no weight shards"]
            return shards, []
    for name in SINGLE_WEIGHT_FILES:
        if (folder / name).exists():
            return [folder / name], []
    return [], [f"no weights ({' or '.join(SINGLE_WEIGHT_FILES + WEIGHT_INDEXES)})"]


def model_folder_problems(folder: str | Path) -> list[str]:
    """Everything that keeps `folder` from being a complete, loadable model; empty when it is complete."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a directory"]
    problems = [p for p in (_json_problem(folder / name) for name in ("config.json", "tokenizer_config.json")) if p]
    if not any((folder / name).is_file() for name in TOKENIZER_VOCAB_FILES):
        problems.append(f"no tokenizer vocabulary ({', '.join(TOKENIZER_VOCAB_FILES)})")
    shards, shard_problems = _weight_files(folder)
    problems += shard_problems
    for shard in shards:
        if shard.suffix == ".safetensors":
            problem = safetensors_problem(shard)
        else:
            problem = None if shard.is_file() and shard.stat().st_size > 0 else f"{shard.name} is missing or empty"
        if problem:
            problems.append(problem)
    return problems


def adapter_problems(folder: str | Path) -> list[str]:
    """Everything that keeps `folder` from holding a complete PEFT adapter; empty when it does."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a directory"]
    problems = [p for p in (_json_problem(folder / "adapter_config.json"),) if p]
    weights = folder / "adapter_model.safetensors"
    if weights.exists():
        problem = safetensors_problem(weights)
        problems += [problem] if problem else []
    elif not (folder / "adapter_model.bin").is_file():
        problems.append("no adapter weights (adapter_model.safetensors or adapter_model.bin)")
    return problems
