"""The libraries' import heap kept out of the cyclic garbage collector's way.

Importing torch and transformers makes some 600,000 objects that live as long as the process. While
they are being made, the collector's full passes walk all of them again and again, and Python's exit
walks them once more: on the tiny eval that was about 0.4 s of CPU during start-up and 0.5 s at exit,
a quarter of the step's fixed cost. So the collector is paused while the libraries are imported, and
what they made is then frozen: moved to the permanent generation, which later collections and those
at exit skip. This is the pattern CPython documents for `gc.freeze()` (disable early, freeze, no
collection in between); vLLM freezes its start-up heap too (`vllm.utils.gc_utils.freeze_gc_heap`).

The block is imports only, and is not collected before freezing: a full collection of that heap costs
0.25 s of CPU, and the import-time cycles it would free are some 15,000 objects (about 4 MiB of
resident memory on this stack), kept for the life of the process. The model is loaded afterwards with
the collector on, so nothing that holds a tensor is ever frozen.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import sys
from collections.abc import Iterator

# Extensions built with nanobind count their objects at exit and print every one still alive as a
# leak: a frozen heap keeps them alive. Where one is loaded, the heap is handed back to the
# collector at exit (a few tenths of a second, once) rather than filling the pod log with
# hundreds of false "leaked function" lines. triton is the one the eval images carry.
NANOBIND_EXTENSIONS = ("triton",)


@contextlib.contextmanager
def frozen_imports() -> Iterator[None]:
    """Run the block (imports only) without the cyclic collector, then freeze everything alive.
    A block that raises freezes nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
        _unfreeze_at_exit_for_nanobind()
    finally:
        if was_enabled:
            gc.enable()


def _unfreeze_if_nanobind_loaded() -> None:
    # Checked at exit, not at freezing: anything imported later may have brought one in.
    if any(sys.modules.get(name) is not None for name in NANOBIND_EXTENSIONS):
        gc.unfreeze()


@functools.cache
def _unfreeze_at_exit_for_nanobind() -> None:
    atexit.register(_unfreeze_if_nanobind_loaded)
