"""What a model is made of, read without downloading its weights.

In order of preference: the safetensors headers of a local model directory, the hub's
safetensors metadata (huggingface_hub reads only the file headers, by HTTP range requests),
or the tensors computed from config.json for the families in `architectures`. config.json is
needed in every case: activation memory depends on its dimensions.
"""
from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from steps.common import StepInputError, TransientFailure, hub_errors
from steps.contract import REPO_ID
from steps.memory.architectures import ModelDims, Shapes, decoder_tensors, model_dims, ties_embeddings

LAYER_INDEX = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")
MAX_HEADER_BYTES = 100 * 2**20  # the format's own limit; a larger length means a corrupt file


class ModelSourceUnavailable(TransientFailure):
    """The hub could not be reached (not the user's input at fault; the step exits 1)."""


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    copies: int = 1  # identical layers this tensor stands for (a model counted from config.json)

    @property
    def numel(self) -> int:
        """Elements in all copies."""
        return math.prod(self.shape) * self.copies

    @property
    def module(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @cached_property
    def layer(self) -> int | None:
        """Index of the decoder layer holding this tensor (None: embeddings, final norm, lm_head)."""
        match = LAYER_INDEX.search(self.name)
        return int(match.group(1)) if match else None

    @property
    def is_linear(self) -> bool:
        """A Linear weight inside a decoder layer: what LoRA targets and bitsandbytes quantises."""
        return self.layer is not None and len(self.shape) == 2 and self.name.endswith(".weight")


@dataclass(frozen=True)
class ModelInventory:
    name: str
    counted_from: str
    dims: ModelDims
    tensors: tuple[Tensor, ...]

    @property
    def parameters(self) -> int:
        return sum(tensor.numel for tensor in self.tensors)


def load_inventory(model: str, revision: str | None = None) -> ModelInventory:
    """`model` is a local directory, a local config.json, or a hub repo id (at `revision`)."""
    path = Path(model)
    if path.is_dir():
        return _local_directory(path)
    if path.is_file():
        config = _read_config(path, model)
        return inventory_from_config(model, config)
    if REPO_ID.fullmatch(model) and not model.endswith(".json"):
        return _hub_repo(model, revision)
    raise StepInputError(f"--model {model}: no such file or directory, and not a hub repo id (ORG/NAME)")


def _inventory(name: str, counted_from: str, config: dict[str, Any], shapes: Shapes,
               layer_copies: int = 1) -> ModelInventory:
    """`layer_copies`: how many layers the tensors of layer 0 stand for (1: every layer is listed)."""
    if ties_embeddings(config) and "lm_head.weight" in shapes and _embedding_names(shapes):
        # Some checkpoints store the tied output embedding twice; transformers counts it once.
        shapes = {key: shape for key, shape in shapes.items() if key != "lm_head.weight"}
    tensors = tuple(Tensor(key, tuple(shape), layer_copies if key.startswith("model.layers.0.") else 1)
                    for key, shape in shapes.items())
    return ModelInventory(name, counted_from, model_dims(config, name), tensors)


def inventory_from_config(name: str, config: dict[str, Any]) -> ModelInventory:
    """A known family's model counted from its config.json fields alone."""
    shapes, layers = decoder_tensors(config, name)
    return _inventory(name, "config.json", config, shapes, layer_copies=layers)


def _embedding_names(shapes: Shapes) -> list[str]:
    return [key for key in shapes if key.endswith("embed_tokens.weight")]


def _read_config(path: Path, source: str) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StepInputError(f"--model {source}: cannot read {path.name} as a model config.json: {error}") from None
    if not isinstance(config, dict):
        raise StepInputError(f"--model {source}: {path.name} is not a JSON object, so not a config.json")
    return config


# --- local directory ---------------------------------------------------------------------

def _local_directory(directory: Path) -> ModelInventory:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise StepInputError(f"--model {directory}: no config.json in this directory "
                             "(a Hugging Face model directory has one beside its weights)")
    config = _read_config(config_path, str(directory))
    files = _safetensors_files(directory)
    if not files:
        return inventory_from_config(str(directory), config)
    shapes: Shapes = {}
    for file in files:
        shapes.update(read_safetensors_shapes(file))
    return _inventory(str(directory), "safetensors headers", config, shapes)


def _safetensors_files(directory: Path) -> list[Path]:
    """The checkpoint's files, chosen as huggingface_hub does (an index, else model.safetensors).

    Globbing *.safetensors would also count extra copies such as Mistral's consolidated.safetensors.
    """
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return [directory / name for name in sorted(set(weight_map.values()))]
    single = directory / "model.safetensors"
    return [single] if single.is_file() else []


def read_safetensors_shapes(path: Path) -> Shapes:
    """Tensor shapes from a safetensors header: an 8-byte little-endian length, then that much JSON."""
    try:
        with path.open("rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > MAX_HEADER_BYTES:
                raise ValueError(f"header length {length} exceeds {MAX_HEADER_BYTES}")
            header = json.loads(file.read(length))
        return {name: tuple(entry["shape"]) for name, entry in header.items() if name != "__metadata__"}
    except (OSError, struct.error, ValueError, KeyError, TypeError) as error:
        raise StepInputError(f"--model {path.parent}: {path.name} is not a readable safetensors file: "
                             f"{error}") from None


# --- hub repo ----------------------------------------------------------------------------

def _hub_repo(repo_id: str, revision: str | None) -> ModelInventory:
    import huggingface_hub
    from huggingface_hub import errors

    where = f"--model {repo_id} (revision {revision or 'main'})"
    with hub_errors(where, "model repo"):
        try:
            config = _read_config(Path(huggingface_hub.hf_hub_download(repo_id, "config.json", revision=revision)),
                                  repo_id)
            try:
                metadata = huggingface_hub.get_safetensors_metadata(repo_id, revision=revision)
            except errors.NotASafetensorsRepoError:
                return inventory_from_config(repo_id, config)
        except errors.LocalEntryNotFoundError as error:
            # Raised when the hub is unreachable (or HF_HUB_OFFLINE is set) and nothing is cached.
            raise ModelSourceUnavailable(f"{where}: the Hugging Face hub is unreachable and config.json "
                                         f"is not in the HF_HOME cache: {error}") from None
        except errors.EntryNotFoundError:
            raise StepInputError(f"{where}: the repo has no config.json, so it is not a transformers model") from None
    shapes = {name: tuple(info.shape) for file in metadata.files_metadata.values()
              for name, info in file.tensors.items()}
    return _inventory(repo_id, "hub safetensors metadata", config, shapes)
