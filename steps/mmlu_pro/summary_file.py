"""RUN/summary/summary.json as a contract between aggregate and the tasks that act on it.

Each aggregate invocation gives its summary an id: a digest of what it read (the plan, every
subject's summary and records, the run id, the subjects, the settings) and a random part of its own, and
writes that id into summary.json and, last, alone into `summary.id` (the DAG's output
parameter). publish-scores and verdict receive the id from aggregate's output and refuse a
summary.json that carries another one (a stale summary of an earlier attempt, or a foreign one
another run wrote): only the invocation that wrote a summary for this run's results is acted on.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from steps.common import StepInputError
from steps.contract import SUMMARY_JSON
from steps.mmlu_pro.report import drop_text


def file_digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes, None when it does not exist."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def new_summary_id(inputs: dict[str, Any], files: dict[str, Path]) -> str:
    """`<digest of the inputs>-<random>`: equal prefixes mean the same inputs (`files` by what they
    are, not where), the whole id one invocation."""
    content = {"inputs": inputs, "files": {name: file_digest(path) for name, path in files.items()}}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return f"{digest[:16]}-{secrets.token_hex(4)}"


def read_summary(path: Path, expected_id: str | None, option: str = "--summary") -> dict[str, Any]:
    """summary.json as a dict; with `expected_id`, only if that aggregate invocation wrote it."""
    path = Path(path)
    if path.is_dir():
        raise StepInputError(f"{option} {path} is a directory; give aggregate's summary.json")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StepInputError(f"{option} {path}: no such file (the aggregate step writes RUN/summary/"
                             f"{SUMMARY_JSON})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = f"{error.msg} at line {error.lineno}" if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        raise StepInputError(f"{option} {path}: not valid JSON ({where})") from None
    if not isinstance(summary, dict):
        raise StepInputError(f"{option} {path}: not a summary written by aggregate (a JSON object)")
    if expected_id is not None and summary.get("summary_id") != expected_id:
        found = summary.get("summary_id")
        raise StepInputError(
            f"{option} {path} is not the summary this run's aggregate wrote (its id is "
            f"{found if found else 'missing'}, expected {expected_id}): stale or written by another run; "
            "rerun aggregate, nothing was published")
    return summary


def regression_message(summary: dict[str, Any]) -> str:
    """One line naming each regression aggregate recorded in `summary`: subject, model, the reference
    run's accuracy and this one's, Δ with its 95 % interval and the test's p."""
    threshold = summary.get("regression_threshold")
    found = "; ".join(drop_text(r) for r in summary.get("regressions") or [] if isinstance(r, dict))
    beyond = f" by more than {threshold:g}" if isinstance(threshold, (int, float)) else ""
    return f"accuracy regressed{beyond} in: {found}"
