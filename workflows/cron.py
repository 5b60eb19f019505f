"""A CronWorkflow's schedule and timezone, checked as the Argo controller checks them.

Argo parses each schedule with robfig/cron v3's `ParseStandard` (five fields, or one of
the descriptors below) after prefixing `CRON_TZ=<timezone>`, which Go's
`time.LoadLocation` resolves in the IANA database. These functions follow those rules, so
that a schedule the server would refuse (`@reboot`, a sixth field, `61 * * * *`, a
misspelled zone) is refused by `tunebench lint` and `render` instead.
"""
from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass

DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
EVERY = "@every "
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+", re.ASCII)
_INTEGER = re.compile(r"[-+]?\d+", re.ASCII)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] means low + i

    def value(self, text: str, expr: str) -> int:
        if text.lower() in self.names:
            return self.low + self.names.index(text.lower())
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"'{text}' in '{expr}' is not a number" + (
                f" or a name ({', '.join(self.names)})" if self.names else ""))
        number = int(text)
        if number < 0:
            raise ValueError(f"negative number {number} in '{expr}'")
        return number


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    _Field("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)


def _check_range(expr: str, field: _Field) -> None:
    """`*`, `?`, `N`, `N-M`, each with an optional `/STEP`, within the field's bounds (robfig's getRange)."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = field.low, field.high
    else:
        if len(low_and_high) > 2:
            raise ValueError(f"too many hyphens in '{expr}'")
        start = field.value(low_and_high[0], expr)
        end = field.value(low_and_high[1], expr) if len(low_and_high) == 2 else start
    if len(range_and_step) > 2:
        raise ValueError(f"too many slashes in '{expr}'")
    if len(range_and_step) == 2:
        if not _INTEGER.fullmatch(range_and_step[1]) or int(range_and_step[1]) <= 0:
            raise ValueError(f"the step in '{expr}' must be a positive number")
        if len(low_and_high) == 1:
            end = field.high  # "N/step" means "N-max/step"
    if start < field.low or end > field.high:
        raise ValueError(f"'{expr}' is outside the {field.name} range {field.low}-{field.high}")
    if start > end:
        raise ValueError(f"'{expr}' starts after it ends")


def schedule_problem(schedule: str) -> str | None:
    """Why Argo would refuse this cron schedule, or None when it parses."""
    spec = schedule.strip()
    if not spec:
        return "the schedule is empty"
    if spec.startswith(("TZ=", "CRON_TZ=")):
        return f"{schedule!r} carries its own time zone; set schedule.timezone instead"
    if spec.startswith("@"):
        if spec in DESCRIPTORS:
            return None
        if spec.startswith(EVERY) and _GO_DURATION.fullmatch(spec[len(EVERY):].strip()):
            if spec[len(EVERY):].strip().startswith("-"):
                return f"{schedule!r}: the interval must be positive"
            return None
        return (f"{schedule!r} is not a descriptor Argo knows; use one of {', '.join(DESCRIPTORS)}, "
                "'@every 1h30m' or five fields")
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        return (f"{schedule!r} has {len(fields)} field(s); a cron schedule has 5 fields "
                "(minute hour day-of-month month day-of-week)")
    for text, field in zip(fields, _FIELDS, strict=True):
        try:
            ranges = [expr for expr in text.split(",") if expr]
            if not ranges:
                raise ValueError(f"'{text}' lists no values")
            for expr in ranges:
                _check_range(expr, field)
        except ValueError as error:
            return f"{schedule!r}: {field.name}: {error}"
    return None


def timezone_problem(timezone: str) -> str | None:
    """Why this is not an IANA time zone name Go's `time.LoadLocation` finds, or None."""
    if timezone in ("UTC", "Local"):
        return None
    try:
        zoneinfo.ZoneInfo(timezone)
    except (KeyError, ValueError, OSError):
        return f"{timezone!r} is not an IANA time zone; use e.g. UTC, Europe/Paris, America/New_York"
    return None
