"""The tensors of a decoder-only model, computed from its config.json alone.

Names and shapes follow the Hugging Face checkpoints (`model.layers.{i}.self_attn.q_proj.weight`,
shape [out, in]), so a model counted from its config is handled exactly like one read from
safetensors headers: same LoRA targets, same quantised layers, same FSDP units.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from steps.common import StepInputError


@dataclass(frozen=True)
class DecoderFamily:
    """How a family's decoder layer differs from Llama's."""

    norms_per_layer: int = 2           # Gemma-2/3 add a norm before and after the MLP
    qkv_bias: bool = False             # Qwen2 always has q/k/v biases
    qk_norm: bool = False              # Qwen3 and Gemma-3 normalise queries and keys per head
    tie_word_embeddings: bool = False  # the default when config.json leaves the key out


FAMILIES: dict[str, DecoderFamily] = {
    "llama": DecoderFamily(),
    "mistral": DecoderFamily(),
    "qwen2": DecoderFamily(qkv_bias=True),
    "qwen3": DecoderFamily(qk_norm=True),
    "gemma": DecoderFamily(tie_word_embeddings=True),
    "gemma2": DecoderFamily(norms_per_layer=4, tie_word_embeddings=True),
    "gemma3_text": DecoderFamily(norms_per_layer=4, qk_norm=True, tie_word_embeddings=True),
}

Shapes = dict[str, tuple[int, ...]]
# Past 2**53 integers stop being exact floats and byte counts stop meaning anything.
MAX_DIMENSION = 2**53


def _abbreviated(value: int) -> str:
    digits = str(value)
    return digits if len(digits) <= 20 else f"{digits[:6]}...({len(digits)} digits)"


@dataclass(frozen=True)
class ModelDims:
    """The dimensions activation memory depends on."""

    architecture: str
    hidden_size: int
    num_layers: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    final_logit_softcapping: float | None = None  # Gemma-2 squashes the logits with tanh

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim


def _positive_number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language-model part of a config (multimodal configs nest it under text_config)."""
    return config.get("text_config") or config


def model_dims(config: dict[str, Any], source: str) -> ModelDims:
    config = text_config(config)

    def required(*keys: str) -> int:
        for key in keys:
            if isinstance(config.get(key), int) and config[key] > 0:
                return bounded(key, config[key])
        raise StepInputError(f"{source}: config.json has no positive integer {' / '.join(keys)}; "
                             "it is needed for the activation memory")

    def bounded(key: str, value: int) -> int:
        if value > MAX_DIMENSION:
            raise StepInputError(f"{source}: config.json {key} {_abbreviated(value)} is beyond any model "
                                 f"(at most {MAX_DIMENSION:,})")
        return value

    def optional(key: str, default: int) -> int:
        value = config.get(key)
        return bounded(key, value) if isinstance(value, int) and value > 0 else default

    hidden = required("hidden_size", "n_embd", "d_model")
    heads = required("num_attention_heads", "n_head")
    return ModelDims(
        architecture=str(config.get("model_type", "unknown")),
        hidden_size=hidden,
        num_layers=required("num_hidden_layers", "n_layer"),
        intermediate_size=optional("intermediate_size", 4 * hidden),
        num_heads=heads,
        num_kv_heads=optional("num_key_value_heads", heads),
        head_dim=optional("head_dim", max(1, hidden // heads)),
        vocab_size=required("vocab_size"),
        final_logit_softcapping=_positive_number(config.get("final_logit_softcapping")),
    )


def ties_embeddings(config: dict[str, Any]) -> bool:
    config = text_config(config)
    family = FAMILIES.get(config.get("model_type", ""), DecoderFamily())
    return bool(config.get("tie_word_embeddings", family.tie_word_embeddings))


def tensors_from_config(config: dict[str, Any], source: str) -> Shapes:
    """Every parameter tensor of a model of a known family, as transformers would instantiate it."""
    shapes, layers = decoder_tensors(config, source)
    first = "model.layers.0."
    every: Shapes = {}
    for name, shape in shapes.items():
        if name.startswith(first):
            every.update({f"model.layers.{index}.{name[len(first):]}": shape for index in range(layers)})
        else:
            every[name] = shape
    return every


def decoder_tensors(config: dict[str, Any], source: str) -> tuple[Shapes, int]:
    """The tensors outside the decoder layers and those of layer 0, and how many layers repeat it.

    Counting the layers by multiplication keeps any config (a million layers included) instant.
    """
    model_type = text_config(config).get("model_type")
    family = FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        raise StepInputError(
            f"{source}: cannot count the parameters of model_type {model_type!r} from config.json "
            f"(known: {', '.join(sorted(FAMILIES))}); point --model at a directory or hub repo "
            "with safetensors weights instead")
    dims = model_dims(config, source)
    attention_bias = bool(text_config(config).get("attention_bias", False))
    mlp_bias = bool(text_config(config).get("mlp_bias", False))
    hidden, inner = dims.hidden_size, dims.intermediate_size

    layer: list[tuple[str, tuple[int, int], bool]] = [  # (module, [out, in], has bias)
        ("self_attn.q_proj", (dims.q_dim, hidden), family.qkv_bias or attention_bias),
        ("self_attn.k_proj", (dims.kv_dim, hidden), family.qkv_bias or attention_bias),
        ("self_attn.v_proj", (dims.kv_dim, hidden), family.qkv_bias or attention_bias),
        ("self_attn.o_proj", (hidden, dims.q_dim), attention_bias),
        ("mlp.gate_proj", (inner, hidden), mlp_bias),
        ("mlp.up_proj", (inner, hidden), mlp_bias),
        ("mlp.down_proj", (hidden, inner), mlp_bias),
    ]
    norms = ["input_layernorm", "post_attention_layernorm",
             "pre_feedforward_layernorm", "post_feedforward_layernorm"][: family.norms_per_layer]

    shapes: Shapes = {"model.embed_tokens.weight": (dims.vocab_size, hidden)}
    prefix = "model.layers.0"
    for module, shape, has_bias in layer:
        shapes[f"{prefix}.{module}.weight"] = shape
        if has_bias:
            shapes[f"{prefix}.{module}.bias"] = shape[:1]
    if family.qk_norm:
        shapes[f"{prefix}.self_attn.q_norm.weight"] = (dims.head_dim,)
        shapes[f"{prefix}.self_attn.k_norm.weight"] = (dims.head_dim,)
    for norm in norms:
        shapes[f"{prefix}.{norm}.weight"] = (hidden,)
    shapes["model.norm.weight"] = (hidden,)
    if not ties_embeddings(config):
        shapes["lm_head.weight"] = (dims.vocab_size, hidden)
    return shapes, dims.num_layers
