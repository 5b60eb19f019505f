"""Item 1 of issue 11: a failed aggregate never reads as success.

A regression is published (the model card gets the new scores) and the run ends Failed, in the
last `verdict` task; bad input to aggregate publishes nothing and fails the run; publish-scores
and verdict act only on the summary.json this run's aggregate invocation wrote. End to end
through the local runner on the rendered DAGs (the heavy steps replaced by stand-ins: see
pipeline_stand_ins.py), and the steps alone.

Argo's rule these rely on (workflow/controller/dag.go `assessDAGPhase`): the DAG's phase comes
from its leaf tasks, an Omitted leaf taking its branch's phase; a failure some dependant's
`depends` handles (`aggregate.Failed`) no longer fails the DAG, which is why the old
`aggregate.Succeeded || aggregate.Failed` wiring read as success.
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from pipeline_stand_ins import stand_in
from steps.aggregate import aggregate
from steps.common import EXIT_BAD_INPUT, EXIT_REGRESSION
from steps.mmlu_pro.history import write_run
from test_runner_support import phases, run
from workflows.config import load_pipeline
from workflows.render import manifests

pytestmark = pytest.mark.timeout(300)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMOKE = PROJECT_ROOT / "configs" / "pipelines" / "smoke.yaml"
# Correct of 200 per role and subject (the smoke config's subjects, math and physics): enough questions
# for a drop from 0.6 to be a significant one, as a regression must be.
SCORES = {"baseline": {"math": [40, 200], "physics": [50, 200]},
          "finetuned": {"math": [60, 200], "physics": [70, 200]}}
TAIL = ("aggregate", "publish-scores", "verdict")


def _pipeline(**stand_in_options) -> dict:
    cfg = load_pipeline(SMOKE)
    return stand_in(manifests(cfg, "workflow")[0], SCORES, **stand_in_options)


def _earlier_run(workdir: Path, model: str, accuracy: float) -> None:
    """The history holds an earlier run of `model` at the stand-in's revision and settings."""
    rows = [{"time": "2026-01-01T00:00:00+00:00", "run": "earlier", "model": model, "role": "finetuned",
             "source": "x", "model_revision": "rev-1", "subject": subject, "n": 200,
             "correct": round(accuracy * 200), "accuracy": accuracy, "settings_hash": "settings-1"}
            for subject in ("math", "physics")]
    write_run(workdir / "volumes" / "workspace" / "history" / "mmlu-pro", "earlier", rows)


def _run_dir(workdir: Path) -> Path:
    name = json.loads((workdir / "state.json").read_text())["workflow"]["name"]
    return workdir / "volumes" / "workspace" / "runs" / name


def _card(workdir: Path) -> str:
    return (_run_dir(workdir) / "upload" / "README.md").read_text()


def _cli_run(manifest: dict, workdir: Path, *params: str) -> subprocess.CompletedProcess:
    path = workdir.parent / f"{workdir.name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    command = [sys.executable, "-m", "workflows.cli", "run", str(path), "--workdir", str(workdir), "-q",
               "--backoff-scale", "0"] + [arg for param in params for arg in ("-p", param)]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)


def test_item1_a_regression_publishes_the_new_scores_and_the_workflow_ends_failed(tmp_path):
    workdir = tmp_path / "run"
    # now 0.30 and 0.35: beyond the threshold and significant on 200 questions
    _earlier_run(workdir, "local/tiny-llama-smoke", accuracy=0.6)
    result = _cli_run(_pipeline(), workdir)
    assert result.returncode == 1, result.stdout + result.stderr
    timeline = json.loads((workdir / "timeline.json").read_text())
    assert timeline["phase"] == "Failed"
    assert {task: phase for task, phase in _phases(workdir).items() if task in TAIL} == {
        "aggregate": "Succeeded", "publish-scores": "Succeeded", "verdict": "Failed"}
    card = _card(workdir)
    assert "## MMLU-Pro" in card and "30.0% [24.1%, 36.7%] (60/200)" in card and "35.0% [28.7%, 41.8%] (70/200)" in card
    summary = json.loads((_run_dir(workdir) / "summary" / "summary.json").read_text())
    assert {r["subject"] for r in summary["regressions"]} == {"math", "physics"}
    assert "task 'verdict' failed: exit code 4" in result.stderr
    verdict_log = (workdir / "logs" / "verdict.log").read_text()
    assert "accuracy regressed by more than 0.02 in: math" in verdict_log
    assert "Δ -0.3000, 95% CI [" in verdict_log and " p<0.001" in verdict_log   # math: 0.6 → 0.3 of 200


def test_item1_bad_regression_threshold_publishes_nothing_and_the_workflow_ends_failed(tmp_path):
    workdir = tmp_path / "run"
    result = _cli_run(_pipeline(), workdir, "regression_threshold=abc")
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads((workdir / "timeline.json").read_text())["phase"] == "Failed"
    assert {task: phase for task, phase in _phases(workdir).items() if task in TAIL} == {
        "aggregate": "Failed", "publish-scores": "Omitted", "verdict": "Omitted"}
    assert "MMLU-Pro" not in _card(workdir)
    assert not (_run_dir(workdir) / "summary" / "summary.id").exists()


def test_item1_without_a_regression_the_workflow_succeeds_with_the_scores_published(tmp_path):
    result = run(_pipeline(), tmp_path / "run", cwd=PROJECT_ROOT)
    assert result.succeeded, result.message
    assert {task: phase for task, phase in phases(result).items() if task in TAIL} == {
        "aggregate": "Succeeded", "publish-scores": "Succeeded", "verdict": "Succeeded"}
    assert "30.0% [24.1%, 36.7%] (60/200)" in _card(tmp_path / "run")


def test_item1_without_an_upload_a_regression_still_fails_the_workflow(tmp_path):
    """publish-scores is Skipped (`when`), which would leave a handled aggregate failure reading as
    success; the verdict task runs after a Skipped publish-scores too."""
    workdir = tmp_path / "run"
    _earlier_run(workdir, "local/tiny-llama-smoke", accuracy=0.6)   # now 0.30 and 0.35
    result = run(_pipeline(), workdir, cwd=PROJECT_ROOT, parameters={"upload_enabled": "false"})
    assert not result.succeeded and result.phase == "Failed"
    assert {task: phase for task, phase in phases(result).items() if task in (*TAIL, "upload")} == {
        "upload": "Skipped", "aggregate": "Succeeded", "publish-scores": "Skipped", "verdict": "Failed"}


def test_item1_a_stale_or_foreign_summary_is_never_published(tmp_path):
    """A resumed run reuses aggregate, but summary.json is no longer what that aggregate wrote."""
    workdir = tmp_path / "run"
    first = run(_pipeline(upload_card=False), workdir, cwd=PROJECT_ROOT)
    assert not first.succeeded and phases(first)["publish-scores"] == "Failed"   # no upload to update yet
    run_dir = _run_dir(workdir)
    (run_dir / "upload" / "README.md").write_text("# the card of the upload\n")
    # Another aggregate invocation (another run's, or an earlier attempt's) wrote the folder since.
    aggregate(run_dir / "eval", run_dir / "eval" / "plan" / "models.json", ["math", "physics"],
              run_dir / "summary", "another-run")
    second = run(_pipeline(upload_card=False), workdir, cwd=PROJECT_ROOT)
    assert not second.succeeded
    assert {task: phase for task, phase in phases(second).items() if task in TAIL} == {
        "aggregate": "Succeeded", "publish-scores": "Failed", "verdict": "Omitted"}
    assert "stale or written by another run" in (workdir / "logs" / "publish-scores.log").read_text()
    assert _card(workdir) == "# the card of the upload\n"


def test_item1_the_cron_rebenchmark_fails_on_a_regression(tmp_path):
    cfg = load_pipeline(SMOKE)
    benchmark = next(m for m in manifests(cfg, "template") if m["spec"]["entrypoint"] == "benchmark")
    workdir = tmp_path / "run"
    _earlier_run(workdir, cfg.eval.baselines[0], accuracy=0.6)   # now 0.20 and 0.25: significant
    result = run(stand_in(benchmark, SCORES), workdir, cwd=PROJECT_ROOT)
    assert not result.succeeded and result.phase == "Failed"
    assert {task: phase for task, phase in phases(result).items() if task in ("aggregate", "verdict")} == {
        "aggregate": "Succeeded", "verdict": "Failed"}


def _phases(workdir: Path) -> dict[str, str]:
    timeline = json.loads((workdir / "timeline.json").read_text())
    return {entry["task"]: entry["phase"] for entry in timeline["tasks"]}


# --- the verdict step alone -------------------------------------------------------------------

def _summary(tmp_path: Path, regressed: bool) -> tuple[Path, str]:
    eval_dir = tmp_path / "eval"
    from test_aggregate import TUNED, write_models, write_result

    write_result(eval_dir, TUNED, "math", 30 if regressed else 60, 100)
    models = write_models(tmp_path / "models.json", TUNED)
    history = tmp_path / "history"
    write_run(history, "earlier", [{"time": "2026-01-01T00:00:00+00:00", "run": "earlier", "model": TUNED["label"],
                                    "role": "finetuned", "source": "x", "model_revision": "rev-1", "subject": "math",
                                    "n": 100, "correct": 50, "accuracy": 0.5, "settings_hash": "settings-1"}])
    summary, _ = aggregate(eval_dir, models, ["math"], tmp_path / "summary", "now", history,
                           now=datetime(2026, 2, 1, tzinfo=timezone.utc))
    return tmp_path / "summary" / "summary.json", summary["summary_id"]


def _verdict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "steps.verdict", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("regressed, code", [(True, EXIT_REGRESSION), (False, 0)])
def test_verdict_exits_4_on_a_recorded_regression_and_0_without(tmp_path, regressed, code):
    path, summary_id = _summary(tmp_path, regressed)
    assert (tmp_path / "summary" / "summary.id").read_text() == summary_id
    result = _verdict("--summary", str(path), "--summary-id", summary_id)
    assert result.returncode == code, result.stderr
    if regressed:
        assert result.stderr.count("\n") == 1 and "regressed by more than 0.02 in: math (org/tuned: 0.5000" in result.stderr


def test_verdict_refuses_a_summary_with_another_id(tmp_path):
    path, summary_id = _summary(tmp_path, regressed=True)
    result = _verdict("--summary", str(path), "--summary-id", "0123456789abcdef-00000000")
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.count("\n") == 1 and "stale or written by another run" in result.stderr
    assert "expected 0123456789abcdef-00000000" in result.stderr and summary_id in result.stderr


def test_each_aggregate_invocation_gives_its_summary_a_new_id(tmp_path):
    _, first = _summary(tmp_path / "a", regressed=False)
    _, second = _summary(tmp_path / "b", regressed=False)
    # the same inputs: the same digest, but another invocation
    assert first.split("-")[0] == second.split("-")[0] and first != second
