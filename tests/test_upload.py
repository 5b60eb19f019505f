"""steps.upload to a local folder target (a full upload, and --card-only over it), and the bad input it
refuses before anything is written or sent."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from test_upload_support import REPO, make_model_folder, write_reference_summary

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
    summary = write_reference_summary(tmp_path / "run")
    target = tmp_path / "upload"
    upload_step.upload(model, REPO, target=str(target), axolotl_config=config, summary=summary)
    card = (target / "README.md").read_text()
    assert "base_model: google/gemma-2-2b" in card
    assert "| lora_r | `32` |" in card and "adapter: qlora" in card
    assert "| math | 23.8% [21.6%, 26.1%] (321/1351) | 10.7% [9.2%, 12.5%] (145/1351) | 37.0% [34.5%, 39.6%] (500/1351) | +13.0 pp | -13.2 pp |" in card
    assert "hf_do_not_publish" not in card


def _files(folder):
    return {path.relative_to(folder).as_posix(): (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file()}


def _card_only(project_root, tmp_path, target, *extra):
    """The command line the DAG's publish-scores task runs."""
    config = tmp_path / "axolotl.yaml"
    config.write_text("base_model: google/gemma-2-2b\nadapter: qlora\nlora_r: 32\n")
    return subprocess.run(
        [sys.executable, "-m", "steps.upload", "--card-only", "--model-dir", str(tmp_path / "merged"),
         "--repo-id", REPO, "--target", str(target), "--axolotl-config", str(config),
         "--base-model", "google/gemma-2-2b", "--dataset", "nvidia/AceReason-Math", "--dataset-revision", "",
         "--private", "true", *extra],
        cwd=project_root, capture_output=True, text=True, timeout=120)


def test_card_only_rewrites_just_the_readme_of_a_local_upload_with_the_scores(tmp_path, project_root):
    model = make_model_folder(tmp_path / "merged")
    target = tmp_path / "upload"
    upload_step.upload(model, REPO, target=str(target), dataset="nvidia/AceReason-Math")
    before = _files(target)
    assert "MMLU-Pro" not in (target / "README.md").read_text()
    summary = write_reference_summary(tmp_path / "run")
    result = _card_only(project_root, tmp_path, target, "--summary", str(summary))
    assert result.returncode == 0, result.stderr
    after = _files(target)
    assert after.keys() == before.keys()
    assert {name for name in after if after[name] != before[name]} == {"README.md"}
    card = (target / "README.md").read_text()
    assert "# tiny-finetune" in card and "| lora_r | `32` |" in card  # the same card builder as the upload
    header = next(line for line in card.splitlines() if line.startswith("| subject |"))
    assert header == ("| subject | acme/tiny-finetune (fine-tuned) | google/gemma-2-2b (baseline) | "
                      "google/gemma-3-12b-it (baseline) | Δ vs google/gemma-2-2b | Δ vs google/gemma-3-12b-it |")
    # 50 law questions against 100, and no law for the 12B: overall and Δ on math alone
    assert "| law | 40.0% [27.6%, 53.8%] (20/50)* | 30.0% [21.9%, 39.6%] (30/100) | missing | – | – |" in card
    assert "| **overall** | **23.8% [21.6%, 26.1%] (321/1351)** | **10.7% [9.2%, 12.5%] (145/1351)** | **37.0% [34.5%, 39.6%] (500/1351)** |" in card
    assert "Overall, macro and Δ count only the subjects every model has on the same questions: math" in card
    assert "partial: acme/tiny-finetune law (50 of 100 questions)" in card
    assert [p.name for p in target.iterdir() if p.name.startswith(".")] == []


def test_card_only_refuses_a_folder_without_an_upload(tmp_path):
    summary = write_reference_summary(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "absent"):
        expected = re.escape(f"--target {target}: ") + ".*run the upload step to it first"
        with pytest.raises(StepInputError, match=expected):
            upload_step.publish_card(REPO, summary=summary, target=str(target))
    assert list((tmp_path / "empty").iterdir()) == [] and not (tmp_path / "absent").exists()


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
    (["--repo-id", REPO, "--card-only"], "--card-only needs --summary"),
    (["--repo-id", REPO, "--card-only", "--summary", "{missing}"], "--summary {missing}: no such file"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, project_root, args, message):
    model = make_model_folder(tmp_path / "merged")
    missing = str(tmp_path / "nope.json")
    args = [arg.replace("{missing}", missing) for arg in args]
    result = subprocess.run([sys.executable, "-m", "steps.upload", "--model-dir", str(model),
                             "--target", str(tmp_path / "upload"), *args],
                            cwd=project_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message.replace("{missing}", missing) in result.stderr


def test_cli_refuses_an_empty_model_dir(tmp_path, project_root):
    (tmp_path / "merged").mkdir()
    result = subprocess.run([sys.executable, "-m", "steps.upload", "--model-dir", str(tmp_path / "merged"),
                             "--repo-id", REPO, "--target", str(tmp_path / "upload")],
                            cwd=project_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "refusing to upload an incomplete model" in result.stderr and "no weights" in result.stderr


def test_item7_a_local_target_that_is_a_file_or_a_symlink_is_not_replaced(tmp_path):
    model = make_model_folder(tmp_path / "merged")
    (tmp_path / "a file").write_text("kept")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "a symlink").symlink_to(tmp_path / "elsewhere")
    for kind in ("a file", "a symlink"):
        with pytest.raises(StepInputError, match=f"{tmp_path / kind} is {kind}; a folder is expected there"):
            upload_step.upload(model, REPO, target=str(tmp_path / kind))
    assert (tmp_path / "a file").read_text() == "kept" and not list((tmp_path / "elsewhere").iterdir())


def test_item1_card_only_refuses_a_summary_another_aggregate_wrote(tmp_path, project_root):
    model = make_model_folder(tmp_path / "merged")
    target = tmp_path / "upload"
    upload_step.upload(model, REPO, target=str(target))
    card = (target / "README.md").read_text()
    summary = write_reference_summary(tmp_path / "run")
    result = _card_only(project_root, tmp_path, target, "--summary", str(summary), "--summary-id", "0000-1111")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "stale or written by another run; rerun aggregate, nothing was published" in result.stderr
    assert (target / "README.md").read_text() == card
    written_id = json.loads(summary.read_text())["summary_id"]
    result = _card_only(project_root, tmp_path, target, "--summary", str(summary), "--summary-id", written_id)
    assert result.returncode == 0, result.stderr
    assert "## MMLU-Pro" in (target / "README.md").read_text()
