"""Gaps the review of issues 10 and 11 found on the integrated tree, one test per gap, named for the item."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steps.mmlu_pro.history import write_run
from workflows.cli import app


def _history(folder: Path) -> Path:
    row = {"time": "2026-01-01T03:00:00+00:00", "run": "run-1", "model": "org/a", "role": "baseline",
           "source": "org/a", "model_revision": "rev-1", "subject": "math", "n": 20, "correct": 7,
           "accuracy": 7 / 20, "settings_hash": "h1"}
    write_run(folder, "run-1", [row])
    return folder


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _symlink_to_precious(path: Path) -> Path:
    (path.parent / "precious.png").write_text("keep me")
    path.symlink_to(path.parent / "precious.png")
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _under_a_file(path: Path) -> Path:
    path.write_text("a file")
    return path / "trend.png"


@pytest.mark.parametrize(("make", "says"), [(_fifo, "is a FIFO"), (_symlink_to_precious, "is a symlink"),
                                            (_directory, "is a directory"), (_under_a_file, "is a file, not a directory")])
def test_issue11_item7_history_plot_that_is_not_a_regular_file_is_one_line(tmp_path, make, says):
    """`tunebench history --plot` was the one output option still ending in a StepInputError traceback."""
    history = _history(tmp_path / "history")
    plot = make(tmp_path / "plot")
    result = CliRunner().invoke(app, ["history", str(history), "--plot", str(plot)])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.output
    assert "Traceback" not in result.output
    if (tmp_path / "precious.png").exists():
        assert (tmp_path / "precious.png").read_text() == "keep me"


def test_issue11_item7_history_plot_to_a_new_path_is_written(tmp_path):
    history = _history(tmp_path / "history")
    result = CliRunner().invoke(app, ["history", str(history), "--plot", str(tmp_path / "trend.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "trend.png").read_bytes().startswith(b"\x89PNG")


def _a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("keep me")
    return tmp_path / "file"


def _under_a_file_workdir(tmp_path: Path) -> Path:
    return _a_file(tmp_path) / "work"


def _a_fifo(tmp_path: Path) -> Path:
    return _fifo(tmp_path / "fifo")


@pytest.mark.parametrize(("make", "says"), [
    (_a_file, "exists and is not a folder"), (_a_fifo, "exists and is not a folder"),
    (_under_a_file_workdir, "cannot be created: Not a directory")])
def test_issue11_item10_run_with_a_workdir_that_is_not_a_folder_is_one_line(tmp_path, make, says):
    """`tunebench run --workdir FILE` ended in a FileExistsError / NotADirectoryError traceback."""
    workdir = make(tmp_path)
    manifest = Path(__file__).resolve().parents[1] / "configs" / "pipelines" / "smoke.yaml"
    result = CliRunner().invoke(app, ["run", str(manifest), "--workdir", str(workdir)])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --workdir {workdir}") and says in lines[0], result.output
    if (tmp_path / "file").exists():
        assert (tmp_path / "file").read_text() == "keep me"


@pytest.mark.parametrize(("baselines", "says"), [
    ('["/models/a--b", "/models/a/b"]', "'/models/a--b' and '/models/a/b' would share one results folder ('models--a--b')"),
    ('[".."]', "'..' gives no results folder of its own under RUN/eval (its folder name would be '..')"),
    ('["."]', "'.' gives no results folder of its own under RUN/eval (its folder name would be '')"),
    ('["./plan"]', "gives no results folder of its own under RUN/eval (its folder name would be 'plan')"),
    ('["org/tuned"]', "--baselines names 'org/tuned', the fine-tuned model's name in reports"),
])
def test_issue11_item2_each_planned_model_has_its_own_results_folder_and_name(tmp_path, baselines, says):
    """Two baselines in one RUN/eval folder overwrite each other's results, `..` puts them in the run's
    root, and a baseline named like the fine-tuned model files both under one name: refused, nothing written."""
    from steps.plan_eval import plan_eval_command

    planner = typer_app(plan_eval_command)
    out_dir = tmp_path / "plan"
    result = CliRunner().invoke(planner, ["--baselines", baselines, "--subjects", '["math"]', "--out-dir", str(out_dir),
                                          "--finetuned-model", "/ws/runs/r/train/output/merged",
                                          "--finetuned-label", "org/tuned"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert says in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not out_dir.exists()


def typer_app(command):
    import typer

    app_ = typer.Typer()
    app_.command()(command)
    return app_


DEEP = "[" * 5000 + "]" * 5000  # within argv limits; far beyond Python's recursion limit when parsed


def test_issue11_item10_deeply_nested_json_is_one_line_in_every_step_and_cli(tmp_path):
    """json.loads recurses per level: a RecursionError traceback in rescore, aggregate, estimate,
    plan_eval (-p subjects / baselines) and the runner's state.json, before this fix."""
    from steps.aggregate import aggregate_command
    from steps.plan_eval import plan_eval_command

    deep_file = tmp_path / "deep.json"
    deep_file.write_text(DEEP)
    says = "error: an input is nested too deeply to read"
    model_config = tmp_path / "model" / "config.json"
    model_config.parent.mkdir()
    model_config.write_text('{"hidden_size": ' + DEEP + "}")
    invocations = [
        (app, ["rescore", str(deep_file)]),
        (app, ["estimate", "--model", str(model_config), "--gpus", "1", "--gpu-memory-gib", "40", "--method", "lora"]),
        (app, ["estimate", "--model", str(model_config), "--gpus", "1", "--gpu-memory-gib", "40", "--method", "lora",
               "--overrides", '{"a": ' + DEEP + "}"]),
        (typer_app(plan_eval_command), ["--baselines", DEEP, "--subjects", '["math"]', "--out-dir", str(tmp_path / "p")]),
        (typer_app(plan_eval_command), ["--baselines", "[]", "--subjects", DEEP, "--out-dir", str(tmp_path / "p"),
                                        "--finetuned-model", "x"]),
        (typer_app(aggregate_command), ["--eval-dir", str(tmp_path), "--models", str(deep_file), "--subjects", '["math"]',
                                        "--out-dir", str(tmp_path / "s"), "--run-id", "r1"]),
    ]
    for command, args in invocations:
        result = CliRunner().invoke(command, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(says), (args[:2], result.output[-300:],
                                                                                        result.exception)

    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "state.json").write_text(DEEP)
    manifest = Path(__file__).resolve().parents[1] / "configs" / "pipelines" / "smoke.yaml"
    result = CliRunner().invoke(app, ["run", str(manifest), "--workdir", str(workdir)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, (result.output[-300:], result.exception)
    assert lines[0].startswith(f"error: {workdir / 'state.json'} is unreadable (maximum recursion depth exceeded")


def test_issue11_item10_a_deeply_nested_with_param_fails_the_task_not_the_runner(tmp_path):
    from test_runner_support import APPEND, py, run, task, workflow

    plan = f"open('/workspace/plan.json', 'w').write({DEEP!r})"
    manifest = workflow(
        [py("plan", plan, outputs={"items": "/workspace/plan.json"}), py("use", APPEND, ("file", "text"))],
        [task("plan", "plan"),
         task("fan", "use", "plan", withParam="{{tasks.plan.outputs.parameters.items}}",
              args={"file": "fan", "text": "{{item}}"})])
    result = run(manifest, tmp_path)
    assert not result.succeeded
    assert "withParam value could not be parsed as a JSON list" in result.message, result.message


def test_issue11_item10_convert_refuses_a_jsonl_row_nested_past_what_pyarrow_survives(tmp_path):
    """pyarrow's JSON reader segfaulted (exit 139, no message) on a row ~30 000 levels deep; brackets
    inside strings (LaTeX braces) still do not count."""
    import json
    import subprocess
    import sys

    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"problem": "q", "answer": "1", "x": ' + "[" * 50_000 + "]" * 50_000 + "}\n")
    latex = tmp_path / "latex.jsonl"
    latex.write_text(json.dumps({"problem": r"\frac{" * 5_000 + "x" + "}" * 5_000 + ' "[' * 2_000, "answer": "1"}) + "\n")
    command = [sys.executable, "-m", "steps.convert_dataset", "--question-field", "problem", "--answer-field", "answer"]
    root = Path(__file__).resolve().parents[1]
    refused = subprocess.run([*command, "--source", str(deep), "--out-dir", str(tmp_path / "a")],
                             capture_output=True, text=True, cwd=root, timeout=120)
    assert refused.returncode == 2, (refused.returncode, refused.stderr[-500:])
    assert refused.stderr.strip() == (f"error: --source {deep}: line 1 nests more than 1,000 levels of [ and {{; "
                                      "no dataset row does (is it the right file?)")
    assert not (tmp_path / "a" / "train.parquet").exists()
    accepted = subprocess.run([*command, "--source", str(latex), "--out-dir", str(tmp_path / "b")],
                              capture_output=True, text=True, cwd=root, timeout=120)
    assert accepted.returncode == 0, accepted.stderr[-500:]
    assert (tmp_path / "b" / "train.parquet").exists()


def test_issue11_item9_rescore_refuses_a_zip_that_unpacks_past_its_bound(tmp_path, monkeypatch):
    """A zip bomb was read whole into memory; the bound is lowered here so the test stays small."""
    import zipfile

    monkeypatch.setattr("steps.mmlu_pro.rescore.MAX_UNZIPPED_BYTES", 1 << 20)
    bomb = tmp_path / "outputs.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model_outputs.json", "[" + " " * (2 << 20) + "]")
    result = CliRunner().invoke(app, ["rescore", str(bomb)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.output.strip() == (f"error: {bomb} unpacks to {(2 << 20) + 2:,} bytes of JSON; saved outputs are "
                                     f"tens of MB (at most {1 << 20:,} bytes are read): is it the right file?")
