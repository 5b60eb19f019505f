"""The uncertainty reaches what people read besides summary.md: the model card's MMLU-Pro table
(a 95 % interval per accuracy, Δ with its paired interval and p) and the one-line regression
message of `aggregate` and `verdict`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from steps.aggregate import aggregate
from steps.model_card import CardInputs, load_summary, render_model_card
from tests.test_lasting_regression import _run
from tests.test_uncertainty import BASE, TUNED, models_file, table, write_outcomes

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _card_table(tmp_path: Path) -> list[str]:
    eval_dir = tmp_path / "eval"
    tuned, base = table(both=30, gained=12, lost=3, neither=55)
    write_outcomes(eval_dir, TUNED, "math", tuned)
    write_outcomes(eval_dir, BASE, "math", base)
    aggregate(eval_dir, models_file(tmp_path / "models.json", BASE, TUNED), ["math"], tmp_path / "summary", "r1")
    scores, _ = load_summary(tmp_path / "summary" / "summary.json")
    card = render_model_card(CardInputs("org/tuned", scores=scores))
    assert "95 % interval" in card and "McNemar" in card        # the intro says how to read them
    return [line for line in card.splitlines() if line.startswith("| math") or line.startswith("| **overall")]


def test_the_card_shows_each_accuracy_with_its_interval_and_each_delta_with_its_paired_interval_and_p(tmp_path):
    # 42/100 vs 33/100 on the same questions, 12 gained and 3 lost: McNemar p = 2·576/32768 = 0.035;
    # the Wilson intervals and Newcombe's paired interval [+0.016, +0.162] as in test_uncertainty.
    math, overall = _card_table(tmp_path)
    assert math == ("| math | 42.0% [32.8%, 51.8%] (42/100) | 33.0% [24.6%, 42.7%] (33/100) "
                    "| +9.0 pp [+1.6, +16.2] p=0.035 ▲ |")
    assert overall == ("| **overall** | **42.0% [32.8%, 51.8%] (42/100)** | **33.0% [24.6%, 42.7%] (33/100)** "
                       "| **+9.0 pp [+1.6, +16.2] p=0.035 ▲** |")


def test_the_regression_message_names_subject_delta_interval_and_p(tmp_path):
    _run(tmp_path, 1, math=150)
    _run(tmp_path, 2, math=120)     # 30 of the same 200 questions lost, none gained
    summary = tmp_path / "cron-2" / "summary" / "summary.json"
    summary_id = (tmp_path / "cron-2" / "summary" / "summary.id").read_text()
    verdict = subprocess.run([sys.executable, "-m", "steps.verdict", "--summary", str(summary), "--summary-id",
                              summary_id], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert verdict.returncode == 4 and verdict.stderr.count("\n") == 1
    # Newcombe's paired interval for 120 both / 0 gained / 30 lost / 50 neither, checked by hand
    # from the Wilson intervals [0.531, 0.665], [0.686, 0.805] and φ = 6000/√(120·80·150·50) = 0.707.
    assert ("math (org/tuned: 0.7500 in cron-1 → 0.6000, Δ -0.1500, 95% CI [-0.199, -0.100], "
            "McNemar exact p<0.001)") in verdict.stderr
