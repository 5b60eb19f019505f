"""The re-benchmark history and the regression check.

The history is a folder with one parquet file per run, `<run-id>.parquet`, holding a row per
model × subject of that run. Each run writes only its own file (atomically; a retry of the
run replaces it), so runs aggregating at the same time never overwrite each other's rows,
and the history is every `*.parquet` in the folder read together.

Each row also keeps the outcome of every question (`question_ids`, `question_correct`), so a
later run of the same model is compared with it question by question (a paired test), and
whether it was itself a regression (`regressed`): a later run is compared with the latest run
that was not, so a lasting regression keeps failing until the accuracy recovers.
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.common import StepInputError, atomic_path
from steps.mmlu_pro.report import drop_text
from steps.mmlu_pro.stats import ALPHA, Difference, paired_outcomes, unpaired_difference

if TYPE_CHECKING:
    import pyarrow as pa

_FLOAT_TOLERANCE = 1e-9
HISTORY_COLUMNS = ("time", "run", "model", "role", "source", "model_revision", "subject", "n", "correct",
                   "accuracy", "settings_hash", "question_ids", "question_correct", "regressed")
# What a run's file must hold to be compared at all; files from before per-question results lack the rest.
REQUIRED_COLUMNS = ("time", "run", "model", "subject", "n", "correct", "accuracy")
# Argo workflow names are lowercase letters, digits, '-' and '.'; anything else that is a
# plain file name works too, but never a path or a hidden (temporary) file.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Regression:
    model: str
    subject: str
    accuracy: float
    previous_accuracy: float
    previous_run: str
    model_revision: str | None = None
    difference: Difference | None = None   # this run minus the previous one, with its test

    @property
    def drop(self) -> float:
        return self.previous_accuracy - self.accuracy

    @property
    def significant(self) -> bool:
        return self.difference is not None and self.difference.significant(ALPHA)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_revision": self.model_revision, "subject": self.subject,
                "accuracy": self.accuracy, "previous_accuracy": self.previous_accuracy,
                "previous_run": self.previous_run, "drop": self.drop,
                "test": self.difference.as_dict() if self.difference else None, "significant": self.significant}

    def __str__(self) -> str:
        return drop_text(self.as_dict())


def check_run_id(run: str) -> str:
    """`run` names this run's history file, so it must be a plain, visible file name."""
    if not _RUN_ID.fullmatch(run):
        raise StepInputError(f"--run-id {run!r} must be a plain name (letters, digits, '.', '_', '-'; "
                             "not starting with '.' or '-'): it names the run's file in the history folder")
    return run


def _check_folder(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise StepInputError(f"--history {directory} must be a folder (one <run-id>.parquet per run is written "
                             "into it), and something that is not a folder is there")


def run_file(directory: Path, run: str) -> Path:
    """Where the rows of `run` are stored."""
    return Path(directory) / f"{check_run_id(run)}.parquet"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def read_history(directory: Path, warn: Callable[[str], None] = _warn) -> list[dict[str, Any]]:
    """Every row of every run in the folder (none when it is missing or empty).

    Temporary files of writes in progress (hidden, `.tmp`) are not `*.parquet` and are skipped;
    a file that cannot be read is reported and skipped rather than failing every later run.
    """
    directory = Path(directory)
    _check_folder(directory)
    if not directory.is_dir():
        return []
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.parquet")):
        if path.name.startswith((".", "_")) or not path.is_file():
            continue
        try:
            # Not pq.read_table: its pyarrow.dataset imports pandas (0.4 s of the step's start-up).
            with pq.ParquetFile(path) as parquet:
                table = parquet.read()
        except (OSError, ValueError) as error:   # pyarrow's ArrowInvalid is a ValueError
            warn(f"history file {path} cannot be read ({error}); it is left out of the regression check")
            continue
        absent = [column for column in REQUIRED_COLUMNS if column not in table.schema.names]
        if absent:
            warn(f"history file {path} has no {', '.join(absent)} column (is it a history file?); "
                 "it is left out of the regression check")
            continue
        rows += [{column: row.get(column) for column in HISTORY_COLUMNS} for row in table.to_pylist()]
    return rows


def history_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as a table of the history schema, built by pyarrow's JSON reader: every conversion
    from Python objects (pa.array, Table.from_pylist, pa.table) imports pandas on its first call,
    0.4 s of the aggregate step's start-up. Python writes each float as its shortest round-trip
    form and Arrow parses it back to the same double, so the stored values are the rows' own."""
    import pyarrow as pa
    import pyarrow.json as pa_json

    schema = pa.schema([
        ("time", pa.string()), ("run", pa.string()), ("model", pa.string()), ("role", pa.string()),
        ("source", pa.string()), ("model_revision", pa.string()), ("subject", pa.string()),
        ("n", pa.int64()), ("correct", pa.int64()), ("accuracy", pa.float64()), ("settings_hash", pa.string()),
        ("question_ids", pa.list_(pa.string())), ("question_correct", pa.list_(pa.bool_())),
        ("regressed", pa.bool_()),
    ])
    if not rows:
        return schema.empty_table()
    lines = "".join(json.dumps({column: row.get(column) for column in HISTORY_COLUMNS}) + "\n" for row in rows)
    data = lines.encode("utf-8")
    return pa_json.read_json(pa.BufferReader(data), read_options=pa_json.ReadOptions(block_size=len(data) + 1),
                             parse_options=pa_json.ParseOptions(explicit_schema=schema,
                                                                unexpected_field_behavior="error"))


def write_run(directory: Path, run: str, rows: list[dict[str, Any]]) -> Path:
    """Store the rows of `run` as `<directory>/<run>.parquet`, atomically, replacing an earlier attempt's."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    _check_folder(directory)
    table = history_table(rows)
    path = run_file(directory, run)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _before(old: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether `old` was recorded no later than `row` (rows without a time count as earlier). A run
    that aggregated after this one took its time, yet wrote its file before this one read the
    folder, is a later run, not a previous one."""
    if not old.get("time") or not row.get("time"):
        return True
    try:
        return datetime.fromisoformat(old["time"]) <= datetime.fromisoformat(row["time"])
    except (TypeError, ValueError):
        return str(old["time"]) <= str(row["time"])


def _same_measurement(old: dict[str, Any], row: dict[str, Any]) -> bool:
    """The same model at the same revision (hub commit or folder fingerprint), subject, settings
    and number of questions: a new fine-tune published under the same label is another model."""
    return (old.get("model") == row["model"] and old.get("model_revision") == row.get("model_revision")
            and old.get("subject") == row["subject"] and old.get("settings_hash") == row["settings_hash"]
            and old.get("n") == row["n"])


def outcomes_of(row: dict[str, Any]) -> dict[str, bool] | None:
    """Question id → answered correctly, from a history row (None when the row has no per-question record)."""
    ids, correct = row.get("question_ids"), row.get("question_correct")
    if ids is None or correct is None or len(ids) != len(correct) or len(ids) != row.get("n"):
        return None
    return dict(zip(ids, (bool(c) for c in correct), strict=True))


def compare_rows(row: dict[str, Any], previous: dict[str, Any]) -> Difference | None:
    """`row` minus `previous`: paired over the same questions when both keep their outcomes, else
    as independent samples from the counts."""
    new, old = outcomes_of(row), outcomes_of(previous)
    if new is not None and old is not None and new.keys() == old.keys():
        return paired_outcomes(new, old)
    correct, n, previous_correct, previous_n = row.get("correct"), row.get("n"), previous.get("correct"), previous.get("n")
    if not (isinstance(correct, int) and isinstance(n, int) and isinstance(previous_correct, int)
            and isinstance(previous_n, int)):
        return None
    return unpaired_difference(correct, n, previous_correct, previous_n)


@dataclass(frozen=True)
class Drops:
    """Subjects that fell by more than the threshold: regressions, and (when significance is
    required) the drops a test does not tell apart from noise."""

    regressions: list[Regression]
    not_significant: list[Regression]


def find_regressions(history: list[dict[str, Any]], current: list[dict[str, Any]], run: str,
                     threshold: float, require_significance: bool = False) -> list[Regression]:
    """Subjects whose accuracy fell by more than `threshold` since the reference run (`reference_row`)
    (and, with `require_significance`, significantly: two-sided p below 0.05)."""
    return find_drops(history, current, run, threshold, require_significance).regressions


def reference_row(history: list[dict[str, Any]], row: dict[str, Any], run: str) -> dict[str, Any] | None:
    """What `row` is compared with: the latest earlier run of the same model at the same revision, with
    the same settings, on the same number of questions, that was not itself a regression there.

    A regressed run never becomes the reference, so the next re-benchmark of weights that still
    score as low fails again rather than passing against the regressed run; one that recovers is
    accepted and is the reference from then on. Rows written before `regressed` was kept count as
    accepted.
    """
    accepted = [old for old in history if old.get("run") != run and _same_measurement(old, row)
                and _before(old, row) and old.get("regressed") is not True]
    return max(accepted, key=lambda old: (old.get("time") or "", old.get("run") or ""), default=None)


def find_drops(history: list[dict[str, Any]], current: list[dict[str, Any]], run: str,
               threshold: float, require_significance: bool) -> Drops:
    drops = []
    for row in current:
        if row.get("model_revision") is None:
            continue   # nothing says which weights these were: no run is known to be the same model
        previous = reference_row(history, row, run)
        if previous is None:
            continue
        # A tolerance, so that 0.40 → 0.38 is a drop of 0.02 and not of 0.020000000000000018.
        if previous["accuracy"] - row["accuracy"] > threshold + _FLOAT_TOLERANCE:
            drops.append(Regression(row["model"], row["subject"], row["accuracy"], previous["accuracy"],
                                    previous["run"], row.get("model_revision"), compare_rows(row, previous)))
    if not require_significance:
        return Drops(drops, [])
    return Drops([d for d in drops if d.significant], [d for d in drops if not d.significant])


def _mark_regressed(rows: list[dict[str, Any]], regressions: list[Regression]) -> list[dict[str, Any]]:
    regressed = {(r.model, r.subject) for r in regressions}
    return [{**row, "regressed": (row["model"], row["subject"]) in regressed} for row in rows]


def record_run(directory: Path, rows: list[dict[str, Any]], run: str, threshold: float,
               require_significance: bool = True) -> Drops:
    """Compare `rows` with the other runs in the history folder, then store them as the run's own file,
    each row marked with whether it regressed."""
    drops = find_drops(read_history(directory), rows, run, threshold, require_significance)
    write_run(directory, run, _mark_regressed(rows, drops.regressions))
    return drops
