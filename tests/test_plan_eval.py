"""steps.plan_eval: the model × subject items of the evaluation fan-out."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from steps.mmlu_pro.subjects import SUBJECTS
from steps.plan_eval import plan_eval_command


def _plan(tmp_path: Path, *args: str):
    app = typer.Typer()
    app.command()(plan_eval_command)
    result = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path)])
    files = {name: json.loads((tmp_path / f"{name}.json").read_text())
             for name in ("baseline-items", "finetuned-items", "models") if (tmp_path / f"{name}.json").exists()}
    return result, files


def test_one_item_per_model_and_subject_with_slugs_roles_and_labels(tmp_path):
    result, files = _plan(tmp_path, "--baselines", '["google/gemma-2-2b", "google/gemma-3-12b-it"]',
                          "--subjects", '["math", "computer science"]',
                          "--finetuned-model", "/workspace/runs/r1/train/output/merged",
                          "--finetuned-label", "org/gemma-2-2b-math")
    assert result.exit_code == 0, result.output
    assert files["baseline-items"] == [
        {"model": model, "slug": model.replace("/", "--"), "role": "baseline", "label": model, "subject": subject}
        for model in ("google/gemma-2-2b", "google/gemma-3-12b-it") for subject in ("math", "computer science")]
    assert files["finetuned-items"] == [
        {"model": "/workspace/runs/r1/train/output/merged", "slug": "finetuned", "role": "finetuned",
         "label": "org/gemma-2-2b-math", "subject": subject} for subject in ("math", "computer science")]
    assert [m["slug"] for m in files["models"]] == ["google--gemma-2-2b", "google--gemma-3-12b-it", "finetuned"]
    assert all("subject" not in m for m in files["models"])


def test_all_means_the_fourteen_subjects_and_no_finetuned_model_means_baselines_only(tmp_path):
    result, files = _plan(tmp_path, "--baselines", '["a/b"]', "--subjects", "all", "--finetuned-model", "")
    assert result.exit_code == 0, result.output
    assert [item["subject"] for item in files["baseline-items"]] == list(SUBJECTS)
    assert files["finetuned-items"] == [] and len(files["models"]) == 1


def test_the_finetuned_label_defaults_to_the_model(tmp_path):
    _, files = _plan(tmp_path, "--baselines", "[]", "--subjects", '["law"]', "--finetuned-model", "org/model")
    assert files["models"] == [{"model": "org/model", "slug": "finetuned", "role": "finetuned", "label": "org/model"}]


@pytest.mark.parametrize(("baselines", "subjects", "message"), [
    ('"google/gemma-2-2b"', '["math"]', "must be a JSON list of hub ids"),
    ("[google/gemma]", '["math"]', "is not a JSON list of hub ids"),
    ('["a/b", "a/b"]', '["math"]', "names a model twice"),
    ('["finetuned"]', '["math"]', "share the results folder"),
    ('["a/b"]', '["algebra"]', "'algebra' is not an MMLU-Pro subject; valid: biology"),
    ("[]", '["math"]', "nothing to evaluate"),
])
def test_bad_input_is_named_and_nothing_is_written(tmp_path, baselines, subjects, message):
    result, files = _plan(tmp_path, "--baselines", baselines, "--subjects", subjects)
    assert result.exit_code == 2 and message in result.output
    assert files == {}


def test_a_local_baseline_path_gets_a_slug_that_is_not_an_option():
    from steps.plan_eval import model_slug

    assert model_slug("google/gemma-2-2b") == "google--gemma-2-2b"
    assert model_slug("/workspace/models/tiny") == "workspace--models--tiny"
    assert model_slug("./models/tiny") == "models--tiny"
