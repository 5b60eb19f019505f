"""steps.merge_lora's bad input: each fails in one line with exit 2 before Axolotl runs."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from steps import merge_lora as merge_step
from steps.common import StepInputError
from steps.training import launch


def invoke(*args: object):
    app = typer.Typer()
    app.command()(merge_step.merge_lora_command)
    return CliRunner().invoke(app, [str(arg) for arg in args])


def write_config(tmp_path: Path, **cfg) -> Path:
    path = tmp_path / "axolotl.yaml"
    path.write_text(yaml.safe_dump({"base_model": "x/tiny", "adapter": "lora", "output_dir": str(tmp_path / "out"),
                                    **cfg}))
    return path


def test_an_empty_adapter_dir(tmp_path):
    (tmp_path / "out").mkdir()
    result = invoke("--config", write_config(tmp_path))
    assert result.exit_code == 2
    assert f"--lora-model-dir {tmp_path / 'out'}: no complete adapter (adapter_config.json is missing; " \
           "no adapter weights" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_adapter_without_weights(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    result = invoke("--config", write_config(tmp_path), "--lora-model-dir", adapter)
    assert result.exit_code == 2 and "no adapter weights" in result.stderr


def test_a_missing_config(tmp_path):
    result = invoke("--config", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "cannot read the Axolotl config" in result.stderr


@pytest.mark.parametrize("cfg, message", [
    ({"adapter": None}, "adapter is None; only a lora or qlora adapter can be merged"),
    ({"output_dir": None}, "no output_dir; pass RUN/train/axolotl.yaml"),
])
def test_a_config_that_is_not_a_finished_lora_run(tmp_path, cfg, message):
    result = invoke("--config", write_config(tmp_path, **cfg))
    assert result.exit_code == 2 and message in result.stderr


def test_missing_axolotl(tmp_path, monkeypatch):
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(StepInputError, match="axolotl is not installed"):
        merge_step.merge_lora(write_config(tmp_path))


@pytest.mark.parametrize("record", ["", '{"adapter_sha', "[]"])
def test_a_torn_merge_record_means_merge_again(tmp_path, record):
    from test_upload_support import make_model_folder

    cfg = {"output_dir": str(tmp_path)}
    make_model_folder(merge_step.merged_dir(cfg))
    merge_step.merge_record_path(cfg).write_text(record)
    assert merge_step._is_current(cfg, "sha") is False
    merge_step.merge_record_path(cfg).write_text('{"adapter_sha256": "sha"}')
    assert merge_step._is_current(cfg, "sha") is True
