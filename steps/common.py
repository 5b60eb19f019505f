"""Helpers every step shares: atomic writes, JSON files, exit codes and user-facing errors."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_GATE_CLOSED = 3
EXIT_REGRESSION = 4


class StepInputError(Exception):
    """Bad input a user can fix; the message names the argument or field, the value and what is valid."""


class TransientFailure(Exception):
    """A failure a retry may cure (the network, the hub); steps exit 1 so Argo retries them."""


_TRANSIENT_HINTS = ("connect", "timed out", "timeout", "temporarily", "503", "502", "504", "429")
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def load_failure(what: str, error: BaseException) -> Exception:
    """An exception naming `what` could not be loaded and why, classed as bad input or transient."""
    text = str(error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    message = f"{what} cannot be loaded: {reason}"
    status = getattr(getattr(error, "response", None), "status_code", None)  # HTTP errors of hub clients
    if (isinstance(error, (ConnectionError, TimeoutError)) or status in _TRANSIENT_STATUS
            or any(hint in reason.lower() for hint in _TRANSIENT_HINTS)):
        return TransientFailure(message)
    return StepInputError(message)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves the previous file intact.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            # mkstemp makes owner-only files; results on a shared volume are read by other pods' users.
            tmp.chmod(0o666 & ~_current_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: str | os.PathLike[str], hint: str = "") -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, blank lines skipped; a bad line is named with its number."""
    rows = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise StepInputError(f"{path}:{number} is not a JSON line ({error}){hint}") from None
    return rows


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print one actionable line to stderr and exit with `code` (no traceback for user errors)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
