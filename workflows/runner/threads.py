"""Each step's thread pools sized to its container's CPU, as the cgroup would size them on the cluster.

A pod limited to 4 CPUs sees 4 cores' worth of time; locally every process sees all the cores, so
two steps running at once each start one thread per core and fight over them. The runner sets the
usual thread-count variables from `resources.limits.cpu` (else `requests.cpu`), rounded up, at least
1 and at most this machine's core count. A variable the template's `env` sets itself wins.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")  # torch's intra-op pool reads OMP_NUM_THREADS
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(m?)\s*$")


def cpu_quantity(value: Any, where: str) -> float:
    """A Kubernetes CPU quantity (`2`, `1.5`, `"500m"`) in cores."""
    match = _QUANTITY.match(str(value)) if not isinstance(value, bool) else None
    if match is None:
        raise ValueError(f"{where}: {value!r} is not a CPU quantity (e.g. 2, 1.5, 500m)")
    cores = float(match.group(1))
    return cores / 1000 if match.group(2) else cores


def thread_count(resources: dict[str, Any] | None, where: str, cores: int | None = None) -> int | None:
    """Threads for a container with these resources, or None when it states no CPU."""
    resources = resources or {}
    for kind in ("limits", "requests"):
        value = (resources.get(kind) or {}).get("cpu")
        if value is not None:
            cpus = cpu_quantity(value, f"{where} resources.{kind}.cpu")
            return max(1, min(math.ceil(cpus), cores or os.cpu_count() or 1))
    return None


def thread_env(resources: dict[str, Any] | None, where: str, cores: int | None = None) -> dict[str, str]:
    count = thread_count(resources, where, cores)
    return {} if count is None else {name: str(count) for name in THREAD_VARIABLES}
