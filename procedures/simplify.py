"""The simplifier: apply the ``auto`` findings until nothing changes.

Each pass applies every finding of the first auto rule (in the format's
table order) that has an applicable one, then looks again. Repeated reviews
merge one pair per pass, the pair whose later step comes first in list order;
a merge that would lengthen the lead time is passed over. The result is a
new version (``version + 1``, ``based_on`` the old one) whose ``after`` lists
are transitively reduced; it is checked by the same loader as any file, so it
is always valid, and it never has a longer lead time or a higher compliance
cost than its input.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .durations import HOURS_PER_DAY
from .errors import TinhgonError
from .findings import ADVICE_RULES, AUTO_RULES, Finding, find_all, reduced_order, repeated_review_finding
from .loader import build, load_text
from .merging import MergeState
from .metrics import Metrics, metrics
from .model import Definition
from .serialize import to_data
from .writer import dump

_EPSILON = 1e-9


class SimplifyError(TinhgonError):
    """The simplifier produced something it must not (a bug, never the input's fault)."""


@dataclass(frozen=True)
class Simplification:
    before: Definition
    after: Definition
    """the new version; ``before`` itself when nothing applied"""
    applied: list[Finding]
    advice: list[Finding]
    skipped: list[Finding]

    @property
    def changed(self) -> bool:
        """Whether a new version is written: a fix applied or a shorter time limit."""
        return self.after is not self.before

    def report(self) -> dict[str, object]:
        """The ``simplify --json`` object."""
        return {
            "before": metrics(self.before),
            "after": metrics(self.after),
            "applied": [f.as_dict() for f in self.applied],
            "advice": [f.as_dict() for f in self.advice],
            "skipped": [f.as_dict() for f in self.skipped],
            "time_limit": {"before": self.before.time_limit_text, "after": self.after.time_limit_text},
        }


def _evolve(defn: Definition, **changes: object) -> Definition:
    return dataclasses.replace(defn, **changes)  # type: ignore[arg-type]


def _without(items: Iterable[str], drop: set[str]) -> tuple[str, ...]:
    return tuple(i for i in items if i not in drop)


# -- the fixes -----------------------------------------------------------------
def fix_once_only(defn: Definition, findings: list[Finding]) -> Definition:
    """The documents become ``from: registry``; applicant steps stop reading them."""
    docs = {f.documents[0] for f in findings}
    documents = tuple(dataclasses.replace(d, source="registry") if d.id in docs else d for d in defn.documents)
    steps = tuple(dataclasses.replace(s, inputs=_without(s.inputs, docs)) if defn.is_applicant_step(s) else s for s in defn.steps)
    return _evolve(defn, documents=documents, steps=steps)


def fix_unused_document(defn: Definition, findings: list[Finding]) -> Definition:
    """The documents are dropped from the dossier and from every step."""
    docs = {f.documents[0] for f in findings}
    documents = tuple(d for d in defn.documents if d.id not in docs)
    steps = tuple(dataclasses.replace(s, inputs=_without(s.inputs, docs)) for s in defn.steps)
    return _evolve(defn, documents=documents, steps=steps)


def fix_duplicate_request(defn: Definition, findings: list[Finding]) -> Definition:
    """Each document is asked for at its first applicant step only."""
    drop: dict[str, set[str]] = {}
    for f in findings:
        for step_id in f.steps[1:]:
            drop.setdefault(step_id, set()).add(f.documents[0])
    steps = tuple(dataclasses.replace(s, inputs=_without(s.inputs, drop[s.id])) if s.id in drop else s for s in defn.steps)
    return _evolve(defn, steps=steps)


def merge_reviews(defn: Definition, first_id: str, again_id: str) -> Definition:
    """Merge step ``again_id`` into its ancestor ``first_id`` (see
    :meth:`procedures.merging.MergeState.merge` for the rules)."""
    state = MergeState(defn)
    state.merge(defn.index[first_id], defn.index[again_id])
    return state.definition()


def reduce_order(defn: Definition) -> Definition:
    """Every step waits only for its predecessors in the reduced graph of
    required predecessors (the needless-order fix)."""
    preds, _ = reduced_order(defn)
    steps = tuple(dataclasses.replace(s, after=tuple(defn.steps[p].id for p in preds[i])) for i, s in enumerate(defn.steps))
    return _evolve(defn, steps=steps)


def transitive_reduction(defn: Definition) -> Definition:
    """Drop ``after`` items already implied by the others (same ancestors)."""
    index = defn.index
    steps = []
    changed = False
    for step in defn.steps:
        implied = 0
        for a in step.after:
            implied |= defn.ancestors[index[a]]
        after = tuple(a for a in step.after if not implied >> index[a] & 1)
        changed = changed or after != step.after
        steps.append(dataclasses.replace(step, after=after) if after != step.after else step)
    return _evolve(defn, steps=tuple(steps)) if changed else defn


Fixer = Callable[[Definition, list[Finding]], Definition]
_FIXERS: dict[str, Fixer] = {
    "once-only": fix_once_only,
    "unused-document": fix_unused_document,
    "duplicate-request": fix_duplicate_request,
    "needless-order": lambda defn, _findings: reduce_order(defn),
}


def _merge_reviews_pass(current: Definition) -> tuple[Definition, list[Finding]] | None:
    """Repeated-review passes, one merge each, until no merge is left that
    keeps the lead time.

    A merge never gives the three rules before it anything to do (the first
    step reads all the merged one read, with the same role), so the passes
    that follow one merge start again at this rule: running them here, on one
    working copy, gives the same result as a full pass each.

    Nor does each pass look at every later step again. A pass merges the
    first later step (in list order) whose pair keeps the lead time; the
    steps before it had no pair, or one passed over. A merge takes a step
    away, so a step without a pair gains one only if the merge changed which
    of its ancestors reach it through another role (:meth:`MergeState.merge`
    says which); a pair passed over may keep the lead time after a merge, so
    those are looked at again after each one. The next pass therefore starts
    from the earliest of these, and of the steps not yet looked at.
    """
    state = MergeState(current)
    applied: list[Finding] = []
    waiting = list(state.reviews)  # list positions, a heap
    queued = set(waiting)
    passed: set[int] = set()
    head_tail: tuple[list[float], list[float]] | None = None
    while waiting:
        j = heapq.heappop(waiting)
        queued.discard(j)
        i = state.earlier_for(j)
        if i is None:
            continue
        if head_tail is None and state.step(j).duration > state.step(i).duration:
            head_tail = state.head_tail()
        if head_tail is not None and not state.keeps_lead_time(i, j, head_tail):
            passed.add(j)
            continue
        applied.append(repeated_review_finding(state.step(i), state.step(j)))
        again = state.merge(i, j)
        again.extend(passed)
        passed.clear()
        for k in again:
            if k not in queued:
                queued.add(k)
                heapq.heappush(waiting, k)
    return (state.definition(), applied) if applied else None


def _apply_rule(current: Definition, rule_name: str, findings: list[Finding]) -> tuple[Definition, list[Finding]] | None:
    """The definition after the passes of ``rule_name``, and what they
    applied; None when none of the findings can be applied."""
    if rule_name == "repeated-review":
        return _merge_reviews_pass(current)
    return _FIXERS[rule_name](current, findings), findings


def simplify(defn: Definition) -> Simplification:
    """Apply the auto fixes to a fixed point and build the new version."""
    current = defn
    applied: list[Finding] = []
    limit = 4 * (len(defn.steps) + len(defn.documents)) + 10
    for _ in range(limit):
        for rule_name, _fix, rule in AUTO_RULES:
            findings = rule(current)
            if not findings:
                continue
            result = _apply_rule(current, rule_name, findings)
            if result is not None:
                current, done = result
                applied.extend(done)
                break
        else:
            break
    else:  # pragma: no cover - each pass removes something, so this cannot run out
        raise SimplifyError(f"{defn.source}: the simplifier did not settle after {limit} passes")

    shorter = proposed_time_limit(defn, current)
    if not applied and shorter is None:
        return Simplification(defn, defn, [], find_all(defn, ADVICE_RULES), find_all(defn, AUTO_RULES))
    current = transitive_reduction(current)
    # The new version takes effect when it is published, not when its input did.
    current = _evolve(current, version=defn.version + 1, based_on=defn.version, in_force_from=None)
    if shorter is not None:
        current = _evolve(current, time_limit=shorter * HOURS_PER_DAY, time_limit_text=f"{shorter}d")
    after = build(to_data(current, like=defn.data), source=f"{defn.source} (simplified)")
    # The new version is costed as its input was (a catalog's price list included).
    after = _evolve(after, cost_model=defn.cost_model)
    _check_no_worse(defn, after)
    return Simplification(defn, after, applied, find_all(after, ADVICE_RULES), find_all(after, AUTO_RULES))


def proposed_time_limit(before: Definition, after: Definition) -> int | None:
    """The shorter legal time limit, in whole working days, that ``after``'s
    work allows, or None when the limit stays as ``before`` has it.

    The new lead time is rounded up to a whole working day (after rounding
    it to 9 decimals, so that 14.0000000001 days of summed durations stay
    14); it is proposed when it is at least one day and fewer days than the
    time limit.
    """
    if before.time_limit is None:
        return None
    days = math.ceil(round(after.lead_time_hours() / HOURS_PER_DAY, 9))
    if days >= 1 and days < before.time_limit / HOURS_PER_DAY:
        return days
    return None


def _check_no_worse(before: Definition, after: Definition) -> None:
    m0: Metrics = metrics(before)
    m1: Metrics = metrics(after)
    for key in ("lead_time_days", "compliance_cost"):
        if m1[key] > m0[key] + _EPSILON:
            raise SimplifyError(f"{before.source}: simplifying raised {key} from {m0[key]} to {m1[key]}")


def next_version_text(result: Simplification, source_text: str, *, source: str = "<simplified>") -> str:
    """The simplified version as YAML, written like ``source_text`` (its key
    order, comments and quoting kept), and checked to load back valid.

    Raises:
        DefinitionError: the text does not load back (a bug of the writer).
    """
    text = dump(to_data(result.after, like=result.before.data), source_text)
    load_text(text, source=source)
    return text
