"""The prompt is the reference's, byte for byte, and examples are dropped as the reference drops them."""
from __future__ import annotations

import pytest

from steps.mmlu_pro.data import clean_row
from steps.mmlu_pro.prompt import PromptBuilder, format_example, format_target, header
from steps.mmlu_pro.subjects import SUBJECTS
from steps.tiny_assets import mmlu_pro_rows

EXPECTED_HEADER = ('The following are multiple choice questions (with answers) about {}. Think step by step and '
                   'then finish your answer with "the answer is (X)" where X is the correct letter choice.\n\n\n')


def _row(question: str, options: list[str], cot: str = "", subject: str = "math") -> dict:
    return {"question_id": 1, "question": question, "options": options, "answer": "A", "answer_index": 0,
            "cot_content": cot, "category": subject, "src": "t"}


def test_a_prompt_is_header_examples_and_question_in_the_reference_layout():
    shot = _row("What is 1+1?", ["2", "3"], "A: Let's think step by step. 1+1=2. The answer is (A).")
    question = _row("What is 2+2?", ["3", "4", "5"])
    prompt = PromptBuilder("math", [shot]).build(question, k=1)
    assert prompt == (
        EXPECTED_HEADER.format("math")
        + "Question:\nWhat is 1+1?\nOptions:\nA. 2\nB. 3\n"
        + "Answer: Let's think step by step. 1+1=2. The answer is (A).\n\n"
        + "Question:\nWhat is 2+2?\nOptions:\nA. 3\nB. 4\nC. 5\nAnswer: Let's think step by step."
    )


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_subject_gets_its_five_own_examples_in_order(subject):
    validation = [clean_row(row) for row in mmlu_pro_rows(SUBJECTS, 6, seed=3, first_id=0, with_cot=True)]
    shots = [row for row in validation if row["category"] == subject]
    question = clean_row(mmlu_pro_rows([subject], 1, seed=4, first_id=900, with_cot=False)[0])
    prompt = PromptBuilder(subject, shots).build(question, k=5)

    assert prompt.startswith(EXPECTED_HEADER.format(subject))
    body = prompt[len(EXPECTED_HEADER.format(subject)):]
    blocks = body.split("Question:\n")[1:]
    assert len(blocks) == 6, "five examples and the question"
    for block, shot in zip(blocks, shots[:5]):
        assert block.startswith(shot["question"] + "\nOptions:\n")
        assert block.endswith(shot["cot_content"].replace("A: Let's", "Answer: Let's") + "\n\n")
        letters = [line.split(". ", 1)[0] for line in block.split("Options:\n")[1].splitlines()
                   if line[:2] in {f"{c}." for c in "ABCDEFGHIJ"}]
        assert letters == list("ABCDEFGHIJ"[:len(shot["options"])])
    assert blocks[-1] == format_target(question)[len("Question:\n"):]
    assert prompt.endswith("Answer: Let's think step by step.")
    assert all("N/A" not in row["options"] for row in shots)


def test_na_options_are_dropped_before_lettering():
    row = clean_row(_row("q", ["x", "N/A", "y", "N/A"]))
    assert format_target(row) == "Question:\nq\nOptions:\nA. x\nB. y\nAnswer: Let's think step by step."


def _reference_k(builder: PromptBuilder, question: dict, count, budget: int) -> int:
    """evaluate_from_local.py's loop: from k = 5 down, the first prompt with length < budget."""
    k = 5
    while k > 0 and count([builder.build(question, k)])[0] >= budget:
        k -= 1
    return k


def _words(texts):
    return [len(text.split()) for text in texts]


def _lumpy_words(texts):
    # Still growing with every example, but far from additive: predictions from the
    # examples' own counts are wrong, and only the exact counts may decide.
    return [len(text.split()) + 20 * text.count("shot 3") + 2 * text.count("\n\n") ** 2 for text in texts]


@pytest.mark.parametrize("count", [_words, _lumpy_words])
def test_the_kept_examples_are_those_of_the_references_one_at_a_time_loop(count):
    shots = [_row(f"shot {i}", ["a", "b"], f"A: Let's think step by step. {'word ' * 20}The answer is (A).")
             for i in range(5)]
    # Questions from short to too long for any prompt, so that every k from 5 to 0 occurs.
    questions = [_row("long " * n, ["a"]) for n in range(0, 420, 6)]
    builder = PromptBuilder("law", shots)
    budget = 400
    fitted = builder.fit(questions, count, budget)
    for question, prompt in zip(questions, fitted):
        assert prompt.k == _reference_k(builder, question, count, budget)
        assert prompt.text == builder.build(question, prompt.k)
        assert prompt.tokens == count([prompt.text])[0]
        assert prompt.over_budget == (prompt.tokens >= budget)
    assert {p.k for p in fitted} == {0, 1, 2, 3, 4, 5}
    assert fitted[-1].over_budget and not fitted[0].over_budget


def test_prompts_that_fit_are_counted_once_and_the_others_in_a_few_batched_rounds():
    shots = [_row(f"shot {i}", ["a", "b"], f"A: Let's think step by step. {'word ' * 20}The answer is (A).")
             for i in range(5)]
    questions = [_row("long " * n, ["a"]) for n in range(0, 420, 6)]
    batches = []

    def counting(texts):
        batches.append(len(texts))
        return _words(texts)

    builder = PromptBuilder("law", shots)
    builder.fit(questions, counting, 400)
    fitting_at_five = sum(_words([builder.build(q, 5)])[0] < 400 for q in questions)
    assert batches[0] == len(questions)        # every question once, with five examples
    assert batches[1] == 6                     # the header with 0..5 examples, for the predictions
    # An exact prediction needs a count with k and one with k + 1 examples: two rounds.
    assert len(batches) == 4 and sum(batches[2:]) <= 2 * (len(questions) - fitting_at_five)


def test_when_everything_fits_nothing_else_is_counted():
    batches = []
    PromptBuilder("math", [_row("s", ["a"], "A: Let's think step by step. The answer is (A).")]).fit(
        [_row("q", ["a"])] * 3, lambda texts: batches.append(len(texts)) or [1] * len(texts), 100)
    assert batches == [3]


def test_a_prompt_exactly_at_the_budget_is_too_long():
    builder = PromptBuilder("math", [_row("s", ["a"], "A: Let's think step by step. The answer is (A).")])
    question = _row("q", ["a"])
    full = len(builder.build(question, 1))
    assert builder.fit([question], lambda texts: [len(t) for t in texts], full)[0].k == 0
    assert builder.fit([question], lambda texts: [len(t) for t in texts], full + 1)[0].k == 1


def test_header_and_example_helpers_agree_with_the_builder():
    shot = _row("s", ["a"], "A: Let's think step by step. The answer is (A).", subject="history")
    assert PromptBuilder("history", [shot]).build(_row("q", ["a"]), 1) == (
        header("history") + format_example(shot) + format_target(_row("q", ["a"])))
