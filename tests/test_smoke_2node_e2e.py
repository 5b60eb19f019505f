"""configs/pipelines/smoke-2node.yaml end to end through `tunebench run`: the tiny LoRA run trained by
2 "nodes" x 1 process over gloo on the CPU (a JobSet on a cluster, 2 local processes here), then
merge, eval and aggregate as in the single-node smoke run."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from test_smoke_e2e import ASSETS, PROJECT_ROOT, _run

from workflows.config import load_pipeline

pytestmark = [pytest.mark.axolotl, pytest.mark.timeout(1200)]

SMOKE_2NODE = PROJECT_ROOT / "configs" / "pipelines" / "smoke-2node.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[int, str, Path]:
    code, output, _ = _run([sys.executable, "-m", "steps.tiny_assets", "--out", str(ASSETS)], timeout=300)
    assert code == 0, output
    workdir = tmp_path_factory.mktemp("smoke-2node")
    code, output, _ = _run([sys.executable, "-m", "workflows.cli", "run", str(SMOKE_2NODE), "--workdir", str(workdir)],
                           timeout=1000)
    return code, output, workdir


def _run_dir(workdir: Path) -> Path:
    (run_dir,) = (workdir / "volumes" / "workspace" / "runs").iterdir()
    return run_dir


def test_the_pipeline_succeeds_with_training_across_two_nodes(run):
    code, output, workdir = run
    assert code == 0, output[-5000:]
    log = (workdir / "logs" / "train.log").read_text()
    assert "2 node(s) started (restarts 0/1)" in log and "Completed: all 2 nodes succeeded" in log
    nodes = [(workdir / "logs" / f"train.node-{index}.log").read_text() for index in range(2)]
    rendezvous = set()
    for index, node_log in enumerate(nodes):
        command = re.search(r"running: .* --launcher torchrun -- (.*)", node_log)
        assert command, node_log[-3000:]
        args = command.group(1).split()
        assert args[args.index("--nnodes") + 1] == "2" and args[args.index("--node_rank") + 1] == str(index)
        assert args[args.index("--rdzv_endpoint") + 1].startswith("127.0.0.1:")
        rendezvous.add((args[args.index("--rdzv_endpoint") + 1], args[args.index("--rdzv_id") + 1]))
    assert len(rendezvous) == 1  # one group


def test_the_nodes_trained_as_one_group_and_only_node_0_wrote_the_run_folder(run):
    _, output, workdir = run
    train = _run_dir(workdir) / "train"
    final = yaml.safe_load((train / "axolotl.yaml").read_text())
    assert final["max_memory"] == {"cpu": "1024GiB"}  # the model placed on the CPU in every process
    assert json.loads((train / "done.json").read_text())["global_step"] == 4
    assert (train / "output" / "adapter_model.safetensors").is_file()
    state = json.loads((train / "output" / "checkpoint-4" / "trainer_state.json").read_text())
    rows = load_pipeline(SMOKE_2NODE).data.max_rows
    # 4 steps x 8 rows per node x 2 nodes = the 64 rows once; a node training alone would be at epoch 0.5.
    assert state["epoch"] == pytest.approx(4 * 8 * 2 / rows)
    node_0, node_1 = ((workdir / "logs" / f"train.node-{index}.log").read_text() for index in range(2))
    assert "final config:" not in node_1 and "training finished" not in node_1
    # Node 0 is torch's rank 0 (a static rendezvous): the trainer's losses are in its log, none in node 1's.
    assert node_0.count("{'loss'") == 4 and "{'loss'" not in node_1


def test_the_fine_tuned_model_was_merged_and_scored(run):
    _, _, workdir = run
    merged = _run_dir(workdir) / "train" / "output" / "merged"
    summary = json.loads((_run_dir(workdir) / "summary" / "summary.json").read_text())
    (model,) = summary["models"]
    assert (model["role"], model["model"]) == ("finetuned", str(merged))
    assert model["subjects"]["math"]["n"] == load_pipeline(SMOKE_2NODE).eval.limit
