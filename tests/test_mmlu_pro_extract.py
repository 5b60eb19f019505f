"""Answer extraction: the reference's cascade (checked against its literal regexes), strict mode,
and the fallback guess seeded by question id."""
from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from steps.mmlu_pro.extract import extract_answer, fallback_letter

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# The reference's functions, as written in evaluate_from_local.py, to compare against.
def reference_extract(text: str) -> str | None:
    match = re.search(r"answer is \(?([A-J])\)?", text)
    if match:
        return match.group(1)
    match = re.search(r".*[aA]nswer:\s*([A-J])", text)
    if match:
        return match.group(1)
    match = re.search(r"\b[A-J]\b(?!.*\b[A-J]\b)", text, re.DOTALL)
    return match.group(0) if match else None


@pytest.mark.parametrize(("text", "pred", "method"), [
    ("so the answer is (C).", "C", "l1"),
    ("the answer is D because", "D", "l1"),
    ("The answer is (B). Later the answer is (E).", "B", "l1"),
    ("Answer: F\nmore text", "F", "l2"),
    ("answer:   \n  G", "G", "l2"),
    ("The Answer (A) is wrong; I pick H", "H", "l3"),
    ("I choose J, not K", "J", "l3"),
])
def test_the_cascade_takes_the_first_pattern_that_matches(text, pred, method):
    found = extract_answer(text, "tiger", question_id=7, n_options=10)
    assert (found.pred, found.method) == (pred, method)


def test_the_second_pattern_keeps_the_references_line_semantics():
    # Without re.DOTALL the reference's `.*` stays on the first line that has a match and
    # takes that line's last match; later lines are never reached.
    text = "Answer: A then Answer: B\nfinal Answer: C"
    assert extract_answer(text, "tiger", 1, 10).pred == reference_extract(text) == "B"
    # Overlapping matches: "answer: Answer: C" is matched from its second start as well.
    text = "answer: Answer: C"
    assert extract_answer(text, "tiger", 1, 10).pred == reference_extract(text) == "C"


def test_the_fast_cascade_equals_the_reference_regexes_on_adversarial_texts():
    rng = random.Random(0)
    pieces = ["answer is ", "answer is (", "Answer:", "answer: ", " ", "\n", "(", ")", ".", "x", "Kb", "AB",
              *"ABCDEFGHIJK", "é", "the", " A ", "\n\n"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        found = extract_answer(text, "tiger", question_id=1, n_options=10)
        expected = reference_extract(text)
        if expected is None:
            assert found.method == "fallback", text
        else:
            assert found.pred == expected, repr(text)


def test_strict_uses_the_first_pattern_only_and_a_miss_has_no_prediction():
    assert extract_answer("the answer is (A)", "strict", 1, 10).pred == "A"
    miss = extract_answer("Answer: B", "strict", 1, 10)
    assert (miss.pred, miss.method) == (None, "none")


def test_the_fallback_guess_depends_only_on_the_question_id_and_stays_among_the_options():
    letters = {fallback_letter(qid, 4) for qid in range(200)}
    assert letters == set("ABCD")
    assert fallback_letter(70, 10) == fallback_letter("70", 10) == fallback_letter(70, 10)
    found = extract_answer("no letters here", "tiger", question_id=70, n_options=10)
    assert (found.pred, found.method) == (fallback_letter(70, 10), "fallback")


def test_the_fallback_guess_is_the_same_in_another_process_with_another_hash_seed():
    code = "from steps.mmlu_pro.extract import fallback_letter; print(''.join(fallback_letter(i, 10) for i in range(50)))"
    here = "".join(fallback_letter(i, 10) for i in range(50))
    for seed in ("1", "2"):
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(PROJECT_ROOT)})
        assert other.stdout.strip() == here


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="valid: tiger, strict"):
        extract_answer("nothing", "loose", 1, 10)
