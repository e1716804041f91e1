"""A :class:`Definition` back to ``tinhgon/1`` data, written like its source.

:func:`to_data` writes each key the source wrote, and any other key whose
value differs from the format's default, in the format's key order; texts
the source wrote (durations such as ``"1d4h"``, conditions) are kept when
their meaning did not change. The result is plain data that
:func:`procedures.loader.build` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .durations import format_hours, parse_hours
from .model import Definition, Document, Step

_NO_LIKE: Mapping[str, Any] = {}


def _duration_text(hours: float, written: Any) -> str:
    if isinstance(written, str):
        try:
            if abs(parse_hours(written) - hours) < 1e-9:
                return written
        except ValueError:
            pass
    return format_hours(hours)


def _by_id(items: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {i["id"]: i for i in items if isinstance(i, Mapping) and isinstance(i.get("id"), str)}


def _put(out: dict[str, Any], like: Mapping[str, Any], key: str, value: Any, default: Any) -> None:
    if key in like or value != default:
        out[key] = value


def document_data(doc: Document, like: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": doc.id, "name": doc.name}
    _put(out, like, "from", doc.source, None)
    _put(out, like, "registry", doc.registry, None)
    _put(out, like, "prep_hours", doc.prep_hours, 0)
    _put(out, like, "prep_cost", doc.prep_cost, 0)
    _put(out, like, "deliverable", doc.deliverable, False)
    for key in ("copies", "present_only"):
        if key in like:
            out[key] = like[key]
    for key in ("from", "registry"):
        if out.get(key, "") is None:
            del out[key]
    for key in ("prep_hours", "prep_cost"):
        if key in out and isinstance(like.get(key), int) and out[key] == like[key]:
            out[key] = like[key]
    return out


def _outcome_data(step: Step, name: str) -> Any:
    """An outcome in its short form, or long when it carries a label."""
    effect = step.outcome(name)
    assert effect is not None
    short = effect.to_data()
    labels = dict(step.outcome_labels)
    if name not in labels:
        return short
    if effect.kind == "return":
        return {"return": effect.target, "label": labels[name]}
    return {"effect": short, "label": labels[name]}


def step_data(step: Step, like: Mapping[str, Any], default_after: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": step.id, "name": step.name, "role": step.role}
    _put(out, like, "kind", step.kind, "task")
    duration = _duration_text(step.duration, like.get("duration"))
    _put(out, like, "duration", duration, "0h")
    if "effort" in like or abs(step.effort - step.duration) > 1e-9:
        out["effort"] = _duration_text(step.effort, like.get("effort"))
    _put(out, like, "visit", step.visit, False)
    _put(out, like, "fee", step.fee, 0)
    _put(out, like, "inputs", list(step.inputs), [])
    _put(out, like, "outputs", list(step.outputs), [])
    if "after" in like or step.after != default_after:
        out["after"] = list(step.after)
    if step.when is not None:
        out["when"] = like.get("when")
    if step.share is not None:
        out["share"] = step.share
    outcomes = {name: _outcome_data(step, name) for name, _effect in step.outcomes}
    _put(out, like, "outcomes", outcomes, {"done": "proceed"})
    return out


def to_data(defn: Definition, like: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``defn`` as plain ``tinhgon/1`` data, keeping what ``like`` (the data it
    came from; by default its own) wrote."""
    src = like if like is not None else defn.data
    out: dict[str, Any] = {"format": "tinhgon/1", "code": defn.code, "name": defn.name, "version": defn.version}
    if defn.based_on is not None:
        out["based_on"] = defn.based_on
    if defn.in_force_from is not None:
        out["in_force_from"] = defn.in_force_from.isoformat()
    if defn.abolished is not None:
        out["abolished"] = defn.abolished
    if defn.merged_into is not None:
        out["merged_into"] = defn.merged_into
    if "registries" in src:
        out["registries"] = src["registries"]
    _put(out, src, "business", defn.business, False)
    for key, value, default in (
        ("sector", defn.sector, None),
        ("agency", defn.agency, None),
        ("scope", defn.scope, "public"),
        ("channels", list(defn.channels), ["in_person"]),
    ):
        if value is not None:
            _put(out, src, key, value, default)
    if defn.time_limit is not None:
        out["time_limit"] = _duration_text(defn.time_limit, src.get("time_limit"))
    for key in ("annual_volume", "legal_basis", "fees", "cost_model", "fields"):
        if key in src:
            out[key] = src[key]
    if "annual_volume" not in src and defn.annual_volume:
        out["annual_volume"] = defn.annual_volume
    if defn.abolished is not None:
        return out
    out["roles"] = src.get("roles", [])
    docs_like = _by_id(src.get("documents"))
    out["documents"] = [document_data(d, docs_like.get(d.id, _NO_LIKE)) for d in defn.documents]
    steps_like = _by_id(src.get("steps"))
    steps = []
    for i, step in enumerate(defn.steps):
        default_after = (defn.steps[i - 1].id,) if i else ()
        steps.append(step_data(step, steps_like.get(step.id, _NO_LIKE), default_after))
    out["steps"] = steps
    return out
