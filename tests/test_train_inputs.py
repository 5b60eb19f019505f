"""steps.train before anything runs: the final config, launcher choice, checkpoint discovery and every bad input."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
import yaml
from test_train_support import PROJECT_ROOT, TINY_CONFIG, offline_env
from typer.testing import CliRunner

from steps.common import StepInputError
from steps.train import train, train_command
from steps.training import checkpoints, launch
from steps.training.axolotl_config import (
    DEFAULT_SAVE_STEPS,
    MULTI_GPU_DDP_TIMEOUT_S,
    TRITON_LORA_KERNELS,
    PipelineSettings,
    TrainPaths,
    build_final_config,
    parse_overrides,
)


@pytest.fixture
def dataset(tmp_path) -> Path:
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": 0, "question": "What is 2 + 3?", "answer": "5"}]), path)
    return path


def settings(tmp_path: Path, dataset: Path, **changes) -> PipelineSettings:
    return PipelineSettings(**{"base_model": "google/gemma-2-2b", "dataset": dataset,
                               "paths": TrainPaths(tmp_path / "run"), **changes})


# --- the final config ----------------------------------------------------------------------

def test_pipeline_paths_win_over_the_yaml_and_overrides_over_the_yaml(tmp_path, dataset):
    user = {"base_model": "meta-llama/Llama-3.2-1B", "output_dir": "./out", "learning_rate": 0.1,
            "datasets": [{"path": "tatsu-lab/alpaca", "type": "alpaca"}], "resume_from_checkpoint": None}
    cfg = build_final_config(user, {"learning_rate": 0.001}, settings(tmp_path, dataset, base_model_revision="abc"))
    assert cfg["base_model"] == "google/gemma-2-2b" and cfg["revision_of_model"] == "abc"
    assert cfg["learning_rate"] == 0.001
    assert cfg["datasets"] == [{"path": str(dataset), "ds_type": "parquet", "type": "alpaca_chat.load_qa"}]
    assert cfg["output_dir"] == str(tmp_path / "run" / "output")
    assert cfg["dataset_prepared_path"] == str(tmp_path / "run" / "prepared")
    assert "resume_from_checkpoint" not in cfg
    assert user["learning_rate"] == 0.1  # the caller's dict is untouched


def test_a_local_base_model_gets_an_absolute_path_and_no_revision(tmp_path, dataset, monkeypatch):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    cfg = build_final_config({}, {}, settings(tmp_path, dataset, base_model="models/tiny", base_model_revision="main"))
    assert cfg["base_model"] == str(tmp_path / "models" / "tiny") and "revision_of_model" not in cfg


def test_restart_settings_are_added_where_unset(tmp_path, dataset):
    cfg = build_final_config({}, {}, settings(tmp_path, dataset))
    assert cfg["save_steps"] == DEFAULT_SAVE_STEPS and cfg["save_total_limit"] >= 2 and "ddp_timeout" not in cfg
    assert build_final_config({"saves_per_epoch": 4}, {}, settings(tmp_path, dataset)).get("save_steps") is None
    forced = build_final_config({"saves_per_epoch": 4}, {}, settings(tmp_path, dataset, save_steps=50))
    assert forced["save_steps"] == 50 and "saves_per_epoch" not in forced


def test_multi_gpu_gets_a_long_nccl_timeout_unless_set(tmp_path, dataset):
    assert build_final_config({}, {}, settings(tmp_path, dataset, gpus=3))["ddp_timeout"] == MULTI_GPU_DDP_TIMEOUT_S
    assert build_final_config({"ddp_timeout": 60}, {}, settings(tmp_path, dataset, gpus=3))["ddp_timeout"] == 60


def test_triton_lora_kernels_are_off_on_a_cpu(tmp_path, dataset):
    user = {"adapter": "lora", "lora_mlp_kernel": True}
    on_cpu = build_final_config(user, {}, settings(tmp_path, dataset, on_cpu=True))
    assert all(on_cpu[key] is False for key in TRITON_LORA_KERNELS)
    assert build_final_config(user, {}, settings(tmp_path, dataset))["lora_mlp_kernel"] is True


@pytest.mark.parametrize("text, message", [
    ("{not json", "--overrides '{not json': not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"output_dir": "/tmp/x", "base_model": "x"}', "--overrides sets base_model, output_dir, which the pipeline sets"),
])
def test_bad_overrides(text, message):
    with pytest.raises(StepInputError, match=message.replace("[", r"\[").replace("{", r"\{")):
        parse_overrides(text)


def test_a_resume_path_in_the_yaml_is_refused(tmp_path, dataset):
    with pytest.raises(StepInputError, match="resume_from_checkpoint: '/old/checkpoint-5' is set in --config"):
        build_final_config({"resume_from_checkpoint": "/old/checkpoint-5"}, {}, settings(tmp_path, dataset))


# --- launcher and GPU pod pitfalls ------------------------------------------------------------

@pytest.mark.parametrize("requested, gpus, cuda, chosen", [
    ("auto", 1, 0, "python"), ("auto", 1, 1, "accelerate"), ("auto", 3, 4, "accelerate"),
    ("python", 1, 2, "python"), ("accelerate", 1, 0, "accelerate"),
])
def test_launcher_choice(requested, gpus, cuda, chosen):
    assert launch.resolve_launcher(requested, gpus, cuda) == chosen


@pytest.mark.parametrize("requested, gpus, cuda, message", [
    ("auto", 3, 0, "--gpus 3: no CUDA device is visible"),
    ("auto", 3, 2, "--gpus 3: only 2 CUDA device"),
    ("python", 2, 2, "--launcher python runs one process"),
    ("auto", 0, 0, "--gpus 0: must be at least 1"),
])
def test_impossible_launches_are_refused(requested, gpus, cuda, message):
    with pytest.raises(StepInputError, match=message):
        launch.resolve_launcher(requested, gpus, cuda)


def test_the_train_command_runs_one_accelerate_process_per_gpu(tmp_path):
    command = launch.train_command(tmp_path / "axolotl.yaml", "accelerate", 3)
    assert command[1:] == ["-m", "axolotl.cli.main", "train", str(tmp_path / "axolotl.yaml"),
                           "--launcher", "accelerate", "--num-processes", "3"]
    assert "--num-processes" not in launch.train_command(tmp_path / "axolotl.yaml", "python", 1)


def test_the_child_finds_accelerate_beside_this_interpreter():
    path = launch.child_env({"PATH": "/usr/bin"})["PATH"]
    assert path.split(":")[0] == str(Path(sys.executable).parent)


def test_a_small_shm_fails_multi_gpu_only():
    with pytest.raises(StepInputError, match="/dev/shm is 64 MiB; training on 3 GPUs"):
        launch.check_shm(3, shm_bytes=64 << 20)
    launch.check_shm(1, shm_bytes=64 << 20)
    launch.check_shm(3, shm_bytes=16 << 30)


def _run_streaming_in_a_step(child_code: str) -> subprocess.Popen:
    """A stand-in step process that runs `child_code` as its child through run_streaming."""
    step_code = ("import sys; from steps.training.launch import run_streaming, child_env; "
                 f"sys.exit(run_streaming([sys.executable, '-c', {child_code!r}], child_env()))")
    return subprocess.Popen([sys.executable, "-c", step_code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("handles_term, expected_code", [(7, 7), (0, 128 + signal.SIGTERM), (None, 128 + signal.SIGTERM)])
def test_a_stopped_pod_stops_the_trainer_and_its_exit_code_comes_back(tmp_path, handles_term, expected_code):
    """A trainer that exits 0 once stopped (Axolotl's SIGINT handler saves and exits 0) is a stopped run, not a
    finished one: 128 + the signal, so train neither writes done.json nor is taken as succeeded."""
    marker = tmp_path / "child-got-sigterm"
    handler = (f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(marker)!r}).touch(), "
               f"sys.exit({handles_term}))); " if handles_term is not None else "")
    step = _run_streaming_in_a_step(f"import pathlib, signal, sys, time; {handler}print('ready', flush=True); "
                                    "time.sleep(120)")
    try:
        assert step.stdout.readline().strip() == "ready"
        step.send_signal(signal.SIGTERM)  # what the kubelet sends the step, the pod's main process
        assert step.wait(timeout=60) == expected_code
    finally:
        step.kill()
    assert marker.exists() == (handles_term is not None)


def test_missing_axolotl_is_reported(monkeypatch, tmp_path, dataset):
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StepInputError, match="axolotl is not installed"):
        train(TINY_CONFIG, base_model="x/y", dataset=dataset, run_dir=tmp_path / "run")


# --- checkpoints -------------------------------------------------------------------------------

def make_checkpoint(output: Path, step: int, state: str | None = "valid", weights: bool = True) -> Path:
    path = output / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if weights:
        (path / "adapter_model.safetensors").write_bytes(b"weights")
    if state == "valid":
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    elif state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_the_newest_complete_checkpoint_is_chosen_and_partial_ones_removed(tmp_path):
    make_checkpoint(tmp_path, 10)
    make_checkpoint(tmp_path, 200)
    make_checkpoint(tmp_path, 30)
    make_checkpoint(tmp_path, 300, state=None)                      # killed before the state was written
    make_checkpoint(tmp_path, 400, state='{"global_st')              # killed while writing it
    make_checkpoint(tmp_path, 500, state=json.dumps({"global_step": 7}))  # not this folder's state
    make_checkpoint(tmp_path, 600, weights=False)
    (tmp_path / "checkpoint-final").mkdir()
    assert [c.step for c in checkpoints.list_checkpoints(tmp_path)] == [10, 30, 200, 300, 400, 500, 600]
    assert checkpoints.newest_complete(tmp_path).step == 200
    assert [c.step for c in checkpoints.remove_incomplete(tmp_path)] == [300, 400, 500, 600]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-200", "checkpoint-30",
                                                          "checkpoint-final"]


def test_fsdp_sharded_checkpoints_count_as_weights(tmp_path):
    path = make_checkpoint(tmp_path, 5, weights=False)
    (path / "pytorch_model_fsdp_0").mkdir()
    assert checkpoints.newest_complete(tmp_path).step == 5


def test_no_output_dir_means_no_checkpoint(tmp_path):
    assert checkpoints.newest_complete(tmp_path / "missing") is None


# --- the command line -------------------------------------------------------------------------

def invoke(*args: object):
    app = typer.Typer()
    app.command()(train_command)
    return CliRunner().invoke(app, [str(arg) for arg in args])


def base_args(tmp_path: Path, dataset: Path, config: Path = TINY_CONFIG) -> list[object]:
    return ["--config", config, "--base-model", "x/tiny", "--dataset", dataset, "--run-dir", tmp_path / "run"]


def test_cli_invalid_yaml(tmp_path, dataset):
    bad = tmp_path / "bad.yaml"
    bad.write_text("adapter: lora\n  lora_r: [16\n")
    result = invoke(*base_args(tmp_path, dataset, bad))
    assert result.exit_code == 2 and f"--config {bad}: not valid YAML" in result.stderr
    assert not (tmp_path / "run").exists()


def test_cli_missing_dataset(tmp_path, dataset):
    result = invoke(*base_args(tmp_path, tmp_path / "nope.parquet"))
    assert result.exit_code == 2 and "--dataset" in result.stderr and "no such file" in result.stderr


def test_cli_dataset_without_question_and_answer(tmp_path):
    raw = tmp_path / "raw.parquet"
    pq.write_table(pa.Table.from_pylist([{"problem": "p", "answer": "a"}]), raw)
    result = invoke(*base_args(tmp_path, raw))
    assert result.exit_code == 2 and "missing column(s) question" in result.stderr


def test_cli_too_many_gpus_for_a_cpu(tmp_path, dataset):
    result = invoke(*base_args(tmp_path, dataset), "--gpus", "3")
    assert result.exit_code == 2 and "--gpus 3: no CUDA device is visible" in result.stderr


def test_cli_config_rejected_by_axolotl_fails_before_launch_in_one_line(tmp_path, dataset):
    """Axolotl's own schema, run by the step: the message is Axolotl's, nothing is launched or written."""
    config = tmp_path / "bad-lr.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(TINY_CONFIG.read_text()), "adapter": "qlora"}))
    result = subprocess.run([sys.executable, "-m", "steps.train", *map(str, base_args(tmp_path, dataset, config))],
                            cwd=PROJECT_ROOT, env=offline_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: Axolotl rejected the config: Require cfg.load_in_4bit to be True for qlora"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "axolotl.yaml").exists()


CHECKS_BEFORE_A_LAUNCH = """
import sys, yaml
from steps.training.axolotl_config import probed_capabilities, unknown_keys, validate_config
cfg = yaml.safe_load(open(sys.argv[1]))
validate_config(cfg, *probed_capabilities(1))
print(unknown_keys(cfg), "peft" in sys.modules)
"""


@pytest.mark.axolotl
def test_the_checks_before_a_gpu_launch_import_no_peft_for_a_config_without_plugins():
    """The step validates before accelerate or torchrun start the ranks, which import everything again:
    the unknown-key check reads Axolotl's base schema, without merging plugins' schemas (that imports peft)."""
    result = subprocess.run([sys.executable, "-c", CHECKS_BEFORE_A_LAUNCH, str(TINY_CONFIG)], cwd=PROJECT_ROOT,
                            env=offline_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "[] False"
