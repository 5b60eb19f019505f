"""Every Axolotl config we ship passes Axolotl's own validation, also against the GPUs it is meant for."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from steps.training.axolotl_config import assumed_capabilities, unknown_keys, validate_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "axolotl"
# The GPUs each config is written for; a new config must say here what it needs.
TARGET_GPUS = {"gemma2-2b-qlora-fsdp.yaml": 3, "llama-3.2-1b-lora.yaml": 1, "tiny-cpu-lora.yaml": 1}


def load(name: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / name).read_text())


def test_every_shipped_config_is_listed():
    assert sorted(p.name for p in CONFIG_DIR.glob("*.yaml")) == sorted(TARGET_GPUS)


@pytest.mark.parametrize("name", sorted(TARGET_GPUS))
def test_passes_axolotl_validation_on_its_target_gpus(name):
    validate_config(load(name))
    validate_config(load(name), *assumed_capabilities(TARGET_GPUS[name]))


def test_the_reference_config_is_qlora_with_fsdp2():
    cfg = load("gemma2-2b-qlora-fsdp.yaml")
    assert cfg["base_model"] == "google/gemma-2-2b"
    assert (cfg["adapter"], cfg["load_in_4bit"], cfg["fsdp_version"]) == ("qlora", True, 2)
    assert "fsdp" not in cfg  # Axolotl 0.20+ rejects the old list form
    assert cfg["fsdp_config"]["transformer_layer_cls_to_wrap"] == "Gemma2DecoderLayer"


def test_every_config_trains_on_the_converted_question_answer_parquet():
    for name in TARGET_GPUS:
        assert [d["type"] for d in load(name)["datasets"]] == ["alpaca_chat.load_qa"], name


def test_the_tiny_config_keeps_cuda_only_kernels_off():
    cfg = load("tiny-cpu-lora.yaml")
    assert not any(cfg[key] for key in ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel",
                                        "lora_embedding_kernel"))


@pytest.mark.parametrize("name", sorted(TARGET_GPUS))
def test_every_key_is_one_axolotl_knows(name):
    assert unknown_keys(load(name)) == []


def test_a_misspelt_key_is_found():
    assert unknown_keys({**load("tiny-cpu-lora.yaml"), "lerning_rate": 0.1}) == ["lerning_rate"]


def test_a_plugins_keys_are_known_only_with_the_plugin():
    plugin_key = {"lm_eval_tasks": ["gsm8k"]}
    assert unknown_keys({**load("tiny-cpu-lora.yaml"), **plugin_key}) == ["lm_eval_tasks"]
    assert unknown_keys({**load("tiny-cpu-lora.yaml"), **plugin_key,
                         "plugins": ["axolotl.integrations.lm_eval.LMEvalPlugin"]}) == []


def test_a_broken_config_is_rejected_with_axolotls_message():
    from steps.training.axolotl_config import AxolotlConfigError

    with pytest.raises(AxolotlConfigError, match="FSDP2 does not support `cpu_ram_efficient_loading`"):
        cfg = load("gemma2-2b-qlora-fsdp.yaml")
        cfg["fsdp_config"]["cpu_ram_efficient_loading"] = True
        validate_config(cfg, *assumed_capabilities(3))


def test_each_pipeline_config_names_a_valid_axolotl_config_for_its_gpus():
    from workflows.config import load_pipeline

    root = CONFIG_DIR.parents[1]
    for path in sorted((root / "configs" / "pipelines").glob("*.yaml")):
        pipeline = load_pipeline(path)
        cfg = {**load(Path(pipeline.train.axolotl_config).name), **pipeline.train.overrides}
        assert (root / pipeline.train.axolotl_config).parent == CONFIG_DIR, path
        validate_config(cfg, *assumed_capabilities(pipeline.train.gpus))
