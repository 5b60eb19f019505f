"""Why a model or dataset could not be loaded, told apart by whether retrying can help."""
from __future__ import annotations

from steps.common import StepInputError


class TransientFailure(Exception):
    """A failure a retry may cure (the network, the hub); steps exit 1 so Argo retries them."""


_TRANSIENT_HINTS = ("connect", "timed out", "timeout", "temporarily", "503", "502", "504", "429")


def load_failure(what: str, error: BaseException) -> Exception:
    """An exception naming `what` could not be loaded and why, classed as bad input or transient."""
    text = str(error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    message = f"{what} cannot be loaded: {reason}"
    if isinstance(error, (ConnectionError, TimeoutError)) or any(hint in reason.lower() for hint in _TRANSIENT_HINTS):
        return TransientFailure(message)
    return StepInputError(message)
