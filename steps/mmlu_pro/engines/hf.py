"""The transformers engine: batched greedy generation on a CPU or the visible GPUs."""
from __future__ import annotations

import sys
from typing import Any

from steps.mmlu_pro.engines.base import (
    STOP_STRINGS,
    Generation,
    GenerationSettings,
    cut_at_stop,
    resolve_model,
    token_counter,
)
from steps.mmlu_pro.engines.heap import frozen_imports
from steps.torch_threads import match_interop_threads

# transformers imports these whenever they are installed, though greedy generation of a plain
# bf16/fp32 checkpoint uses none of them: sklearn (transformers.generation.candidate_generator,
# for assisted decoding's ROC threshold), torchao (transformers.quantizers.auto registers its
# quantizer) and scipy (transformers.loss.loss_for_object_detection's Hungarian matching).
# Together they were over 1 s of CPU of the step's start. A None entry in sys.modules is Python's
# own "not importable" marker, so transformers' availability checks see them absent. (A
# torchao-quantised checkpoint therefore does not load here; MMLU-Pro evaluates bf16 models.)
UNUSED_BY_GENERATION = ("sklearn", "torchao", "scipy")
# torch._dynamo imports triton whenever it is installed; triton compiles GPU kernels only, so on a
# CPU nothing can use it. Hidden there, it also keeps its nanobind leak report away from the
# frozen heap (see heap.py) and the CPU step's exit cheap.
UNUSED_WITHOUT_GPU = ("triton",)


def hide_unused_packages(names: tuple[str, ...] = UNUSED_BY_GENERATION) -> None:
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # never hide one already in use


def stop_criteria(tokenizer: Any, stop_strings: tuple[str, ...] = STOP_STRINGS) -> Any:
    """What `generate(stop_strings=..., tokenizer=...)` stops with, built once for every batch.

    generate builds StopStringCriteria's tables over the whole vocabulary on every call: its cache is
    keyed on the order of `get_vocab()`, which differs from call to call. That is about 0.6 s of CPU
    per batch for a 128k vocabulary (benchmarks/stop_criteria.py), the GPU idle meanwhile. The
    criterion keeps no state between calls, so one serves them all.
    """
    from transformers.generation.stopping_criteria import StoppingCriteriaList, StopStringCriteria

    return StoppingCriteriaList([StopStringCriteria(tokenizer, list(stop_strings))])


class HFEngine:
    name = "hf"
    sort_by_length = True  # each batch is left-padded to its longest prompt
    chunk_size: int | None
    _model: Any  # a transformers model, or a PeftModel over one

    def __init__(self, model: str, revision: str | None, settings: GenerationSettings):
        with frozen_imports():
            hide_unused_packages()
            import torch

            cuda = torch.cuda.is_available()
            if not cuda:
                hide_unused_packages(UNUSED_WITHOUT_GPU)
            from transformers import AutoModelForCausalLM, AutoTokenizer
        match_interop_threads(torch)

        ref = resolve_model(model)
        base_revision = None if ref.adapter else revision
        self.chunk_size = self._batch_size = settings.batch_size
        self._tokenizer = AutoTokenizer.from_pretrained(ref.tokenizer, revision=base_revision)
        # Decoder-only models continue the last token, so batches are padded on the left.
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._stopping = stop_criteria(self._tokenizer)
        self._model: Any = AutoModelForCausalLM.from_pretrained(
            ref.base, revision=base_revision, dtype=torch.bfloat16 if cuda else torch.float32,
            device_map="auto" if cuda else None)
        if ref.adapter:
            from peft import PeftModel

            self._model = PeftModel.from_pretrained(self._model, ref.adapter)
        self._model.eval()
        self._count = token_counter(self._tokenizer)
        self._torch = torch

    def count_tokens(self, prompts: list[str]) -> list[int]:
        return self._count(prompts)

    def generate(self, prompts: list[str], max_new_tokens: list[int]) -> list[Generation]:
        results: list[Generation] = []
        for start in range(0, len(prompts), self._batch_size):
            batch = slice(start, start + self._batch_size)
            results += self._generate_batch(prompts[batch], max_new_tokens[batch])
        return results

    def _generate_batch(self, prompts: list[str], limits: list[int]) -> list[Generation]:
        tokenizer = self._tokenizer
        inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(self._model.device)
        with self._torch.inference_mode():
            output = self._model.generate(
                **inputs, do_sample=False, temperature=None, top_p=None, top_k=None,
                # Greedy continuations do not depend on how far the batch runs, so the batch
                # runs to its longest limit and each row is cut to its own.
                # The tokenizer too: a model whose generation config names stop strings of its own gets
                # them replaced by ours (a criterion passed in wins over one of its type), as before.
                max_new_tokens=max(limits), stopping_criteria=self._stopping, tokenizer=tokenizer,
                pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[:, inputs["input_ids"].shape[1]:].tolist()
        return [self._decode(tokens[:limit], limit) for tokens, limit in zip(new_tokens, limits, strict=True)]

    def _decode(self, tokens: list[int], limit: int) -> Generation:
        eos = self._eos_ids()
        ended = next((i for i, token in enumerate(tokens) if token in eos), None)
        if ended is not None:
            tokens = tokens[:ended]
        text, stopped = cut_at_stop(str(self._tokenizer.decode(tokens, skip_special_tokens=True)))
        return Generation(text=text, hit_token_limit=ended is None and not stopped and len(tokens) >= limit)

    def _eos_ids(self) -> set[int]:
        eos: Any = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self._tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos]) - {None}
