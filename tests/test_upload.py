"""steps.upload to a local folder target, and the bad input it refuses before anything is written or sent."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_upload_support import REPO, make_model_folder

from steps import upload as upload_step
from steps.common import StepInputError
from steps.training.model_folder import model_folder_problems


def test_local_target_gets_the_model_files_and_a_card(tmp_path):
    model = make_model_folder(tmp_path / "merged")
    (model / "README.md").write_text("the base model's own card")
    target = tmp_path / "upload"
    assert upload_step.upload(model, REPO, target=str(target), dataset="nvidia/AceReason-Math") == str(target)
    for path in model.iterdir():
        if path.name != "README.md":
            assert (target / path.name).read_bytes() == path.read_bytes()
    card = (target / "README.md").read_text()
    assert card.startswith("---\n") and "# tiny-finetune" in card and "nvidia/AceReason-Math" in card
    assert model_folder_problems(target) == []


def test_a_rerun_replaces_the_target_whole(tmp_path):
    model = make_model_folder(tmp_path / "merged")
    target = tmp_path / "upload"
    target.mkdir()
    (target / "stale.bin").write_bytes(b"from an older run")
    upload_step.upload(model, REPO, target=str(target))
    upload_step.upload(model, REPO, target=str(target))
    assert not (target / "stale.bin").exists()
    assert sorted(p.name for p in target.iterdir()) == sorted([*(p.name for p in model.iterdir()), "README.md"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_card_carries_the_config_and_the_scores(tmp_path):
    model = make_model_folder(tmp_path / "merged")
    config = tmp_path / "axolotl.yaml"
    config.write_text("base_model: google/gemma-2-2b\nadapter: qlora\nlora_r: 32\nlearning_rate: 0.0002\n"
                      "hub_token: hf_do_not_publish\n")
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"models": [
        {"label": "finetuned", "role": "finetuned", "accuracy": 0.238, "subjects": {"math": 0.238}},
        {"label": "google/gemma-2-2b", "role": "baseline", "accuracy": {"accuracy": 0.107, "correct": 145}},
    ]}))
    target = tmp_path / "upload"
    upload_step.upload(model, REPO, target=str(target), axolotl_config=config, summary=summary)
    card = (target / "README.md").read_text()
    assert "base_model: google/gemma-2-2b" in card
    assert "| lora_r | `32` |" in card and "adapter: qlora" in card
    assert "| finetuned | finetuned | 23.8% | 23.8% |" in card
    assert "| google/gemma-2-2b | baseline | 10.7% | – |" in card
    assert "hf_do_not_publish" not in card


def test_incomplete_model_folders_are_refused(tmp_path):
    model = make_model_folder(tmp_path / "merged")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])
    (model / "config.json").unlink()
    with pytest.raises(StepInputError, match="refusing to upload an incomplete model") as caught:
        upload_step.upload(model, REPO, target=str(tmp_path / "upload"))
    assert "config.json is missing" in str(caught.value) and "model.safetensors is truncated" in str(caught.value)
    assert not (tmp_path / "upload").exists()


def test_a_shard_missing_from_an_index_is_found(tmp_path):
    model = make_model_folder(tmp_path / "merged")
    (model / "model.safetensors").rename(model / "model-00001-of-00002.safetensors")
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    assert model_folder_problems(model) == ["model-00002-of-00002.safetensors is missing"]


@pytest.mark.parametrize("args, message", [
    (["--repo-id", "not a repo"], "--repo-id 'not a repo': not a hub repo id"),
    (["--repo-id", REPO, "--private", "maybe"], "--private 'maybe': use true or false"),
    (["--repo-id", REPO, "--summary", "{missing}"], "--summary"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, project_root, args, message):
    model = make_model_folder(tmp_path / "merged")
    args = [arg.replace("{missing}", str(tmp_path / "nope.json")) for arg in args]
    result = subprocess.run([sys.executable, "-m", "steps.upload", "--model-dir", str(model),
                             "--target", str(tmp_path / "upload"), *args],
                            cwd=project_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_cli_refuses_an_empty_model_dir(tmp_path, project_root):
    (tmp_path / "merged").mkdir()
    result = subprocess.run([sys.executable, "-m", "steps.upload", "--model-dir", str(tmp_path / "merged"),
                             "--repo-id", REPO, "--target", str(tmp_path / "upload")],
                            cwd=project_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "refusing to upload an incomplete model" in result.stderr and "no weights" in result.stderr
