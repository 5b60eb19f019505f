"""The memory model: bytes for each part of a training step, then per GPU under a sharding plan.

Parts that scale with the model (weights, LoRA adapter, gradients, optimizer state) can be
sharded; activations and logits belong to each GPU's own micro-batch and cannot; FSDP/ZeRO-3
add the units gathered around the one being computed; every GPU pays a fixed CUDA/NCCL cost.

Each term follows what Axolotl 0.19, transformers 5, peft and torch allocate (read from their
code; steps/memory/calibration.py sets the result beside published measurements):
- weights: in the compute dtype (Axolotl loads with `torch_dtype` bf16 under `bf16: true`);
  QLoRA's linear layers in NF4, the rest in the compute dtype (Axolotl casts embeddings and
  norms back after peft's prepare_model_for_kbit_training upcast them);
- LoRA adapters, their gradients and Adam state in fp32 (peft's `autocast_adapter_dtype`);
- full fine-tuning: gradients in the weights' dtype, torch AdamW state in the weights' dtype
  (bf16 training: 2 + 2 + 4 = 8 bytes a parameter; fp32: 16);
- the loss: transformers' ForCausalLMLoss upcasts the logits to fp32; the backward of
  cross_entropy then holds its saved fp32 log-softmax, the incoming gradient and the outgoing
  one at once, 12 bytes a logit, which is the step's peak when the vocabulary is large.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

from steps.common import StepInputError
from steps.memory.architectures import ModelDims
from steps.memory.inventory import ModelInventory, Tensor
from steps.memory.optimizers import optimizer_state
from steps.memory.settings import ALL_LINEAR, Sharding, TrainingSetup

GIB = 2**30
FP32_BYTES = 4
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
ADAPTER_BYTES = FP32_BYTES  # peft upcasts adapter weights to fp32 even on a bf16 base model
NF4_BLOCK = 64     # bitsandbytes 4-bit: one absmax per 64 weights ...
NF4_DOUBLE_QUANT_BLOCK = 256  # ... itself stored as int8 with an fp32 scale per 256 absmax values
# cross_entropy's backward: its saved fp32 log-softmax, the gradient coming in and the one going out.
FULL_LOSS_FP32_BUFFERS = 3
# transformers < 4.48: the compute-dtype logits, their fp32 upcast, a shifted fp32 copy one token
# shorter and its log-softmax in the forward pass; in the backward, the full-length fp32 gradient
# fits none of the freed one-token-shorter blocks, so the caching allocator reserves a fourth.
SHIFTED_LOSS_FP32_BUFFERS = 4
# Axolotl's chunked loss keeps the logits and their gradient in the compute dtype and upcasts one
# chunk at a time (the same three fp32 buffers, for one chunk).
CHUNKED_LOSS_BUFFERS = 2
CUDA_CONTEXT_BYTES = GIB // 2      # driver context and kernel images: outside torch's memory counters
ALLOCATOR_RESERVE_BYTES = GIB // 2  # cuBLAS workspaces and the caching allocator's slack (in torch's reserved)
NCCL_BYTES = GIB // 2              # NCCL communicators and buffers, only with more than one GPU

STATE_COMPONENTS = ("weights", "adapter", "gradients", "optimizer")
COMPONENTS = (*STATE_COMPONENTS, "activations", "logits", "gathered_parameters", "cuda_overhead")
COMPONENT_LABELS = {
    "weights": "model weights", "adapter": "LoRA adapter", "gradients": "gradients",
    "optimizer": "optimizer state", "activations": "activations", "logits": "logits (loss)",
    "gathered_parameters": "gathered FSDP units", "cuda_overhead": "CUDA/NCCL overhead",
}
SHARDED: dict[Sharding, frozenset[str]] = {
    "none": frozenset(),
    "zero1": frozenset({"optimizer"}),
    "zero2": frozenset({"optimizer", "gradients"}),
    "zero3": frozenset(STATE_COMPONENTS),
    "fsdp": frozenset(STATE_COMPONENTS),
}
GATHERS_UNITS = frozenset({"zero3", "fsdp"})


@dataclass(frozen=True)
class MemoryTotals:
    """Bytes of one training step before sharding; activations and logits are per GPU already."""

    parameters: int
    trainable_parameters: int
    weights: float
    adapter: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    # FSDP/ZeRO-3: the two largest units gathered whole (one computing, the next prefetched); in
    # full fine-tuning also their unsharded gradients, alive until the reduce-scatter has run.
    gathered_parameters: float

    def component(self, name: str) -> float:
        return getattr(self, name)


def memory_totals(inventory: ModelInventory, setup: TrainingSetup) -> MemoryTotals:
    optimizer = optimizer_state(setup.optimizer)
    trainable = trainable_shapes(inventory, setup)
    trainable_parameters = sum(math.prod(shape) * copies for shape, copies in trainable)
    trainable_bytes = DTYPE_BYTES[setup.dtype] if setup.method == "full" else ADAPTER_BYTES

    unit_bytes: dict[int | None, float] = defaultdict(float)  # one copy of each FSDP unit (layer)
    unit_copies: dict[int | None, int] = {}
    for tensor in inventory.tensors:
        unit_bytes[tensor.layer] += weight_bytes(tensor, setup) / tensor.copies
        unit_copies[tensor.layer] = tensor.copies if tensor.layer is not None else 1
    largest_units = sorted(((size, unit_copies[layer]) for layer, size in unit_bytes.items()), reverse=True)
    two_largest = [size for size, copies in largest_units for _ in range(min(copies, 2))][:2]

    return MemoryTotals(
        parameters=inventory.parameters,
        trainable_parameters=trainable_parameters,
        weights=sum(weight_bytes(tensor, setup) for tensor in inventory.tensors),
        adapter=0.0 if setup.method == "full" else trainable_parameters * ADAPTER_BYTES,
        gradients=trainable_parameters * trainable_bytes,
        optimizer=sum(optimizer.bytes_for(shape, trainable_bytes) * copies for shape, copies in trainable),
        activations=activation_bytes(inventory.dims, setup),
        logits=logits_bytes(inventory, setup),
        gathered_parameters=sum(two_largest) * (2 if setup.method == "full" else 1),
    )


def weight_bytes(tensor: Tensor, setup: TrainingSetup) -> float:
    if tensor.is_linear and setup.base_quantisation == "nf4":
        constants = 1 / NF4_BLOCK + 4 / (NF4_BLOCK * NF4_DOUBLE_QUANT_BLOCK) if setup.double_quant else 4 / NF4_BLOCK
        return tensor.numel * (0.5 + constants)
    if tensor.is_linear and setup.base_quantisation == "int8":
        return tensor.numel + 4 * tensor.shape[0] * tensor.copies  # LLM.int8: int8 weights, an fp32 scale per row
    if setup.fp32_unquantised and setup.base_quantisation != "none":
        return tensor.numel * FP32_BYTES
    return tensor.numel * DTYPE_BYTES[setup.dtype]


Trainable = list[tuple[tuple[int, ...], int]]  # (shape, copies)


def trainable_shapes(inventory: ModelInventory, setup: TrainingSetup) -> Trainable:
    """Shapes of the tensors the optimizer updates (all of them, or LoRA's A and B), with their copies."""
    if setup.method == "full":
        return [(tensor.shape, tensor.copies) for tensor in inventory.tensors]
    shapes: Trainable = []
    for tensor in inventory.tensors:
        if tensor.is_linear and is_lora_target(tensor.module, setup.lora_targets):
            out_features, in_features = tensor.shape
            shapes += [((setup.lora_r, in_features), tensor.copies), ((out_features, setup.lora_r), tensor.copies)]
        elif any(_names_module(tensor.module, name) for name in setup.lora_modules_to_save):
            shapes.append((tensor.shape, tensor.copies))  # a full trainable copy of the module
    if not shapes:
        linear = sorted({tensor.module.rsplit(".", 1)[-1] for tensor in inventory.tensors if tensor.is_linear})
        raise StepInputError(f"lora_target_modules {setup.lora_targets!r}: match no linear layer of "
                             f"{inventory.name}; its linear layers are: {', '.join(linear)}")
    return shapes


def is_lora_target(module: str, targets: tuple[str, ...] | str) -> bool:
    """peft's rule: a regex must match the whole module name, a list entry its trailing part."""
    if targets == ALL_LINEAR:
        return True
    if isinstance(targets, str):
        return re.fullmatch(targets, module) is not None
    return any(_names_module(module, target) for target in targets)


def _names_module(module: str, target: str) -> bool:
    return module == target or module.endswith("." + target)


def _residual_bytes(setup: TrainingSetup) -> int:
    """The residual stream's dtype: fp32 where fp32 embeddings and norms feed it, else the compute dtype."""
    if setup.fp32_unquantised and setup.base_quantisation != "none":
        return FP32_BYTES
    return DTYPE_BYTES[setup.dtype]


def layer_activation_bytes(dims: ModelDims, setup: TrainingSetup) -> float:
    """What one decoder layer keeps for its backward pass, for one micro-batch.

    Per token a Llama-style block keeps the inputs and outputs of its two norms (4h, in the
    residual stream's dtype), queries, keys, values and the attention output (2q + 2kv), and the
    MLP's gate, up, activated gate and product (4i). Eager attention also keeps the scores and
    their softmax per head (in the compute dtype), the softmax computed in fp32.
    """
    dtype_bytes = DTYPE_BYTES[setup.dtype]
    per_token = 4 * dims.hidden_size * _residual_bytes(setup) + \
        (2 * dims.q_dim + 2 * dims.kv_dim + 4 * dims.intermediate_size) * dtype_bytes
    if setup.eager_attention:
        per_token += dims.num_heads * setup.seq_len * (2 * dtype_bytes + FP32_BYTES)
    return setup.seq_len * setup.micro_batch_size * per_token


def activation_bytes(dims: ModelDims, setup: TrainingSetup) -> float:
    """Every layer's activations, or with gradient checkpointing each layer's input and one layer recomputed."""
    one_layer = layer_activation_bytes(dims, setup)
    if setup.gradient_checkpointing == "off":
        return dims.num_layers * one_layer
    tokens = setup.seq_len * setup.micro_batch_size
    checkpoints = 0 if setup.gradient_checkpointing == "offload" else \
        dims.num_layers * tokens * dims.hidden_size * _residual_bytes(setup)
    return checkpoints + one_layer


def loss_peak_bytes(inventory: ModelInventory, setup: TrainingSetup) -> float:
    """The loss's own peak: the vocabulary-wide logits and what their cross entropy holds at once."""
    dims = inventory.dims
    if setup.loss == "fused":
        return 0.0
    logits = setup.seq_len * setup.micro_batch_size * dims.vocab_size
    dtype_bytes = DTYPE_BYTES[setup.dtype]
    if setup.loss == "chunked":
        per_logit = CHUNKED_LOSS_BUFFERS * dtype_bytes + FULL_LOSS_FP32_BUFFERS * FP32_BYTES / setup.chunked_loss_chunks
    elif setup.loss == "shifted":
        per_logit = dtype_bytes + SHIFTED_LOSS_FP32_BUFFERS * FP32_BYTES
    else:
        per_logit = FULL_LOSS_FP32_BUFFERS * FP32_BYTES
    if dims.final_logit_softcapping:
        per_logit += dtype_bytes  # Gemma-2: tanh keeps its output for the backward pass
    peak = logits * per_logit
    if _residual_bytes(setup) == FP32_BYTES and dtype_bytes < FP32_BYTES:
        peak += dims.vocab_size * dims.hidden_size * dtype_bytes  # autocast's copy of an fp32 lm_head, kept for backward
    return peak


def logits_bytes(inventory: ModelInventory, setup: TrainingSetup) -> float:
    """What the loss adds to the step's peak.

    With gradient checkpointing the loss's backward is done before the last layer is recomputed,
    so only what the loss needs beyond one layer's activations adds to the peak.
    """
    peak = loss_peak_bytes(inventory, setup)
    if setup.gradient_checkpointing == "off":
        return peak
    return max(0.0, peak - layer_activation_bytes(inventory.dims, setup))


def per_gpu_bytes(totals: MemoryTotals, *, gpus: int, sharding: Sharding,
                  offloaded: frozenset[str] = frozenset()) -> dict[str, float]:
    """Bytes on each GPU by component (DDP replicas, ZeRO stages, FSDP full sharding, CPU offload)."""
    parts = {}
    for name in STATE_COMPONENTS:
        value = totals.component(name)
        if name in offloaded:
            value = 0.0
        elif name in SHARDED[sharding]:
            value /= gpus
        parts[name] = value
    parts["activations"] = totals.activations
    parts["logits"] = totals.logits
    gathers = sharding in GATHERS_UNITS and (gpus > 1 or bool(offloaded))
    parts["gathered_parameters"] = totals.gathered_parameters if gathers else 0.0
    parts["cuda_overhead"] = CUDA_CONTEXT_BYTES + ALLOCATOR_RESERVE_BYTES + (NCCL_BYTES if gpus > 1 else 0)
    return parts
