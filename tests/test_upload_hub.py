"""steps.upload against a local stand-in of the hub's HTTP API, driven by the real huggingface_hub client."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_upload_support import REPO, HubStandIn, make_model_folder, write_reference_summary

from steps import upload as upload_step
from steps.common import StepInputError

TOKEN = "hf_standin_secret_token_0123456789"


@pytest.fixture
def hub(monkeypatch):
    # `make test` exports HF_HUB_OFFLINE=1 (nothing else may reach a hub); the stand-in is local.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    server = HubStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The backoff waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(upload_step.time, "sleep", recorded.append)
    return recorded


def test_cli_uploads_model_and_card_in_one_commit_without_logging_the_token(hub, tmp_path, project_root):
    model = make_model_folder(tmp_path / "merged")
    env = {**_clean_env(), "HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.endpoint}
    result = subprocess.run(
        [sys.executable, "-m", "steps.upload", "--model-dir", str(model), "--repo-id", REPO, "--private", "true",
         "--dataset", "nvidia/AceReason-Math", "--dataset-revision", "abc123", "--base-model", "google/gemma-2-2b"],
        cwd=project_root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [(c["organization"], c["name"], c["visibility"]) for c in hub.created] == [
        ("acme", "tiny-finetune", "private")]
    assert len(hub.commits) == 1
    committed = hub.commits[0]
    for path in model.iterdir():
        if path.name != "README.md":
            assert committed[path.name] == path.read_bytes()
    card = committed["README.md"].decode()
    assert "base_model: google/gemma-2-2b" in card and "revision `abc123`" in card
    assert hub.auth_headers == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.stdout + result.stderr


def test_private_false_creates_a_public_repo(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    upload_step.upload(make_model_folder(tmp_path / "merged"), REPO, private=False, endpoint=hub.endpoint)
    assert [c["visibility"] for c in hub.created] == ["public"]


def test_transient_errors_are_retried_with_backoff(hub, tmp_path, monkeypatch, waits):
    model = make_model_folder(tmp_path / "merged")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.fail_commits_with = [503, 502]
    url = upload_step.upload(model, REPO, endpoint=hub.endpoint, retries=3)
    assert url.endswith("/commit/" + "a" * 40)
    assert len(hub.commits) == 1 and not hub.fail_commits_with
    assert waits == [upload_step.RETRY_BASE_SECONDS, 2 * upload_step.RETRY_BASE_SECONDS]


def test_gives_up_after_the_retries(hub, tmp_path, monkeypatch, waits):
    model = make_model_folder(tmp_path / "merged")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.fail_commits_with = [503, 503, 503]
    with pytest.raises(upload_step.UploadError, match="503"):
        upload_step.upload(model, REPO, endpoint=hub.endpoint, retries=2)
    assert hub.commits == [] and len(waits) == 2


def test_a_rejected_token_fails_at_once_naming_the_repo(hub, tmp_path, monkeypatch, waits):
    model = make_model_folder(tmp_path / "merged")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.reject_token = True
    with pytest.raises(StepInputError, match=f"refused HF_TOKEN for {REPO}.*401") as caught:
        upload_step.upload(model, REPO, endpoint=hub.endpoint, retries=5)
    assert TOKEN not in str(caught.value) and waits == []


def test_a_missing_token_fails_before_any_request(hub, tmp_path, monkeypatch):
    model = make_model_folder(tmp_path / "merged")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(StepInputError, match="HF_TOKEN is not set"):
        upload_step.upload(model, REPO, endpoint=hub.endpoint)
    assert hub.auth_headers == set()


def test_cli_card_only_commits_just_the_readme_to_the_existing_repo(hub, tmp_path, project_root):
    summary = write_reference_summary(tmp_path / "run")
    env = {**_clean_env(), "HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "steps.upload", "--card-only", "--model-dir", str(tmp_path / "merged"),
         "--repo-id", REPO, "--target", "hub", "--base-model", "google/gemma-2-2b", "--dataset",
         "nvidia/AceReason-Math", "--dataset-revision", "abc123", "--summary", str(summary), "--private", "false"],
        cwd=project_root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert hub.created == []  # the upload step made the repo; a card update never creates or re-scopes it
    assert len(hub.commits) == 1 and list(hub.commits[0]) == ["README.md"]
    card = hub.commits[0]["README.md"].decode()
    assert "base_model: google/gemma-2-2b" in card and "revision `abc123`" in card
    assert "| math | 23.8% [21.6%, 26.1%] (321/1351) | 10.7% [9.2%, 12.5%] (145/1351) | 37.0% [34.5%, 39.6%] (500/1351) | +13.0 pp | -13.2 pp |" in card
    assert hub.auth_headers == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.stdout + result.stderr


def test_card_only_retries_transient_errors(hub, tmp_path, monkeypatch, waits):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.fail_commits_with = [503]
    url = upload_step.publish_card(REPO, summary=write_reference_summary(tmp_path / "run"), endpoint=hub.endpoint,
                                   retries=2)
    assert url.endswith("/commit/" + "a" * 40)
    assert [list(files) for files in hub.commits] == [["README.md"]] and waits == [upload_step.RETRY_BASE_SECONDS]


def test_card_only_to_a_repo_that_does_not_exist_fails_at_once(hub, tmp_path, monkeypatch, waits):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(StepInputError, match="--repo-id acme/absent: no such model repo") as caught:
        upload_step.publish_card("acme/absent", summary=write_reference_summary(tmp_path / "run"),
                                 endpoint=hub.endpoint)
    assert hub.created == [] and hub.commits == [] and waits == [] and TOKEN not in str(caught.value)


def test_card_only_without_a_token_fails_before_any_request(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(StepInputError, match="HF_TOKEN is not set"):
        upload_step.publish_card(REPO, summary=write_reference_summary(tmp_path / "run"), endpoint=hub.endpoint)
    assert hub.auth_headers == set()


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("HF_")}


def test_cli_missing_token_exits_2_with_one_line(tmp_path, project_root):
    model = make_model_folder(tmp_path / "merged")
    result = subprocess.run([sys.executable, "-m", "steps.upload", "--model-dir", str(model), "--repo-id", REPO],
                            cwd=project_root, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "HF_TOKEN is not set" in result.stderr


def test_model_files_skip_hidden_files_and_the_replaced_readme(tmp_path):
    model = make_model_folder(tmp_path / "merged")
    (model / "README.md").write_text("the base model's card")
    (model / ".gitattributes").write_text("*.safetensors filter=lfs")
    assert Path("README.md") not in upload_step.model_files(model)
    assert Path(".gitattributes") not in upload_step.model_files(model)
    assert Path("model.safetensors") in upload_step.model_files(model)
