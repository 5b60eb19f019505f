"""The workdir belongs to one run at a time, and the runner writes only into what it created there.

- `WorkdirLock`: an exclusive `flock` on `<workdir>/.lock`, held for the whole run; the file names
  the holder (pid, host, start time) so a second `tunebench run` says who holds it and exits. The
  kernel drops the lock when the holder dies, however it dies, so a stale file never blocks a run.
- `real_dir` / `open_log`: folders and logs under the workdir are created by the runner; a symlink
  found in their place (`logs/x.log -> /etc/...`, `volumes/workspace -> elsewhere`) is refused,
  never followed.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from workflows.runner.errors import RunnerError

LOCK_FILE = ".lock"


class WorkdirBusy(RunnerError):
    """Another `tunebench run` holds the workdir."""


class UnsafePath(RunnerError):
    """A path under the workdir is not what the runner created (a symlink or a special file)."""


class WorkdirLock:
    def __init__(self, workdir: Path) -> None:
        self.path = workdir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        real_dir(self.path.parent, self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
        except OSError as error:
            raise UnsafePath(f"{self.path} cannot be the workdir's lock file ({error.strerror}); the runner "
                             "creates it as a plain file: delete what is there") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(f"{self.path} is not a regular file; delete it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkdirBusy(f"{self.path.parent} is in use by another tunebench run ({holder}); "
                              "wait for it to end, stop it, or use another --workdir") from None
        os.ftruncate(fd, 0)
        holder_info = {"pid": os.getpid(), "host": socket.gethostname(),
                       "started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.write(fd, json.dumps(holder_info).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        data: Any = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or "pid" not in data:
        return "holder unknown"
    return f"pid {data.get('pid')} on host {data.get('host', '?')}, started {data.get('started', '?')}"


def make_workdir(workdir: Path) -> None:
    """Create the workdir and its parents; what stands in the way is one line, not a traceback."""
    if os.path.lexists(workdir) and not workdir.is_dir():
        raise RunnerError(f"--workdir {workdir} exists and is not a folder; give a folder, or a new path")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        where = f" ({os.fsdecode(error.filename)})" if error.filename else ""
        raise RunnerError(f"--workdir {workdir} cannot be created: {error.strerror or error}{where}; "
                          "give a folder, or a new path") from None


def real_dir(path: Path, workdir: Path) -> Path:
    """Create `path` (inside `workdir`) as a plain folder; refuse a symlink or a file on the way."""
    path = Path(os.path.abspath(path))
    root = Path(os.path.abspath(workdir))
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise UnsafePath(f"{path} is outside the workdir {root}") from None
    current = root
    for part in ("",) + parts:
        current = current / part if part else current
        if current.is_symlink():
            raise UnsafePath(f"{current} is a symlink (to {os.readlink(current)}); the runner writes only into "
                             "folders it created: replace it with a folder, or use another --workdir")
        if current.exists() and not current.is_dir():
            raise UnsafePath(f"{current} exists and is not a folder; remove it or use another --workdir")
        if not current.exists():
            current.mkdir()
    return path


def open_log(path: Path, workdir: Path) -> IO[bytes]:
    """A log opened for appending, unbuffered; a symlink, FIFO or device in its place is refused."""
    real_dir(path.parent, workdir)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o644)  # O_NONBLOCK: a FIFO without a reader fails instead of hanging
    except OSError as error:
        if path.is_symlink():
            raise UnsafePath(f"{path} is a symlink (to {os.readlink(path)}); the runner does not write through "
                             "it: delete it") from None
        raise UnsafePath(f"{path}: cannot open it for writing ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePath(f"{path} is not a regular file; delete it")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "ab", buffering=0)
