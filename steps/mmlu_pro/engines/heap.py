"""The libraries' import heap kept out of the cyclic garbage collector's way.

Importing torch and transformers makes some 350,000 objects that live as long as the process. While
they are being made, the collector's full passes walk all of them again and again, and Python's exit
walks them once more: on the tiny eval that was about 0.4 s of CPU during start-up and 0.5 s at exit,
a quarter of the step's fixed cost. So full collections are held off while the libraries are
imported, and what the imports leave is then frozen: moved to the permanent generation, which later
collections and those at exit skip. vLLM freezes its start-up heap too
(`vllm.utils.gc_utils.freeze_gc_heap`).

The young generations are still collected during the imports (those passes are short), so the cycles
imports throw away at once, exceptions with their tracebacks and frames among them, are freed as
usual; only a few hundred objects of garbage end up frozen (measured: 348, none of them a frame).
Freezing with the collector off altogether would have saved another 0.1 s, but kept some 10,000 such
objects, whose frames hold the callers' locals, and through them the engine and its model, for good.
The model is loaded after the freeze, so nothing that holds a tensor is frozen.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import sys
from collections.abc import Iterator

# A full collection only after this many young collections: none while the block runs.
NO_FULL_COLLECTION = 2**31 - 1
# Extensions built with nanobind count their objects at exit and print every one still alive as a
# leak: a frozen heap keeps them alive. Where one is loaded, the heap is handed back to the
# collector at exit (a few tenths of a second, once) rather than filling the pod log with
# hundreds of false "leaked function" lines. triton is the one the eval images carry.
NANOBIND_EXTENSIONS = ("triton",)


_frozen_once = False  # this process's heap was frozen here already


@contextlib.contextmanager
def frozen_imports() -> Iterator[None]:
    """Run the block (imports only) without full collections, then collect the young generations
    and freeze everything alive. A block that raises freezes nothing, nor does a second one in the
    process: the imports are done by then, and it would freeze whatever the process holds. (Not told
    by gc.get_freeze_count(): Python 3.12 starts with a few hundred objects frozen.)"""
    global _frozen_once
    if _frozen_once:
        yield
        return
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], NO_FULL_COLLECTION)
    try:
        yield
        gc.collect(1)
        gc.freeze()
        _frozen_once = True
        _unfreeze_at_exit_for_nanobind()
    finally:
        gc.set_threshold(*thresholds)


def _unfreeze_if_nanobind_loaded() -> None:
    # Checked at exit, not at freezing: anything imported later may have brought one in.
    if any(sys.modules.get(name) is not None for name in NANOBIND_EXTENSIONS):
        gc.unfreeze()


@functools.cache
def _unfreeze_at_exit_for_nanobind() -> None:
    atexit.register(_unfreeze_if_nanobind_loaded)
