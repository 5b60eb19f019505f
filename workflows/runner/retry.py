"""Argo's retryStrategy as a decision: after a failed attempt, retry (after how long) or stop, and why.

`limit` (attempts = limit + 1; absent = unlimited, so `retryStrategy: {}` retries until it
succeeds), `retryPolicy` (Always, OnFailure — the default, or Always when an expression is set —,
OnError, OnTransientError: a Failed or Error attempt whose message matches `$TRANSIENT_ERROR_PATTERN`,
the only transient errors a local process can have), `expression` over `lastRetry`, and `backoff`
(duration, factor, cap, maxDuration). Delays are nominal (unscaled) seconds: the
caller scales the wait, while maxDuration is checked against nominal time so that a scaled run
takes the same decisions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workflows.argo.durations import parse_duration
from workflows.argo.errors import ExpressionError, ManifestError
from workflows.argo.expr import evaluate_expr
from workflows.argo.phase import Phase
from workflows.runner.process import AttemptResult


@dataclass(frozen=True)
class RetryDecision:
    delay: float | None  # nominal seconds until the next attempt; None: the failure is final
    note: str = ""  # why it is final, when that is worth saying


def retry_limit(strategy: dict[str, Any] | None, where: str = "retryStrategy") -> int | None:
    """Retries allowed (0: none; None: unlimited). Raises ManifestError for a limit that is not an integer."""
    if strategy is None:
        return 0
    if strategy.get("limit") is None:
        return None
    return _integer(strategy["limit"], f"{where}.limit")


def _integer(value: Any, where: str) -> int:
    """An IntOrString field as Argo's intstr.Int32 reads it: an error (the node's Error) when it is no integer."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise ManifestError(f"{where}: {value!r} is not an integer") from None


def decide(strategy: dict[str, Any] | None, where: str, retries_done: int, result: AttemptResult,
           nominal_elapsed: float, transient_pattern: str | None = None) -> RetryDecision:
    """Raises ManifestError for a strategy Argo cannot read (a limit, factor or duration of the wrong form)."""
    if strategy is None:
        return RetryDecision(None)
    limit = retry_limit(strategy, where)
    if limit is not None and retries_done >= limit:
        return RetryDecision(None, f"no retries left of {limit}")
    policy = strategy.get("retryPolicy") or ("Always" if strategy.get("expression") else "OnFailure")
    status = result.status
    allowed = {
        "Always": status in (Phase.FAILED, Phase.ERROR),
        "OnFailure": status == Phase.FAILED,
        "OnError": status == Phase.ERROR,
        "OnTransientError": status in (Phase.FAILED, Phase.ERROR) and _transient(result.message, transient_pattern),
    }.get(policy, False)
    if not allowed:
        return RetryDecision(None)
    expression = strategy.get("expression")
    if expression:
        variables = {"lastRetry": {
            "exitCode": str(result.exit_code if result.exit_code is not None else -1),
            "status": status,
            "duration": str(int(result.finished - result.started)),
            "message": result.message,
        }}
        try:
            if evaluate_expr(str(expression), variables) is not True:
                return RetryDecision(None)
        except ExpressionError as error:
            return RetryDecision(None, f"retryStrategy.expression failed: {error}")
    backoff = strategy.get("backoff") or {}
    if not backoff:
        return RetryDecision(0.0)
    base = parse_duration(backoff.get("duration", 0), f"{where}.backoff.duration")
    factor = _integer(backoff.get("factor", 1), f"{where}.backoff.factor")
    delay = base * factor ** retries_done if factor > 0 else base  # Argo applies only a positive factor
    if backoff.get("cap") is not None:
        delay = min(delay, parse_duration(backoff["cap"], f"{where}.backoff.cap"))
    if backoff.get("maxDuration") is not None:
        max_duration = parse_duration(backoff["maxDuration"], f"{where}.backoff.maxDuration")
        if nominal_elapsed + delay > max_duration:
            return RetryDecision(None, f"backoff maxDuration {backoff['maxDuration']} reached")
    return RetryDecision(delay)


def _transient(message: str, pattern: str | None) -> bool:
    if not pattern:
        return False
    try:
        return re.search(pattern, message) is not None
    except re.error:
        return False
