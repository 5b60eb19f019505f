"""Helpers every step shares: atomic writes, JSON files, exit codes and user-facing errors.

Every step module's entry point is `main() -> step_main(<module>_command)`: `step_main` runs the
typer command and turns the errors below into one line on stderr and the exit code the DAG's
retry policies and `depends` rely on, so no step prints a traceback for a user's mistake.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

# The exit codes live in steps.contract; re-exported (`X as X`) for the steps that import them from here.
from steps.contract import EXIT_BAD_INPUT as EXIT_BAD_INPUT
from steps.contract import EXIT_FAILURE as EXIT_FAILURE
from steps.contract import EXIT_GATE_CLOSED as EXIT_GATE_CLOSED
from steps.contract import EXIT_INTERRUPTED
from steps.contract import EXIT_OK as EXIT_OK
from steps.contract import EXIT_REGRESSION as EXIT_REGRESSION

VOLUME_OWNERSHIP_DOC = "docs/cluster.md#volume-ownership"


class StepInputError(Exception):
    """Bad input a user can fix; the message names the argument or field, the value and what is valid."""


class StepFailure(Exception):
    """A failure that is not the input's fault, reported in one line; steps exit 1 (the templates'
    retry policies decide whether another attempt is worth it)."""


class TransientFailure(StepFailure):
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
def hub_errors(what: str, repo: str = "repo") -> Iterator[None]:
    """Hub calls inside: a gated, missing or unpinnable repo is bad input (exit 2) naming `what`; other hub
    and network errors go through `load_failure` (a 5xx, 429 or timeout is transient, exit 1). A
    PermissionError passes through: the cache volume's owner fixes it, and step_errors says so in one line."""
    from huggingface_hub import errors

    try:
        yield
    except errors.GatedRepoError:
        raise StepInputError(f"{what}: the repo is gated; accept its licence on the hub and set HF_TOKEN") from None
    except errors.RepositoryNotFoundError:
        raise StepInputError(f"{what}: no such {repo} on the hub (a private one needs HF_TOKEN)") from None
    except errors.RevisionNotFoundError:
        raise StepInputError(f"{what}: no such revision in the repo") from None
    except PermissionError:
        raise
    except (errors.HfHubHTTPError, OSError) as error:
        raise load_failure(what, error) from None


# --- writing outputs -------------------------------------------------------------------------

def _kind_of(mode: int) -> str:
    kinds = ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_output_file(target: str | os.PathLike[str]) -> Path:
    """`target` as a Path, if a file may be written there: absent or a regular file, in a directory.

    An atomic write renames a new file over the path, which would silently replace a
    directory's entry, a device, a FIFO or a symlink (and whatever it points at would keep
    its old contents): those are refused, as is a parent that is not a directory.
    """
    target = Path(target)
    try:
        mode = target.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # absent, or under a file: that is reported below
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise StepInputError(f"{target} is {_kind_of(mode)}; an output must be a regular file or a new path, "
                             "so it is not replaced")
    check_output_dir(target.parent)
    return target


def check_output_dir(folder: str | os.PathLike[str]) -> Path:
    """`folder` as a Path, if outputs may go in it: a directory, or absent (it is created then)."""
    folder = Path(folder)
    for existing in (folder, *folder.parents):
        try:
            mode = existing.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISDIR(mode):
            raise StepInputError(f"{existing} is {_kind_of(mode)}, not a directory; outputs cannot be written "
                                 f"under {folder}")
        break
    return folder


def check_replaceable_folder(folder: str | os.PathLike[str]) -> Path:
    """`folder` as a Path, if a step may replace it whole: absent, or a directory (not a symlink to one)."""
    folder = Path(folder)
    try:
        mode = folder.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    if mode is not None and not stat.S_ISDIR(mode):
        raise StepInputError(f"{folder} is {_kind_of(mode)}; a folder is expected there, so it is not replaced")
    check_output_dir(folder.parent)
    return folder


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves the previous file intact. A
    `target` that exists and is not a regular file is refused (StepInputError) before anything is written.
    """
    target = check_output_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            # mkstemp makes owner-only files; results on a shared volume are read by other pods' users.
            tmp.chmod(0o666 & ~_current_umask())
        # Checked again: the block may have run for hours, and something else may be there now.
        check_output_file(target)
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


# --- reading inputs --------------------------------------------------------------------------

def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def parse_jsonl_line(line: str, where: str, hint: str = "") -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise StepInputError(f"{where} is not a JSON line ({error}){hint}") from None


def read_jsonl(path: str | os.PathLike[str], hint: str = "") -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, blank lines skipped; a bad line is named with its number."""
    rows = []
    try:
        with Path(path).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    rows.append(parse_jsonl_line(line, f"{path}:{number}", hint))
    except UnicodeDecodeError:
        raise StepInputError(f"{path} is not UTF-8 text (a JSON-lines file was expected){hint}") from None
    return rows


# --- exit codes ------------------------------------------------------------------------------

def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    """Print one actionable line to stderr and exit with `code` (no traceback for user errors)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _nearest_existing(path: Path) -> Path:
    return next((p for p in (path, *path.parents) if os.path.lexists(p)), path)


def permission_message(error: PermissionError) -> str:
    """One line: what could not be read or written, who owns it, who this process is, where to read more."""
    if not error.filename:
        return f"permission denied ({error.strerror or error}); this process runs as uid {os.getuid()} gid " \
               f"{os.getgid()}; see {VOLUME_OWNERSHIP_DOC}"
    path = Path(os.fsdecode(error.filename))
    existing = _nearest_existing(path)
    where = f"{path}" if existing == path else f"{path} (in {existing})"
    try:
        info = existing.stat()
        owner = f"owned by uid {info.st_uid} gid {info.st_gid}, mode {stat.filemode(info.st_mode)}"
    except OSError:
        owner = "owner unknown"
    groups = ",".join(str(g) for g in sorted(set(os.getgroups()) - {os.getgid()}))
    return (f"permission denied: {where} is {owner}; this process runs as uid {os.getuid()} gid {os.getgid()}"
            f"{' groups ' + groups if groups else ''}: give the volume to that user (cluster.run_as_user and "
            f"fsGroup), see {VOLUME_OWNERSHIP_DOC}")


def _os_error_message(error: OSError) -> str:
    names = [os.fsdecode(name) for name in (error.filename, error.filename2) if name]
    return f"{' -> '.join(names) + ': ' if names else ''}{error.strerror or error}"


F = TypeVar("F", bound=Callable[..., Any])


def step_errors(command: F) -> F:
    """`command` with the step's exit codes: bad input 2, a failure 1, each as one line on stderr.

    For typer commands that run outside `step_main` too (registered in `tunebench`, or in tests).
    """
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except StepInputError as error:
            fail(str(error), EXIT_BAD_INPUT)
        except StepFailure as error:
            fail(str(error), EXIT_FAILURE)
        except PermissionError as error:
            # The volume's owner, not a retry, fixes it.
            fail(permission_message(error), EXIT_BAD_INPUT)
        except RecursionError as error:
            # json (and the YAML composer) recurse once per nesting level: only a hostile input gets here.
            fail(f"an input is nested too deeply to read ({error}); no config, result or option value of the "
                 "project nests more than a few levels", EXIT_BAD_INPUT)
        except (ConnectionError, TimeoutError) as error:
            fail(_os_error_message(error), EXIT_FAILURE)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError) as error:
            fail(_os_error_message(error), EXIT_BAD_INPUT)
        except OSError as error:  # a full disk, an I/O error: not the input's fault
            fail(_os_error_message(error), EXIT_FAILURE)
    return run  # type: ignore[return-value]


def step_main(command: Callable[..., Any], argv: list[str] | None = None) -> None:
    """The `main()` of a step module: run its typer command as a program, with `step_errors`' exit codes.

    A bad option value (`--regression-threshold abc`, a missing required option) is bad input like any
    other: one line and exit 2, where click would print a usage box of several lines into the pod log.
    """
    import click
    import typer

    app = typer.Typer(add_completion=False)
    app.command()(step_errors(command))
    program = typer.main.get_command(app)
    try:
        outcome = program.main(args=argv, standalone_mode=False)
    except click.UsageError as error:
        message = " ".join(error.format_message().split())
        fail(f"{message} (see --help)", EXIT_BAD_INPUT)
    except click.Abort:
        raise SystemExit(EXIT_INTERRUPTED) from None
    raise SystemExit(outcome if isinstance(outcome, int) else EXIT_OK)
