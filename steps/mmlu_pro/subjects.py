"""Checking and parsing MMLU-Pro subject arguments against `steps.contract.SUBJECTS`."""
from __future__ import annotations

import json

from steps.common import StepInputError
from steps.contract import SUBJECTS as SUBJECTS  # their home; re-exported for the modules that import them here


def check_subject(subject: str, argument: str = "--subject") -> str:
    if subject not in SUBJECTS:
        raise StepInputError(f"{argument} {subject!r} is not an MMLU-Pro subject; valid: {', '.join(SUBJECTS)}")
    return subject


def parse_subjects(value: str, argument: str = "--subjects") -> list[str]:
    """`all` or a JSON list of subjects (the form workflow parameters carry) → a checked list."""
    if value.strip() == "all":
        return list(SUBJECTS)
    try:
        subjects = json.loads(value)
    except json.JSONDecodeError:
        raise StepInputError(f'{argument} {value!r} is neither "all" nor a JSON list of subjects, '
                             f'e.g. ["math", "physics"]') from None
    if not isinstance(subjects, list) or not subjects or not all(isinstance(s, str) for s in subjects):
        raise StepInputError(f'{argument} {value!r} must be "all" or a non-empty JSON list of subject names')
    if len(set(subjects)) != len(subjects):
        raise StepInputError(f"{argument} {value!r} names a subject twice")
    for subject in subjects:
        check_subject(subject, argument)
    return subjects
