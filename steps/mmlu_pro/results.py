"""Per-question records (`<subject>.jsonl`), their scores and the per-subject summary."""
from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.common import StepInputError, atomic_path, parse_jsonl_line
from steps.mmlu_pro.extract import METHODS, extract_answer


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short stable name for a set of settings (canonical JSON, SHA-256)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_records(path: Path, log: Callable[[str], None] = _stderr) -> list[dict[str, Any]]:
    """The saved records of a subject, to resume from; none when there is no file yet.

    A torn last line (a write cut short on a volume that does not rename atomically) is
    left out, saying so (a resumed evaluation answers its question again); a bad line before
    it is an error.
    """
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise StepInputError(f"{path} is not UTF-8 text; delete it to start that subject over") from None
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    records = [parse_jsonl_line(line, f"{path}:{number}", "; delete the file to start over")
               for number, line in numbered[:-1]]
    if numbered:
        number, last = numbered[-1]
        try:
            records.append(json.loads(last))
        except json.JSONDecodeError:
            log(f"{path}:{number}: the last line is cut short ({len(last)} characters) and left out; the "
                f"{len(records)} lines before it are kept")
    not_records = [i for i, record in enumerate(records) if not isinstance(record, dict)]
    if not_records:
        raise StepInputError(f"{path}:{numbered[not_records[0]][0]} is not a JSON object; delete the file to start over")
    return records


def write_records(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def apply_extraction(record: dict[str, Any], mode: str) -> dict[str, Any]:
    """Set `pred`, `method` and `correct` of a record from its generated text."""
    found = extract_answer(record["generated_text"], mode, record["question_id"], record["n_options"])
    record.update(pred=found.pred, method=found.method, correct=found.pred is not None and found.pred == record["answer"])
    return record


@dataclass(frozen=True)
class Score:
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "correct": self.correct, "accuracy": self.accuracy}


def score(records: Iterable[Mapping[str, Any]]) -> Score:
    n = correct = 0
    for record in records:
        n += 1
        correct += bool(record["correct"])
    return Score(n, correct)


def subject_summary(records: list[dict[str, Any]], n_questions: int, **context: Any) -> dict[str, Any]:
    """What `aggregate` and a person need from one model × subject task."""
    methods = Counter(record["method"] for record in records)
    shots = Counter(str(record["k"]) for record in records)
    return {
        **score(records).as_dict(),
        "n_questions": n_questions,
        "complete": len(records) == n_questions,
        "methods": {method: methods.get(method, 0) for method in METHODS},
        "truncated": sum(bool(record["hit_token_limit"]) for record in records),
        "over_budget": sum(bool(record.get("over_budget")) for record in records),
        "k_distribution": dict(sorted(shots.items())),
        **context,
    }
