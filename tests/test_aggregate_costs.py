"""What the aggregate step costs at start-up (issue 13's 1.5 s budget): its statistics and its
history table without scipy.stats or pandas, which together cost it about 1 s of CPU to import,
and the numbers the same as scipy.stats gives and the history rows stored as they were."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from steps.mmlu_pro.history import read_history, write_run
from steps.mmlu_pro.stats import fisher_exact_p_value, mcnemar_exact_p_value, wilson_interval

ROOT = Path(__file__).resolve().parents[1]

# Two runs of one baseline over 40 questions each of two subjects, through the step's own entry
# point, in a fresh interpreter: intervals, McNemar (per-question records) and Fisher (a history
# row without them) are all computed, and the second run reads the first one's history file.
AGGREGATE_TWICE = r"""
import json, sys
from pathlib import Path
from steps.aggregate import aggregate
from steps.common import write_json_atomic
from steps.mmlu_pro.results import subject_summary

work = Path(sys.argv[1])
model = {"model": "org/base", "slug": "org--base", "role": "baseline", "label": "org/base"}
tuned = {"model": "/ws/merged", "slug": "finetuned", "role": "finetuned", "label": "org/tuned"}
(work / "models.json").write_text(json.dumps([model, tuned]))
for run, modulus in (("r1", 3), ("r2", 2)):   # 27 of 40 right, then 20: a drop
    eval_dir = work / run
    for entry in (model, tuned):
        for subject, has_records in (("math", True), ("law", False)):
            records = [{"question_id": f"{subject}-{i}", "correct": i % modulus != 0, "method": "l1", "k": 5,
                        "hit_token_limit": False} for i in range(40)]
            folder = eval_dir / entry["slug"]
            folder.mkdir(parents=True, exist_ok=True)
            if has_records:
                (folder / f"{subject}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            write_json_atomic(folder / f"{subject}.summary.json", subject_summary(
                records, n_questions=40, subject=subject, model=entry["model"], label=entry["label"],
                role=entry["role"], engine="hf", model_revision="rev-1", dataset="TIGER-Lab/MMLU-Pro",
                dataset_revision="abc", extract="tiger", settings_hash="s1"))
    summary, regressions = aggregate(eval_dir, work / "models.json", ["math", "law"], work / f"summary-{run}", run,
                                     history=work / "history", threshold=0.0)
print(json.dumps({"modules": sorted(m for m in ("scipy.stats", "pandas") if m in sys.modules),
                  "history_files": sorted(p.name for p in (work / "history").glob("*.parquet")),
                  "summary": summary, "regressions": [r.as_dict() for r in regressions]}))
"""


def _find_keys(value, key):
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _find_keys(v, key)
    elif isinstance(value, list):
        for item in value:
            yield from _find_keys(item, key)


def test_aggregate_computes_its_statistics_and_history_without_importing_scipy_stats_or_pandas(tmp_path):
    result = subprocess.run([sys.executable, "-c", AGGREGATE_TWICE, str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["history_files"] == ["r1.parquet", "r2.parquet"]
    # Not vacuous: the run did compute intervals and exact tests, paired and unpaired.
    tests = {test for test in _find_keys([report["summary"], report["regressions"]], "test") if isinstance(test, str)}
    assert tests == {"McNemar exact", "Fisher exact"}, tests
    assert any(interval for interval in _find_keys(report["summary"], "interval"))
    assert report["modules"] == []


def test_wilson_intervals_are_scipys_bit_for_bit():
    from scipy.stats import binomtest

    for n in [*range(1, 41), 100, 1351, 12032]:
        for correct in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for confidence in (0.9, 0.95, 0.99):
                ours = wilson_interval(correct, n, confidence)
                theirs = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
                assert ours is not None and (ours.low, ours.high) == (float(theirs.low), float(theirs.high))


def _close(ours: float, theirs: float) -> bool:
    return ours == pytest.approx(theirs, rel=1e-11, abs=1e-300)


def test_mcnemar_p_values_are_scipys_binomtest_at_one_half():
    from scipy.stats import binomtest

    for discordant in [*range(0, 30), 99, 100, 1351]:
        for gained in sorted({0, min(1, discordant), discordant // 3, discordant // 2, (discordant + 1) // 2, discordant}):
            theirs = float(binomtest(gained, discordant, 0.5).pvalue) if discordant else 1.0
            assert _close(mcnemar_exact_p_value(gained, discordant - gained), theirs), (gained, discordant)


def test_fisher_p_values_are_scipys_fisher_exact():
    from scipy.stats import fisher_exact

    rng = random.Random(13)
    tables = [(a, b, c, d) for a in range(4) for b in range(4) for c in range(4) for d in range(4)]
    tables += [tuple(rng.randint(0, 400) for _ in range(4)) for _ in range(60)]
    tables += [(25, 75, 30, 70), (500, 500, 500, 500), (1200, 151, 1150, 201)]
    for a, b, c, d in tables:
        theirs = float(fisher_exact([[a, b], [c, d]]).pvalue)
        assert _close(fisher_exact_p_value(a, b, c, d), theirs), (a, b, c, d)


def test_history_rows_are_stored_as_they_were(tmp_path):
    """The history table comes from pyarrow's JSON reader (no pandas): floats, nulls, lists and
    unicode come back unchanged, and a run without rows is an empty file of the same schema."""
    rng = random.Random(7)
    rows = [{"time": "2026-01-01T00:00:00+00:00", "run": "r1", "model": f"org/modèl-{i}", "role": "baseline",
             "source": None, "model_revision": None if i else "rev", "subject": "computer science",
             "n": 3 + i, "correct": i, "accuracy": value, "settings_hash": "s", "question_ids": [f"q{i}", "q\"2"],
             "question_correct": [True, False], "regressed": bool(i % 2)}
            for i, value in enumerate([1 / 3, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, rng.random(), 0.0])]
    rows.append({**rows[0], "question_ids": None, "question_correct": None, "regressed": None})
    write_run(tmp_path, "r1", rows)
    assert read_history(tmp_path) == rows
    write_run(tmp_path / "empty", "r0", [])
    assert read_history(tmp_path / "empty") == []
