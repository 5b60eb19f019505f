"""steps.common: the step entry point every step shares (step_main: one line and the contract's exit
code for every error a user can act on, issue 12) and the atomic writes that refuse to replace
what is not a regular file (issue 11 item 7) or to write through a permission problem in a
traceback (issue 10 item 9)."""
from __future__ import annotations

import ast
import importlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from steps.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_REGRESSION,
    StepFailure,
    StepInputError,
    TransientFailure,
    atomic_path,
    permission_message,
    step_errors,
    step_main,
    write_text_atomic,
)
from workflows.cli import app as tunebench

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Every step module, and the command its main() runs: `<module>_command`.
STEP_MODULES = ("aggregate", "convert_dataset", "estimate_memory", "eval_mmlu_pro", "merge_lora", "plan_eval",
                "prefetch_model", "tiny_assets", "train", "upload", "verdict")


@pytest.mark.parametrize("module_name", STEP_MODULES)
def test_issue12_every_step_main_runs_its_module_command_through_step_main(module_name, monkeypatch):
    module = importlib.import_module(f"steps.{module_name}")
    called = []
    monkeypatch.setattr("steps.common.step_main", called.append)
    if hasattr(module, "step_main"):
        monkeypatch.setattr(module, "step_main", called.append)
    module.main()
    assert called == [getattr(module, f"{module_name}_command")]


def test_every_module_in_steps_with_a_main_is_listed():
    found = {path.stem for path in (PROJECT_ROOT / "steps").glob("*.py") if "\ndef main(" in path.read_text()}
    assert found == set(STEP_MODULES)


def _invoke(command, *args: str):
    app = typer.Typer()
    app.command()(step_errors(command))
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("error, code, says", [
    (StepInputError("--x 3: must be 1 or 2"), EXIT_BAD_INPUT, "error: --x 3: must be 1 or 2"),
    (TransientFailure("the hub answered 503"), EXIT_FAILURE, "error: the hub answered 503"),
    (StepFailure("merged model does not load"), EXIT_FAILURE, "error: merged model does not load"),
    (FileNotFoundError(2, "No such file or directory", "/in/x.json"), EXIT_BAD_INPUT,
     "error: /in/x.json: No such file or directory"),
    (IsADirectoryError(21, "Is a directory", "/in/dir"), EXIT_BAD_INPUT, "error: /in/dir: Is a directory"),
    (OSError(28, "No space left on device", "/out/x"), EXIT_FAILURE, "error: /out/x: No space left on device"),
    (ConnectionError("connection reset"), EXIT_FAILURE, "error: connection reset"),
])
def test_issue12_step_errors_are_one_line_with_the_contracts_exit_code(error, code, says):
    def command() -> None:
        raise error

    result = _invoke(command)
    assert result.exit_code == code and result.output == says + "\n"


def test_issue10_item9_a_permission_failure_names_the_path_the_owner_and_the_process(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    error = PermissionError(13, "Permission denied", str(locked / ".summary.json.x.tmp"))
    message = permission_message(error)
    info = locked.stat()
    assert message.startswith(f"permission denied: {locked / '.summary.json.x.tmp'} (in {locked}) is owned by "
                              f"uid {info.st_uid} gid {info.st_gid}, mode {stat.filemode(info.st_mode)}")
    assert f"this process runs as uid {os.getuid()} gid {os.getgid()}" in message
    assert message.endswith("see docs/cluster.md#volume-ownership") and "\n" not in message

    def command() -> None:
        raise error

    result = _invoke(command)
    assert result.exit_code == EXIT_BAD_INPUT and result.output == f"error: {message}\n"


def test_issue10_item9_a_step_that_may_not_write_its_volume_says_so_in_one_line(tmp_path, monkeypatch):
    from steps.plan_eval import plan_eval_command

    def refused(*args, dir=None, **kwargs):  # what a volume owned by another uid answers
        raise PermissionError(13, "Permission denied", os.path.join(dir, ".baseline-items.json.x.tmp"))

    monkeypatch.setattr("tempfile.mkstemp", refused)
    result = _invoke(plan_eval_command, "--baselines", '["a/b"]', "--subjects", '["math"]', "--out-dir",
                     str(tmp_path))
    assert result.exit_code == EXIT_BAD_INPUT and result.output.count("\n") == 1
    assert result.output.startswith(f"error: permission denied: {tmp_path / '.baseline-items.json.x.tmp'} (in "
                                    f"{tmp_path}) is owned by uid ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: a read-only folder needs another user")
def test_issue10_item9_a_read_only_output_folder_is_one_line_from_a_step(tmp_path):
    (tmp_path / "plan").mkdir()
    (tmp_path / "plan").chmod(0o555)
    result = subprocess.run([sys.executable, "-m", "steps.plan_eval", "--baselines", '["a/b"]', "--subjects",
                             '["math"]', "--out-dir", str(tmp_path / "plan")], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_BAD_INPUT and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: permission denied: ") and "volume-ownership" in result.stderr


# --- issue 11 item 7: what an atomic write refuses to replace -----------------------------------------

def _special_paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a directory").mkdir()
    (tmp_path / "target").write_text("kept")
    (tmp_path / "a symlink").symlink_to(tmp_path / "target")
    os.mkfifo(tmp_path / "a FIFO")
    paths = {kind: tmp_path / kind for kind in ("a directory", "a symlink", "a FIFO")}
    if Path("/dev/null").exists():
        paths["a character device"] = Path("/dev/null")
    return paths


def test_item7_atomic_writes_refuse_what_is_not_a_regular_file(tmp_path):
    for kind, path in _special_paths(tmp_path).items():
        with pytest.raises(StepInputError, match=f"^{path} is {kind}; an output must be a regular file or a new path"):
            write_text_atomic(path, "x")
    assert (tmp_path / "target").read_text() == "kept" and (tmp_path / "a symlink").is_symlink()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary file left


def test_item7_a_parent_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("kept")
    with pytest.raises(StepInputError, match=f"^{tmp_path / 'file'} is a file, not a directory; outputs cannot "
                                             f"be written under {tmp_path / 'file' / 'sub'}"):
        write_text_atomic(tmp_path / "file" / "sub" / "out.json", "x")


def test_item7_a_path_that_turned_into_a_directory_while_writing_is_not_replaced(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(StepInputError, match="is a directory"), atomic_path(target) as tmp:
        tmp.write_text("x")
        target.mkdir()
    assert target.is_dir() and not list(target.iterdir())


def test_item7_regular_files_and_new_paths_are_still_replaced_atomically(tmp_path):
    write_text_atomic(tmp_path / "new" / "out.txt", "one")
    write_text_atomic(tmp_path / "new" / "out.txt", "two")
    assert (tmp_path / "new" / "out.txt").read_text() == "two"


@pytest.mark.parametrize("args", [
    ["render", str(PROJECT_ROOT / "configs" / "pipelines" / "smoke.yaml"), "-o", "{dir}"],
    ["estimate", "--model", "{config}", "--method", "lora", "--out", "{dir}"],
])
def test_item7_tunebench_outputs_that_are_directories_are_one_line(tmp_path, args):
    from test_estimate_memory import TINY_LLAMA

    (tmp_path / "config.json").write_text(json.dumps(TINY_LLAMA))
    (tmp_path / "out").mkdir()
    argv = [arg.replace("{dir}", str(tmp_path / "out")).replace("{config}", str(tmp_path / "config.json"))
            for arg in args]
    result = CliRunner().invoke(tunebench, argv)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and f"{tmp_path / 'out'} is a directory" in result.stderr


@pytest.mark.parametrize("module_name", STEP_MODULES)
def test_issue12_no_import_shadows_a_step_command(module_name):
    """`<module>_command` is the module's typer entry point; an imported helper of that name (train's
    Axolotl command line) would replace it, or be replaced by it."""
    tree = ast.parse((PROJECT_ROOT / "steps" / f"{module_name}.py").read_text())
    bound = [alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             for alias in node.names]
    assert f"{module_name}_command" not in bound


def _threshold_command(regression_threshold: float = typer.Option(0.02), out: str = typer.Option(...)) -> None:
    if regression_threshold > 1:
        raise typer.Exit(EXIT_REGRESSION)


@pytest.mark.parametrize("argv, says", [
    (["--out", "x", "--regression-threshold", "abc"],
     "error: Invalid value for '--regression-threshold': 'abc' is not a valid float. (see --help)"),
    (["--regression-threshold", "0.1"], "error: Missing option '--out'. (see --help)"),
    (["--out", "x", "--zzz"], "error: No such option '--zzz'. (see --help)"),
])
def test_issue11_a_bad_option_value_is_one_line_and_exit_2_not_a_usage_box(capsys, argv, says):
    with pytest.raises(SystemExit) as exited:
        step_main(_threshold_command, argv)
    captured = capsys.readouterr()
    assert exited.value.code == EXIT_BAD_INPUT and captured.out == ""
    assert captured.err == says + "\n"


def test_step_main_keeps_the_commands_own_exit_code():
    with pytest.raises(SystemExit) as exited:
        step_main(_threshold_command, ["--out", "x", "--regression-threshold", "2"])
    assert exited.value.code == EXIT_REGRESSION
    with pytest.raises(SystemExit) as exited:
        step_main(_threshold_command, ["--out", "x"])
    assert exited.value.code == 0


def test_issue11_a_steps_bad_option_value_is_one_line_in_its_log():
    result = subprocess.run([sys.executable, "-m", "steps.aggregate", "--regression-threshold", "abc"],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == EXIT_BAD_INPUT and result.stdout == ""
    assert result.stderr.startswith("error: Invalid value for '--regression-threshold'") and result.stderr.count("\n") == 1
