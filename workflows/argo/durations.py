"""Argo (Go) durations: `30`, `"30"`, `"30s"`, `"1m30s"`, `"2h"`, in seconds."""
from __future__ import annotations

from typing import Any

from workflows.argo.errors import ManifestError

DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any, where: str) -> float:
    """Argo/Go durations: `30`, `"30"`, `"30s"`, `"1m30s"`, `"2h"`, in seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            number += text[i]
            i += 1
            continue
        unit = next((u for u in ("ns", "us", "µs", "ms", "s", "m", "h") if text.startswith(u, i)
                     and not (u == "m" and text.startswith("ms", i))), None)
        if unit is None or not number:
            raise ManifestError(f"{where}: '{value}' is not a duration (e.g. 30s, 1m, 2h)")
        total += float(number) * DURATION_UNITS[unit]
        number = ""
        i += len(unit)
    if number:
        raise ManifestError(f"{where}: '{value}' is not a duration (e.g. 30s, 1m, 2h)")
    return total
