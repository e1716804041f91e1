"""Text for people: numbers written the Vietnamese way, and plain tables."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from procedures.labels import METRIC_LABELS, RULE_LABELS, metric_text, money, number, percent

__all__ = ["METRIC_LABELS", "RULE_LABELS", "metric_text", "money", "number", "percent", "table", "width"]


def width(text: str) -> int:
    """Columns a string takes in a terminal (combining marks take none)."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Aligned columns; ``right`` lists the columns aligned right."""
    if not rows:
        return ""
    cols = max(len(r) for r in rows)
    widths = [max(width(r[c]) if c < len(r) else 0 for r in rows) for c in range(cols)]
    lines = []
    for r in rows:
        cells = []
        for c in range(cols):
            cell = r[c] if c < len(r) else ""
            pad = " " * (widths[c] - width(cell))
            cells.append(pad + cell if c in right else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
