"""The fast rules and simplifier against plain, slow readings of the format.

The rules use bitsets and the simplifier merges reviews on a working copy;
here each is compared, on random valid definitions, with a direct reading of
the format: ancestors by networkx, one full rebuild per merge, and the
required-predecessor graph reduced by networkx.
"""

from __future__ import annotations

import dataclasses
from random import Random
from typing import Any

import networkx as nx
from hypothesis import given
from hypothesis import strategies as st

from procedures import Definition, build, simplify
from procedures.findings import AUTO_RULES, Finding, needless_order, overlapping_review, repeated_review
from procedures.model import REVIEW_KINDS, Effect, Step
from procedures.simplify import fix_duplicate_request, fix_once_only, fix_unused_document, reduce_order, transitive_reduction
from tests.procedures.test_properties import SETTINGS, definitions


def ancestors(defn: Definition, step_id: str) -> set[str]:
    return set(nx.ancestors(defn.graph, step_id))


def slow_repeated_review_pairs(defn: Definition) -> list[tuple[str, str]]:
    """One pair per later step: of the qualifying earlier steps, the latest in list order."""
    out = []
    for later in defn.steps:
        if later.kind not in REVIEW_KINDS or not later.inputs:
            continue
        above = ancestors(defn, later.id)
        for first in reversed(defn.steps):
            if first.id not in above or (first.role, first.kind, first.when) != (later.role, later.kind, later.when):
                continue
            if not set(later.inputs) <= set(first.inputs):
                continue
            between = set(nx.descendants(defn.graph, first.id)) & above
            if all(defn.step(s).role == later.role for s in between):
                out.append((first.id, later.id))
                break
    return out


def slow_overlapping_review_pairs(defn: Definition) -> list[tuple[str, str]]:
    out = []
    for later in defn.steps:
        if later.kind not in REVIEW_KINDS or not later.inputs:
            continue
        above = ancestors(defn, later.id)
        qualifying = [
            first.id
            for first in defn.steps
            if first.id in above
            and first.kind in REVIEW_KINDS
            and first.role != later.role
            and set(later.inputs) <= set(first.inputs)
        ]
        if qualifying:
            out.append((qualifying[-1], later.id))
    return out


def slow_needless_edges(defn: Definition) -> list[tuple[str, str]]:
    required = nx.DiGraph()
    required.add_nodes_from(s.id for s in defn.steps)
    for step in defn.steps:
        above = ancestors(defn, step.id)
        applicant = defn.is_applicant_step(step)
        needed: set[str] = set() if step.inputs else set(step.after)
        for doc in step.inputs:
            if doc in defn.producer:
                needed.add(defn.producer[doc])
            elif not applicant and defn.document_by_id[doc].source == "applicant":
                handed = [s.id for s in defn.steps if s.id in above and defn.is_applicant_step(s) and doc in s.inputs]
                needed.update(handed[:1])
        needed.update(target for _, target in step.returns)
        if not applicant:
            needed.update(s for s in above if defn.step(s).can_reject)
        required.add_edges_from((n, step.id) for n in needed)
    reduced = nx.transitive_reduction(required)
    return [(a, b) for a, b in defn.edges() if not nx.has_path(reduced, a, b)]


def slow_merge(defn: Definition, first_id: str, again_id: str) -> Definition:
    first, again = defn.step(first_id), defn.step(again_id)
    outcomes = list(first.outcomes)
    for name, effect in again.outcomes:
        if effect in [e for _, e in outcomes]:
            continue
        if effect.kind == "return" and effect.target not in ancestors(defn, first_id):
            continue
        new_name, n = name, 2
        while new_name in [k for k, _ in outcomes]:
            new_name, n = f"{name}_{n}", n + 1
        outcomes.append((new_name, effect))
    merged = dataclasses.replace(
        first,
        outputs=first.outputs + tuple(o for o in again.outputs if o not in first.outputs),
        duration=max(first.duration, again.duration),
        effort=max(first.effort, again.effort),
        outcomes=tuple(outcomes),
    )
    steps: list[Step] = []
    for step in defn.steps:
        if step.id == again_id:
            continue
        step = merged if step.id == first_id else step
        after: list[str] = []
        for a in step.after:
            for b in again.after if a == again_id else (a,):
                if b not in after:
                    after.append(b)
        outs = tuple((k, Effect("return", first_id) if e == Effect("return", again_id) else e) for k, e in step.outcomes)
        steps.append(dataclasses.replace(step, after=tuple(after), outcomes=outs))
    return dataclasses.replace(defn, steps=tuple(steps))


def slow_simplify(defn: Definition) -> tuple[Definition, list[Finding]]:
    fixers: dict[str, Any] = {
        "once-only": fix_once_only,
        "unused-document": fix_unused_document,
        "duplicate-request": fix_duplicate_request,
        "needless-order": lambda d, _f: reduce_order(d),
    }
    current, applied = defn, []
    while True:
        for name, _fix, rule in AUTO_RULES:
            findings = rule(current)
            if not findings:
                continue
            if name == "repeated-review":
                lead = current.lead_time_hours()
                chosen = None
                for f in findings:
                    merged = slow_merge(current, *f.steps)
                    if merged.lead_time_hours() <= lead + 1e-9:
                        chosen = (f, merged)
                        break
                if chosen is None:
                    continue
                applied.append(chosen[0])
                current = chosen[1]
            else:
                current = fixers[name](current, findings)
                applied.extend(findings)
            break
        else:
            return transitive_reduction(current), applied


def shape(defn: Definition) -> list[tuple[Any, ...]]:
    return [
        (s.id, frozenset(s.after), s.inputs, s.outputs, round(s.duration, 9), round(s.effort, 9), s.outcomes) for s in defn.steps
    ]


@SETTINGS
@given(definitions())
def test_repeated_review_pairs_match_a_direct_reading(data: dict[str, Any]) -> None:
    defn = build(data)
    assert [f.steps for f in repeated_review(defn)] == slow_repeated_review_pairs(defn)


@SETTINGS
@given(definitions())
def test_overlapping_review_pairs_match_a_direct_reading(data: dict[str, Any]) -> None:
    defn = build(data)
    assert [f.steps for f in overlapping_review(defn)] == slow_overlapping_review_pairs(defn)


@SETTINGS
@given(definitions())
def test_needless_order_matches_networkx_reduction(data: dict[str, Any]) -> None:
    defn = build(data)
    assert [f.steps for f in needless_order(defn)] == slow_needless_edges(defn)


@SETTINGS
@given(definitions())
def test_simplify_matches_one_rebuild_per_pass(data: dict[str, Any]) -> None:
    defn = build(data)
    result = simplify(defn)
    expected, applied = slow_simplify(defn)
    assert [(f.rule, f.steps, f.documents) for f in result.applied] == [(f.rule, f.steps, f.documents) for f in applied]
    if result.changed:
        assert shape(result.after) == shape(expected)


@SETTINGS
@given(definitions(), st.randoms(use_true_random=False))
def test_simplify_matches_when_steps_are_listed_out_of_order(data: dict[str, Any], random: Random) -> None:
    """``after`` may name steps written later; the fast paths that assume list
    order is a topological order must not be taken then."""
    defn = build(data)
    steps = [dict(s) for s in data["steps"]]
    for raw, step in zip(steps, defn.steps, strict=True):
        raw["after"] = list(step.after)
    random.shuffle(steps)
    shuffled = build({**data, "steps": steps})
    assert [f.steps for f in repeated_review(shuffled)] == slow_repeated_review_pairs(shuffled)
    assert [f.steps for f in overlapping_review(shuffled)] == slow_overlapping_review_pairs(shuffled)
    assert [f.steps for f in needless_order(shuffled)] == slow_needless_edges(shuffled)
    result = simplify(shuffled)
    expected, applied = slow_simplify(shuffled)
    assert [(f.rule, f.steps) for f in result.applied] == [(f.rule, f.steps) for f in applied]
    if result.changed:
        assert shape(result.after) == shape(expected)
