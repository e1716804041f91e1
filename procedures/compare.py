"""Two versions side by side: metrics, and which steps and edges changed."""

from __future__ import annotations

from typing import Any

from .metrics import METRIC_NAMES, change, metrics
from .model import Definition, Step

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


def compare(before: Definition, after: Definition) -> dict[str, Any]:
    """The ``compare --json`` object, plus ``changes`` (each metric's
    absolute and % change)."""
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
    }
