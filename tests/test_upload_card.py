"""The model card steps.upload publishes: metadata the hub reads, training settings, scores, no secrets."""
from __future__ import annotations

import json

import pytest
import yaml

from steps.common import StepInputError
from steps.model_card import CardInputs, ModelScores, load_summary, parse_scores, redact, render_model_card


def _front_matter(card: str) -> dict:
    _, metadata, _ = card.split("---\n", 2)
    return yaml.safe_load(metadata)


def test_metadata_names_base_model_dataset_and_adapter():
    card = render_model_card(CardInputs("acme/tiny", base_model="google/gemma-2-2b", dataset="nvidia/AceReason-Math",
                                        dataset_revision="abc123", axolotl_config={"adapter": "qlora"}))
    assert _front_matter(card) == {"base_model": "google/gemma-2-2b", "datasets": ["nvidia/AceReason-Math"],
                                   "library_name": "transformers", "pipeline_tag": "text-generation",
                                   "tags": ["axolotl", "tunebench", "qlora"]}
    assert "(revision `abc123`)" in card


def test_a_local_base_model_is_named_but_not_linked(tmp_path):
    card = render_model_card(CardInputs("acme/tiny", base_model=str(tmp_path)))
    assert "base_model" not in _front_matter(card) and f"`{tmp_path}`" in card


def test_no_scores_section_without_scores():
    assert "MMLU-Pro" not in render_model_card(CardInputs("acme/tiny"))


def test_summary_markdown_is_embedded_when_the_json_lists_no_models(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"run_id": "r1", "overall": {"finetuned": 0.5}}))
    (tmp_path / "summary.md").write_text("| model | math |\n|---|---|\n| finetuned | 50.0% |\n")
    scores, markdown = load_summary(tmp_path / "summary.json")
    card = render_model_card(CardInputs("acme/tiny", scores=scores, scores_markdown=markdown))
    assert scores == [] and "## MMLU-Pro" in card and "| finetuned | 50.0% |" in card


def test_invalid_summary_json_is_bad_input(tmp_path):
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(StepInputError, match="--summary .*not valid JSON"):
        load_summary(tmp_path / "summary.json")


def test_scores_skip_entries_without_numbers():
    summary = {"models": [
        {"label": "a", "accuracy": "n/a"},
        {"role": "baseline", "accuracy": 0.3},
        {"label": "b", "role": "finetuned", "overall": 0.25, "subjects": {"math": {"accuracy": 0.2}}},
    ]}
    assert parse_scores(summary) == [ModelScores("b", "finetuned", 0.25, {"math": 0.2})]


def test_secrets_in_the_config_are_redacted_everywhere():
    cfg = {"tokenizer_type": "AutoTokenizer", "hf_token": "hf_x", "wandb_api_key": "k",
           "plugins_config": [{"hub_token": "y", "token": None}]}
    assert redact(cfg) == {"tokenizer_type": "AutoTokenizer", "hf_token": "<redacted>", "wandb_api_key": "<redacted>",
                           "plugins_config": [{"hub_token": "<redacted>", "token": None}]}
