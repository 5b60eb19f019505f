"""steps.prefetch_model: one download per model into the shared cache, local folders only checked, merge sizing."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from steps import prefetch_model
from steps.common import StepInputError, step_errors
from steps.prefetch_model import merge_memory, parse_models, prefetch, prefetch_model_command

ROOT = Path(__file__).resolve().parents[1]


def write_model(folder: Path, shapes: dict[str, list[int]]) -> Path:
    """A model folder whose safetensors header holds `shapes` (no tensor data: only the header is read)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 32,
        "tie_word_embeddings": False}))
    header = json.dumps({name: {"dtype": "BF16", "shape": shape, "data_offsets": [0, 0]}
                         for name, shape in shapes.items()}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    return folder


def test_merge_memory_follows_the_model_size():
    assert merge_memory(2_614_341_888) == "12Gi"      # gemma-2-2b: ~10 GiB of bf16 copies, not training's 160Gi
    assert merge_memory(9_241_705_984) == "37Gi"      # gemma-2-9b
    assert merge_memory(1_000) == "4Gi"               # a floor for the interpreter and libraries


def test_local_model_is_checked_not_downloaded_and_sizes_the_merge(tmp_path, monkeypatch):
    model = write_model(tmp_path / "tiny", {"model.embed_tokens.weight": [32, 8], "lm_head.weight": [32, 8]})
    def no_hub(*args, **kwargs):
        pytest.fail("a local model must not reach the hub")

    monkeypatch.setattr(prefetch_model, "_ignored_weights", no_hub)
    monkeypatch.setattr("huggingface_hub.snapshot_download", no_hub)
    out, memory = tmp_path / "run" / "base.json", tmp_path / "run" / "merge-memory"
    prefetch_model_command(out=out, model=str(model), merge_memory_out=memory)
    record = json.loads(out.read_text())
    assert record["model"]["local"] is True and record["model"]["parameters"] == 512
    assert memory.read_text() == "4Gi"


def test_each_hub_model_is_downloaded_once_at_its_revision(tmp_path, monkeypatch):
    calls = []

    def snapshot_download(repo_id, revision, ignore_patterns):
        calls.append((repo_id, revision, tuple(ignore_patterns)))
        return str(tmp_path / "snapshots" / ("a" * 40))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(prefetch_model, "_ignored_weights", lambda repo, revision: ["*.bin"])
    record = prefetch(["org/a", "org/b", "org/a"], model="org/base", revision="v1")
    assert [c[:2] for c in calls] == [("org/a", "main"), ("org/b", "main"), ("org/base", "v1")]
    assert all("*.bin" in c[2] for c in calls)
    assert record["model"]["commit"] == "a" * 40


def test_models_must_be_a_json_list():
    assert parse_models('["org/a", ""]') == ["org/a"]
    assert parse_models("") == []
    with pytest.raises(StepInputError, match="--models"):
        parse_models("org/a")


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "steps.prefetch_model", "--out", str(tmp_path / "x.json"),
                             "--models", "[1]"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --models '[1]' must be a JSON list of strings"]


def test_permission_failures_are_one_line_naming_the_volume_doc(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "hf-cache" / "hub"))

    monkeypatch.setattr(prefetch_model, "_ignored_weights", lambda repo, revision: [])
    monkeypatch.setattr(huggingface_hub, "snapshot_download", denied)  # the cache is not writable
    monkeypatch.setattr(prefetch_model, "write_json_atomic", denied)   # the workspace is not writable
    for arguments in ({"models": '["org/a"]'}, {}):
        with pytest.raises(SystemExit) as exit_info:
            step_errors(prefetch_model_command)(out=tmp_path / "x.json", **arguments)
        assert exit_info.value.code == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert "hf-cache/hub" in line and f"uid {os.getuid()}" in line and "docs/cluster.md#volume-ownership" in line


def test_a_missing_local_model_is_bad_input_not_a_hub_lookup(tmp_path):
    with pytest.raises(StepInputError, match="no such directory, and not a hub repo id"):
        prefetch([str(tmp_path / "build" / "tiny-llama")])
