"""The memory gate: exact parameter counts, the memory model, the verdicts, the CLI and every bad input."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from steps.common import StepInputError
from steps.estimate_memory import estimate_memory_command, estimate_memory
from steps.memory.inventory import load_inventory
from steps.memory.model import memory_totals, per_gpu_bytes, trainable_shapes, weight_bytes
from steps.memory.settings import TYPICAL_AXOLOTL_CONFIG, cli_settings, training_setup

FIXTURES = Path(__file__).parent / "fixtures"
QLORA_FSDP2_YAML = FIXTURES / "memory_qlora_fsdp2.yaml"

REFERENCE_COUNTS = {  # ../shared/data/README.md: as transformers instantiates them
    "gemma-2-2b": 2_614_341_888,
    "gemma-2-9b": 9_241_705_984,
    "llama-3.2-1b": 1_235_814_400,
    "llama-3.1-8b": 8_030_261_248,
    "mistral-7b-v0.1": 7_241_732_096,
    "qwen2.5-7b": 7_615_616_512,
}

TINY_LLAMA = {  # synthetic: small enough to write real safetensors files in a test
    "model_type": "llama", "hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4, "vocab_size": 50,
    "tie_word_embeddings": False,
}
# embeddings 50×16, per layer q 16×16, k and v 8×16, o 16×16, MLP 3×40×16, two norms 16; final norm; lm_head
TINY_LLAMA_PARAMETERS = 800 + 2 * (256 + 128 + 128 + 256 + 3 * 640 + 32) + 16 + 800


def llama_like(num_layers: int) -> dict:
    """A Llama-3.1-405B-shaped config with `num_layers` layers (126 layers: 405.9B parameters)."""
    return {"model_type": "llama", "hidden_size": 16384, "intermediate_size": 53248,
            "num_hidden_layers": num_layers, "num_attention_heads": 128, "num_key_value_heads": 8,
            "head_dim": 128, "vocab_size": 128256, "tie_word_embeddings": False}


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def setup_for(method: str, **settings):
    return training_setup({**TYPICAL_AXOLOTL_CONFIG, **cli_settings(method=method), **settings}, "test")


def run_cli(*args: str):
    app = typer.Typer()
    app.command()(estimate_memory_command)
    return CliRunner().invoke(app, [str(arg) for arg in args])


@pytest.fixture(scope="module")
def model_configs(shared_data: Path) -> Path:
    return shared_data / "model-configs"


# --- parameter counts --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_parameter_count_from_config_is_exact(model_configs: Path, name: str) -> None:
    inventory = load_inventory(str(model_configs / f"{name}.json"))
    assert inventory.parameters == REFERENCE_COUNTS[name]
    assert inventory.counted_from == "config.json"


def _save_safetensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    numpy = pytest.importorskip("numpy")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    safetensors_numpy.save_file({name: numpy.zeros(shape, dtype=numpy.float16) for name, shape in shapes.items()},
                                str(path), metadata={"format": "pt"})


def _tiny_shapes() -> dict[str, tuple[int, ...]]:
    from steps.memory.architectures import tensors_from_config

    return tensors_from_config(TINY_LLAMA, "tiny")


def test_local_safetensors_headers_give_the_count_without_reading_weights(tmp_path: Path) -> None:
    write_json(tmp_path / "config.json", TINY_LLAMA)
    _save_safetensors(tmp_path / "model.safetensors", _tiny_shapes())
    inventory = load_inventory(str(tmp_path))
    assert inventory.counted_from == "safetensors headers"
    assert inventory.parameters == TINY_LLAMA_PARAMETERS == 7056


def test_sharded_checkpoint_follows_its_index_and_ignores_extra_copies(tmp_path: Path) -> None:
    shapes = _tiny_shapes()
    names = sorted(shapes)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for file, tensor_names in halves.items():
        _save_safetensors(tmp_path / file, {name: shapes[name] for name in tensor_names})
    _save_safetensors(tmp_path / "consolidated.safetensors", shapes)  # Mistral-style duplicate
    write_json(tmp_path / "model.safetensors.index.json",
               {"weight_map": {name: file for file, tensor_names in halves.items() for name in tensor_names}})
    write_json(tmp_path / "config.json", TINY_LLAMA)
    assert load_inventory(str(tmp_path)).parameters == TINY_LLAMA_PARAMETERS


def test_tied_output_embedding_stored_twice_is_counted_once(tmp_path: Path) -> None:
    tied = {**TINY_LLAMA, "tie_word_embeddings": True}
    write_json(tmp_path / "config.json", tied)
    _save_safetensors(tmp_path / "model.safetensors", _tiny_shapes())  # still holds lm_head.weight
    assert load_inventory(str(tmp_path)).parameters == TINY_LLAMA_PARAMETERS - 800  # no second lm_head


def _hub_metadata(shapes: dict[str, tuple[int, ...]]):
    from huggingface_hub.utils import SafetensorsFileMetadata, SafetensorsRepoMetadata, TensorInfo

    tensors = {name: TensorInfo(dtype="BF16", shape=list(shape), data_offsets=(0, 0)) for name, shape in shapes.items()}
    return SafetensorsRepoMetadata(metadata=None, sharded=False,
                                   weight_map=dict.fromkeys(tensors, "model.safetensors"),
                                   files_metadata={"model.safetensors": SafetensorsFileMetadata({}, tensors)})


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """huggingface_hub's download and metadata calls, answering from a dict; records the calls."""
    import huggingface_hub

    hub = {"config": TINY_LLAMA, "metadata": _hub_metadata(_tiny_shapes()), "calls": []}

    def hf_hub_download(repo_id, filename, *, revision=None, **_):
        hub["calls"].append(("download", repo_id, filename, revision))
        if isinstance(hub["config"], Exception):
            raise hub["config"]
        return str(write_json(tmp_path / "hub-config.json", hub["config"]))

    def get_safetensors_metadata(repo_id, *, revision=None, **_):
        hub["calls"].append(("metadata", repo_id, revision))
        if isinstance(hub["metadata"], Exception):
            raise hub["metadata"]
        return hub["metadata"]

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "get_safetensors_metadata", get_safetensors_metadata)
    return hub


def test_hub_repo_is_counted_from_safetensors_metadata_at_the_revision(fake_hub) -> None:
    inventory = load_inventory("org/tiny", revision="abc123")
    assert inventory.counted_from == "hub safetensors metadata"
    assert fake_hub["calls"] == [("download", "org/tiny", "config.json", "abc123"), ("metadata", "org/tiny", "abc123")]
    assert inventory.parameters == TINY_LLAMA_PARAMETERS


def test_an_empty_revision_means_unpinned(fake_hub) -> None:  # how the DAG passes "no revision"
    estimate_memory("org/tiny", revision="", gpus=1, gpu_memory_gib=24, settings=cli_settings(method="lora"))
    assert fake_hub["calls"] == [("download", "org/tiny", "config.json", None), ("metadata", "org/tiny", None)]


def test_hub_repo_without_safetensors_is_counted_from_its_config(fake_hub) -> None:
    from huggingface_hub.errors import NotASafetensorsRepoError

    fake_hub["metadata"] = NotASafetensorsRepoError("no safetensors")
    inventory = load_inventory("org/tiny")
    assert inventory.counted_from == "config.json"
    assert inventory.parameters == TINY_LLAMA_PARAMETERS


def _http_error(error_class, status: int):
    response = httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/models/org/x"))
    return error_class("hub said no", response=response)


@pytest.mark.parametrize(("error", "says"), [
    ("RepositoryNotFoundError", "no such model repo"),
    ("GatedRepoError", "gated"),
    ("RevisionNotFoundError", "no such revision"),
])
def test_hub_errors_are_bad_input(fake_hub, error: str, says: str) -> None:
    from huggingface_hub import errors

    fake_hub["config"] = _http_error(getattr(errors, error), 404)
    with pytest.raises(StepInputError, match=says):
        load_inventory("org/tiny", revision="v1")


def test_unreachable_hub_exits_1_not_2(fake_hub) -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    fake_hub["config"] = LocalEntryNotFoundError("offline")
    result = run_cli("--model", "org/tiny", "--method", "lora", "--gpus", "1", "--gpu-memory-gib", "24")
    assert result.exit_code == 1
    assert "unreachable" in result.stderr


# --- the memory model --------------------------------------------------------------------

def test_full_fp32_adamw_is_16_bytes_per_parameter_before_activations(model_configs: Path) -> None:
    inventory = load_inventory(str(model_configs / "llama-3.2-1b.json"))
    totals = memory_totals(inventory, setup_for("full", bf16=False, optimizer="adamw_torch"))
    assert totals.trainable_parameters == totals.parameters
    assert (totals.weights, totals.gradients, totals.optimizer) == (
        4 * totals.parameters, 4 * totals.parameters, 8 * totals.parameters)
    assert totals.adapter == 0


def test_8bit_adam_keeps_two_bytes_of_state_per_parameter(model_configs: Path) -> None:
    inventory = load_inventory(str(model_configs / "llama-3.2-1b.json"))
    totals = memory_totals(inventory, setup_for("full", optimizer="adamw_bnb_8bit"))
    assert totals.optimizer == pytest.approx(2 * (1 + 4 / 256) * totals.parameters)
    assert totals.weights == totals.gradients == 2 * totals.parameters  # bf16


def test_lora_trainable_parameters_follow_rank_and_targets(model_configs: Path) -> None:
    inventory = load_inventory(str(model_configs / "llama-3.2-1b.json"))
    # per layer r × (in + out) of each target; 16 layers, hidden 2048, kv 512, intermediate 8192
    all_linear = memory_totals(inventory, setup_for("lora", lora_r=16))
    assert all_linear.trainable_parameters == 16 * 16 * (4096 + 2560 + 2560 + 4096 + 3 * 10240) == 11_272_192
    q_and_v = setup_for("lora", **cli_settings(lora_r=8, lora_target_modules="q_proj,v_proj"))
    assert memory_totals(inventory, q_and_v).trainable_parameters == 16 * 8 * (4096 + 2560) == 851_968
    assert all_linear.adapter == all_linear.gradients == 4 * 11_272_192  # peft keeps adapters in fp32
    assert all_linear.optimizer == 8 * 11_272_192
    with_embeddings = setup_for("lora", lora_r=16, lora_modules_to_save=["embed_tokens"])
    assert sum(math.prod(shape) * copies for shape, copies in trainable_shapes(inventory, with_embeddings)) == \
        11_272_192 + 128256 * 2048


def test_qlora_stores_linear_layers_in_nf4_with_their_constants(model_configs: Path) -> None:
    inventory = load_inventory(str(model_configs / "gemma-2-2b.json"))
    qlora = setup_for("qlora")
    linear = sum(t.numel for t in inventory.tensors if t.is_linear)
    rest = inventory.parameters - linear
    nf4_bytes_per_weight = 0.5 + 1 / 64 + 4 / (64 * 256)  # double-quantised absmax per 64 weights
    assert memory_totals(inventory, qlora).weights == pytest.approx(linear * nf4_bytes_per_weight + rest * 2)
    no_double = setup_for("qlora", bnb_config_kwargs={"bnb_4bit_use_double_quant": False})
    assert sum(weight_bytes(t, no_double) for t in inventory.tensors if t.is_linear) == pytest.approx(
        linear * (0.5 + 4 / 64))


def test_activations_follow_sequence_batch_checkpointing_and_attention(model_configs: Path) -> None:
    inventory = load_inventory(str(model_configs / "llama-3.2-1b.json"))

    def activations(**settings) -> float:
        return memory_totals(inventory, setup_for("lora", **settings)).activations

    plain = activations(gradient_checkpointing=False)
    assert activations(gradient_checkpointing=False, micro_batch_size=4) == 4 * plain
    assert activations(gradient_checkpointing=False, sequence_len=4096) == 2 * plain
    assert activations(gradient_checkpointing=True) < plain / 5
    assert activations(gradient_checkpointing="offload") < activations(gradient_checkpointing=True)
    assert activations(gradient_checkpointing=False, attn_implementation="eager") > plain
    assert activations(gradient_checkpointing=False, bf16=False) == 2 * plain  # fp32 activations
    assert memory_totals(inventory, setup_for("lora", cut_cross_entropy=True)).logits == 0


def test_sharding_divides_only_what_each_plan_shards(model_configs: Path) -> None:
    totals = memory_totals(load_inventory(str(model_configs / "llama-3.1-8b.json")), setup_for("full"))
    none = per_gpu_bytes(totals, gpus=4, sharding="none")
    fsdp = per_gpu_bytes(totals, gpus=4, sharding="fsdp")
    zero2 = per_gpu_bytes(totals, gpus=4, sharding="zero2")
    assert none["weights"] == totals.weights and none["gathered_parameters"] == 0
    for part in ("weights", "gradients", "optimizer"):
        assert fsdp[part] == pytest.approx(totals.component(part) / 4)
    assert fsdp["gathered_parameters"] == totals.gathered_parameters > 0
    assert fsdp["activations"] == none["activations"] == totals.activations  # each GPU's own micro-batch
    assert zero2["weights"] == totals.weights and zero2["optimizer"] == pytest.approx(totals.optimizer / 4)
    assert per_gpu_bytes(totals, gpus=1, sharding="none")["cuda_overhead"] < none["cuda_overhead"]  # NCCL
    offloaded = per_gpu_bytes(totals, gpus=4, sharding="fsdp",
                              offloaded=frozenset({"weights", "adapter", "gradients", "optimizer"}))
    assert offloaded["weights"] == offloaded["optimizer"] == 0


# --- Axolotl settings --------------------------------------------------------------------

def test_settings_are_read_from_the_axolotl_yaml(model_configs: Path) -> None:
    estimate = estimate_memory(str(model_configs / "gemma-2-2b.json"), gpus=3, gpu_memory_gib=48,
                               axolotl_config=QLORA_FSDP2_YAML)
    setup = estimate["setup"]
    assert (setup["method"], setup["base_quantisation"], setup["dtype"]) == ("qlora", "nf4", "bf16")
    assert (setup["sequence_len"], setup["micro_batch_size"], setup["lora_r"]) == (2048, 4, 32)
    assert (setup["lora_target_modules"], setup["optimizer"]) == ("all-linear", "adamw_torch_fused")
    assert setup["gradient_checkpointing"] == "recompute"  # FSDP's activation_checkpointing
    assert setup["eager_attention"] and estimate["sharding"] == "fsdp"
    # all seven projections of 26 layers: r × (in + out), hidden 2304, q 2048, kv 1024, intermediate 9216
    assert estimate["trainable_parameters"] == 26 * 32 * (4352 + 3328 + 3328 + 4352 + 3 * 11520) == 41_533_440


def test_lora_target_list_and_optimizer_from_overrides(model_configs: Path) -> None:
    estimate = estimate_memory(str(model_configs / "gemma-2-2b.json"), gpus=3, gpu_memory_gib=48,
                               axolotl_config=QLORA_FSDP2_YAML,
                               settings={"lora_target_linear": False, "optimizer": "paged_adamw_8bit",
                                         "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]})
    assert estimate["setup"]["lora_target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert estimate["trainable_parameters"] == 26 * 32 * (4352 + 3328 + 3328 + 4352)
    assert estimate["bytes"]["optimizer"] == pytest.approx(2 * (1 + 4 / 256) * estimate["trainable_parameters"], abs=1)


def test_overrides_go_over_the_yaml_and_flags_over_both(model_configs: Path) -> None:
    model = str(model_configs / "gemma-2-2b.json")
    overridden = estimate_memory(model, gpus=3, gpu_memory_gib=48, axolotl_config=QLORA_FSDP2_YAML,
                                 settings={"micro_batch_size": 8, "adapter": "lora", "load_in_4bit": False})
    assert overridden["setup"]["micro_batch_size"] == 8 and overridden["setup"]["method"] == "lora"
    result = run_cli("--model", model, "--gpus", 3, "--gpu-memory-gib", 48, "--axolotl-config", QLORA_FSDP2_YAML,
                     "--overrides", '{"micro_batch_size": 8, "sequence_len": 1024}', "--micro-batch-size", 1,
                     "--method", "full", "--json")
    setup = json.loads(result.stdout)["setup"]
    assert (setup["micro_batch_size"], setup["sequence_len"], setup["method"]) == (1, 1024, "full")


@pytest.mark.parametrize(("settings", "sharding", "offloaded"), [
    ({}, "none", []),
    ({"fsdp_config": {"fsdp_offload_params": True, "fsdp_sharding_strategy": "FULL_SHARD"}}, "fsdp",
     ["adapter", "gradients", "optimizer", "weights"]),
    ({"fsdp": ["shard_grad_op", "auto_wrap"]}, "zero2", []),
    ({"fsdp_version": 2, "fsdp_config": {"reshard_after_forward": False}}, "zero2", []),
    ({"deepspeed": "deepspeed_configs/zero3_bf16.json"}, "zero3", []),
    ({"deepspeed": {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}}, "zero2",
     ["optimizer"]),
])
def test_sharding_and_offload_come_from_fsdp_and_deepspeed_settings(model_configs: Path, settings, sharding,
                                                                     offloaded) -> None:
    estimate = estimate_memory(str(model_configs / "llama-3.2-1b.json"), gpus=2, gpu_memory_gib=80,
                               settings={"adapter": "lora", **settings}, axolotl_config=None)
    expected = sharding if settings else "fsdp"  # no YAML and no FSDP/DeepSpeed settings: FSDP on 2 GPUs
    assert estimate["sharding"] == expected
    assert estimate["setup"]["offloaded_to_cpu"] == offloaded


def test_a_deepspeed_json_file_is_read(tmp_path: Path, model_configs: Path) -> None:
    ds_config = write_json(tmp_path / "ds.json", {"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}})
    estimate = estimate_memory(str(model_configs / "llama-3.2-1b.json"), gpus=2, gpu_memory_gib=80,
                               settings={"adapter": None, "deepspeed": str(ds_config)})
    assert estimate["sharding"] == "zero3" and estimate["per_gpu_bytes"]["weights"] == 0


# --- the verdicts ------------------------------------------------------------------------

def test_gemma2_2b_qlora_fits_on_three_48gib_gpus(model_configs: Path) -> None:
    for settings in ({**cli_settings(method="qlora")}, {}):
        estimate = estimate_memory(str(model_configs / "gemma-2-2b.json"), gpus=3, gpu_memory_gib=48,
                                   settings=settings or None,
                                   axolotl_config=None if settings else QLORA_FSDP2_YAML)
        assert estimate["fits"] and estimate["headroom_bytes"] > 0
        assert estimate["advice"][0].startswith("QLoRA fits on 3 × 48 GiB with FSDP")
        assert "QLoRA also fits on 1 GPU" in estimate["advice"]


def test_the_reference_axolotl_config_fits_on_three_48gib_gpus(model_configs: Path, project_root: Path) -> None:
    reference = project_root / "configs" / "axolotl" / "gemma2-2b-qlora-fsdp.yaml"
    if not reference.is_file():
        pytest.skip(f"{reference} not in this checkout")
    estimate = estimate_memory(str(model_configs / "gemma-2-2b.json"), gpus=3, gpu_memory_gib=48,
                               axolotl_config=reference)
    assert estimate["setup"]["method"] == "qlora" and estimate["fits"]


def test_llama31_8b_full_fp32_adamw_does_not_fit_on_one_48gib_gpu_and_the_gate_exits_3(
        model_configs: Path, tmp_path: Path) -> None:
    out = tmp_path / "gate" / "estimate.json"
    result = run_cli("--model", model_configs / "llama-3.1-8b.json", "--method", "full", "--dtype", "fp32",
                     "--optimizer", "adamw_torch", "--gpus", 1, "--gpu-memory-gib", 48, "--out", out)
    assert result.exit_code == 3, result.output
    estimate = json.loads(out.read_text())
    assert not estimate["fits"] and estimate["headroom_bytes"] < 0
    assert estimate["per_gpu_bytes"]["weights"] + estimate["per_gpu_bytes"]["gradients"] + \
        estimate["per_gpu_bytes"]["optimizer"] == 16 * 8_030_261_248
    assert "full fine-tuning needs 4 GPUs of 48 GiB with FSDP" in estimate["advice"]
    assert "QLoRA fits on 1 GPU" in estimate["advice"]
    assert "does not fit" in result.stdout and "optimizer state" in result.stdout


@pytest.mark.parametrize("num_layers", [63, 126])  # 205.0B and 405.9B parameters
def test_a_model_over_200b_fits_on_three_48gib_gpus_by_no_method(tmp_path: Path, num_layers: int) -> None:
    config = write_json(tmp_path / "config.json", llama_like(num_layers))
    for method in ("full", "lora", "qlora"):
        for sharding in ("none", "zero2", "fsdp"):
            estimate = estimate_memory(str(config), gpus=3, gpu_memory_gib=48, sharding=sharding,
                                       settings=cli_settings(method=method))
            assert estimate["parameters"] > 200e9
            assert not estimate["fits"], (method, sharding)
    assert "no method fits on 3 × 48 GiB GPUs" in estimate["advice"]


def test_warn_mode_reports_but_exits_0(model_configs: Path) -> None:
    result = run_cli("--model", model_configs / "llama-3.1-8b.json", "--method", "full", "--gpus", 1,
                     "--gpu-memory-gib", 48, "--mode", "warn", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["fits"] is False
    assert result.stderr.startswith("warning: full fine-tuning does not fit")


def test_more_gpus_never_need_more_memory_each_under_fsdp(model_configs: Path) -> None:
    totals = memory_totals(load_inventory(str(model_configs / "mistral-7b-v0.1.json")), setup_for("full"))
    per_gpu = [sum(per_gpu_bytes(totals, gpus=n, sharding="fsdp").values()) for n in range(2, 17)]
    assert per_gpu == sorted(per_gpu, reverse=True)


# --- the command line --------------------------------------------------------------------

def test_table_shows_where_the_memory_goes(model_configs: Path) -> None:
    result = run_cli("--model", model_configs / "gemma-2-2b.json", "--method", "qlora", "--gpus", 3,
                     "--gpu-memory-gib", 48)
    assert result.exit_code == 0, result.output
    for text in ("model weights", "LoRA adapter", "optimizer state", "activations", "logits (loss)",
                 "gathered FSDP units", "CUDA/NCCL overhead", "total", "✔ fits", "2,614,341,888"):
        assert text in result.stdout


def test_tunebench_estimate_is_registered(model_configs: Path) -> None:
    from workflows.cli import app

    result = CliRunner().invoke(app, ["estimate", "--model", str(model_configs / "llama-3.2-1b.json"),
                                      "--method", "qlora", "--gpus", "1", "--gpu-memory-gib", "24", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parameters"] == REFERENCE_COUNTS["llama-3.2-1b"]


def test_step_help_works() -> None:
    result = subprocess.run([sys.executable, "-m", "steps.estimate_memory", "--help"], capture_output=True,
                            text=True, check=False, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0
    for flag in ("--model", "--revision", "--axolotl-config", "--overrides", "--method", "--gpus",
                 "--gpu-memory-gib", "--sharding", "--mode", "--out", "--json"):
        assert flag in result.stdout


# --- bad input: one line on stderr, exit 2 -----------------------------------------------

def _bad_input_cases(tmp_path: Path, configs: Path) -> dict[str, tuple[list, str]]:
    """Case -> (arguments over a valid command line, what the message must name)."""
    llama = str(configs / "llama-3.2-1b.json")
    phi = write_json(tmp_path / "phi.json", {**TINY_LLAMA, "model_type": "phi3"})
    listed_type = write_json(tmp_path / "listed-type.json", {**TINY_LLAMA, "model_type": ["llama"]})
    ds_list = write_json(tmp_path / "ds-list.json", [{"zero_optimization": {"stage": 3}}])
    no_config = tmp_path / "weights-only"
    no_config.mkdir()
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("adapter: lora\nlora_r: 0\n")
    return {
        "unknown architecture without safetensors": ([f"--model={phi}"], "model_type 'phi3'"),
        "missing config": ([f"--model={no_config}"], "no config.json"),
        "zero GPUs": ([f"--model={llama}", "--gpus=0"], "--gpus 0"),
        "negative GPUs": ([f"--model={llama}", "--gpus=-2"], "--gpus -2"),
        "no GPU memory": ([f"--model={llama}", "--gpu-memory-gib=0"], "--gpu-memory-gib 0"),
        "unknown optimizer": ([f"--model={llama}", "--optimizer=adamw_magic"], "adamw_torch_fused"),
        "overrides not JSON": ([f"--model={llama}", "--overrides={micro_batch_size: 2}"], "not valid JSON"),
        "overrides not an object": ([f"--model={llama}", "--overrides=[1]"], "JSON object"),
        "invalid YAML value": ([f"--model={llama}", f"--axolotl-config={bad_yaml}"], "lora_r: 0"),
        "missing YAML": ([f"--model={llama}", f"--axolotl-config={tmp_path / 'nope.yaml'}"], "cannot read"),
        "LoRA targets absent": ([f"--model={llama}", "--lora-target-modules=query_key_value"], "q_proj"),
        "model neither path nor hub id": (["--model=./missing/config.json"], "no such file"),
        "model_type not a string": ([f"--model={listed_type}"], "model_type ['llama']"),
        "DeepSpeed JSON not an object": ([f"--model={llama}", f'--overrides={{"deepspeed": "{ds_list}"}}'],
                                         "not a DeepSpeed config"),
    }


def test_every_bad_input_exits_2_with_one_line(tmp_path: Path, model_configs: Path) -> None:
    for case, (args, says) in _bad_input_cases(tmp_path, model_configs).items():
        result = run_cli("--method=lora", "--gpus=1", "--gpu-memory-gib=48", *args)  # the last value wins
        assert result.exit_code == 2, (case, result.output)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), (case, result.stderr)
        assert says in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.output


def test_method_is_required_without_an_axolotl_config(model_configs: Path) -> None:
    result = run_cli("--model", model_configs / "llama-3.2-1b.json", "--gpus", 1, "--gpu-memory-gib", 48)
    assert result.exit_code == 2 and "--method" in result.stderr


def test_full_fine_tuning_cannot_load_quantised_weights(model_configs: Path) -> None:
    with pytest.raises(StepInputError, match="load_in_4bit"):
        training_setup({"load_in_4bit": True}, "--axolotl-config x.yaml")


def test_a_failing_hub_exits_1_with_one_line(fake_hub) -> None:  # Argo's network retry takes it from there
    from huggingface_hub.errors import HfHubHTTPError

    fake_hub["metadata"] = _http_error(HfHubHTTPError, 503)
    result = run_cli("--model", "org/tiny", "--method", "lora", "--gpus", "1", "--gpu-memory-gib", "24")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: --model org/tiny") and "hub said no" in result.stderr
    assert "Traceback" not in result.stderr


# --- what the stack allocates (issue 13) -------------------------------------------------

def test_full_bf16_with_torch_adamw_keeps_its_state_in_bf16(model_configs: Path) -> None:
    inventory = load_inventory(str(model_configs / "llama-3.1-8b.json"))
    params = REFERENCE_COUNTS["llama-3.1-8b"]
    torch_adamw = memory_totals(inventory, setup_for("full", bf16=True, optimizer="adamw_torch_fused"))
    assert (torch_adamw.weights, torch_adamw.gradients, torch_adamw.optimizer) == (2 * params, 2 * params, 4 * params)
    bnb_32bit = memory_totals(inventory, setup_for("full", bf16=True, optimizer="paged_adamw_32bit"))
    assert bnb_32bit.optimizer == 8 * params  # bitsandbytes' 32-bit state is fp32 whatever the weights


def test_full_loss_holds_three_fp32_buffers_a_logit_beyond_the_recomputed_layer(model_configs: Path) -> None:
    from steps.memory.model import layer_activation_bytes, loss_peak_bytes

    inventory = load_inventory(str(model_configs / "llama-3.1-8b.json"))
    setup = setup_for("qlora", sequence_len=4096)
    logits = 4096 * 128256
    assert loss_peak_bytes(inventory, setup) == 12 * logits
    assert memory_totals(inventory, setup).logits == 12 * logits - layer_activation_bytes(inventory.dims, setup)
    assert memory_totals(inventory, setup_for("qlora", sequence_len=4096, gradient_checkpointing=False)).logits \
        == 12 * logits  # without checkpointing every layer's activations are alive at the loss
    chunked = setup_for("qlora", sequence_len=4096, chunked_cross_entropy=True)
    assert loss_peak_bytes(inventory, chunked) == (2 * 2 + 12 / 8) * logits
    assert loss_peak_bytes(inventory, setup_for("qlora", cut_cross_entropy=True)) == 0


def test_gemma2_softcapping_keeps_one_more_compute_dtype_copy(model_configs: Path) -> None:
    from steps.memory.model import loss_peak_bytes

    inventory = load_inventory(str(model_configs / "gemma-2-2b.json"))
    assert inventory.dims.final_logit_softcapping == 30.0
    assert loss_peak_bytes(inventory, setup_for("qlora", sequence_len=1024)) == 1024 * 256000 * (12 + 2)


def test_axolotl_casts_embeddings_back_but_plain_peft_keeps_them_fp32(model_configs: Path) -> None:
    from dataclasses import replace

    inventory = load_inventory(str(model_configs / "llama-3.1-8b.json"))
    axolotl = setup_for("qlora")
    plain_peft = replace(axolotl, fp32_unquantised=True)
    unquantised = sum(t.numel for t in inventory.tensors if not t.is_linear)
    assert memory_totals(inventory, plain_peft).weights - memory_totals(inventory, axolotl).weights == 2 * unquantised
    assert memory_totals(inventory, plain_peft).activations > memory_totals(inventory, axolotl).activations


def test_every_published_measurement_is_within_15_percent(model_configs: Path) -> None:
    from steps.memory.calibration import LEFT_OUT, MEASUREMENTS, calibration_rows

    rows = calibration_rows(model_configs)
    assert len(rows) == len(MEASUREMENTS) >= 7 and LEFT_OUT
    for row in rows:
        assert 0.85 <= row.ratio <= 1.15, (row.measurement.label, row.estimate_gib, row.measurement.measured_gib)


# --- issue 11: inputs that hang or crash -------------------------------------------------

def test_issue11_item9_a_huge_config_is_counted_by_formula_not_enumeration(tmp_path: Path) -> None:
    import time

    config = write_json(tmp_path / "config.json", {**llama_like(10**6), "hidden_size": 10**9})
    started = time.perf_counter()
    estimate = estimate_memory(str(config), gpus=3, gpu_memory_gib=48, settings=cli_settings(method="lora"))
    assert time.perf_counter() - started < 2
    inventory = load_inventory(str(config))
    assert len(inventory.tensors) < 20  # one layer's tensors stand for all 10**6
    assert estimate["parameters"] == inventory.parameters > 10**20 and not estimate["fits"]


def test_issue11_item10_inf_and_400_digit_numbers_are_one_line(tmp_path: Path, model_configs: Path) -> None:
    huge = "9" * 400
    llama = str(model_configs / "llama-3.2-1b.json")
    huge_config = write_json(tmp_path / "config.json", {**TINY_LLAMA, "hidden_size": int(huge)})
    cases = {
        "--gpu-memory-gib inf": (["--gpu-memory-gib=inf"], "--gpu-memory-gib inf"),
        "--gpu-memory-gib nan": (["--gpu-memory-gib=nan"], "--gpu-memory-gib nan"),
        "--gpu-memory-gib 400 digits": ([f"--gpu-memory-gib={huge}"], "--gpu-memory-gib"),
        "--gpus 400 digits": ([f"--gpus={huge}"], "--gpus 999999...(400 characters)"),
        "--seq-len 400 digits": ([f"--seq-len={huge}"], "sequence_len"),
        "overrides with 400 digits": ([f'--overrides={{"micro_batch_size": {huge}}}'], "micro_batch_size"),
        "overrides with Infinity": (['--overrides={"sequence_len": Infinity}'], "sequence_len"),
        "config.json with 400 digits": ([f"--model={huge_config}"], "hidden_size 999999...(400 digits)"),
    }
    for case, (args, says) in cases.items():
        result = run_cli(f"--model={llama}", "--method=lora", "--gpus=1", "--gpu-memory-gib=48", *args)
        assert result.exit_code == 2, (case, result.output)
        assert result.stderr.count("\n") == 1 and says in result.stderr, (case, result.stderr)
        assert "Traceback" not in result.output


def _gpu_calibrate_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_calibrate.py"
    spec = importlib.util.spec_from_file_location("gpu_calibrate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_calibrate_mechanics_on_the_cpu_with_a_tiny_config() -> None:
    pytest.importorskip("peft")
    calibrate = _gpu_calibrate_module()
    config = {**TINY_LLAMA, "vocab_size": 64}
    runs = calibrate.calibrate({"tiny": config}, ["lora", "full"], [16, 32], steps=2, device="cpu", budget_s=300)
    assert [(run.method, run.seq_len) for run in runs] == [("lora", 16), ("lora", 32), ("full", 16), ("full", 32)]
    assert all(run.allocated_gib is None and run.ratio is None for run in runs)  # no CUDA counters on a CPU
    assert runs[1].estimate_gib > runs[0].estimate_gib and runs[3].estimate_gib > runs[2].estimate_gib
    table = calibrate.format_runs(runs)
    assert "| tiny | lora | 16 | - | - |" in table
    skipped: list[str] = []
    assert calibrate.calibrate({"tiny": config}, ["lora"], [16], steps=1, device="cpu", budget_s=-1,
                               log=skipped.append) == []
    assert skipped == ["skipped tiny lora 16: the -1 s budget would be passed"]


def test_fsdp_full_fine_tuning_also_holds_the_gathered_units_gradients(model_configs: Path) -> None:
    inventory = load_inventory(str(model_configs / "llama-3.1-8b.json"))
    layer = 2 * (4096 * 4096 * 2 + 1024 * 4096 * 2 + 3 * 14336 * 4096 + 2 * 4096)  # bf16 bytes of one decoder layer
    root = 2 * (2 * 128256 * 4096 + 4096)  # the root unit: embed_tokens, the final norm, lm_head
    assert memory_totals(inventory, setup_for("lora")).gathered_parameters == root + layer
    assert memory_totals(inventory, setup_for("full")).gathered_parameters == 2 * (root + layer)
