"""The vLLM engine: batched offline calls of CHUNK_SIZE questions, tensor parallel, optional LoRA adapter."""
from __future__ import annotations

import os

from steps.common import StepInputError
from steps.mmlu_pro.engines.base import STOP_STRINGS, Generation, GenerationSettings, resolve_model, token_counter

# vLLM only accepts these maximum LoRA ranks.
_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)

# Questions per `generate` call; eval_mmlu_pro saves the answers after each call, so a
# preempted or retried pod redoes at most one chunk instead of the whole subject. 256 fills
# vLLM's running batch (256 sequences is its long-standing max_num_seqs default) and costs
# only one drain of the batch's tail per chunk: a subject of 1,000+ questions is 4-6 calls.
CHUNK_SIZE = 256
# Explicit, not vLLM's defaults of the day: the seed of its sampler (decoding is greedy, but the
# seed is part of a reproducible run) and the share of each GPU's memory it preallocates.
SEED = 0
GPU_MEMORY_UTILIZATION = 0.90


class VllmEngine:
    name = "vllm"
    chunk_size: int | None = CHUNK_SIZE
    sort_by_length = False  # continuous batching: no padding to save

    def __init__(self, model: str, revision: str | None, settings: GenerationSettings):
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")  # read when vllm is imported
        try:
            import vllm
        except ImportError:
            raise StepInputError("--engine vllm needs the vllm package, which is not installed here "
                                 "(the eval GPU image has it); use --engine hf on a CPU") from None
        ref = resolve_model(model)
        lora = {}
        if ref.adapter:
            rank = next((r for r in _LORA_RANKS if r >= ref.lora_rank), ref.lora_rank)
            lora = {"enable_lora": True, "max_lora_rank": rank}
            from vllm.lora.request import LoRARequest

            self._lora_request = LoRARequest("adapter", 1, ref.adapter)
        else:
            self._lora_request = None
        self._llm = vllm.LLM(model=ref.base, tokenizer=ref.tokenizer, revision=None if ref.adapter else revision,
                             tensor_parallel_size=settings.tensor_parallel, max_model_len=settings.max_model_len,
                             seed=SEED, gpu_memory_utilization=GPU_MEMORY_UTILIZATION, **lora)
        self._sampling = vllm.SamplingParams
        self._count = token_counter(self._llm.get_tokenizer())

    def count_tokens(self, prompts: list[str]) -> list[int]:
        return self._count(prompts)

    def generate(self, prompts: list[str], max_new_tokens: list[int]) -> list[Generation]:
        params = [self._sampling(temperature=0, max_tokens=limit, stop=list(STOP_STRINGS)) for limit in max_new_tokens]
        outputs = self._llm.generate(prompts, params, lora_request=self._lora_request)
        return [Generation(text=out.outputs[0].text, hit_token_limit=out.outputs[0].finish_reason == "length")
                for out in outputs]
