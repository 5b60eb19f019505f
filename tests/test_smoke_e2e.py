"""The smoke pipeline end to end, as `make demo` runs it: tiny assets built here, then
`tunebench run configs/pipelines/smoke.yaml` through the local runner — convert, gate,
train and merge with real Axolotl on the CPU, upload to a folder, eval of the base and the
fine-tuned model with transformers, aggregate — and a rerun that resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.run_once import once_per_run

from workflows.config import load_pipeline
from steps.mmlu_pro.run_summary import first_pattern_shares

pytestmark = [pytest.mark.axolotl, pytest.mark.timeout(1500)]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMOKE = PROJECT_ROOT / "configs" / "pipelines" / "smoke.yaml"
ASSETS = PROJECT_ROOT / "build" / "demo-assets"
TASKS = {"convert-dataset", "memory-gate", "prefetch-base-model", "prefetch-eval", "train", "merge-lora", "upload",
         "plan-eval", "eval-baseline", "eval-finetuned", "aggregate", "publish-scores", "verdict",
         # the fan-outs, inside the eval-fanout DAG template each eval task calls
         "eval-baseline.eval", "eval-finetuned.eval"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", AXOLOTL_DO_NOT_TRACK="1", WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")
    env.pop("HF_TOKEN", None)
    return env


def _run(command: list[str], timeout: float) -> tuple[int, str, float]:
    """Run from the project root; on a timeout stop it as Ctrl-C would, so no task process outlives the test."""
    started = time.time()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"{' '.join(command)} did not finish in {timeout:.0f} s:\n{output[-5000:]}")
    return process.returncode, output, time.time() - started


def demo_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make demo`'s first command, once per test run: a rebuild swaps the folders that both smoke modules'
    pipelines read, maybe while the other xdist worker's pipeline is reading them."""
    def build(_: Path) -> None:
        code, output, _ = _run([sys.executable, "-m", "steps.tiny_assets", "--out", str(ASSETS)], timeout=300)
        assert code == 0, output

    once_per_run(tmp_path_factory, "demo-assets", build)
    return ASSETS


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_assets(tmp_path_factory)


def test_smoke_config_points_at_the_tiny_assets() -> None:
    cfg = load_pipeline(SMOKE)
    assert cfg.model.id == "build/demo-assets/tiny-llama"
    assert cfg.data.source == "build/demo-assets/acereason.parquet"
    assert cfg.eval.dataset == "build/demo-assets/mmlu-pro"
    assert cfg.eval.baselines == [cfg.model.id]
    assert (cfg.eval.engine, cfg.eval.gpus_per_task, cfg.upload.target) == ("hf", 0, "local")
    assert len(cfg.eval.subjects) >= 2
    assert (PROJECT_ROOT / cfg.train.axolotl_config).is_file()


def test_smoke_pipeline_end_to_end_then_resume(assets: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    command = [sys.executable, "-m", "workflows.cli", "run", str(SMOKE.relative_to(PROJECT_ROOT)), "--workdir", str(workdir)]
    code, output, elapsed = _run(command, timeout=1200)
    assert code == 0, output[-8000:]
    print(f"smoke pipeline: {elapsed:.0f} s")

    timeline = json.loads((workdir / "timeline.json").read_text())
    assert timeline["phase"] == "Succeeded"
    tasks = {entry["task"]: entry for entry in timeline["tasks"]}
    assert set(tasks) == TASKS
    assert all(entry["phase"] == "Succeeded" for entry in tasks.values()), {k: v["phase"] for k, v in tasks.items()}
    assert len(tasks["eval-baseline.eval"]["pods"]) == 2 and len(tasks["eval-finetuned.eval"]["pods"]) == 2
    # the baselines ran while the model trained
    assert tasks["eval-baseline"]["start"] < tasks["train"]["end"]

    run_dir = workdir / "volumes" / "workspace" / "runs" / timeline["workflow"]
    summary = run_dir / "summary"
    for name in ("summary.json", "summary.md", "scores.png"):
        assert (summary / name).is_file(), name
    card = (run_dir / "upload" / "README.md").read_text()
    assert "## MMLU-Pro" in card and "| math |" in card  # publish-scores put the table into the card
    assert (run_dir / "train" / "output" / "merged" / "config.json").is_file()
    # the CLI printed the aggregate's table and where the files are
    assert "| math |" in output and "| physics |" in output
    assert str(summary / "summary.md") in output and str(summary / "scores.png") in output

    # fine-tuning changed the model: its answers now end in "The answer is (X)"
    shares = {role: first / total for _, role, first, total in first_pattern_shares(summary)}
    assert shares["finetuned"] >= 0.5 > shares["baseline"], shares

    # a rerun in the same workdir resumes: every task is reused, nothing runs again
    code, output, elapsed = _run(command, timeout=300)
    assert code == 0, output[-8000:]
    timeline = json.loads((workdir / "timeline.json").read_text())
    assert all(pod["reused"] for entry in timeline["tasks"] for pod in entry["pods"])
    assert elapsed < 60
