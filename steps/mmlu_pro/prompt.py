"""The 5-shot chain-of-thought prompt of MMLU-Pro's `evaluate_from_local.py`, byte for byte.

The few-shot examples are dropped one at a time while a prompt does not fit its token
budget, as the reference does; the number kept (`k`) is recorded per question.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The reference indexes options with A..P although MMLU-Pro has at most ten (A..J).
OPTION_LETTERS = "ABCDEFGHIJKLMNOP"
DEFAULT_SHOTS = 5
QUESTION_CUE = "Answer: Let's think step by step."
# Validation chains of thought start with "A: Let's think step by step."; the reference
# rewrites that prefix so the examples read like the cue the model has to continue.
_COT_PREFIX = "A: Let's think step by step."
# Bump when the prompt text changes: it is part of the settings hash, so old results
# are neither resumed nor compared with new ones.
PROMPT_VERSION = "tiger-cot-v1"

Row = Mapping[str, Any]
CountTokens = Callable[[list[str]], list[int]]


def header(subject: str) -> str:
    # cot_prompt_lib/initial_prompt.txt ends in two newlines and the reference adds a third.
    return (
        f"The following are multiple choice questions (with answers) about {subject}. "
        'Think step by step and then finish your answer with "the answer is (X)" '
        "where X is the correct letter choice.\n\n\n"
    )


def format_question(row: Row) -> str:
    options = "".join(f"{OPTION_LETTERS[i]}. {option}\n" for i, option in enumerate(row["options"]))
    return f"Question:\n{row['question']}\nOptions:\n{options}"


def format_example(row: Row) -> str:
    return format_question(row) + row["cot_content"].replace(_COT_PREFIX, QUESTION_CUE) + "\n\n"


def format_target(row: Row) -> str:
    return format_question(row) + QUESTION_CUE


@dataclass(frozen=True)
class FittedPrompt:
    text: str
    k: int               # few-shot examples kept
    tokens: int          # prompt length in tokens, special tokens included
    over_budget: bool    # even without examples the prompt does not fit its budget


class PromptBuilder:
    """Prompts for one subject; the examples are formatted once, not once per question."""

    def __init__(self, subject: str, shots: Sequence[Row], max_shots: int = DEFAULT_SHOTS):
        self.subject = subject
        self._header = header(subject)
        self._examples = [format_example(row) for row in shots[:max_shots]]
        self.max_shots = len(self._examples)

    def build(self, question: Row, k: int) -> str:
        return self._header + "".join(self._examples[:k]) + format_target(question)

    def fit(self, questions: Sequence[Row], count_tokens: CountTokens, budget: int) -> list[FittedPrompt]:
        """Per question, the prompt with the most examples whose token count is below `budget`.

        The reference tries k = 5, 4, ... and keeps the first prompt with
        `length < max_model_len - max_new_tokens`. Token counts grow with k, so that is the
        largest k whose prompt fits, and it is found here with fewer tokenizations: every
        question is counted once with all examples (most fit); for the others, the
        examples' own token counts predict k, and exact counts of the prompts with k and
        k + 1 examples confirm it. Each round counts its prompts in one batch.
        """
        top = self.max_shots
        counts = count_tokens([self.build(question, top) for question in questions])
        known: list[dict[int, int]] = [{top: count} for count in counts]
        fits_at: list[int | None] = [top if count < budget else None for count in counts]  # largest k known to fit
        fails_at = [top + 1 if count < budget else top for count in counts]              # smallest k known not to
        shrink: list[int] = []
        while pending := [i for i in range(len(questions)) if self._unsettled(fits_at[i], fails_at[i])]:
            candidates = []
            for i in pending:
                fits = fits_at[i]
                if fits is not None:
                    candidates.append(fits + 1)                        # confirm that one more does not fit
                elif fails_at[i] == top:
                    shrink = shrink or self._prefix_tokens(count_tokens)
                    over = known[i][top] - budget                      # first guess: drop just enough examples
                    candidates.append(next((k for k in range(top - 1, 0, -1) if shrink[top] - shrink[k] > over), 0))
                else:
                    candidates.append(fails_at[i] - 1)
            counted = count_tokens([self.build(questions[i], k) for i, k in zip(pending, candidates)])
            for i, k, count in zip(pending, candidates, counted, strict=True):
                known[i][k] = count
                if count < budget:
                    fits_at[i] = k
                else:
                    fails_at[i] = k
        fitted = []
        for question, fit, seen in zip(questions, fits_at, known, strict=True):
            k = 0 if fit is None else fit
            fitted.append(FittedPrompt(self.build(question, k), k, seen[k], over_budget=fit is None))
        return fitted

    @staticmethod
    def _unsettled(fits_at: int | None, fails_at: int) -> bool:
        if fits_at is None:
            return fails_at > 0
        return fits_at + 1 < fails_at

    def _prefix_tokens(self, count_tokens: CountTokens) -> list[int]:
        """Tokens of the header with the first k examples, for k = 0..max_shots (one batch per subject)."""
        return count_tokens([self._header + "".join(self._examples[:k]) for k in range(self.max_shots + 1)])
