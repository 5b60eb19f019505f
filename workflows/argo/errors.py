"""Errors about an Argo manifest itself, shared by lint, the local runner and submit --dry-run."""
from __future__ import annotations


class ArgoError(Exception):
    """Something wrong with a manifest or one of its expressions."""


class ManifestError(ArgoError):
    """The manifest cannot run as it is: a wiring error, or a feature the local runner does not emulate."""


class UnsupportedFeature(ManifestError):
    """A valid Argo feature the local runner does not emulate; never ignored silently."""

    def __init__(self, feature: str, where: str, hint: str = "") -> None:
        self.feature = feature
        self.where = where
        message = f"not supported by the local runner: {feature} in {where}"
        super().__init__(message + (f" ({hint})" if hint else ""))


class ExpressionError(ArgoError):
    """An expression (`when`, `depends`, `retryStrategy.expression`) that cannot be parsed or evaluated."""


class UnresolvedReference(ArgoError):
    """A `{{...}}` reference with no value in its scope."""

    def __init__(self, reference: str, where: str, reason: str) -> None:
        self.reference = reference
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: cannot resolve {{{{{reference}}}}}: {reason}")
