"""Issue 10 item 10: vLLM gets an explicit seed and GPU memory share, and sends no usage stats."""
from __future__ import annotations

import os
import sys
from types import ModuleType, SimpleNamespace

from steps.mmlu_pro.engines.base import GenerationSettings


class _RecordingLLM:
    kwargs: dict = {}
    usage_stats_env: str | None = None

    def __init__(self, **kwargs):
        type(self).kwargs = kwargs
        type(self).usage_stats_env = os.environ.get("VLLM_NO_USAGE_STATS")

    def get_tokenizer(self):
        return SimpleNamespace(encode=lambda text, **_: text.split())


def test_item10_vllm_seed_memory_share_and_no_usage_stats(monkeypatch):
    monkeypatch.delenv("VLLM_NO_USAGE_STATS", raising=False)
    vllm = ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = _RecordingLLM, dict
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    from steps.mmlu_pro.engines.vllm import GPU_MEMORY_UTILIZATION, SEED, VllmEngine

    VllmEngine("org/model", None, GenerationSettings())
    assert _RecordingLLM.kwargs["seed"] == SEED == 0
    assert _RecordingLLM.kwargs["gpu_memory_utilization"] == GPU_MEMORY_UTILIZATION == 0.9
    assert _RecordingLLM.usage_stats_env == "1"
