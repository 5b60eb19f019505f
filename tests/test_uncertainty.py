"""Intervals and paired tests in aggregate's summary, the significance-gated regression check
(a noisy 20-question smoke run never regresses, a real drop on 1,351 questions always does),
the history's per-question outcomes and the Argo output files."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from steps.aggregate import aggregate, aggregate_command
from steps.common import EXIT_REGRESSION, write_json_atomic
from steps.mmlu_pro import node_outputs
from steps.mmlu_pro.history import find_drops
from steps.mmlu_pro.results import subject_summary, write_records
from steps.mmlu_pro.stats import paired_difference

BASE = {"model": "google/gemma-2-2b", "slug": "google--gemma-2-2b", "role": "baseline", "label": "google/gemma-2-2b"}
TUNED = {"model": "/ws/runs/r/train/output/merged", "slug": "finetuned", "role": "finetuned", "label": "org/tuned"}


def write_outcomes(eval_dir: Path, model: dict, subject: str, correct: list[bool], revision: str = "rev-1") -> None:
    """A task's per-question records and its summary, as eval_mmlu_pro writes them."""
    records = [{"question_id": 1000 + i, "correct": c, "method": "l1", "k": 5, "hit_token_limit": False}
               for i, c in enumerate(correct)]
    write_records(eval_dir / model["slug"] / f"{subject}.jsonl", records)
    summary = subject_summary(records, n_questions=len(correct), subject=subject, model=model["model"],
                              label=model["label"], role=model["role"], engine="hf", model_revision=revision,
                              dataset="TIGER-Lab/MMLU-Pro", dataset_revision="abc", extract="tiger",
                              settings_hash="settings-1")
    write_json_atomic(eval_dir / model["slug"] / f"{subject}.summary.json", summary)


def table(both: int, gained: int, lost: int, neither: int) -> tuple[list[bool], list[bool]]:
    """(fine-tuned, baseline) outcomes with the given 2×2 counts."""
    tuned = [True] * both + [True] * gained + [False] * lost + [False] * neither
    base = [True] * both + [False] * gained + [True] * lost + [False] * neither
    return tuned, base


def same(found: dict, expected: dict) -> bool:
    return (found["interval"] == pytest.approx(expected["interval"])
            and {k: v for k, v in found.items() if k != "interval"} == pytest.approx(
                {k: v for k, v in expected.items() if k != "interval"}))


def models_file(path: Path, *models: dict) -> Path:
    path.write_text(json.dumps(list(models)))
    return path


def test_every_delta_gets_a_paired_interval_and_mcnemar_test_over_the_same_questions(tmp_path):
    eval_dir = tmp_path / "eval"
    tuned, base = table(both=30, gained=12, lost=3, neither=55)
    write_outcomes(eval_dir, TUNED, "math", tuned)
    write_outcomes(eval_dir, BASE, "math", base)
    # law: the same questions in another order; the join is on question id
    tuned_law, base_law = table(both=10, gained=1, lost=1, neither=8)
    write_outcomes(eval_dir, TUNED, "law", tuned_law)
    write_outcomes(eval_dir, BASE, "law", base_law)
    path = eval_dir / BASE["slug"] / "law.jsonl"
    path.write_text("".join(reversed(path.read_text().splitlines(keepends=True))))

    summary, _ = aggregate(eval_dir, models_file(tmp_path / "models.json", BASE, TUNED), ["math", "law"],
                           tmp_path / "summary", "r1")
    [delta] = summary["deltas"]
    expected = paired_difference(30, 12, 3, 55).as_dict()
    assert same(delta["paired"]["math"], expected)
    assert delta["paired"]["math"]["p_value"] == pytest.approx(1152 / 32768)
    assert delta["paired"]["law"]["gained"] == 1 and delta["paired"]["law"]["lost"] == 1
    assert same(delta["overall_paired"], paired_difference(40, 13, 4, 63).as_dict())
    tuned_entry = next(e for e in summary["models"] if e["role"] == "finetuned")
    assert tuned_entry["subjects"]["math"]["interval"] == [pytest.approx(0.327984, abs=1e-6),
                                                           pytest.approx(0.517935, abs=1e-6)]
    assert summary["statistics"]["paired_test"] == "McNemar exact (two-sided)"

    markdown = (tmp_path / "summary" / "summary.md").read_text()
    assert "+0.0900 [+0.016, +0.162] p=0.035 ▲" in markdown        # interval above 0: marked
    assert "+0.0000 [" in markdown and "p=1.000 |" in markdown       # law: no mark


def test_records_that_do_not_match_the_summary_give_no_paired_result(tmp_path):
    eval_dir = tmp_path / "eval"
    tuned, base = table(both=5, gained=3, lost=1, neither=11)
    write_outcomes(eval_dir, TUNED, "math", tuned)
    write_outcomes(eval_dir, BASE, "math", base)
    (eval_dir / BASE["slug"] / "math.jsonl").unlink()
    summary, _ = aggregate(eval_dir, models_file(tmp_path / "models.json", BASE, TUNED), ["math"], tmp_path / "s", "r1")
    assert summary["deltas"][0]["paired"] == {"math": None} and summary["deltas"][0]["overall_paired"] is None
    assert "| +0.1000 |" in (tmp_path / "s" / "summary.md").read_text()   # Δ without an interval


def _run(tmp_path: Path, run_id: str, correct: list[bool], *flags: str):
    eval_dir = tmp_path / run_id / "eval"
    write_outcomes(eval_dir, TUNED, "math", correct)
    app = typer.Typer()
    app.command()(aggregate_command)
    return CliRunner().invoke(app, [
        "--eval-dir", str(eval_dir), "--models", str(models_file(tmp_path / f"{run_id}.json", TUNED)),
        "--subjects", '["math"]', "--out-dir", str(tmp_path / run_id / "summary"), "--run-id", run_id,
        "--history", str(tmp_path / "history"), *flags])


def test_a_one_question_drop_in_a_20_question_smoke_run_is_no_regression_unless_significance_is_off(tmp_path):
    before = [True] * 4 + [False] * 16
    after = [True] * 3 + [False] * 17                    # 0.20 → 0.15: beyond the 0.02 threshold
    assert _run(tmp_path, "run-1", before).exit_code == 0
    result = _run(tmp_path, "run-2", after)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run-2" / "summary" / "summary.json").read_text())
    assert summary["regressions"] == []
    [drop] = summary["drops_not_significant"]
    assert drop["test"]["test"] == "McNemar exact" and drop["test"]["p_value"] == pytest.approx(1.0)
    assert "not regressions" in (tmp_path / "run-2" / "summary" / "summary.md").read_text()
    # the threshold alone
    assert _run(tmp_path / "off", "run-1", before, "--no-require-significance").exit_code == 0
    assert _run(tmp_path / "off", "run-2", after, "--no-require-significance").exit_code == EXIT_REGRESSION


def test_history_rows_keep_every_question_outcome_for_the_next_paired_test(tmp_path):
    _run(tmp_path, "run-1", [True, False, True])
    [row] = pq.read_table(tmp_path / "history" / "run-1.parquet").to_pylist()
    assert row["question_ids"] == ["1000", "1001", "1002"] and row["question_correct"] == [True, False, True]


def _row(run: str, time: str, correct: list[bool], with_outcomes: bool = True) -> dict:
    row = {"run": run, "time": time, "model": "org/tuned", "model_revision": "rev-1", "subject": "math",
           "settings_hash": "h", "n": len(correct), "correct": sum(correct), "accuracy": sum(correct) / len(correct)}
    if with_outcomes:
        row |= {"question_ids": [str(i) for i in range(len(correct))], "question_correct": correct}
    return row


def _rerun(rng: random.Random, before: list[bool], flip_right: float, flip_wrong: float) -> list[bool]:
    return [(not c) if rng.random() < (flip_right if c else flip_wrong) else c for c in before]


def test_noisy_20_question_reruns_never_raise_a_false_regression():
    rng = random.Random(15)
    false_alarms = threshold_only = 0
    for _ in range(300):
        before = [rng.random() < 0.3 for _ in range(20)]
        after = _rerun(rng, before, 0.15, 0.15 * 0.3 / 0.7)   # the same accuracy on average: noise only
        history = [_row("a", "2026-01-01T00:00:00+00:00", before)]
        current = [_row("b", "2026-01-02T00:00:00+00:00", after)]
        false_alarms += len(find_drops(history, current, "b", 0.02, require_significance=True).regressions)
        threshold_only += len(find_drops(history, current, "b", 0.02, require_significance=False).regressions)
    assert false_alarms == 0
    assert threshold_only > 50     # what the threshold alone would have raised


@pytest.mark.parametrize(("with_outcomes", "flip_right"), [(True, 0.15), (False, 0.22)],
                         ids=["paired: 0.40 → 0.35", "counts-only history: 0.40 → 0.32"])
def test_a_real_drop_on_1351_questions_is_always_a_regression(with_outcomes, flip_right):
    """Paired, a 5-point drop is always caught; compared by counts alone (history rows without
    per-question outcomes) the test needs a larger drop, as independent samples are noisier."""
    rng = random.Random(1351)
    for _ in range(40):
        before = [rng.random() < 0.40 for _ in range(1351)]
        after = _rerun(rng, before, flip_right, 0.02)
        history = [_row("a", "2026-01-01T00:00:00+00:00", before, with_outcomes)]
        current = [_row("b", "2026-01-02T00:00:00+00:00", after, with_outcomes)]
        [regression] = find_drops(history, current, "b", 0.02, require_significance=True).regressions
        assert regression.difference.test == ("McNemar exact" if with_outcomes else "Fisher exact")
        assert regression.difference.interval.high < 0


def test_a_real_drop_exits_4_from_the_command(tmp_path):
    rng = random.Random(7)
    before = [rng.random() < 0.40 for _ in range(1351)]
    assert _run(tmp_path, "run-1", before).exit_code == 0
    result = _run(tmp_path, "run-2", _rerun(rng, before, 0.15, 0.02))
    assert result.exit_code == EXIT_REGRESSION
    assert "McNemar exact p<0.001" in (tmp_path / "run-2" / "summary" / "summary.md").read_text()
    assert (tmp_path / "run-2" / "summary" / "outputs" / node_outputs.REGRESSIONS).read_text() == "1"


def test_the_argo_output_files_hold_overall_accuracy_per_model_and_the_largest_delta(tmp_path):
    eval_dir = tmp_path / "eval"
    for subject, counts in (("math", (30, 12, 3, 55)), ("law", (10, 1, 6, 3))):
        tuned, base = table(*counts)
        write_outcomes(eval_dir, TUNED, subject, tuned)
        write_outcomes(eval_dir, BASE, subject, base)
    aggregate(eval_dir, models_file(tmp_path / "models.json", BASE, TUNED), ["math", "law"], tmp_path / "s", "r1")
    folder = tmp_path / "s" / "outputs"
    assert json.loads((folder / node_outputs.OVERALL_ACCURACY).read_text()) == {
        "google/gemma-2-2b": round(49 / 120, 4), "org/tuned": round(53 / 120, 4)}
    largest = json.loads((folder / node_outputs.LARGEST_DELTA).read_text())
    assert (largest["subject"], largest["delta"]) == ("law", -0.25)   # |−0.25| beats math's +0.09
    assert largest["model"] == "org/tuned" and largest["baseline"] == "google/gemma-2-2b"
    assert largest["p_value"] == pytest.approx(0.125)   # 1 gained, 6 lost: 2·(C(7,0)+C(7,1))/2^7
    assert (folder / node_outputs.REGRESSIONS).read_text() == "0"


def test_eval_output_files_carry_what_the_gauge_labels_need(tmp_path):
    node_outputs.write_eval_outputs(tmp_path, "computer science", {
        "accuracy": 0.25, "n": 20, "model_revision": "sha256:abc", "settings_hash": "0123456789ab"})
    folder = tmp_path / "computer science.outputs"
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "accuracy": "0.250000", "model-revision": "sha256:abc", "settings-hash": "0123456789ab", "questions": "20"}
