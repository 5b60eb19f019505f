"""Errors of the local runner; each message names the task or template and what to change."""
from __future__ import annotations


class RunnerError(Exception):
    """A problem that stops `tunebench run` before or while it runs the workflow."""


class ManifestError(RunnerError):
    """The manifest is not a valid Argo Workflow (e.g. a wiring bug: a reference that cannot resolve)."""


class UnsupportedFeature(ManifestError):
    """A valid Argo feature the local runner does not emulate; never ignored silently."""

    def __init__(self, feature: str, where: str, hint: str = "") -> None:
        self.feature = feature
        self.where = where
        message = f"not supported by the local runner: {feature} in {where}"
        super().__init__(message + (f" ({hint})" if hint else ""))


class ExpressionError(RunnerError):
    """An expression (`when`, `depends`, `retryStrategy.expression`) that cannot be parsed or evaluated."""


class UnresolvedReference(RunnerError):
    """A `{{...}}` reference with no value in its scope."""

    def __init__(self, reference: str, where: str, reason: str) -> None:
        self.reference = reference
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: cannot resolve {{{{{reference}}}}}: {reason}")
