"""The engine's long-lived heap kept out of the cyclic garbage collector's way.

Importing torch and transformers and loading a model make some 400,000 objects that live as long
as the process. While they are being made, the collector's full passes walk all of them again and
again, and Python's exit walks them once more before it frees them: on the tiny eval that was
about 0.4 s of CPU during start-up and 0.5 s at exit, a quarter of the step's fixed cost. So the
collector is paused while the engine loads, then everything still alive is frozen (moved to the
permanent generation, which later collections and the collections at exit skip). vLLM freezes its
start-up heap the same way after warm-up (`vllm.utils.gc_utils.freeze_gc_heap`).
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
def long_lived_heap() -> Iterator[None]:
    """Run the block (imports, tokenizer and model loading) without the cyclic collector, then
    collect once and freeze what is left. A block that raises freezes nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        # Never freeze garbage: it would never be freed, and a cycle may hold a tensor.
        gc.collect()
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
