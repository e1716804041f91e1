"""Which changes to a stored version are an amendment (service.md section 4).

A body that differs from the stored one only in what no running case
depends on may replace it under the same code and version: names and
labels, registry names, the legal basis, sector and agency, the volume,
shares, ``business``, ``in_force_from``, the prices, the papers' counts of
copies and ``present_only``, a role's unit, comments and layout. Anything
else (a step, a role, an outcome's effect, a duration, a document's source,
a field) changes how cases run, and needs a new version.

:func:`case_relevant` is what is left of a definition once those are set
aside; two bodies are interchangeable when it is equal for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import Definition

DISPLAY_KEYS = frozenset(
    {"name", "registries", "legal_basis", "sector", "agency", "annual_volume", "business", "in_force_from", "cost_model"}
)
"""Top-level keys no running case depends on."""

ITEM_DISPLAY_KEYS: Mapping[str, frozenset[str]] = {
    "roles": frozenset({"name", "unit"}),
    "documents": frozenset({"name", "copies", "present_only"}),
    "steps": frozenset({"name", "share"}),
    "fields": frozenset({"name"}),
}
"""Per list item, the keys only people read."""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _outcome(effect: Any) -> Any:
    """An outcome's effect without its label (the short form)."""
    if isinstance(effect, dict):
        if "return" in effect:
            return {"return": effect["return"]}
        if "effect" in effect:
            return effect["effect"]
    return effect


def _value(item: Any) -> Any:
    """An enum value without its label."""
    return item.get("value") if isinstance(item, dict) else item


def case_relevant(defn: Definition) -> dict[str, Any]:
    """What of ``defn`` running cases depend on, as plain data."""
    data = _plain(defn.data)
    out = {k: v for k, v in data.items() if k not in DISPLAY_KEYS}
    for key, drop in ITEM_DISPLAY_KEYS.items():
        items = out.get(key)
        if not isinstance(items, list):
            continue
        kept = []
        for item in items:
            if isinstance(item, dict):
                item = {k: v for k, v in item.items() if k not in drop}
                if key == "steps" and isinstance(item.get("outcomes"), dict):
                    item["outcomes"] = {n: _outcome(e) for n, e in item["outcomes"].items()}
                if key == "fields" and isinstance(item.get("values"), list):
                    item["values"] = [_value(v) for v in item["values"]]
            kept.append(item)
        out[key] = kept
    return out


def is_amendment(stored: Definition, new: Definition) -> bool:
    """Whether ``new`` may replace ``stored`` under the same code and version."""
    return stored.code == new.code and stored.version == new.version and case_relevant(stored) == case_relevant(new)
