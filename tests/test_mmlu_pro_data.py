"""Loading MMLU-Pro from a local folder or the hub (the hub boundary is monkeypatched: no network)."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steps.common import StepInputError
from steps.mmlu_pro import data
from steps.mmlu_pro.data import load_subject
from steps.common import TransientFailure
from steps.mmlu_pro.subjects import SUBJECTS, check_subject, parse_subjects
from steps.tiny_assets import build_mmlu_pro_dataset, mmlu_pro_rows

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return build_mmlu_pro_dataset(tmp_path / "mmlu", ["math", "law"], n_test=4, n_val=3, seed=1)


def test_a_local_folder_gives_the_subjects_rows_in_order_without_na_options(folder):
    loaded = load_subject(str(folder), "law")
    assert [row["category"] for row in loaded.questions] == ["law"] * 4
    assert [row["category"] for row in loaded.shots] == ["law"] * 3
    ids = [row["question_id"] for row in loaded.questions]
    assert ids == sorted(ids)
    assert all("N/A" not in row["options"] for row in loaded.questions + loaded.shots)
    assert loaded.revision.startswith("sha256:")
    assert load_subject(str(folder), "law").revision == loaded.revision


def test_jsonl_files_work_like_parquet(folder, tmp_path):
    jsonl = tmp_path / "as-jsonl"
    jsonl.mkdir()
    for split in ("validation", "test"):
        rows = pq.read_table(folder / f"{split}.parquet").to_pylist()
        (jsonl / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert load_subject(str(jsonl), "math").questions == load_subject(str(folder), "math").questions


def test_missing_fields_are_named(folder):
    table = pq.read_table(folder / "test.parquet").drop_columns(["cot_content", "answer_index"])
    pq.write_table(table, folder / "test.parquet")
    with pytest.raises(StepInputError, match="lacks the MMLU-Pro field.s. answer_index, cot_content"):
        load_subject(str(folder), "math")


def test_a_missing_split_file_is_named(folder):
    (folder / "validation.parquet").unlink()
    with pytest.raises(StepInputError, match="no validation.parquet or validation.jsonl"):
        load_subject(str(folder), "math")


def test_a_subject_without_questions_is_refused(folder):
    with pytest.raises(StepInputError, match="no question of subject 'physics'"):
        load_subject(str(folder), "physics")


def test_neither_folder_nor_hub_id_is_refused(tmp_path):
    with pytest.raises(StepInputError, match="neither a folder"):
        load_subject(str(tmp_path / "nothing-here"), "math")


class _Split:
    """The part of a `datasets.Dataset` the loader uses."""

    def __init__(self, rows, cache_dir):
        self._rows = rows
        self.column_names = list(rows[0])
        self.cache_files = [{"filename": f"{cache_dir}/{COMMIT}/mmlu-pro-test.arrow"}]

    def to_list(self):
        return [dict(row) for row in self._rows]


def _hub(monkeypatch, splits):
    import datasets

    calls = []

    def fake_load_dataset(path, revision=None, **kwargs):
        calls.append((path, revision))
        return splits

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return calls


def test_the_hub_path_loads_the_pinned_revision_and_records_its_commit(monkeypatch, tmp_path):
    splits = {"validation": _Split(mmlu_pro_rows(["math"], 2, 0, 0, True), tmp_path),
              "test": _Split(mmlu_pro_rows(["math"], 3, 1, 100, False), tmp_path)}
    calls = _hub(monkeypatch, splits)
    loaded = load_subject("TIGER-Lab/MMLU-Pro", "math", revision="v1")
    assert calls == [("TIGER-Lab/MMLU-Pro", "v1")]
    assert len(loaded.questions) == 3 and len(loaded.shots) == 2
    assert loaded.revision == COMMIT


def test_the_hub_path_works_with_a_real_datasetdict(monkeypatch):
    import datasets

    dataset = datasets.DatasetDict({
        "validation": datasets.Dataset.from_list(mmlu_pro_rows(["law"], 2, 0, 0, True)),
        "test": datasets.Dataset.from_list(mmlu_pro_rows(["law"], 2, 1, 100, False)),
    })
    _hub(monkeypatch, dataset)
    loaded = load_subject("TIGER-Lab/MMLU-Pro", "law")
    assert [row["question_id"] for row in loaded.questions] == [100, 101]
    assert loaded.revision == "main"


def test_hub_errors_say_what_failed_and_whether_a_retry_can_help(monkeypatch):
    import datasets

    def offline(path, revision=None, **kwargs):
        raise ConnectionError("Couldn't reach 'TIGER-Lab/MMLU-Pro' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(TransientFailure, match="--dataset TIGER-Lab/MMLU-Pro at --dataset-revision main cannot be loaded"):
        load_subject("TIGER-Lab/MMLU-Pro", "math")

    def missing(path, revision=None, **kwargs):
        raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(StepInputError, match="doesn't exist on the Hub"):
        load_subject("someone/absent", "math")


def test_a_hub_dataset_without_a_validation_split_is_refused(monkeypatch, tmp_path):
    _hub(monkeypatch, {"test": _Split(mmlu_pro_rows(["math"], 1, 1, 100, False), tmp_path)})
    with pytest.raises(StepInputError, match="no split validation"):
        load_subject("TIGER-Lab/MMLU-Pro", "math")


def test_subjects_are_the_fourteen_dataset_categories_and_unknown_ones_list_them():
    assert len(SUBJECTS) == 14 and "computer science" in SUBJECTS
    with pytest.raises(StepInputError) as error:
        check_subject("maths")
    assert all(subject in str(error.value) for subject in SUBJECTS)
    assert parse_subjects("all") == list(SUBJECTS)
    assert parse_subjects('["math", "law"]') == ["math", "law"]
    for bad in ("math", "[]", '["math", "math"]', '["Math"]'):
        with pytest.raises(StepInputError):
            parse_subjects(bad)


def test_the_parquet_schema_is_the_real_one(folder):
    schema = pq.read_schema(folder / "test.parquet")
    assert set(data.REQUIRED_FIELDS) <= set(schema.names)
    assert schema.field("options").type == pa.list_(pa.string())


def test_item11_an_answer_outside_the_questions_options_is_refused(folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for split in ("validation", "test"):
        rows = pq.read_table(folder / f"{split}.parquet").to_pylist()
        if split == "test":
            law = [row for row in rows if row["category"] == "law"]
            law[1]["options"] = law[1]["options"][:3] + ["N/A"] * (len(law[1]["options"]) - 3)
            law[1]["answer"] = "E"
        (broken / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    question = [row for row in pq.read_table(folder / "test.parquet").to_pylist() if row["category"] == "law"][1]
    with pytest.raises(StepInputError, match=rf"question {question['question_id']} has answer 'E', not one of its 3 "
                                             "options; fix the dataset"):
        load_subject(str(broken), "law")
    assert load_subject(str(broken), "math").questions   # the other subject is fine


def test_item10_a_damaged_parquet_file_is_named(folder, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "validation.parquet").write_bytes((folder / "validation.parquet").read_bytes())
    (damaged / "test.parquet").write_bytes((folder / "test.parquet").read_bytes()[:200])
    with pytest.raises(StepInputError, match=f"{damaged / 'test.parquet'} cannot be read as parquet"):
        load_subject(str(damaged), "law")
