"""Durations of working time: ``"15d"``, ``"4h"``, ``"30m"``, ``"1d4h"``.

One working day is eight working hours, whatever the office's opening hours;
the calendar that turns working time into dates belongs to the engine.
"""

from __future__ import annotations

import re
from decimal import Decimal

from .messages import t

HOURS_PER_DAY = 8

_DURATION = re.compile(r"(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?")
PATTERN = r"^(\d+(\.\d+)?d)?(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?$"
"""The same grammar as a JSON Schema pattern (it also admits the empty string,
which :func:`parse_hours` refuses)."""


def parse_hours(text: str) -> float:
    """Working hours in a duration.

    >>> parse_hours("1d4h")
    12.0
    >>> parse_hours("30m")
    0.5

    Raises ``ValueError`` for anything else, including ``""``.
    """
    match = _DURATION.fullmatch(text.strip()) if text.strip() else None
    if match is None:
        raise ValueError(
            t(
                "«{text}» is not a duration: write working time as days, hours and minutes in that order, "
                "e.g. 2d, 4h, 30m or 1d4h",
                text=text,
            )
        )
    days, hours, minutes = (float(match.group(g) or 0) for g in "dhm")
    return days * HOURS_PER_DAY + hours + minutes / 60


def format_hours(hours: float) -> str:
    """The shortest duration text for ``hours`` of working time.

    >>> format_hours(12)
    '1d4h'
    >>> format_hours(0)
    '0h'
    >>> format_hours(0.25)
    '15m'
    >>> format_hours(1.2345678)
    '1.2345678h'
    """
    total_minutes = hours * 60
    if abs(total_minutes - round(total_minutes)) > 1e-9:
        # The shortest decimal that reads back as the same number, without
        # an exponent: a duration written out must mean what it meant.
        return format(Decimal(repr(float(hours))), "f") + "h"
    minutes = round(total_minutes)
    days, rest = divmod(minutes, HOURS_PER_DAY * 60)
    whole_hours, mins = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (whole_hours, "h"), (mins, "m")) if n)
    return text or "0h"
