"""The pipeline config: every error names the field, the bad value and what would be valid."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workflows.config import ConfigError, load_pipeline, parse_pipeline

REFERENCE = Path(__file__).resolve().parents[1] / "configs" / "pipelines" / "gemma2-2b-acereason-math.yaml"


def reference_data() -> dict:
    return yaml.safe_load(REFERENCE.read_text())


def error_for(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_pipeline(data, "test.yaml")
    return str(caught.value)


def test_reference_config_loads_with_the_reference_run():
    cfg = load_pipeline(REFERENCE)
    assert cfg.model.id == "google/gemma-2-2b"
    assert cfg.data.source == "nvidia/AceReason-Math"
    assert cfg.data.fields.question == "problem"
    assert cfg.train.gpus == 3
    assert cfg.gate.gpu_memory_gib == 44.9
    assert cfg.eval.subjects == ["math"]
    assert cfg.eval.baselines == ["google/gemma-2-2b", "google/gemma-3-12b-it"]
    assert cfg.train.timeout == 8 * 3600


def test_defaults_evaluate_all_fourteen_subjects():
    data = reference_data()
    del data["eval"]["subjects"]
    assert len(parse_pipeline(data).eval.subjects) == 14


def test_misspelled_field_names_the_path_and_the_valid_fields():
    data = reference_data()
    data["train"]["gpu"] = 2
    message = error_for(data)
    assert "train.gpu: unknown field" in message
    assert "gpus" in message  # the valid spelling is listed


def test_bad_value_names_field_value_and_valid_choices():
    data = reference_data()
    data["gate"]["mode"] = "block"
    message = error_for(data)
    assert "gate.mode" in message and "'block'" in message
    assert "'fail'" in message and "'warn'" in message


def test_unknown_subject_lists_the_fourteen():
    data = reference_data()
    data["eval"]["subjects"] = ["maths"]
    message = error_for(data)
    assert "eval.subjects" in message and "maths" in message
    assert "computer science" in message and "psychology" in message


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("train", "timeout"), "soon", "not a duration"),
        (("train", "memory"), "lots", "not a Kubernetes quantity"),
        (("upload", "repo_id"), "no-slash", "org/name"),
        (("name",), "Not_DNS", "DNS-1123"),
        (("train", "gpus"), 0, "greater than or equal to 1"),
        (("schedule", "crons"), ["every monday"], "5 fields"),
    ],
)
def test_each_invalid_value_is_explained(path, value, expected):
    data = reference_data()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    message = error_for(data)
    assert ".".join(path) in message
    assert expected in message


def test_workspace_needs_exactly_one_volume_kind():
    data = reference_data()
    data["cluster"]["workspace"] = {"existing_claim": "a", "claim_template": {"size": "10Gi"}}
    assert "exactly one of existing_claim or claim_template" in error_for(data)


def test_schedule_requires_a_lasting_workspace():
    data = reference_data()
    data["cluster"]["workspace"] = {"claim_template": {"size": "10Gi"}}
    assert "schedule needs cluster.workspace.existing_claim" in error_for(data)


def test_every_problem_is_reported_at_once():
    data = reference_data()
    data["train"]["gpus"] = -1
    data["eval"]["engine"] = "tgi"
    message = error_for(data)
    assert "2 problem(s)" in message


def test_unreadable_and_non_yaml_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_pipeline(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_pipeline(scalar)
