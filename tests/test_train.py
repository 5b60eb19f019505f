"""steps.train for real: Axolotl trains the tiny model on a CPU; a finished run is not redone, a killed one resumes."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_train_support import (
    AUDITED_THREADS,
    PROJECT_ROOT,
    offline_env,
    run_step,
    shared_assets,
    shared_trained_run,
    train_args,
)

from steps.training import checkpoints

pytestmark = pytest.mark.axolotl


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return shared_trained_run(tmp_path_factory)


def test_trains_and_writes_an_adapter_checkpoints_and_the_final_config(trained):
    assert trained.result.returncode == 0, trained.result.stdout[-3000:] + trained.result.stderr[-3000:]
    assert (trained.output / "adapter_config.json").is_file()
    assert (trained.output / "adapter_model.safetensors").stat().st_size > 0
    assert [(c.step, checkpoints.is_complete(c)) for c in checkpoints.list_checkpoints(trained.output)] == [
        (2, True), (4, True)]
    done = json.loads((trained.run_dir / "done.json").read_text())
    assert done["global_step"] == 4 and done["resumed_from"] is None

    final = yaml.safe_load(trained.config.read_text())
    assert final["base_model"] == str(trained.assets.base_model)
    assert final["datasets"] == [{"path": str(trained.assets.dataset), "ds_type": "parquet",
                                  "type": "alpaca_chat.load_qa"}]
    assert final["output_dir"] == str(trained.output)
    assert final["dataset_prepared_path"] == str(trained.run_dir / "prepared")
    assert (final["max_steps"], final["save_steps"]) == (4, 2)
    assert "resume_from_checkpoint" not in final
    assert trained.config.read_text().startswith("# Written by tunebench steps.train")


def test_the_log_streams_axolotl_and_says_what_ran(trained):
    log = trained.result.stdout + trained.result.stderr
    assert "starting from step 0" in log
    assert f"running: axolotl train {trained.config} --launcher python, in this process" in log
    assert "'loss'" in log  # the trainer's own per-step log came through


def test_the_python_launcher_trains_in_the_steps_own_process_on_the_pods_threads(trained):
    """No second interpreter importing torch, transformers and Axolotl again: the step validates and
    trains in one process, with the thread count the pod gives it (OMP_NUM_THREADS) for both pools."""
    assert trained.result.returncode == 0, trained.result.stderr[-3000:]
    pythons = [command for _, command in trained.process["started"]
               if any("python" in Path(part).name or "axolotl" in part for part in command)]
    assert pythons == [], pythons
    assert trained.process["threads"] == trained.process["interop_threads"] == int(AUDITED_THREADS)


def test_a_finished_run_is_not_redone(trained):
    adapter = trained.output / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    result = run_step("steps.train", *train_args(trained.assets, trained.run_dir))
    assert result.returncode == 0, result.stderr
    assert "training already finished" in result.stderr
    assert adapter.stat().st_mtime_ns == before


def test_the_same_run_dir_with_another_config_is_refused(trained):
    result = run_step("steps.train", *train_args(trained.assets, trained.run_dir, overrides='{"max_steps": 5}'))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "already holds training with a different config (max_steps changed)" in result.stderr


def _wait_for_complete_checkpoint(output: Path, process: subprocess.Popen, timeout_s: float) -> checkpoints.Checkpoint:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        newest = checkpoints.newest_complete(output)
        if newest is not None:
            return newest
        if process.poll() is not None:
            raise AssertionError(f"training ended (exit {process.returncode}) before its first checkpoint")
        time.sleep(0.05)
    raise AssertionError("no checkpoint within the time limit")


@dataclass(frozen=True)
class ResumedRun:
    run_dir: Path
    removed_partial: Path
    resumed_from: checkpoints.Checkpoint
    result: subprocess.CompletedProcess

    @property
    def log(self) -> str:
        return self.result.stdout + self.result.stderr


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> ResumedRun:
    """A run killed after a complete checkpoint, with a half-saved one after it, run again to the end. The second
    run goes through `--launcher accelerate`, what a GPU pod runs (`accelerate launch --num-processes N`; one
    process on the CPU here), with a PATH without this environment's bin, as in a container whose venv is not
    active: one training checks both the resume and that launch path (each a minute of CPU alone)."""
    assets = shared_assets(tmp_path_factory)
    run_dir = tmp_path_factory.mktemp("resumed") / "train"
    args = train_args(assets, run_dir, overrides='{"max_steps": 6}', save_steps=2)
    first_log = (run_dir.parent / "first.log").open("w")
    first = subprocess.Popen([sys.executable, "-m", "steps.train", *args], cwd=PROJECT_ROOT, env=offline_env(),
                             stdout=first_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        reached = _wait_for_complete_checkpoint(run_dir / "output", first, timeout_s=300)
        first.send_signal(signal.SIGTERM)  # what the kubelet sends the pod's main process, mid-training
        assert first.wait(timeout=60) in (-signal.SIGTERM, 128 + signal.SIGTERM)  # at once, as the child did
    finally:
        with contextlib.suppress(ProcessLookupError):  # its data loader's workers, orphaned as in a pod
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert reached.step < 6 and not (run_dir / "done.json").exists()

    # What a kill in the middle of the next save leaves: weights written, trainer state not.
    partial = run_dir / "output" / f"checkpoint-{reached.step + 2}"
    if not partial.exists():
        partial.mkdir()
        (partial / "adapter_model.safetensors").write_bytes((reached.path / "adapter_model.safetensors").read_bytes())
    newest = checkpoints.newest_complete(run_dir / "output")
    assert newest is not None

    second = subprocess.run([sys.executable, "-m", "steps.train", *args, "--launcher", "accelerate"],
                            cwd=PROJECT_ROOT, env=offline_env(PATH="/usr/bin:/bin"), capture_output=True, text=True,
                            timeout=600)
    return ResumedRun(run_dir, partial, newest, second)


def test_a_killed_run_resumes_from_its_newest_complete_checkpoint(resumed):
    run_dir, newest, log = resumed.run_dir, resumed.resumed_from, resumed.log
    assert resumed.result.returncode == 0, log[-3000:]
    assert f"removed {resumed.removed_partial}: an incomplete checkpoint" in log
    assert f"resuming from {newest.path} (step {newest.step})" in log
    # The trainer went on from the checkpoint: it logged only the steps after it, and its state counts all six.
    assert log.count("{'loss'") == 6 - newest.step
    state = json.loads((run_dir / "output" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == list(range(1, 7))
    assert yaml.safe_load((run_dir / "axolotl.yaml").read_text())["resume_from_checkpoint"] == str(newest.path)
    assert json.loads((run_dir / "done.json").read_text())["resumed_from"] == str(newest.path)


def test_the_gpu_launch_path_runs_through_accelerate(resumed):
    assert resumed.result.returncode == 0, resumed.log[-6000:]
    assert "--launcher accelerate --num-processes 1" in resumed.result.stderr
    assert (resumed.run_dir / "output" / "adapter_model.safetensors").is_file()
