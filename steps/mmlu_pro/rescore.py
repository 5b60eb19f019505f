"""`tunebench rescore`: score saved generations again, ours or the reference's cached outputs.

Reads our `<subject>.jsonl` records, the reference's JSON lists (text in `model_outputs`
or `generated_text`) and zips holding either. Nothing is generated: only extraction and
scoring run, so `--extract` can be switched after the fact.
"""
from __future__ import annotations

import json
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import StepInputError, atomic_path, check_output_file, step_errors, write_json_atomic
from steps.mmlu_pro.extract import EXTRACT_MODES
from steps.mmlu_pro.prompt import OPTION_LETTERS
from steps.mmlu_pro.results import Score, apply_extraction, score

TEXT_FIELDS = ("generated_text", "model_outputs")
# The reference's outputs for the whole test split unpack to about 20 MB: a zip that unpacks to a
# hundred times that is a zip bomb, refused before it is read into memory.
MAX_UNZIPPED_BYTES = 2 << 30


def _parse(text: str, name: str) -> list[dict[str, Any]]:
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            rows = json.loads(stripped)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise StepInputError(f"{name} is neither a JSON list nor JSON lines: {error}") from None
    if not all(isinstance(row, dict) for row in rows):
        raise StepInputError(f"{name} must hold one JSON object per question")
    return rows


def _raw_rows(path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    if path.is_dir():
        raise StepInputError(f"FILE {path} is a directory; give the saved outputs' files (e.g. {path}/*.jsonl)")
    if not path.is_file():
        raise StepInputError(f"FILE {path} does not exist")
    if zipfile.is_zipfile(path):
        yield from _zip_rows(path)
    else:
        yield str(path), _parse(_text(path.read_bytes(), str(path)), str(path))


def _zip_rows(path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith((".json", ".jsonl"))]
            unzipped = sum(member.file_size for member in members)
            if unzipped > MAX_UNZIPPED_BYTES:
                raise StepInputError(f"{path} unpacks to {unzipped:,} bytes of JSON; saved outputs are tens of MB "
                                     f"(at most {MAX_UNZIPPED_BYTES:,} bytes are read): is it the right file?")
            contents = [(member.filename, archive.read(member)) for member in members]
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise StepInputError(f"{path} is a damaged zip ({error})") from None
    if not contents:
        raise StepInputError(f"{path} holds no .json or .jsonl file")
    for member, data in contents:
        where = f"{path}:{member}"
        yield where, _parse(_text(data, where), where)


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StepInputError(f"{name} is not UTF-8 text: give saved outputs as JSON, JSON lines or a zip of "
                             "them") from None


def _as_record(row: dict[str, Any], where: str) -> dict[str, Any]:
    """One question in the form `apply_extraction` scores, from our records or the reference's rows."""
    text_field = next((field for field in TEXT_FIELDS if field in row), None)
    missing = [field for field in ("question_id", "answer") if field not in row]
    if text_field is None:
        missing.append(" or ".join(TEXT_FIELDS))
    if "n_options" not in row and "options" not in row:
        missing.append("options")
    if missing or text_field is None:
        raise StepInputError(f"{where}: a row lacks {', '.join(missing)}; found fields: {', '.join(sorted(row))}")
    question = f"{where}: question_id {row['question_id']}"
    options = row.get("options")
    n_options = row["n_options"] if "n_options" in row else len(options) if isinstance(options, list) else None
    if not isinstance(n_options, int) or isinstance(n_options, bool) or not 1 <= n_options <= len(OPTION_LETTERS):
        raise StepInputError(f"{question}: n_options/options {n_options!r} is not a number of options "
                             f"(1 to {len(OPTION_LETTERS)})")
    valid = OPTION_LETTERS[:n_options]
    if not isinstance(row["answer"], str) or row["answer"] not in valid:
        raise StepInputError(f"{question}: answer {row['answer']!r} is not one of its {n_options} options "
                             f"({valid[0]}–{valid[-1]})")
    text = row[text_field]
    if text is not None and not isinstance(text, str):
        raise StepInputError(f"{question}: {text_field} is {type(text).__name__}, not text")
    return {
        "question_id": row["question_id"],
        "subject": row.get("subject") or row.get("category") or "unknown",
        "answer": row["answer"],
        "n_options": n_options,
        "generated_text": text or "",
    }


def load_generations(files: Iterable[Path]) -> list[dict[str, Any]]:
    files = list(files)
    records: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in files:
        for where, rows in _raw_rows(Path(path)):
            for row in rows:
                record = _as_record(row, where)
                key = str(record["question_id"])
                if key in seen:
                    raise StepInputError(f"question_id {key} appears twice ({seen[key]} and {where}); "
                                         "rescore one model's outputs at a time")
                seen[key] = where
                records.append(record)
    if not records:
        raise StepInputError(f"no question in {', '.join(str(f) for f in files)}: nothing to score")
    return records


def rescore(files: Iterable[Path], extract: str = "tiger") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Predictions per question and the scores per subject and overall (total correct / total questions)."""
    if extract not in EXTRACT_MODES:
        raise StepInputError(f"--extract {extract!r}; valid: {', '.join(EXTRACT_MODES)}")
    records = [apply_extraction(record, extract) for record in load_generations(files)]
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_subject[record["subject"]].append(record)
    report = {
        "extract": extract,
        "subjects": {subject: score(rows).as_dict() for subject, rows in sorted(by_subject.items())},
        "overall": score(records).as_dict(),
    }
    return records, report


def _table(report: dict[str, Any]) -> str:
    rows = [(subject, s) for subject, s in report["subjects"].items()] + [("overall", report["overall"])]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'subject':<{width}}  {'n':>6}  {'correct':>7}  accuracy"]
    lines += [f"{name:<{width}}  {s['n']:>6}  {s['correct']:>7}  {s['accuracy']:.4f}" for name, s in rows]
    return "\n".join(lines)


@step_errors
def rescore_command(
    files: Annotated[list[Path], typer.Argument(help="Saved outputs: our SUBJECT.jsonl records, the reference's JSON lists, or zips of either.", show_default=False)],
    extract: Annotated[str, typer.Option(help="tiger: three patterns, then a guess seeded by question id; strict: 'answer is (X)' only.")] = "tiger",
    predictions: Annotated[Path | None, typer.Option(help="Write one JSON line per question: question_id, pred, method, ...")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write n, correct and accuracy per subject and overall as JSON.")] = None,
) -> None:
    """Re-score saved MMLU-Pro generations with the reference's answer extraction."""
    for output in (predictions, json_out):
        if output is not None:
            check_output_file(output)  # before the scoring, which may take a while
    records, report = rescore(files, extract)
    if predictions is not None:
        fields = ("question_id", "subject", "pred", "method", "answer", "correct")
        with atomic_path(predictions) as tmp, tmp.open("w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps({field: record[field] for field in fields}) + "\n")
    if json_out is not None:
        write_json_atomic(json_out, report)
    print(_table(report))


__all__ = ["Score", "load_generations", "rescore", "rescore_command"]
