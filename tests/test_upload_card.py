"""The model card steps.upload publishes: metadata the hub reads, training settings, scores, no secrets."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml

from steps.common import StepInputError
from test_upload_support import write_reference_summary

from steps.model_card import (CardInputs, Delta, ModelScores, Result, load_summary, parse_scores, redact,
                              render_model_card)


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
    assert scores is None and "## MMLU-Pro" in card and "| finetuned | 50.0% |" in card


def test_invalid_summary_json_is_bad_input(tmp_path):
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(StepInputError, match="--summary .*not valid JSON"):
        load_summary(tmp_path / "summary.json")


def test_scores_skip_entries_without_numbers():
    summary = {"subjects": ["math"], "models": [
        {"label": "a", "role": "baseline", "subjects": {}, "overall": {"n": 0, "correct": 0, "accuracy": 0.0}},
        {"role": "baseline", "overall": {"n": 1, "correct": 1, "accuracy": 1.0}},
        {"label": "b", "role": "finetuned", "overall": {"n": 10, "correct": 3, "accuracy": 0.3},
         "subjects": {"math": {"n": 10, "correct": 3, "accuracy": 0.3, "complete": True, "n_questions": 10},
                      "law": {"accuracy": "n/a"}}},
    ], "deltas": [{"model": "b", "baseline": "a", "subjects": {}, "overall": None, "macro": None}]}
    scores = parse_scores(summary)
    assert scores.subjects == ["math"]
    assert scores.models == [ModelScores("b", "finetuned", Result(0.3, 3, 10), {"math": Result(0.3, 3, 10, True, 10)})]
    assert scores.deltas == [Delta("b", "a")]


def test_scores_are_read_from_what_aggregate_writes(tmp_path):
    scores, _ = load_summary(write_reference_summary(tmp_path))
    assert scores.run_id == "r1" and scores.subjects == ["math", "law"]
    # The fine-tuned model first, then the baselines in the summary's order.
    assert [(m.label, m.role) for m in scores.models] == [
        ("acme/tiny-finetune", "finetuned"), ("google/gemma-2-2b", "baseline"), ("google/gemma-3-12b-it", "baseline")]
    tuned, base, _ = scores.models
    wilson_20_of_50 = (pytest.approx(0.27608, abs=1e-5), pytest.approx(0.53819, abs=1e-5))   # by hand
    assert tuned.subjects["law"] == Result(0.4, 20, 50, False, 100, wilson_20_of_50)
    # law is partial for one model and missing for another: overall and macro count math only
    assert scores.comparable_subjects == ["math"]
    assert replace(tuned.overall, interval=None) == Result(pytest.approx(321 / 1351), 321, 1351)
    assert base.macro == pytest.approx(145 / 1351)
    assert [(d.model, d.baseline) for d in scores.deltas] == [
        ("acme/tiny-finetune", "google/gemma-2-2b"), ("acme/tiny-finetune", "google/gemma-3-12b-it")]
    assert scores.deltas[0].subjects == {"math": pytest.approx(321 / 1351 - 145 / 1351)}


def test_one_subject_baselines_only_and_a_label_with_a_pipe(tmp_path):
    results = {"google/gemma|2b": {"math": (145, 1351, 1351)}}
    scores, _ = load_summary(write_reference_summary(tmp_path, results))
    card = render_model_card(CardInputs("acme/tiny", scores=scores))
    table = [line for line in card.splitlines() if line.startswith("|")]
    assert table == ["| subject | google/gemma\\|2b (baseline) |", "|---|---:|", "| math | 10.7% [9.2%, 12.5%] (145/1351) |",
                     "| **overall** | **10.7% [9.2%, 12.5%] (145/1351)** |"]
    assert "Δ" not in card and "macro" not in card


def test_secrets_in_the_config_are_redacted_everywhere():
    cfg = {"tokenizer_type": "AutoTokenizer", "hf_token": "hf_x", "wandb_api_key": "k",
           "plugins_config": [{"hub_token": "y", "token": None}]}
    assert redact(cfg) == {"tokenizer_type": "AutoTokenizer", "hf_token": "<redacted>", "wandb_api_key": "<redacted>",
                           "plugins_config": [{"hub_token": "<redacted>", "token": None}]}
