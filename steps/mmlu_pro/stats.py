"""Uncertainty of accuracies and of their differences, at 95 % unless told otherwise.

- An accuracy gets a Wilson score interval: unlike the normal approximation it stays inside
  [0, 1] and keeps its coverage for small n and accuracies near 0 or 1 (a 20-question smoke run).
- A difference between two models (or two runs) over **the same questions** is paired: what
  carries information is the discordant questions, those one got right and the other wrong.
  The test is McNemar's exact test (a two-sided binomial test of the discordant counts against
  1/2); the interval is Newcombe's hybrid score interval for paired proportions (method 10 of
  Newcombe 1998, built from the two Wilson intervals and the correlation of the outcomes).
- Two results without per-question records (an older history row) can only be compared as
  independent samples: Fisher's exact test and Newcombe's unpaired hybrid score interval.

Both exact tests are summed here in integers (the binomial and hypergeometric weights as whole
numbers, one correctly rounded division at the end) rather than through scipy.stats, whose import
alone costs the aggregate step about 0.7 s of CPU: the p-values are scipy's two-sided definitions
(McNemar: twice the smaller tail, at most 1; Fisher: every table no more probable than the observed
one, with scipy's relative tolerance of 1e-14) and agree with scipy.stats to its rounding
(tests/test_aggregate_costs.py compares them on a grid). The Wilson interval is scipy's formula with its
normal quantile (scipy.special.ndtri), so intervals are bit for bit what binomtest gives.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
PAIRED_TEST = "McNemar exact"
UNPAIRED_TEST = "Fisher exact"


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        return value < self.low or value > self.high

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    """The Wilson score interval of `correct` out of `n` (None when there are no questions)."""
    if n <= 0:
        return None
    if not 0 <= correct <= n:
        raise ValueError(f"correct={correct} must be between 0 and n={n}")
    from scipy.special import ndtri

    # scipy.stats.binomtest(correct, n).proportion_ci(confidence, method="wilson"), step for step.
    p = correct / n
    z = float(ndtri(0.5 + 0.5 * confidence))
    denominator = 2 * (n + z ** 2)
    center = (2 * n * p + z ** 2) / denominator
    half_width = z / denominator * math.sqrt(4 * n * p * (1 - p) + z ** 2)
    return Interval(0.0 if correct == 0 else center - half_width, 1.0 if correct == n else center + half_width)


def mcnemar_exact_p_value(gained: int, lost: int) -> float:
    """Two-sided binomial test of `gained` against `lost` discordant questions at 1/2 (scipy's
    binomtest(gained, gained + lost).pvalue): twice the smaller tail, at most 1."""
    discordant = gained + lost
    smaller = min(gained, lost)
    if 2 * smaller == discordant:
        return 1.0
    weight, tail = 1, 0
    for count in range(smaller + 1):   # weight = C(discordant, count)
        tail += weight
        weight = weight * (discordant - count) // (count + 1)
    return min(1.0, 2 * tail / 2 ** discordant)


# scipy's fisher_exact counts a table within a relative 1e-14 of the observed one as just as probable.
FISHER_TIE_SCALE = 10 ** 14


def fisher_exact_p_value(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact test of the table [[a, b], [c, d]] (scipy's fisher_exact(...).pvalue):
    the probability, given the margins, of every table no more probable than this one."""
    row, other_row, column = a + b, c + d, a + c
    if 0 in (row, other_row, column, b + d):
        return 1.0
    # weight(x) = C(row, x) · C(other_row, column - x): the probability of first cell x times C(N, column).
    def weight(x: int) -> int:
        return math.comb(row, x) * math.comb(other_row, column - x)

    limit = weight(a) * (FISHER_TIE_SCALE + 1)
    x = max(0, column - other_row)
    current, as_extreme = weight(x), 0
    while x <= min(row, column):
        if current * FISHER_TIE_SCALE <= limit:
            as_extreme += current
        current = current * (row - x) * (column - x) // ((x + 1) * (other_row - column + x + 1))
        x += 1
    return min(1.0, as_extreme / math.comb(row + other_row, column))


@dataclass(frozen=True)
class Difference:
    """`new` minus `reference` in accuracy, with its interval and a two-sided test of no difference.

    For a paired comparison `gained` counts the questions only `new` answered correctly and
    `lost` those only `reference` did; `n` is the number of questions both answered.
    """

    delta: float
    interval: Interval
    p_value: float
    test: str
    n: int
    gained: int | None = None
    lost: int | None = None

    @property
    def paired(self) -> bool:
        return self.test == PAIRED_TEST

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.p_value < alpha

    def as_dict(self) -> dict[str, Any]:
        return {"delta": self.delta, "interval": self.interval.as_list(), "p_value": self.p_value,
                "test": self.test, "n": self.n, "gained": self.gained, "lost": self.lost,
                "interval_excludes_zero": self.interval.excludes(0.0)}


def _hybrid_score(p_new: float, new: Interval, p_reference: float, reference: Interval,
                  correlation: float) -> Interval:
    """Newcombe's hybrid score interval for p_new − p_reference from the two Wilson intervals."""
    delta = p_new - p_reference
    below_new, above_new = p_new - new.low, new.high - p_new
    below_ref, above_ref = p_reference - reference.low, reference.high - p_reference
    low = delta - math.sqrt(max(0.0, below_new ** 2 - 2 * correlation * below_new * above_ref + above_ref ** 2))
    high = delta + math.sqrt(max(0.0, above_new ** 2 - 2 * correlation * above_new * below_ref + below_ref ** 2))
    return Interval(max(-1.0, low), min(1.0, high))


def paired_difference(both: int, gained: int, lost: int, neither: int,
                      confidence: float = CONFIDENCE) -> Difference | None:
    """Paired comparison from the 2×2 table of outcomes over the same questions: `both` right,
    `gained` (only new right), `lost` (only reference right), `neither` right."""
    counts = (both, gained, lost, neither)
    if any(count < 0 for count in counts):
        raise ValueError(f"counts must not be negative: {counts}")
    n = sum(counts)
    if n == 0:
        return None
    p_new, p_reference = (both + gained) / n, (both + lost) / n
    new, reference = wilson_interval(both + gained, n, confidence), wilson_interval(both + lost, n, confidence)
    assert new is not None and reference is not None
    margins = (both + gained) * (lost + neither) * (both + lost) * (gained + neither)
    correlation = (both * neither - gained * lost) / math.sqrt(margins) if margins else 0.0
    return Difference(p_new - p_reference, _hybrid_score(p_new, new, p_reference, reference, correlation),
                      mcnemar_exact_p_value(gained, lost), PAIRED_TEST, n, gained, lost)


def paired_outcomes(new: Mapping[Any, bool], reference: Mapping[Any, bool],
                    confidence: float = CONFIDENCE) -> Difference | None:
    """Paired comparison over the questions both have an outcome for (joined on question id)."""
    common = new.keys() & reference.keys()
    both = sum(1 for q in common if new[q] and reference[q])
    gained = sum(1 for q in common if new[q] and not reference[q])
    lost = sum(1 for q in common if reference[q] and not new[q])
    return paired_difference(both, gained, lost, len(common) - both - gained - lost, confidence)


def unpaired_difference(correct_new: int, n_new: int, correct_reference: int, n_reference: int,
                        confidence: float = CONFIDENCE) -> Difference | None:
    """Independent-samples comparison from the counts alone (Fisher's exact test, Newcombe's interval)."""
    new, reference = wilson_interval(correct_new, n_new, confidence), wilson_interval(correct_reference, n_reference, confidence)
    if new is None or reference is None:
        return None
    p_new, p_reference = correct_new / n_new, correct_reference / n_reference
    p_value = fisher_exact_p_value(correct_new, n_new - correct_new, correct_reference, n_reference - correct_reference)
    return Difference(p_new - p_reference, _hybrid_score(p_new, new, p_reference, reference, 0.0),
                      p_value, UNPAIRED_TEST, min(n_new, n_reference))
