"""Steps of an earlier run that are still alive: found and stopped before a resume starts anything.

Each attempt runs in its own session, led by its supervisor; the state records the leader's pid
and start time (clock ticks since boot, with the boot id). A process is a survivor of that attempt
when its session id is the leader's pid, it started no earlier than the leader did, and the machine
has not rebooted since: a recycled pid fails the start-time check. Read from Linux's /proc; where
there is none, only the leader itself is looked for (`kill(pid, 0)`), which a recycled pid can fool,
so it is reported and not signalled.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start_ticks: int | None
    boot_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "boot_id": self.boot_id}

    @classmethod
    def from_dict(cls, data: Any) -> ProcessIdentity | None:
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or data["pid"] <= 1:
            return None
        ticks = data.get("start_ticks")
        boot = data.get("boot_id")
        return cls(data["pid"], ticks if isinstance(ticks, int) else None, boot if isinstance(boot, str) else None)


def _boot_id() -> str | None:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _stat(pid: int) -> tuple[int, int] | None:
    """(session id, start time in ticks) of a live (not zombie) process, from /proc/PID/stat."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    # fields[0] is field 3 (state); the session is field 6, the start time field 22
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[3]), int(fields[19])


def identify(pid: int) -> ProcessIdentity:
    stat = _stat(pid)
    return ProcessIdentity(pid, stat[1] if stat else None, _boot_id())


def survivors(leader: ProcessIdentity) -> list[int]:
    """Pids of the processes still alive in the leader's session (the leader included)."""
    if not PROC.joinpath("self/stat").exists():
        with contextlib.suppress(OSError):
            os.kill(leader.pid, 0)
            return [leader.pid]
        return []
    if leader.start_ticks is None or leader.boot_id != _boot_id():
        return []
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and stat[0] == leader.pid and stat[1] >= leader.start_ticks:
            found.append(int(entry.name))
    return found


def stop(leader: ProcessIdentity, grace_s: float) -> list[int]:
    """SIGTERM to what survives of the leader's session, SIGKILL after `grace_s`; the pids found."""
    found = survivors(leader)
    if not found or not PROC.joinpath("self/stat").exists():
        return found
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in survivors(leader):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        deadline = time.time() + grace_s
        while survivors(leader) and time.time() < deadline:
            time.sleep(0.05)
        if not survivors(leader):
            break
    return found
