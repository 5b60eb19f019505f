"""steps.mmlu_pro.stats against values computed by hand from the textbook formulas.

Wilson: centre (x + z²/2)/(n + z²), half-width z/(n + z²)·sqrt(x(n−x)/n + z²/4), z = 1.959964.
McNemar exact: two-sided binomial test of the discordant counts, 2·P(X ≤ min(b, c)) for X ~ Bin(b + c, 1/2).
Newcombe (1998) method 10: δ − sqrt(dl1² − 2φ·dl1·du2 + du2²), δ + sqrt(du1² − 2φ·du1·dl2 + dl2²), with
dl/du the distances from each proportion to its Wilson limits and φ = (ad − bc)/sqrt((a+b)(c+d)(a+c)(b+d)).
"""
from __future__ import annotations

from math import comb

import pytest

from steps.mmlu_pro.stats import (
    PAIRED_TEST,
    UNPAIRED_TEST,
    paired_difference,
    paired_outcomes,
    unpaired_difference,
    wilson_interval,
)


def test_wilson_interval_of_7_out_of_20():
    # z² = 3.841459; centre = 8.920729/23.841459 = 0.374169; half = 0.082208·sqrt(5.510365) = 0.192977
    interval = wilson_interval(7, 20)
    assert (interval.low, interval.high) == (pytest.approx(0.181192, abs=1e-6), pytest.approx(0.567146, abs=1e-6))


def test_wilson_interval_stays_inside_0_and_1_and_none_without_questions():
    zero, full = wilson_interval(0, 20), wilson_interval(20, 20)
    assert zero.low == pytest.approx(0.0, abs=1e-12) and zero.high == pytest.approx(0.161125, abs=1e-6)
    assert full.low == pytest.approx(0.838875, abs=1e-6) and full.high == pytest.approx(1.0)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="correct=21"):
        wilson_interval(21, 20)


def test_mcnemar_exact_p_value_on_a_known_table():
    # 12 questions gained, 3 lost: p = 2·(C(15,0)+C(15,1)+C(15,2)+C(15,3))/2^15 = 2·576/32768
    difference = paired_difference(both=30, gained=12, lost=3, neither=55)
    assert difference.p_value == pytest.approx(1152 / 32768)
    assert 1152 == 2 * sum(comb(15, k) for k in range(4))
    assert (difference.test, difference.n, difference.gained, difference.lost) == (PAIRED_TEST, 100, 12, 3)
    assert difference.delta == pytest.approx(0.09) and difference.significant()


def test_newcombe_paired_interval_on_a_known_table():
    # p1 = 0.42 (Wilson 0.327984–0.517935), p2 = 0.33 (Wilson 0.245631–0.426947), φ = 0.695457
    difference = paired_difference(both=30, gained=12, lost=3, neither=55)
    assert difference.interval.low == pytest.approx(0.016123, abs=1e-6)
    assert difference.interval.high == pytest.approx(0.162227, abs=1e-6)
    assert difference.interval.excludes(0.0)



def test_newcombe_paired_interval_matches_the_published_example():
    # Newcombe (1998), Stat Med 17:2635, Table II example (a): 36, 12, 2, 0 of 50; method 10 gives 0.0569 to 0.3404
    difference = paired_difference(both=36, gained=12, lost=2, neither=0)
    assert difference.delta == pytest.approx(0.2)
    assert (round(difference.interval.low, 4), round(difference.interval.high, 4)) == (0.0569, 0.3404)
    assert difference.p_value == pytest.approx(2 * (1 + 14 + 91) / 2 ** 14)   # McNemar exact: 2·P(X ≤ 2), X ~ Bin(14, 1/2)

def test_a_loss_of_10_against_2_is_significant_and_a_single_flip_is_not():
    loss = paired_difference(both=0, gained=2, lost=10, neither=0)
    assert loss.p_value == pytest.approx(158 / 4096)   # 2·(1 + 12 + 66)/2^12
    assert loss.interval.high < 0
    one_flip = paired_difference(both=3, gained=0, lost=1, neither=16)   # a 20-question smoke run, −0.05
    assert one_flip.p_value == pytest.approx(1.0) and not one_flip.significant()
    assert one_flip.interval.low < 0 < one_flip.interval.high


def test_paired_outcomes_join_on_question_id_and_ignore_questions_only_one_side_has():
    new = {"q1": True, "q2": True, "q3": False, "q4": True, "extra": True}
    reference = {"q4": True, "q3": True, "q2": False, "q1": True}
    difference = paired_outcomes(new, reference)
    assert (difference.n, difference.gained, difference.lost) == (4, 1, 1)
    assert difference.delta == pytest.approx(0.0) and difference.p_value == pytest.approx(1.0)
    assert paired_outcomes({}, {}) is None


def test_unpaired_difference_uses_fisher_exact_and_newcombe_without_correlation():
    # Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 34/70
    difference = unpaired_difference(3, 4, 1, 4)
    assert difference.p_value == pytest.approx(34 / 70)
    assert difference.test == UNPAIRED_TEST and difference.gained is None
    # 25/100 − 30/100: −0.05 − sqrt(0.074548² + 0.095849²), −0.05 + sqrt(0.093045² + 0.081051²)
    difference = unpaired_difference(25, 100, 30, 100)
    assert difference.interval.low == pytest.approx(-0.171426, abs=1e-6)
    assert difference.interval.high == pytest.approx(0.073396, abs=1e-6)
    assert unpaired_difference(1, 0, 1, 4) is None


def test_scipy_is_a_declared_dependency_of_the_image_aggregate_runs_in(project_root):
    """The light image installs the project's own dependencies only (no extras)."""
    import tomllib

    dependencies = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.split(">")[0].split("=")[0].strip() == "scipy" for d in dependencies)
    assert "-c constraints.txt ." in (project_root / "containers" / "light.Dockerfile").read_text()
