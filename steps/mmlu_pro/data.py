"""MMLU-Pro rows: from the hub at a pinned revision (cached in HF_HOME) or from a local folder.

A local folder holds `validation.{parquet,jsonl}` (few-shot examples) and
`test.{parquet,jsonl}` (the questions), with the fields of TIGER-Lab/MMLU-Pro.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.common import StepInputError, load_failure, read_jsonl
from steps.contract import REPO_ID
from steps.mmlu_pro.prompt import OPTION_LETTERS

HUB_DATASET = "TIGER-Lab/MMLU-Pro"
SPLITS = ("validation", "test")
REQUIRED_FIELDS = ("question_id", "question", "options", "answer", "answer_index", "cot_content", "category")
LOCAL_FORMATS = ("parquet", "jsonl")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class SubjectData:
    shots: list[dict[str, Any]]       # validation rows of the subject, in dataset order
    questions: list[dict[str, Any]]   # test rows of the subject, in dataset order
    revision: str                     # commit for the hub (when known), content hash for a folder


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """The reference drops "N/A" options (padding in the 2024 release) before lettering them."""
    row = dict(row)
    row["options"] = [option for option in row["options"] if option != "N/A"]
    return row


def _check_fields(columns: list[str], where: str) -> None:
    missing = [field for field in REQUIRED_FIELDS if field not in columns]
    if missing:
        raise StepInputError(
            f"{where} lacks the MMLU-Pro field(s) {', '.join(missing)}; "
            f"required: {', '.join(REQUIRED_FIELDS)}; found: {', '.join(columns) or 'no columns'}")


def _local_split_file(folder: Path, split: str) -> Path:
    for fmt in LOCAL_FORMATS:
        path = folder / f"{split}.{fmt}"
        if path.is_file():
            return path
    raise StepInputError(f"--dataset {folder}: no {split}.parquet or {split}.jsonl; a local MMLU-Pro "
                         f"folder holds both splits ({', '.join(SPLITS)})")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        import pyarrow as pa

        try:
            table = pq.ParquetFile(path).read()  # read_table goes through pyarrow.dataset, which imports pandas
        except (pa.ArrowException, OSError) as error:
            raise StepInputError(f"{path} cannot be read as parquet ({error})") from None
        _check_fields(table.column_names, str(path))
        return table.to_pylist()
    rows = read_jsonl(path)
    _check_fields(list(rows[0]) if rows else [], str(path))
    return rows


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()[:16]


def _load_local(folder: Path) -> tuple[dict[str, list[dict[str, Any]]], str]:
    files = {split: _local_split_file(folder, split) for split in SPLITS}
    return {split: _read_rows(path) for split, path in files.items()}, _fingerprint(list(files.values()))


def _hub_commit(split: Any, requested: str) -> str:
    """`datasets` caches hub data under a folder named by the commit it downloaded."""
    for cache_file in getattr(split, "cache_files", None) or []:
        for part in Path(cache_file.get("filename", "")).parts:
            if _COMMIT.match(part):
                return part
    return requested


def _load_hub(dataset_id: str, revision: str) -> tuple[dict[str, list[dict[str, Any]]], str]:
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id, revision=revision)
    except Exception as error:  # noqa: BLE001 - any load failure is reported with its reason
        raise load_failure(f"--dataset {dataset_id} at --dataset-revision {revision}", error) from None
    missing = [split for split in SPLITS if split not in loaded]
    if missing:
        raise StepInputError(f"--dataset {dataset_id} has no split {', '.join(missing)}; "
                             f"found: {', '.join(loaded)}; needed: {', '.join(SPLITS)}")
    rows = {}
    for split in SPLITS:
        _check_fields(list(loaded[split].column_names), f"--dataset {dataset_id} split {split}")
        rows[split] = loaded[split].to_list()
    return rows, _hub_commit(loaded["test"], revision)


def load_splits(source: str, revision: str | None = None) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """Both splits of MMLU-Pro and the revision they came from."""
    folder = Path(source)
    if folder.is_dir():
        return _load_local(folder)
    if REPO_ID.fullmatch(source) and not folder.exists():
        return _load_hub(source, revision or "main")
    raise StepInputError(f"--dataset {source!r} is neither a folder with {'/'.join(SPLITS)} files "
                         f"nor a hub dataset id like {HUB_DATASET}")


def _check_answers(questions: list[dict[str, Any]], where: str) -> None:
    """Every answer is the letter of one of its question's options (after the N/A ones are dropped):
    a question no letter can get right would only lower every model's score."""
    wrong = [q for q in questions if not isinstance(q["answer"], str) or q["answer"] not in OPTION_LETTERS[:len(q["options"])]]
    if wrong:
        first = wrong[0]
        raise StepInputError(
            f"{where}: question {first['question_id']} has answer {first['answer']!r}, not one of its "
            f"{len(first['options'])} options{f' ({len(wrong)} such questions)' if len(wrong) > 1 else ''}; "
            "fix the dataset (or pin a revision without the error)")


def load_subject(source: str, subject: str, revision: str | None = None) -> SubjectData:
    splits, resolved = load_splits(source, revision)
    shots = [clean_row(row) for row in splits["validation"] if row["category"] == subject]
    questions = [clean_row(row) for row in splits["test"] if row["category"] == subject]
    if not questions:
        raise StepInputError(f"--dataset {source}: the test split has no question of subject {subject!r}")
    _check_answers(questions, f"--dataset {source}")
    return SubjectData(shots=shots, questions=questions, revision=resolved)
