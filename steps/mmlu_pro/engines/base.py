"""What every engine shares: settings, the result type, the stop rule, models and adapters."""
from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# The reference stops generation where the model starts inventing the next question.
STOP_STRINGS: tuple[str, ...] = ("Question:",)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 2048
    max_model_len: int = 4096
    batch_size: int = 8          # hf: prompts per forward batch; vllm: its own chunks (vllm.CHUNK_SIZE)
    tensor_parallel: int = 1     # vllm: GPUs the model is sharded over


@dataclass(frozen=True)
class Generation:
    text: str
    hit_token_limit: bool        # stopped by the token limit rather than a stop string or EOS


class Engine(Protocol):
    name: str
    @property
    def chunk_size(self) -> int | None:
        """Prompts per call to `generate`; results are saved after each call. None: all at once."""
    # Whether prompts should reach `generate` longest first: an engine that pads each batch to its
    # longest prompt wastes less on batches of similar lengths; vLLM schedules tokens itself.
    sort_by_length: bool

    def count_tokens(self, prompts: list[str]) -> list[int]: ...

    def generate(self, prompts: list[str], max_new_tokens: list[int]) -> list[Generation]: ...


def cut_at_stop(text: str) -> tuple[str, bool]:
    """The text before the first stop string (excluded, as vLLM returns it) and whether one was found."""
    cut = min((i for i in (text.find(stop) for stop in STOP_STRINGS) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def token_counter(tokenizer: Any) -> Callable[[list[str]], list[int]]:
    """Prompt lengths as the engines see them: special tokens (BOS) included, no truncation."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # The Rust tokenizer directly: the same ids `tokenizer(texts)` makes, without building them into
        # lists. A copy of its own, without padding or truncation: those are state of the Rust tokenizer,
        # and the hf engine's `tokenizer(batch, padding=True)` leaves padding on, which would count every
        # later prompt at its batch's padded length.
        counter = copy.deepcopy(backend)
        counter.no_padding()
        counter.no_truncation()
        return lambda texts: [len(encoding.ids) for encoding in counter.encode_batch(texts, add_special_tokens=True)]
    return lambda texts: [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]


@dataclass(frozen=True)
class ModelRef:
    """A model to evaluate: a full model, or a LoRA adapter folder over its base model."""

    base: str                    # hub id or folder of the full model
    adapter: str | None          # LoRA adapter folder, if `--model` is one
    tokenizer: str               # where the tokenizer is read from
    lora_rank: int = 0


def resolve_model(model: str) -> ModelRef:
    folder = Path(model)
    adapter_config = folder / "adapter_config.json"
    if not adapter_config.is_file():
        return ModelRef(base=model, adapter=None, tokenizer=model)
    config = json.loads(adapter_config.read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_config} does not name its base model (base_model_name_or_path)")
    has_tokenizer = any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
    return ModelRef(base=base, adapter=model, tokenizer=model if has_tokenizer else base,
                    lora_rank=int(config.get("r", 0)))


FINGERPRINT_SAMPLE_BYTES = 1 << 20


def _sampled_bytes(path: Path) -> bytes:
    """The start, middle and end of a large file: a fine-tune changes weights all through a shard,
    so these differ between a base model and its merged fine-tune while reading only 3 MiB."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= 3 * FINGERPRINT_SAMPLE_BYTES:
            return handle.read()
        chunks = []
        for offset in (0, size // 2, size - FINGERPRINT_SAMPLE_BYTES):
            handle.seek(offset)
            chunks.append(handle.read(FINGERPRINT_SAMPLE_BYTES))
        return b"".join(chunks)


def folder_fingerprint(folder: Path) -> str:
    """Names the contents of a local model without reading gigabytes of weights."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        digest.update(str(path.stat().st_size).encode())
        digest.update(_sampled_bytes(path))
    return "sha256:" + digest.hexdigest()[:16]


def model_revision(model: str, revision: str | None) -> str:
    """The commit a hub model resolves to (from HF_HOME when cached), or a local folder's fingerprint.

    Raises whatever loading the config raises; callers turn that into a user-facing error.
    """
    folder = Path(model)
    if folder.is_dir():
        return folder_fingerprint(folder)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model, revision=revision)
    return getattr(config, "_commit_hash", None) or revision or "main"
