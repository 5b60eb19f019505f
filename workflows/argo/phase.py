"""Argo's node phases and the rules that read them: what a `depends` result means for a task.

Follows Argo v4.1 (docs/enhanced-depends-logic.md): `A` alone means `A.Succeeded || A.Skipped ||
A.Daemoned`, widened by the task's `continueOn`; `.AnySucceeded` / `.AllFailed` look at the
children of a fan-out.
"""
from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"
    SKIPPED = "Skipped"
    OMITTED = "Omitted"

    @property
    def fulfilled(self) -> bool:
        """Done, one way or another: dependents may be decided."""
        return self in FULFILLED

    @property
    def completed(self) -> bool:
        """Ran to an end (as opposed to skipped or omitted)."""
        return self in COMPLETED

    @property
    def unsuccessful(self) -> bool:
        return self in (Phase.FAILED, Phase.ERROR)


FULFILLED = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR, Phase.SKIPPED, Phase.OMITTED})
COMPLETED = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.ERROR})
FAILED_OR_ERROR = frozenset({Phase.FAILED, Phase.ERROR})
TASK_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
_RESULT_PHASE = {"Succeeded": Phase.SUCCEEDED, "Failed": Phase.FAILED, "Errored": Phase.ERROR,
                 "Skipped": Phase.SKIPPED, "Omitted": Phase.OMITTED}


def depends_result(result: str | None, phase: str, children: Iterable[str] | None = None,
                   continues_on: Iterable[str] = ()) -> bool:
    """Is `task.result` true for a task in `phase`? `result` None is the bare `task`; `children` are the
    phases of a fan-out's children (None for a task that does not fan out)."""
    if result is None:
        return phase in (Phase.SUCCEEDED, Phase.SKIPPED) or phase in set(continues_on)
    if result in _RESULT_PHASE:
        return phase == _RESULT_PHASE[result]
    if result == "Daemoned":
        return False  # daemons are not emulated
    child_phases = list(children or [])
    if result == "AnySucceeded":
        return any(child == Phase.SUCCEEDED for child in child_phases)
    if result == "AllFailed":
        return bool(child_phases) and all(child == Phase.FAILED for child in child_phases)
    return False
