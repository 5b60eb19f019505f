"""Generation engines behind one interface: `hf` (transformers, CPU or GPU) and `vllm` (GPU).

The prompt, extraction and scoring code is shared; an engine only turns prompts into
generated text, the way lm-evaluation-harness splits tasks from model back-ends.
"""
from __future__ import annotations

from steps.mmlu_pro.engines.base import Engine, Generation, GenerationSettings

ENGINES: tuple[str, ...] = ("vllm", "hf")


def load_engine(name: str, model: str, revision: str | None, settings: GenerationSettings) -> Engine:
    """Load `model` into the named engine (heavy imports happen here, not at import time)."""
    if name == "hf":
        from steps.mmlu_pro.engines.hf import HFEngine

        return HFEngine(model, revision, settings)
    if name == "vllm":
        from steps.mmlu_pro.engines.vllm import VllmEngine

        return VllmEngine(model, revision, settings)
    raise ValueError(f"engine {name!r}; valid: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "Generation", "GenerationSettings", "load_engine"]
