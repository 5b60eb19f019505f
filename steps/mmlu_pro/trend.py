"""The re-benchmark history over time: `tunebench history` (a line per run, JSON, a plot) and the
trend plot `aggregate` writes beside scores.png once a model has more than one run.

A point is one model × subject of one run, with its Wilson interval. In the plot, points of
one model are joined only while the revision and the settings stay the same: a new revision
(a new fine-tune, a new hub commit) or new settings (another dataset revision, engine,
extraction, ...) starts a new segment with a hollow marker and a note, since accuracies on
either side of it are not the same measurement.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from steps.common import StepInputError, check_output_file, fail
from steps.contract import HISTORY_DIR
from steps.mmlu_pro.history import read_history
from steps.mmlu_pro.report import save_png
from steps.mmlu_pro.stats import wilson_interval


@dataclass(frozen=True)
class Point:
    time: str
    run: str
    model: str
    role: str | None
    model_revision: str | None
    subject: str
    n: int
    correct: int
    accuracy: float
    low: float | None
    high: float | None
    settings_hash: str | None
    regressed: bool = False   # reported as a regression in its run (never a later run's reference)


def _point(row: dict[str, Any]) -> Point:
    interval = wilson_interval(int(row["correct"]), int(row["n"]))
    return Point(str(row.get("time") or ""), str(row.get("run") or ""), str(row["model"]), row.get("role"),
                 row.get("model_revision"), str(row["subject"]), int(row["n"]), int(row["correct"]),
                 float(row["accuracy"]), interval.low if interval else None, interval.high if interval else None,
                 row.get("settings_hash"), row.get("regressed") is True)


def trend_points(rows: list[dict[str, Any]], model: str | None = None, subject: str | None = None) -> list[Point]:
    """History rows as points, oldest first, optionally of one model and/or one subject."""
    chosen = [row for row in rows if row.get("model") is not None and row.get("n")
              and (model is None or row["model"] == model) and (subject is None or row.get("subject") == subject)]
    return sorted((_point(row) for row in chosen), key=lambda p: (p.time, p.run, p.model, p.subject))


def _short(revision: str | None) -> str:
    if not revision:
        return "unknown"
    return revision[:19] if revision.startswith("sha256:") else revision[:12]


def format_point(point: Point) -> str:
    interval = f"[{point.low:.3f}, {point.high:.3f}]" if point.low is not None else ""
    return (f"{point.time}  {point.run}  {point.model}  rev {_short(point.model_revision)}  {point.subject}  "
            f"{point.accuracy:.4f} {interval} ({point.correct}/{point.n})  settings {point.settings_hash}"
            + ("  regressed" if point.regressed else ""))


def _time(point: Point) -> datetime | None:
    try:
        return datetime.fromisoformat(point.time)
    except ValueError:
        return None


def _changes(previous: Point | None, point: Point) -> list[str]:
    if previous is None:
        return []
    notes = []
    if point.model_revision != previous.model_revision:
        notes.append(f"rev {_short(point.model_revision)}")
    if point.settings_hash != previous.settings_hash:
        notes.append(f"settings {point.settings_hash}")
    return notes


def series_names(points: list[Point]) -> list[str]:
    """One series per model × subject, in the order they are drawn."""
    return sorted({f"{p.model} | {p.subject}" for p in points})


def plot_trend(points: list[Point], path: Path, title: str = "MMLU-Pro accuracy over time") -> Path:
    """One panel per subject, one series per model: accuracy with its interval, over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates
    import matplotlib.pyplot as plt

    points = [p for p in points if _time(p) is not None and p.low is not None and p.high is not None]
    subjects = sorted({p.subject for p in points})
    models = sorted({p.model for p in points})
    columns = min(3, max(1, len(subjects)))
    rows = -(-len(subjects) // columns) if subjects else 1
    figure, grid = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.6 * rows), squeeze=False, sharey=True)
    colours = plt.get_cmap("tab10")
    # Models measured in the same run share a time: shift each a little so whiskers do not hide each other.
    times = [t for t in (_time(p) for p in points) if t is not None]
    span = (max(times) - min(times)) if times else timedelta(0)
    step = max(span, timedelta(minutes=10)) * (0.6 / 100)

    def at(point: Point, number: int) -> datetime | None:
        moment = _time(point)
        return None if moment is None else moment + step * (number - (len(models) - 1) / 2)

    for index, subject in enumerate(subjects):
        axes = grid[index // columns][index % columns]
        for number, model in enumerate(models):
            series = [p for p in points if p.subject == subject and p.model == model]
            if not series:
                continue
            colour = colours(number % 10)
            segment: list[Point] = []
            previous: Point | None = None
            for point in [*series, None]:
                notes = _changes(previous, point) if point is not None else ["end"]
                if notes and segment:
                    axes.errorbar([at(p, number) for p in segment], [p.accuracy for p in segment],
                                  yerr=[[p.accuracy - (p.low or 0.0) for p in segment],
                                        [(p.high or 0.0) - p.accuracy for p in segment]],
                                  color=colour, marker="o", markersize=4, linewidth=1.2, capsize=2,
                                  label=model if segment[0] is series[0] else None)
                    segment = []
                if point is None:
                    break
                if notes:
                    axes.plot([at(point, number)], [point.accuracy], marker="o", markersize=9, markerfacecolor="none",
                              markeredgecolor=colour, linestyle="none")
                    axes.annotate(", ".join(notes), (at(point, number), point.accuracy), textcoords="offset points",
                                  xytext=(-6, 8), ha="right", fontsize=6, color=colour)
                segment.append(point)
                previous = point
        axes.set_title(subject, fontsize=9)
        axes.grid(alpha=0.3)
        # Cron runs are days apart, a local demo's minutes: concise dates suit both.
        locator = matplotlib.dates.AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))
        axes.tick_params(axis="x", labelsize=7)
        axes.set_ylim(0, 1)
    for index in range(len(subjects), rows * columns):
        grid[index // columns][index % columns].set_visible(False)
    for axes_row in grid:
        axes_row[0].set_ylabel("accuracy")
    handles, labels = grid[0][0].get_legend_handles_labels()
    for axes_row in grid:
        for axes in axes_row:
            for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
                if label not in labels:
                    handles.append(handle)
                    labels.append(label)
    figure.suptitle(f"{title}\nwhiskers: 95% Wilson interval; hollow marker: a new revision or new settings starts there",
                    fontsize=10)
    figure.tight_layout()
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(3, max(1, len(labels))),
                  fontsize=8, frameon=False)
    save_png(figure, Path(path), series_names(points))
    return Path(path)


def plot_trend_beside(history: Path, summary: dict[str, Any], path: Path) -> Path | None:
    """The trend of this run's models and subjects, when one of them has more than one run in the
    history (this run included); otherwise no trend file (an earlier attempt's is removed)."""
    labels = {entry["label"] for entry in summary["models"]}
    subjects = set(summary["subjects"])
    points = [p for p in trend_points(read_history(history)) if p.model in labels and p.subject in subjects]
    runs_per_model: dict[str, set[str]] = {}
    for point in points:
        runs_per_model.setdefault(point.model, set()).add(point.run)
    if not any(len(runs) > 1 for runs in runs_per_model.values()):
        Path(path).unlink(missing_ok=True)
        return None
    return plot_trend(points, path)


def history_command(
    history_dir: Annotated[Path, typer.Argument(metavar="HISTORY_DIR", show_default=False,
                                                help="The history folder: one <run>.parquet per run (aggregate --history).")],
    model: Annotated[str | None, typer.Option(help="Only this model (its label: a hub id, or the fine-tuned model's repo).")] = None,
    subject: Annotated[str | None, typer.Option(help="Only this subject.")] = None,
    plot: Annotated[Path | None, typer.Option(metavar="PNG", help="Draw accuracy over time per model and subject into this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the points as a JSON list instead of lines.")] = False,
) -> None:
    """The re-benchmark history: one line per run × model × subject (time, run, model, revision, accuracy
    with its 95% interval, settings hash), oldest first; --plot draws it over time."""
    try:
        if plot is not None:
            check_output_file(plot)  # before reading the history: a bad --plot is one line, not a traceback later
        if not history_dir.is_dir():
            raise StepInputError(f"HISTORY_DIR {history_dir} is not a folder (aggregate --history writes one "
                                 f"<run>.parquet per run there; the DAG uses {HISTORY_DIR})")
        rows = read_history(history_dir)
        points = trend_points(rows, model, subject)
        if rows and not points:
            known_models = sorted({str(r.get("model")) for r in rows})
            known_subjects = sorted({str(r.get("subject")) for r in rows})
            raise StepInputError(f"no run in {history_dir} matches --model {model!r} --subject {subject!r}; "
                                 f"models there: {', '.join(known_models)}; subjects: {', '.join(known_subjects)}")
    except StepInputError as error:
        fail(str(error))
    if as_json:
        print(json.dumps([asdict(p) for p in points], indent=2))
    elif not points:
        print(f"no runs in {history_dir}", file=sys.stderr)
    else:
        for point in points:
            print(format_point(point))
    if plot is not None and points:
        plot_trend(points, plot)
        print(f"plot: {plot}", file=sys.stderr)
