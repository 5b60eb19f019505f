"""steps.train across nodes: the rendezvous, the torchrun command, what a CPU group needs, and who writes RUN/train."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
import yaml
from test_train_support import TINY_CONFIG

import steps.train as train_step
from steps.common import StepInputError
from steps.training import launch
from steps.training.axolotl_config import MULTI_GPU_DDP_TIMEOUT_S, PipelineSettings, TrainPaths, build_final_config
from steps.training.distributed import CPU_PLACEMENT_BUDGET, Rendezvous, TrainRequest, rendezvous


@pytest.fixture
def dataset(tmp_path) -> Path:
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": 0, "question": "What is 2 + 3?", "answer": "5"}]), path)
    return path


# --- the rendezvous -----------------------------------------------------------------------------

def test_every_node_of_a_run_names_the_same_rendezvous_and_runs_differ(tmp_path):
    first = rendezvous(2, 0, "run-train-node-0-0.run-train", 29500, tmp_path / "a" / "train")
    second = rendezvous(2, 1, "run-train-node-0-0.run-train", 29500, tmp_path / "a" / "train")
    other_run = rendezvous(2, 0, "run-train-node-0-0.run-train", 29500, tmp_path / "b" / "train")
    assert first is not None and second is not None and other_run is not None
    assert first.rdzv_id == second.rdzv_id != other_run.rdzv_id
    assert first.is_primary and not second.is_primary


def test_one_node_has_no_rendezvous_and_refuses_multi_node_flags(tmp_path):
    assert rendezvous(1, None, None, 29500, tmp_path) is None
    with pytest.raises(StepInputError, match="--node-rank, --master-addr only apply with --nodes 2"):
        rendezvous(1, 1, "host", 29500, tmp_path)


@pytest.mark.parametrize("nodes, rank, addr, port, message", [
    (0, None, None, 29500, "--nodes 0: must be at least 1"),
    (2, None, "h", 29500, "--node-rank None: must be 0 to 1 with --nodes 2"),
    (2, 2, "h", 29500, "--node-rank 2: must be 0 to 1"),
    (2, -1, "h", 29500, "--node-rank -1: must be 0 to 1"),
    (3, 0, "", 29500, "--master-addr is required with --nodes 3"),
    (2, 0, "h", 70000, "--master-port 70000: must be a TCP port"),
])
def test_bad_rendezvous_flags_are_refused(tmp_path, nodes, rank, addr, port, message):
    with pytest.raises(StepInputError, match=message):
        rendezvous(nodes, rank, addr, port, tmp_path)


def test_the_torchrun_command_joins_the_group_and_leaves_restarts_to_jobset(tmp_path):
    group = Rendezvous(3, 2, "node0.example", 29511, "tunebench-abc")
    command = launch.train_command(tmp_path / "axolotl.yaml", "torchrun", 4, group)
    assert command[1:] == [
        "-m", "axolotl.cli.main", "train", str(tmp_path / "axolotl.yaml"), "--launcher", "torchrun", "--",
        "--nnodes", "3", "--nproc_per_node", "4", "--node_rank", "2", "--rdzv_backend", "static",
        "--rdzv_endpoint", "node0.example:29511", "--rdzv_id", "tunebench-abc", "--max_restarts", "0"]


@pytest.mark.parametrize("requested, gpus, cuda, nodes, chosen", [
    ("auto", 1, 0, 2, "torchrun"), ("auto", 8, 8, 4, "torchrun"), ("torchrun", 1, 0, 2, "torchrun"),
    ("auto", 1, 0, 1, "python"),
])
def test_launcher_choice_across_nodes(requested, gpus, cuda, nodes, chosen):
    assert launch.resolve_launcher(requested, gpus, cuda, nodes) == chosen


@pytest.mark.parametrize("requested, gpus, cuda, nodes, message", [
    ("accelerate", 1, 1, 2, "--launcher accelerate runs on one node; --nodes 2 needs torchrun"),
    ("python", 1, 0, 2, "--launcher python runs on one node"),
    ("torchrun", 1, 1, 1, "--launcher torchrun is for --nodes 2 or more"),
    ("auto", 2, 0, 2, "--gpus 2: no CUDA device is visible"),
])
def test_impossible_multi_node_launches_are_refused(requested, gpus, cuda, nodes, message):
    with pytest.raises(StepInputError, match=message):
        launch.resolve_launcher(requested, gpus, cuda, nodes)


# --- the final config --------------------------------------------------------------------------

def _settings(tmp_path: Path, dataset: Path, **changes) -> PipelineSettings:
    return PipelineSettings(**{"base_model": "google/gemma-2-2b", "dataset": dataset,
                               "paths": TrainPaths(tmp_path / "run"), **changes})


def test_a_cpu_group_places_the_model_on_the_cpu_and_gets_the_long_timeout(tmp_path, dataset):
    cfg = build_final_config({"adapter": "lora"}, {}, _settings(tmp_path, dataset, on_cpu=True, nodes=2))
    assert cfg["max_memory"] == {"cpu": CPU_PLACEMENT_BUDGET}
    assert cfg["ddp_timeout"] == MULTI_GPU_DDP_TIMEOUT_S


def test_gpu_nodes_and_single_processes_keep_axolotls_placement(tmp_path, dataset):
    on_gpus = build_final_config({}, {}, _settings(tmp_path, dataset, gpus=8, nodes=2))
    alone_on_cpu = build_final_config({}, {}, _settings(tmp_path, dataset, on_cpu=True))
    user_limit = build_final_config({"gpu_memory_limit": "20GiB"}, {},
                                    _settings(tmp_path, dataset, on_cpu=True, nodes=2))
    assert "max_memory" not in on_gpus and "max_memory" not in alone_on_cpu and "max_memory" not in user_limit
    assert on_gpus["ddp_timeout"] == MULTI_GPU_DDP_TIMEOUT_S


# --- who writes RUN/train ------------------------------------------------------------------------

@pytest.fixture
def launched(monkeypatch):
    """steps.train up to the launch: the command and environment each node would run, nothing trained."""
    calls: list[tuple[list[str], dict[str, str], dict]] = []

    def fake_run(command, env):
        config = yaml.safe_load(Path(command[command.index("train") + 1]).read_text())
        calls.append((command, env, config))
        return 0

    monkeypatch.setattr(train_step, "run_streaming", fake_run)
    monkeypatch.setattr(train_step, "cuda_device_count", lambda: 0)
    return calls


def _train_node(tmp_path, dataset, rank: int) -> int:
    return train_step.train(TINY_CONFIG, base_model="google/gemma-2-2b", dataset=dataset,
                            run_dir=tmp_path / "run", nodes=2, node_rank=rank, master_addr="127.0.0.1",
                            master_port=29555, overrides='{"max_steps": 2}')


@pytest.mark.axolotl
def test_only_node_0_writes_the_run_folder_and_every_node_resumes_from_the_same_checkpoint(
        tmp_path, dataset, launched):
    output = tmp_path / "run" / "output"
    complete = output / "checkpoint-2"
    complete.mkdir(parents=True)
    (complete / "adapter_model.safetensors").write_bytes(b"weights")
    (complete / "trainer_state.json").write_text('{"global_step": 2}')
    partial = output / "checkpoint-4"
    partial.mkdir()

    assert _train_node(tmp_path, dataset, 1) == 0
    (command, env, node_config), = launched
    assert not (tmp_path / "run" / "axolotl.yaml").exists() and partial.exists()
    assert node_config["resume_from_checkpoint"] == str(complete)
    assert not Path(command[command.index("train") + 1]).exists()  # its temporary folder is gone
    assert command[command.index("--node_rank") + 1] == "1"
    assert (env["ACCELERATE_USE_CPU"], env["ACCELERATE_TORCH_DEVICE"]) == ("true", "cpu")

    # Node 0 writes the final config and removes the partial checkpoint; the missing adapter of this
    # fake launch fails its check, so no done.json claims a finished run.
    assert _train_node(tmp_path, dataset, 0) == 1
    final = yaml.safe_load((tmp_path / "run" / "axolotl.yaml").read_text())
    assert final == node_config  # the same config, the same checkpoint, on every node
    assert not partial.exists() and not (tmp_path / "run" / "done.json").exists()
    command = launched[1][0]
    assert command[command.index("train") + 1] == str(tmp_path / "run" / "axolotl.yaml")


# --- the request file: the workflow's parameters for the nodes ----------------------------------------------

HOSTILE = "x'\n    securityContext: {privileged: true}\n#"


def _cli(*args: str):
    from typer.testing import CliRunner

    from steps.common import step_errors

    app = typer.Typer()
    app.command()(step_errors(train_step.train_command))
    return CliRunner().invoke(app, list(args))


def test_the_request_carries_every_value_exactly_and_the_nodes_train_what_it_says(tmp_path, monkeypatch):
    request = tmp_path / "request.json"
    written = _cli("--config", str(TINY_CONFIG), "--base-model", HOSTILE, "--dataset", "/data/train.parquet",
                   "--run-dir", "/run/train", "--gpus", "8", "--overrides", '{"note": "it\'s"}',
                   "--base-model-revision", "", "--write-request", str(request))
    assert written.exit_code == 0, written.output
    seen = {}
    monkeypatch.setattr(train_step, "train", lambda config, **kwargs: seen.update(config=config, **kwargs) or 0)
    assert _cli("--request", str(request), "--nodes", "2", "--node-rank", "1", "--master-addr", "h").exit_code == 0
    assert seen["config"] == TINY_CONFIG and seen["base_model"] == HOSTILE and seen["gpus"] == 8
    assert (seen["dataset"], seen["run_dir"]) == (Path("/data/train.parquet"), Path("/run/train"))
    assert (seen["overrides"], seen["base_model_revision"], seen["nodes"]) == ('{"note": "it\'s"}', "", 2)


@pytest.mark.parametrize("args, message", [
    (("--request", "REQ", "--gpus", "2"), "--request REQ says what to train; drop --gpus"),
    (("--config", "c.yaml"), "--base-model, --dataset, --run-dir required (or --request FILE)"),
    (("--request", "missing.json"), "--request missing.json: cannot read the training request"),
])
def test_request_mistakes_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "REQ").write_text("{}")
    result = _cli(*args)
    assert result.exit_code == 2 and message in result.output


def test_bad_overrides_fail_when_the_request_is_written(tmp_path):
    result = _cli("--config", "c.yaml", "--base-model", "m", "--dataset", "d", "--run-dir", "r",
                  "--overrides", "{not json", "--write-request", str(tmp_path / "request.json"))
    assert result.exit_code == 2 and "--overrides" in result.output and not (tmp_path / "request.json").exists()


def test_a_request_of_the_wrong_shape_is_refused(tmp_path):
    request = tmp_path / "request.json"
    request.write_text('{"config": "c", "base_model": "m", "dataset": "d", "run_dir": "r", "gpus": true, '
                       '"overrides": null, "base_model_revision": null}')
    with pytest.raises(StepInputError, match="wrong type of gpus"):
        TrainRequest.read(request)
