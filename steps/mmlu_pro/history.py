"""The re-benchmark history: one parquet row per run × model × subject, and the regression check."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.common import atomic_path

_FLOAT_TOLERANCE = 1e-9
HISTORY_COLUMNS = ("time", "run", "model", "role", "source", "model_revision", "subject", "n", "correct",
                   "accuracy", "settings_hash")


@dataclass(frozen=True)
class Regression:
    model: str
    subject: str
    accuracy: float
    previous_accuracy: float
    previous_run: str

    @property
    def drop(self) -> float:
        return self.previous_accuracy - self.accuracy

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "subject": self.subject, "accuracy": self.accuracy,
                "previous_accuracy": self.previous_accuracy, "previous_run": self.previous_run, "drop": self.drop}

    def __str__(self) -> str:
        return (f"{self.subject} ({self.model}: {self.previous_accuracy:.4f} in {self.previous_run} "
                f"→ {self.accuracy:.4f}, −{self.drop:.4f})")


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("time", pa.string()), ("run", pa.string()), ("model", pa.string()), ("role", pa.string()),
        ("source", pa.string()), ("model_revision", pa.string()), ("subject", pa.string()),
        ("n", pa.int64()), ("correct", pa.int64()), ("accuracy", pa.float64()), ("settings_hash", pa.string()),
    ])
    table = pa.Table.from_pylist([{column: row.get(column) for column in HISTORY_COLUMNS} for row in rows], schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def find_regressions(history: list[dict[str, Any]], current: list[dict[str, Any]], run: str,
                     threshold: float) -> list[Regression]:
    """Subjects whose accuracy fell by more than `threshold` since the latest earlier run of the
    same model with the same settings on the same number of questions."""
    regressions = []
    for row in current:
        earlier = [old for old in history
                   if old["run"] != run and old["model"] == row["model"] and old["subject"] == row["subject"]
                   and old["settings_hash"] == row["settings_hash"] and old["n"] == row["n"]]
        if not earlier:
            continue
        previous = max(earlier, key=lambda old: old["time"])
        # A tolerance, so that 0.40 → 0.38 is a drop of 0.02 and not of 0.020000000000000018.
        if previous["accuracy"] - row["accuracy"] > threshold + _FLOAT_TOLERANCE:
            regressions.append(Regression(row["model"], row["subject"], row["accuracy"],
                                          previous["accuracy"], previous["run"]))
    return regressions


def record_run(path: Path, rows: list[dict[str, Any]], run: str, threshold: float) -> list[Regression]:
    """Compare `rows` with the history, then store them (replacing the rows of an earlier attempt of `run`)."""
    history = read_history(path)
    regressions = find_regressions(history, rows, run, threshold)
    write_history(path, [old for old in history if old["run"] != run] + rows)
    return regressions
