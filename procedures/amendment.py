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

from .errors import DefinitionError
from .loader import SHAPE, parse_text
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


def case_relevant(defn: Definition | Mapping[str, Any]) -> dict[str, Any]:
    """What of ``defn`` (a definition, or the data of one) running cases
    depend on, as plain data."""
    data = _plain(defn.data if isinstance(defn, Definition) else defn)
    out = {k: v for k, v in data.items() if k not in DISPLAY_KEYS}
    for key, drop in ITEM_DISPLAY_KEYS.items():
        items = out.get(key)
        if not isinstance(items, list):
            continue
        kept = []
        for item in items:
            if isinstance(item, dict):
                item = {k: v for k, v in item.items() if k not in drop}
                if key == "steps":
                    # no outcomes is the one outcome done: proceed, which may then be labelled
                    outcomes = item.get("outcomes", {"done": "proceed"})
                    if isinstance(outcomes, dict):
                        item["outcomes"] = {n: _outcome(e) for n, e in outcomes.items()}
                if key == "fields" and isinstance(item.get("values"), list):
                    item["values"] = [_value(v) for v in item["values"]]
            kept.append(item)
        out[key] = kept
    return out


def is_amendment(stored: Definition | str, new: Definition) -> bool:
    """Whether ``new`` may replace ``stored`` (a definition, or a stored
    body, read as YAML only: a body stored under an earlier release's rules
    need not pass today's checks, an undeclared registry id for instance)
    under the same code and version."""
    if isinstance(stored, str):
        try:
            data, _notes = parse_text(stored, "<stored>", SHAPE)
        except DefinitionError:
            return False
        if not isinstance(data, Mapping):
            return False
        same = data.get("code") == new.code and data.get("version") == new.version
        return same and case_relevant(data) == case_relevant(new)
    return stored.code == new.code and stored.version == new.version and case_relevant(stored) == case_relevant(new)
