"""Helpers of the Axolotl tests: a tiny base model and dataset, and one training run shared by the test modules.

Training once per session keeps the suite inside a few minutes on two CPU cores; the
train, merge and upload tests all read that run (each test that changes it works on a copy).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fixtures.run_once import once_per_run

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = PROJECT_ROOT / "configs" / "axolotl" / "tiny-cpu-lora.yaml"
DATASET_ROWS = 48
# A handful of steps: enough for two checkpoints, little enough for seconds of CPU.
QUICK_OVERRIDES = '{"max_steps": 4}'
QUICK_SAVE_STEPS = 2
RESULT = "result.json"  # the shared run's exit code and output, for the workers that did not train it


@dataclass(frozen=True)
class TinyAssets:
    base_model: Path
    dataset: Path


@dataclass(frozen=True)
class TrainedRun:
    assets: TinyAssets
    run_dir: Path
    result: subprocess.CompletedProcess

    @property
    def process(self) -> dict:
        """What the step's own process did (run_audited_train's report); the shared run has one."""
        return json.loads((self.run_dir.parent / PROCESS_REPORT).read_text())

    @property
    def config(self) -> Path:
        return self.run_dir / "axolotl.yaml"

    @property
    def output(self) -> Path:
        return self.run_dir / "output"


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of a step run in the tests: no hub, no telemetry, no tracker."""
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN",)}
    env.update(HF_HUB_OFFLINE="1", AXOLOTL_DO_NOT_TRACK="1", WANDB_MODE="disabled", **extra)
    return env


def run_step(module: str, *args: object, timeout: float = 600, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=PROJECT_ROOT, env=offline_env(),
                          capture_output=True, text=True, timeout=timeout, **popen)


# `python -m steps.train ARGS` as the pod runs it, reporting what its own process did: the processes it
# started (audit events) and torch's thread pools once training is over.
AUDITED_STEP = """
import json, runpy, sys
report, args = sys.argv[1], sys.argv[2:]
started = []
def audit(event, details):
    if event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.spawn", "os.fork", "os.forkpty"):
        started.append([event, [str(part) for part in (details[1] if event != "os.fork" else [])]])
sys.addaudithook(audit)
sys.argv = ["steps.train", *args]
try:
    runpy.run_module("steps.train", run_name="__main__", alter_sys=True)
finally:
    import torch
    with open(report, "w") as out:
        json.dump({"started": started, "threads": torch.get_num_threads(),
                   "interop_threads": torch.get_num_interop_threads()}, out)
"""
PROCESS_REPORT = "process.json"  # beside the run folder
# The pod's CPU limit as the downward API passes it; not the 2 torch would take from this machine's cores.
AUDITED_THREADS = "1"


def run_audited_train(*args: object) -> subprocess.CompletedProcess:
    """steps.train with `args` (train_args), its process's report in PROCESS_REPORT beside its --run-dir."""
    listed = list(map(str, args))
    report = Path(listed[listed.index("--run-dir") + 1]).parent / PROCESS_REPORT
    return subprocess.run([sys.executable, "-c", AUDITED_STEP, str(report), *listed], cwd=PROJECT_ROOT,
                          env=offline_env(OMP_NUM_THREADS=AUDITED_THREADS), capture_output=True, text=True,
                          timeout=600)


def train_args(assets: TinyAssets, run_dir: Path, overrides: str = QUICK_OVERRIDES,
               save_steps: int = QUICK_SAVE_STEPS) -> list[str]:
    return ["--config", str(TINY_CONFIG), "--base-model", str(assets.base_model), "--dataset", str(assets.dataset),
            "--run-dir", str(run_dir), "--gpus", "1", "--overrides", overrides, "--save-steps", str(save_steps)]


def build_assets(root: Path) -> TinyAssets:
    """A random-init tiny Llama with its tokenizer, and AceReason-shaped rows converted as the pipeline does."""
    from steps import tiny_assets
    from steps.convert_dataset import convert_dataset

    tiny_assets.build_tiny_llama(root / "tiny-llama")
    raw = tiny_assets.build_acereason_dataset(root / "acereason.parquet", n=DATASET_ROWS, seed=0)
    convert_dataset(str(raw), root / "data")
    return _assets_in(root)


def shared_assets(tmp_path_factory) -> TinyAssets:
    """The tiny model and converted dataset, built once per test run."""
    return _assets_in(once_per_run(tmp_path_factory, "train-assets", build_assets))


def _assets_in(root: Path) -> TinyAssets:
    return TinyAssets(root / "tiny-llama", root / "data" / "train.parquet")


def shared_trained_run(tmp_path_factory) -> TrainedRun:
    """One `steps.train` run of the tiny config, made on first use in this test run and reused by every module
    (in every xdist worker: its output is kept beside the run folder)."""
    assets = shared_assets(tmp_path_factory)

    def train(folder: Path) -> None:
        result = run_audited_train(*train_args(assets, folder / "train"))
        (folder / RESULT).write_text(json.dumps({"args": result.args, "returncode": result.returncode,
                                                 "stdout": result.stdout, "stderr": result.stderr}))

    folder = once_per_run(tmp_path_factory, "trained", train)
    result = subprocess.CompletedProcess(**json.loads((folder / RESULT).read_text()))
    return TrainedRun(assets, folder / "train", result)


def copy_run(run: TrainedRun, destination: Path) -> TrainedRun:
    """A copy of a trained run under another folder, its config's paths rewritten to the copy."""
    shutil.copytree(run.run_dir, destination)
    config = destination / "axolotl.yaml"
    config.write_text(config.read_text().replace(str(run.run_dir), str(destination)))
    return TrainedRun(run.assets, destination, run.result)
