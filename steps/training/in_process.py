"""Axolotl's CLI commands in this interpreter: the step pays for importing torch, transformers and Axolotl once.

`axolotl train CONFIG --launcher python` runs `axolotl.cli.train.do_cli` in the `axolotl`
process itself (axolotl/cli/utils/train.py, `_launch_python_training`), so the step calls that
same function instead of starting a second interpreter that imports everything again. What the
child process gave is kept here: the environment the `axolotl` command sets up, its exit codes
(any failure of Axolotl's is 1, as the child's crash was, never the 2 of bad input), and a stop signal
ending the process as it ended the child, with the checkpoints already saved left for the next
attempt to resume from.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from steps.contract import EXIT_FAILURE, EXIT_INTERRUPTED
from steps.torch_threads import match_interop_threads

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def prepare_axolotl_environment() -> None:
    """What the `axolotl` command sets before any subcommand (axolotl.cli.main.cli), and no telemetry.

    Before torch touches CUDA: the allocator reads PYTORCH_(CUDA_)ALLOC_CONF when it starts.
    The variables are only set where unset, so a child `axolotl` process inherits the same values.
    """
    os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")  # read once, when axolotl.cli.config is imported
    from axolotl.utils import set_misc_env, set_pytorch_cuda_alloc_conf

    set_pytorch_cuda_alloc_conf()
    set_misc_env()


def _axolotl_train_cli() -> Any:
    from axolotl.cli.train import do_cli

    return do_cli


@contextlib.contextmanager
def _stop_signals_end_the_process(log: logging.Logger) -> Iterator[None]:
    """SIGTERM/SIGINT end the process at once, as they ended the `axolotl` child: nothing half-saved is
    kept as finished (the next attempt drops an incomplete checkpoint and resumes from the newest complete
    one), and no exception is raised into Axolotl's or torch's code, where a handler might swallow it."""

    def stop(signum: int, _frame: Any) -> None:
        log.warning("stopped by %s during training; the next attempt resumes from the newest complete "
                    "checkpoint", signal.Signals(signum).name)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    """`do_cli` parses sys.argv for `axolotl train`'s own flags; the step's flags are not those."""
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def train_in_process(config_file: Path, log: logging.Logger) -> int:
    """`axolotl train CONFIG --launcher python`, in this interpreter; returns the exit code that command had."""
    match_interop_threads()
    with _stop_signals_end_the_process(log), _argv([sys.argv[0]]):
        try:
            _axolotl_train_cli()(config=str(config_file))
        except SystemExit as stop:
            # On the training path Axolotl exits only from its SIGINT handler, with 0 after saving the
            # weights so far: an interrupted run, not a finished one.
            code = stop.code if isinstance(stop.code, int) and stop.code != 0 else EXIT_INTERRUPTED
            log.error("axolotl train stopped before the end (exit %s); exit %d", stop.code, code)
            return code
        except Exception:  # noqa: BLE001 - Axolotl's failure, as the child's uncaught exception: traceback, exit 1
            log.exception("axolotl train failed")
            return EXIT_FAILURE
    return 0
