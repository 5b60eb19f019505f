"""The memory model: bytes for each part of a training step, then per GPU under a sharding plan.

Parts that scale with the model (weights, LoRA adapter, gradients, optimizer state) can be
sharded; activations and logits belong to each GPU's own micro-batch and cannot; FSDP/ZeRO-3
add the units gathered around the one being computed; every GPU pays a fixed CUDA/NCCL cost.

Full fine-tuning in fp32 with AdamW comes to 16 bytes a parameter before activations:
4 for the weights, 4 for their gradients, 8 for Adam's two moments.
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
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
ADAPTER_BYTES = 4  # peft keeps adapter weights in fp32 even on a bf16 base model
NF4_BLOCK = 64     # bitsandbytes 4-bit: one absmax per 64 weights ...
NF4_DOUBLE_QUANT_BLOCK = 256  # ... itself stored as int8 with an fp32 scale per 256 absmax values
LOSS_BYTES_PER_LOGIT = 8  # the loss upcasts logits to fp32 and keeps an fp32 gradient of them
CUDA_CONTEXT_BYTES = 1 * GIB  # CUDA context, cuBLAS workspaces, allocator slack
NCCL_BYTES = GIB // 2         # NCCL communicators and buffers, only with more than one GPU

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
    gathered_parameters: float  # the two largest FSDP units: one computing, the next prefetched

    def component(self, name: str) -> float:
        return getattr(self, name)


def memory_totals(inventory: ModelInventory, setup: TrainingSetup) -> MemoryTotals:
    optimizer = optimizer_state(setup.optimizer)
    trainable = trainable_shapes(inventory, setup)
    trainable_parameters = sum(math.prod(shape) for shape in trainable)
    trainable_bytes = DTYPE_BYTES[setup.dtype] if setup.method == "full" else ADAPTER_BYTES

    unit_bytes: dict[int | None, float] = defaultdict(float)
    for tensor in inventory.tensors:
        unit_bytes[tensor.layer] += weight_bytes(tensor, setup)
    two_largest = sorted(unit_bytes.values(), reverse=True)[:2]

    return MemoryTotals(
        parameters=inventory.parameters,
        trainable_parameters=trainable_parameters,
        weights=sum(unit_bytes.values()),
        adapter=0.0 if setup.method == "full" else trainable_parameters * ADAPTER_BYTES,
        gradients=trainable_parameters * trainable_bytes,
        optimizer=sum(optimizer.bytes_for(shape) for shape in trainable),
        activations=activation_bytes(inventory.dims, setup),
        logits=logits_bytes(inventory.dims, setup),
        gathered_parameters=sum(two_largest),
    )


def weight_bytes(tensor: Tensor, setup: TrainingSetup) -> float:
    if tensor.is_linear and setup.base_quantisation == "nf4":
        constants = 1 / NF4_BLOCK + 4 / (NF4_BLOCK * NF4_DOUBLE_QUANT_BLOCK) if setup.double_quant else 4 / NF4_BLOCK
        return tensor.numel * (0.5 + constants)
    if tensor.is_linear and setup.base_quantisation == "int8":
        return tensor.numel + 4 * tensor.shape[0]  # LLM.int8: int8 weights and an fp32 scale per row
    return tensor.numel * DTYPE_BYTES[setup.dtype]


def trainable_shapes(inventory: ModelInventory, setup: TrainingSetup) -> list[tuple[int, ...]]:
    """Shapes of the tensors the optimizer updates: all of them, or LoRA's A and B matrices."""
    if setup.method == "full":
        return [tensor.shape for tensor in inventory.tensors]
    shapes: list[tuple[int, ...]] = []
    for tensor in inventory.tensors:
        if tensor.is_linear and is_lora_target(tensor.module, setup.lora_targets):
            out_features, in_features = tensor.shape
            shapes += [(setup.lora_r, in_features), (out_features, setup.lora_r)]
        elif any(_names_module(tensor.module, name) for name in setup.lora_modules_to_save):
            shapes.append(tensor.shape)  # a full trainable copy of the module
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


def activation_bytes(dims: ModelDims, setup: TrainingSetup) -> float:
    """What the backward pass needs of the forward pass, for one micro-batch.

    Per token and layer a Llama-style block keeps: the inputs and outputs of its two norms (4h),
    queries, keys, values and the attention output (2q + 2kv), and the MLP's gate, up, activated
    gate and product (4i). Eager attention also keeps the scores and their softmax per head.
    Gradient checkpointing keeps only each layer's input and recomputes one layer at a time.
    """
    tokens = setup.seq_len * setup.micro_batch_size
    per_token = 4 * dims.hidden_size + 2 * dims.q_dim + 2 * dims.kv_dim + 4 * dims.intermediate_size
    if setup.eager_attention:
        per_token += 2 * dims.num_heads * setup.seq_len
    one_layer = tokens * per_token * DTYPE_BYTES[setup.dtype]
    if setup.gradient_checkpointing == "off":
        return dims.num_layers * one_layer
    checkpoints = 0 if setup.gradient_checkpointing == "offload" else \
        dims.num_layers * tokens * dims.hidden_size * DTYPE_BYTES[setup.dtype]
    return checkpoints + one_layer


def logits_bytes(dims: ModelDims, setup: TrainingSetup) -> float:
    """The vocabulary-wide logits of every token (a 256k vocabulary makes this large), unless chunked."""
    if setup.chunked_loss:
        return 0.0
    tokens = setup.seq_len * setup.micro_batch_size
    return tokens * dims.vocab_size * (DTYPE_BYTES[setup.dtype] + LOSS_BYTES_PER_LOGIT)


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
    parts["cuda_overhead"] = CUDA_CONTEXT_BYTES + (NCCL_BYTES if gpus > 1 else 0)
    return parts
