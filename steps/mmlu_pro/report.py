"""What a person reads: the results table (summary.md) and the grouped bar chart (scores.png)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from steps.common import atomic_path
from steps.contract import ROLE_BASELINE, ROLE_FINETUNED, ROLE_NAMES

OVERALL = "overall"
_BASELINE_COLOURS = ("#8c9db5", "#4c6a92", "#b7b7b7", "#6b6b6b", "#a3c4dc", "#2f4b6e")
_FINETUNED_COLOURS = ("#e4572e", "#f3a712", "#29a36a")


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|")


def _name(entry: dict[str, Any]) -> str:
    role = ROLE_NAMES.get(entry["role"], ROLE_NAMES[ROLE_BASELINE])
    return f"{_cell_text(entry['label'])} ({role})"


def _score_cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return "missing"
    mark = "" if result.get("complete", True) else "*"
    interval = result.get("interval")
    shown = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
    return f"{result['accuracy']:.4f}{shown} ({result['correct']}/{result['n']}){mark}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def p_text(p_value: float) -> str:
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"


def _delta_cell(value: float | None, paired: dict[str, Any] | None) -> str:
    """Δ, its paired 95 % interval and McNemar's p; ▲/▼ when the interval excludes 0."""
    if value is None or paired is None:
        return _signed(value)
    low, high = paired["interval"]
    mark = " ▲" if low > 0 else " ▼" if high < 0 else ""
    return f"{value:+.4f} [{low:+.3f}, {high:+.3f}] {p_text(paired['p_value'])}{mark}"


def _accuracy(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "?"


def test_text(test: Any) -> str:
    """', Δ −0.1500, 95% CI [−0.210, −0.090], McNemar exact p<0.001' from a Difference's dict ('' without one)."""
    if not isinstance(test, dict) or not isinstance(test.get("p_value"), (int, float)):
        return ""
    delta = f", Δ {test['delta']:+.4f}" if isinstance(test.get("delta"), (int, float)) else ""
    interval = test.get("interval")
    shown = f", 95% CI [{interval[0]:+.3f}, {interval[1]:+.3f}]" if isinstance(interval, list) and len(interval) == 2 else ""
    return f"{delta}{shown}, {test.get('test') or 'test'} {p_text(test['p_value'])}"


def drop_text(drop: dict[str, Any]) -> str:
    """One drop (a regression or not) on one line: subject, model, the reference run's accuracy and
    this one's, Δ with its paired 95 % interval and p."""
    return (f"{drop.get('subject')} ({drop.get('model')}: {_accuracy(drop.get('previous_accuracy'))} in "
            f"{drop.get('previous_run')} → {_accuracy(drop.get('accuracy'))}{test_text(drop.get('test'))})")


def render_markdown(summary: dict[str, Any]) -> str:
    models, deltas = summary["models"], summary["deltas"]
    columns = [_name(e) for e in models] + [f"Δ {_cell_text(d['model'])} vs {_cell_text(d['baseline'])}" for d in deltas]
    lines = [
        f"# MMLU-Pro results: {summary['run_id']}",
        "",
        ("Accuracy per subject (correct/questions). **Overall** is total correct over total questions, "
         "as MMLU-Pro reports it; **macro** is the mean of the subject accuracies. "
         "Δ is the fine-tuned model minus a baseline, in accuracy points (×100 for percentage points). "
         "[low, high] is a 95 % interval: Wilson for an accuracy; for a Δ, paired over the same questions "
         "(Newcombe), with McNemar's exact p; ▲/▼ mark a Δ whose interval lies above/below 0."),
        "",
        "| subject | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for subject in summary["subjects"]:
        cells = [_score_cell(e["subjects"].get(subject)) for e in models]
        cells += [_delta_cell(d["subjects"].get(subject), (d.get("paired") or {}).get(subject)) for d in deltas]
        lines.append(f"| {subject} | " + " | ".join(cells) + " |")
    overall = [f"**{_score_cell(e['overall'] if e['subjects'] else None)}**" for e in models]
    lines.append("| **overall** | " + " | ".join(
        overall + [f"**{_delta_cell(d['overall'], d.get('overall_paired'))}**" for d in deltas]) + " |")
    macro = ["–" if e["macro_accuracy"] is None else f"{e['macro_accuracy']:.4f}" for e in models]
    lines.append("| macro | " + " | ".join(macro + [_signed(d["macro"]) for d in deltas]) + " |")
    lines.append("")
    comparable = summary.get("comparable_subjects", summary["subjects"])
    if comparable != summary["subjects"]:
        lines.append("Overall, macro and their Δ count only the subjects every model has on the same questions: "
                     + (", ".join(comparable) if comparable else "none, so there are no overall scores"))
        lines.append("")
    if summary["partial"]:
        lines.append("\\* partial: " + "; ".join(
            f"{p['model']} {p['subject']} ({p['n']} of {p['n_questions']} questions)" for p in summary["partial"]))
        lines.append("")
    if summary["missing"]:
        lines.append("**Missing results** (not in overall or macro): " + "; ".join(
            f"{m['model']} {m['subject']}" for m in summary["missing"]))
        lines.append("")
    significantly = " and significantly (p < 0.05)" if summary.get("regression_requires_significance") else ""
    if summary["regressions"]:
        lines.append(f"**Regressions** (fell by more than {summary['regression_threshold']:g}{significantly} since the "
                     "last accepted run of the same model revision with the same settings): "
                     + "; ".join(drop_text(r) for r in summary["regressions"]))
        lines.append("")
    if summary.get("drops_not_significant"):
        lines.append(f"Drops beyond {summary['regression_threshold']:g} that a test does not tell apart from noise "
                     "(not regressions): " + "; ".join(drop_text(r) for r in summary["drops_not_significant"]))
        lines.append("")
    for entry in models:
        lines.append(f"- {_cell_text(entry['label'])}: `{entry['model']}` revision `{entry['model_revision']}`, "
                     f"engine {entry['engine']}, extraction {entry['extract']}, dataset {entry['dataset']} "
                     f"@ `{entry['dataset_revision']}`, settings `{entry['settings_hash']}`")
    return "\n".join(lines) + "\n"


def _legend_columns(n_models: int, n_groups: int) -> int:
    return max(1, min(n_models, 4 if n_groups > 2 else 1))


def _legend_rows(n_models: int, n_groups: int) -> int:
    return -(-n_models // _legend_columns(n_models, n_groups))


def plot_scores(summary: dict[str, Any], path: Path) -> Path:
    """Grouped bars: one group per subject (and overall), one bar per model, values on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = summary["models"]
    groups = [*summary["subjects"], OVERALL] if len(summary["subjects"]) > 1 else list(summary["subjects"])
    baseline_colours = iter(_BASELINE_COLOURS * 4)
    finetuned_colours = iter(_FINETUNED_COLOURS * 4)
    width = 0.8 / max(len(models), 1)
    figure, axes = plt.subplots(figsize=(min(14.0, max(6.0, 1.2 + len(groups) * (0.3 + 0.22 * len(models)))), 5.0))
    highest = 0.0
    for index, entry in enumerate(models):
        colour = next(finetuned_colours if entry["role"] == ROLE_FINETUNED else baseline_colours)
        offset = (index - (len(models) - 1) / 2) * width
        legend_label: str | None = _name(entry)
        for position, group in enumerate(groups):
            result = entry["overall"] if group == OVERALL else entry["subjects"].get(group)
            if result is None or not result["n"]:
                axes.text(position + offset, 0.005, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
                continue
            accuracy = result["accuracy"]
            interval = result.get("interval")
            top = interval[1] if interval else accuracy
            highest = max(highest, top)
            axes.bar(position + offset, accuracy, width, color=colour, label=legend_label,
                     hatch="//" if not result.get("complete", True) else None, edgecolor="white",
                     yerr=[[accuracy - interval[0]], [interval[1] - accuracy]] if interval else None,
                     error_kw={"ecolor": "#333333", "elinewidth": 0.8, "capsize": 2})
            legend_label = None
            axes.text(position + offset, top + 0.005, f"{accuracy:.3f}".lstrip("0"), ha="center",
                      va="bottom", fontsize=7)
    if groups[-1] == OVERALL:
        axes.axvline(len(groups) - 1.5, color="#999999", linestyle=":", linewidth=1)
    axes.set_xticks(range(len(groups)), groups, rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    axes.set_ylim(0, min(1.0, highest * 1.2 + 0.05))
    axes.set_ylabel("accuracy (whiskers: 95% Wilson interval)")
    axes.set_title(f"MMLU-Pro accuracy, run {summary['run_id']}", pad=12 + 14 * _legend_rows(len(models), len(groups)))
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=_legend_columns(len(models), len(groups)),
                fontsize=8, frameon=False)
    figure.tight_layout()
    save_png(figure, path, [_name(entry) for entry in models])
    return path


def save_png(figure: Any, path: Path, series: list[str]) -> None:
    """Write the figure atomically; the PNG's text metadata names its series (one per line), so a
    program can tell what the chart shows without reading pixels."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight",
                       metadata={"Software": "tunebench", "Series": "\n".join(series)})
    plt.close(figure)
