"""configs/pipelines/smoke-2node.yaml end to end through `tunebench run`: the tiny LoRA run trained by
2 "nodes" x 1 process over gloo on the CPU (a JobSet on a cluster, 2 local processes here), then
merge, eval and aggregate as in the single-node smoke run. Mid-training, node 1's trainer is killed
(an OOM kill, a lost GPU): the group restarts, both nodes resume from the same checkpoint."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_smoke_e2e import PROJECT_ROOT, _env, demo_assets

from workflows.config import load_pipeline

pytestmark = [pytest.mark.axolotl, pytest.mark.timeout(1200)]

SMOKE_2NODE = PROJECT_ROOT / "configs" / "pipelines" / "smoke-2node.yaml"


def _training_worker(workdir: Path, node: int) -> int | None:
    """The pid of the torch worker (`axolotl.cli.train`) of `node` in this run, if it runs."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"axolotl.cli.train" in cmdline and f"JOB_COMPLETION_INDEX={node}".encode() in environ \
                and any(str(workdir).encode() in part for part in cmdline + environ):
            return int(proc.name)
    return None


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[int, str, Path]:
    demo_assets(tmp_path_factory)
    workdir = tmp_path_factory.mktemp("smoke-2node")
    runner = subprocess.Popen([sys.executable, "-m", "workflows.cli", "run", str(SMOKE_2NODE), "--workdir", str(workdir)],
                              cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worker = None
    try:
        deadline = time.monotonic() + 600
        runs = workdir / "volumes" / "workspace" / "runs"
        while time.monotonic() < deadline and runner.poll() is None:
            checkpoint = next(runs.glob("*/train/output/checkpoint-*/trainer_state.json"), None) if runs.is_dir() else None
            worker = _training_worker(workdir, 1) if checkpoint else None
            if worker:
                os.kill(worker, signal.SIGKILL)  # node 1's trainer dies mid-training
                break
            time.sleep(0.2)
        output, _ = runner.communicate(timeout=900)
    finally:
        runner.kill()
    assert worker, "node 1 was never killed while the group trained:\n" + output[-3000:]
    return runner.returncode, output, workdir


def _run_dir(workdir: Path) -> Path:
    (run_dir,) = (workdir / "volumes" / "workspace" / "runs").iterdir()
    return run_dir


def test_the_pipeline_succeeds_with_training_across_two_nodes(run):
    code, output, workdir = run
    assert code == 0, output[-5000:]
    log = (workdir / "logs" / "train.log").read_text()
    assert "2 node(s) started (restarts 0/1)" in log and "Completed: all 2 nodes succeeded" in log
    assert "node 1: exit code 137; restarting the group (1/1)" in log
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
    steps = load_pipeline(SMOKE_2NODE).train.overrides["max_steps"]
    assert json.loads((train / "done.json").read_text())["global_step"] == steps
    assert (train / "output" / "adapter_model.safetensors").is_file()
    state = json.loads((train / "output" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    rows = load_pipeline(SMOKE_2NODE).data.max_rows
    # 8 rows per step on each of 2 nodes: a node training alone would be at half this epoch.
    assert state["epoch"] == pytest.approx(steps * 8 * 2 / rows)
    node_0, node_1 = ((workdir / "logs" / f"train.node-{index}.log").read_text() for index in range(2))
    assert "final config:" not in node_1 and "training finished" not in node_1
    # Node 0 is torch's rank 0 (a static rendezvous): the trainer's losses are in its log, none in node 1's.
    assert node_0.count("{'loss'") >= steps and "{'loss'" not in node_1


def test_after_the_restart_every_node_resumed_from_the_same_checkpoint(run):
    _, _, workdir = run
    resumed = [re.findall(r"resuming from (\S+checkpoint-\d+)", (workdir / "logs" / f"train.node-{i}.log").read_text())
               for i in range(2)]
    assert len(resumed[0]) == 1 and resumed[0] == resumed[1]
    done = json.loads((_run_dir(workdir) / "train" / "done.json").read_text())
    assert done["resumed_from"] == resumed[0][0]


def test_the_fine_tuned_model_was_merged_and_scored(run):
    _, _, workdir = run
    merged = _run_dir(workdir) / "train" / "output" / "merged"
    summary = json.loads((_run_dir(workdir) / "summary" / "summary.json").read_text())
    (model,) = summary["models"]
    assert (model["role"], model["model"]) == ("finetuned", str(merged))
    assert model["subjects"]["math"]["n"] == load_pipeline(SMOKE_2NODE).eval.limit


