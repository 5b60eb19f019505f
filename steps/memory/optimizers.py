"""Optimizer state per trainable parameter, by the optimizer names Axolotl accepts.

torch's own optimizers keep their state in the parameter's dtype (`torch.zeros_like(param)` in
torch.optim.adamw, fused or not): bf16 weights get bf16 moments, peft's fp32 adapters fp32 ones.
bitsandbytes' 32-bit optimizers allocate fp32 state whatever the parameter's dtype; the 8-bit and
4-bit ones a byte or half a byte per value plus a scale per block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from steps.common import StepInputError

FP32 = 4.0
PARAM_DTYPE = None  # the state takes the parameter's dtype
INT8_BLOCKWISE = 1 + 4 / 256  # bitsandbytes 8-bit states: one byte, plus an fp32 scale per 256-value block
INT4_BLOCKWISE = 0.5 + 4 / 128  # torchao 4-bit states: half a byte, plus an fp32 scale per 128-value block


@dataclass(frozen=True)
class OptimizerState:
    states: int              # state tensors kept per parameter (Adam: first and second moment)
    bytes_per_value: float | None  # None: the parameter's own dtype
    factored: bool = False   # Adafactor keeps a row and a column vector for each matrix instead

    def bytes_for(self, shape: tuple[int, ...], param_bytes: float) -> float:
        value_bytes = param_bytes if self.bytes_per_value is None else self.bytes_per_value
        if self.factored and len(shape) >= 2:
            return (shape[-2] + shape[-1]) * value_bytes
        return self.states * math.prod(shape) * value_bytes


TORCH_ADAM = OptimizerState(2, PARAM_DTYPE)
ADAM = OptimizerState(2, FP32)
ADAM_8BIT = OptimizerState(2, INT8_BLOCKWISE)
ADEMAMIX = OptimizerState(3, FP32)        # two first moments and a second moment
ADEMAMIX_8BIT = OptimizerState(3, INT8_BLOCKWISE)
ONE_STATE = OptimizerState(1, FP32)       # Lion, momentum SGD, RMSprop, Adagrad, Muon
ONE_STATE_8BIT = OptimizerState(1, INT8_BLOCKWISE)
STATELESS = OptimizerState(0, FP32)       # plain SGD (transformers' default momentum is 0)

OPTIMIZERS: dict[str, OptimizerState] = {
    **dict.fromkeys(["adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused"], TORCH_ADAM),
    **dict.fromkeys(["adamw_hf", "adamw_apex_fused", "adamw_anyprecision", "paged_adamw_32bit",
                     "optimi_adamw", "adopt_adamw", "adamc", "flash_adamw", "flash_adam", "stable_adamw",
                     "schedule_free_adamw", "schedule_free_radam", "grokadamw"], ADAM),
    **dict.fromkeys(["adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "adamw_torch_8bit",
                     "ao_adamw_8bit", "ao_adamw_fp8"], ADAM_8BIT),
    **dict.fromkeys(["adamw_torch_4bit", "ao_adamw_4bit"], OptimizerState(2, INT4_BLOCKWISE)),
    **dict.fromkeys(["ademamix", "paged_ademamix_32bit"], ADEMAMIX),
    **dict.fromkeys(["ademamix_8bit", "paged_ademamix_8bit"], ADEMAMIX_8BIT),
    **dict.fromkeys(["lion_32bit", "paged_lion_32bit", "flash_lion", "rmsprop", "rmsprop_bnb",
                     "rmsprop_bnb_32bit", "adagrad", "muon", "schedule_free_sgd", "flash_sgdw"], ONE_STATE),
    **dict.fromkeys(["lion_8bit", "paged_lion_8bit", "rmsprop_bnb_8bit"], ONE_STATE_8BIT),
    **dict.fromkeys(["sgd", "flash_sgd"], STATELESS),
    "adafactor": OptimizerState(1, FP32, factored=True),
}


def optimizer_state(name: str) -> OptimizerState:
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise StepInputError(f"optimizer {name!r}: unknown to the memory estimate; "
                             f"known: {', '.join(sorted(OPTIMIZERS))}") from None
