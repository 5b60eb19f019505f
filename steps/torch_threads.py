"""torch on the CPUs a step is given: its inter-op pool sized like its intra-op pool.

torch sizes the intra-op pool from OMP_NUM_THREADS (which the pod's CPU limit, through the
downward API, or the local runner sets) but the inter-op pool from the node's cores, so a step
capped at 2 CPUs would still start a thread per core of the node. Every step that uses torch
calls `match_interop_threads()` before its first torch operation.
"""
from __future__ import annotations

from typing import Any


def match_interop_threads(torch: Any = None) -> None:
    if torch is None:
        import torch
    threads = torch.get_num_threads()
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            pass  # inter-op work already started in this process; its pool is fixed now
