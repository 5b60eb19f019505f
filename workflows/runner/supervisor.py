"""The parent of every step process: when the runner dies, however it dies, its steps die too.

Run as a file, not a module (`python -I -S supervisor.py --grace S -- ARGV...`), so it imports only
the standard library and starts in milliseconds. The runner starts it in a new session; it starts the
step in that same session and process group and waits for it:

- the runner's signals to the group (deadline, Ctrl-C) reach the step and its children; the
  supervisor itself outlives them and reports the step's exit status as its own (a step killed by
  signal N kills the supervisor with N), so the runner sees what it would see without it;
- when the runner dies (Linux: a parent-death signal; elsewhere: the parent pid changes, checked
  every half second), it sends SIGTERM to the group, SIGKILL after the grace period, and exits.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

PARENT_DIED = signal.SIGUSR1
# What Argo's container reports for a command that cannot start: argoexec's emissary fails to find or run it and
# exits 64 (cmd/argoexec/main.go), a Failed node with that exit code.
CANNOT_START_EXIT_CODE = 64


class ParentDied(Exception):
    pass


def _arm_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(PARENT_DIED), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the parent-pid check below still notices


def _on_parent_death(signum: int, frame: object) -> None:
    raise ParentDied


def _ignore(signum: int, frame: object) -> None:
    """The group's SIGTERM/SIGINT are for the step; the supervisor waits for the step to go.
    (A Python handler rather than SIG_IGN: handlers are reset at exec, SIG_IGN would be inherited.)"""


def _stop_group(grace_s: float, child: subprocess.Popen[bytes]) -> None:
    os.killpg(0, signal.SIGTERM)
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    os.killpg(0, signal.SIGKILL)  # the supervisor goes with the rest of the group


def main(argv: list[str]) -> int:
    separator = argv.index("--")
    options, command = argv[:separator], argv[separator + 1:]
    grace_s = float(options[options.index("--grace") + 1]) if "--grace" in options else 10.0
    parent = int(options[options.index("--parent") + 1]) if "--parent" in options else os.getppid()
    signal.signal(PARENT_DIED, _on_parent_death)
    _arm_parent_death_signal()
    if os.getppid() != parent:  # the runner died before the signal was armed
        return 128 + signal.SIGKILL
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _ignore)
    try:
        child = subprocess.Popen(command)
    except OSError as error:
        print(f"tunebench run: could not start {command[0]!r}: {error.strerror or error}", file=sys.stderr)
        return CANNOT_START_EXIT_CODE
    try:
        while True:
            try:
                returncode = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if os.getppid() != parent:
                    raise ParentDied from None
    except ParentDied:
        _stop_group(grace_s, child)
        return 128 + signal.SIGKILL
    if returncode < 0:
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's cannot be set, and needs not
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
        return 128 - returncode  # a signal whose default is to be ignored
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
