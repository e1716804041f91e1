"""Two versions side by side: metrics, and which steps and edges changed."""

from __future__ import annotations

from typing import Any

from .durations import HOURS_PER_DAY
from .labels import duration_words
from .metrics import METRIC_NAMES, change, metrics
from .model import Definition, Step
from .simplify import proposed_time_limit

STEP_KEYS = ("name", "role", "kind", "duration", "effort", "visit", "fee", "inputs", "outputs", "after", "when", "outcomes")
_AS_SETS = frozenset({"inputs", "outputs", "after"})


def _value(step: Step, key: str) -> Any:
    value = getattr(step, key)
    if key in _AS_SETS:
        return frozenset(value)
    if key == "outcomes":
        return dict(value)
    if key in ("duration", "effort"):
        return round(value, 9)
    return value


def changed_keys(a: Step, b: Step) -> list[str]:
    """The keys of a step whose meaning differs (list order of ``inputs``,
    ``outputs`` and ``after`` does not count)."""
    return [k for k in STEP_KEYS if _value(a, k) != _value(b, k)]


def time_limits(before: Definition, after: Definition) -> dict[str, str | None]:
    """The legal time limits as the two versions write them, and the
    shorter one the simplifier proposes for the work of ``after``
    (procedure-format.md section 8), or None when it proposes none."""
    days = proposed_time_limit(after, after)
    return {
        "before": before.time_limit_text,
        "after": after.time_limit_text,
        "proposed": None if days is None else f"{days}d",
    }


def time_limit_text(limits: dict[str, str | None], before: Definition, after: Definition) -> str:
    """The time limits in words, with the proposal and why."""
    words = f"Thời hạn giải quyết: {duration_words(before.time_limit)} → {duration_words(after.time_limit)}"
    if limits["proposed"] is not None:
        days = int(limits["proposed"][:-1])
        words += (
            f"; đề xuất rút xuống {duration_words(days * HOURS_PER_DAY)}, vì các bước của phiên bản {after.version} "
            f"chỉ cần {duration_words(after.lead_time_hours())}"
        )
    return words


def compare(before: Definition, after: Definition) -> dict[str, Any]:
    """The ``compare --json`` object, plus ``changes`` (each metric's
    absolute and % change) and ``time_limit`` (:func:`time_limits`)."""
    m0, m1 = metrics(before), metrics(after)
    ids0 = [s.id for s in before.steps]
    ids1 = [s.id for s in after.steps]
    set0, set1 = set(ids0), set(ids1)
    edges0 = list(before.edges())
    edges1 = list(after.edges())
    e0, e1 = set(edges0), set(edges1)
    return {
        "before": m0,
        "after": m1,
        "changes": {k: change(m0[k], m1[k]) for k in METRIC_NAMES},  # type: ignore[literal-required]
        "steps": {
            "added": [s for s in ids1 if s not in set0],
            "removed": [s for s in ids0 if s not in set1],
            "changed": [
                {"id": s.id, "fields": keys} for s in after.steps if s.id in set0 and (keys := changed_keys(before.step(s.id), s))
            ],
        },
        "edges": {
            "added": [[a, b] for a, b in edges1 if (a, b) not in e0],
            "removed": [[a, b] for a, b in edges0 if (a, b) not in e1],
        },
        "time_limit": time_limits(before, after),
    }
