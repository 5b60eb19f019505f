"""Answer extraction of MMLU-Pro's `evaluate_from_local.py`, plus a reproducible fallback.

`tiger` (the reference): `answer is \\(?([A-J])\\)?`, else `.*[aA]nswer:\\s*([A-J])`, else the
last standalone A–J; when nothing matches, a letter drawn with a seed made from the
question id, so a fan-out over subjects reproduces a single run. `strict`: the first
pattern only; a miss has no prediction and counts as wrong (lm-evaluation-harness).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from steps.mmlu_pro.prompt import OPTION_LETTERS

ExtractMode = Literal["tiger", "strict"]
EXTRACT_MODES: tuple[str, ...] = ("tiger", "strict")
# How a prediction was found: by the 1st, 2nd or 3rd pattern, by the seeded guess, or not at all (strict).
METHODS: tuple[str, ...] = ("l1", "l2", "l3", "fallback", "none")

ANSWER_IS = re.compile(r"answer is \(?([A-J])\)?")
# The reference runs `re.search(r'.*[aA]nswer:\s*([A-J])', text)` without re.DOTALL: the
# greedy `.*` cannot cross a newline, so it returns the *last* match on the *first* line
# that has one. Searching that pattern directly is quadratic in the text length; the
# zero-width form below lists every (even overlapping) match start in one linear pass.
ANSWER_COLON = re.compile(r"(?=[aA]nswer:\s*([A-J]))")
# The reference's `\b[A-J]\b(?!.*\b[A-J]\b)` with re.DOTALL is the last standalone letter.
STANDALONE_LETTER = re.compile(r"\b[A-J]\b")


@dataclass(frozen=True)
class Extraction:
    pred: str | None
    method: str


def _answer_colon(text: str) -> str | None:
    letter = None
    line_end = None
    for match in ANSWER_COLON.finditer(text):
        if line_end is None:
            newline = text.find("\n", match.start())
            line_end = len(text) if newline < 0 else newline
        elif match.start() >= line_end:
            break
        letter = match.group(1)
    return letter


def _last_standalone_letter(text: str) -> str | None:
    letter = None
    for match in STANDALONE_LETTER.finditer(text):
        letter = match.group(0)
    return letter


def fallback_letter(question_id: object, n_options: int) -> str:
    """A guess among the question's options, the same for a question id in every process."""
    # str seeds are hashed with SHA-512 by `random.seed`, unaffected by PYTHONHASHSEED.
    rng = random.Random(f"mmlu-pro/{question_id}")
    return OPTION_LETTERS[rng.randrange(max(n_options, 1))]


def extract_answer(text: str, mode: str, question_id: object, n_options: int) -> Extraction:
    match = ANSWER_IS.search(text)
    if match:
        return Extraction(match.group(1), "l1")
    if mode == "strict":
        return Extraction(None, "none")
    if mode != "tiger":
        raise ValueError(f"extract mode {mode!r}; valid: {', '.join(EXTRACT_MODES)}")
    letter = _answer_colon(text)
    if letter:
        return Extraction(letter, "l2")
    letter = _last_standalone_letter(text)
    if letter:
        return Extraction(letter, "l3")
    return Extraction(fallback_letter(question_id, n_options), "fallback")
