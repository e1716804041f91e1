"""The procedure model: an immutable, indexed definition.

A :class:`Definition` is what a ``tinhgon/1`` file says once it has been
checked: its roles, documents, fields and steps as frozen objects, plus the
indexes every analysis needs (the ``after`` graph in networkx, each step's
ancestors and descendants as bitsets, who produces which document). Analyses
read it and return plain data; the simplifier builds a new one instead of
changing it.

Ancestor sets are Python integers used as bitsets over step positions: bit
``i`` stands for ``definition.steps[i]``. On the graphs of real and generated
procedures this keeps reachability questions to a few machine words each.
"""

from __future__ import annotations

import datetime
import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import networkx as nx

from .conditions import Condition
from .durations import HOURS_PER_DAY
from .errors import Problem

EffectKind = Literal["proceed", "reject", "return"]
REVIEW_KINDS = frozenset({"review", "verify", "approve"})

BUILTIN_REGISTRIES: Mapping[str, str] = {
    "population": "Cơ sở dữ liệu quốc gia về dân cư",
    "insurance": "Cơ sở dữ liệu quốc gia về bảo hiểm",
    "civil_status": "Cơ sở dữ liệu hộ tịch điện tử",
    "military_personnel": "Cơ sở dữ liệu quân nhân",
}
"""Registry ids whose names the format knows; ``registries`` may rename them."""

Labels = tuple[tuple[str, str], ...]
"""``(id, label)`` pairs of what was written with a label of its own (kept as
pairs, not a dict, so the frozen objects that hold them stay hashable)."""


def _label(labels: Labels, key: str) -> str:
    for k, label in labels:
        if k == key:
            return label
    return key


@dataclass(frozen=True, slots=True)
class Effect:
    """What an outcome does: ``proceed``, ``reject`` or ``return`` to ``target``."""

    kind: EffectKind
    target: str | None = None

    def to_data(self) -> Any:
        return {"return": self.target} if self.kind == "return" else self.kind


@dataclass(frozen=True, slots=True)
class Role:
    id: str
    name: str
    kind: Literal["applicant", "office", "system"]
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Copies:
    """Originals (bản chính), plain copies (bản sao) and certified copies
    (bản sao chứng thực) of one applicant document; shown to people only."""

    originals: int = 0
    copies: int = 0
    certified: int = 0
    written: frozenset[str] = frozenset()
    """the keys the definition writes"""


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    name: str
    source: Literal["applicant", "registry"] | None = None
    registry: str | None = None
    prep_hours: float = 0.0
    prep_cost: float = 0.0
    deliverable: bool = False
    copies: Copies | None = None
    """how many papers of each kind are handed in, when written"""
    present_only: bool = False
    """the paper is shown, not handed in"""


@dataclass(frozen=True, slots=True)
class FieldDef:
    id: str
    type: str
    name: str | None = None
    values: tuple[str, ...] | None = None
    required: bool = False
    value_labels: Labels = ()
    """``(value, label)`` of the enum values written as ``{value, label}``"""

    def value_label(self, value: str) -> str:
        """What people read for ``value``: its label, or the value itself."""
        return _label(self.value_labels, value)


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    name: str
    role: str
    kind: str
    duration: float
    """working hours from activation to completion"""
    effort: float
    """working hours its actor spends on it"""
    visit: bool
    fee: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    after: tuple[str, ...]
    """as written, or defaulted to the previous step"""
    when: Condition | None
    outcomes: tuple[tuple[str, Effect], ...]
    share: float | None = None
    """the expected fraction of cases the step runs in (only with ``when``)"""
    outcome_labels: Labels = ()
    """``(outcome name, label)`` of the outcomes written long with a label;
    kept beside the effects so that comparing effects ignores labels"""

    def outcome_label(self, name: str) -> str:
        """What people read for outcome ``name``: its label, or the name."""
        return _label(self.outcome_labels, name)

    @property
    def weight(self) -> float:
        """The share the cost metrics weight the step by (1 when absent)."""
        return 1.0 if self.share is None else self.share

    def outcome(self, name: str) -> Effect | None:
        for key, effect in self.outcomes:
            if key == name:
                return effect
        return None

    @property
    def can_reject(self) -> bool:
        return any(e.kind == "reject" for _, e in self.outcomes)

    @property
    def returns(self) -> tuple[tuple[str, str], ...]:
        """``(outcome name, target)`` of each return outcome."""
        return tuple((k, e.target) for k, e in self.outcomes if e.kind == "return" and e.target)


@dataclass(frozen=True, slots=True)
class CostModel:
    hourly_cost: float = 40000
    visit_cost: float = 50000
    visit_hours: float = 2
    office_hourly_cost: float = 50000
    reason: str | None = None
    """why the procedure keeps prices of its own beside its catalog's"""
    written: frozenset[str] = frozenset()
    """the ``cost_model`` keys the definition writes"""


@dataclass(frozen=True, slots=True)
class Fee:
    name: str
    amount: int


def bits(mask: int) -> Iterator[int]:
    """Positions of the set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


@dataclass(frozen=True, eq=False)
class Definition:
    """One checked version of one procedure. Build it with :mod:`procedures.loader`."""

    code: str
    name: str
    version: int
    roles: tuple[Role, ...]
    documents: tuple[Document, ...]
    steps: tuple[Step, ...]
    fields: tuple[FieldDef, ...] = ()
    based_on: int | None = None
    sector: str | None = None
    agency: str | None = None
    scope: str = "public"
    channels: tuple[str, ...] = ("in_person",)
    time_limit: float | None = None
    """working hours, or None"""
    time_limit_text: str | None = None
    """the time limit as written (e.g. ``"20d"``), or None"""
    annual_volume: int = 0
    annual_volume_given: bool = False
    """whether ``annual_volume`` is written (an absent volume is unknown, not 0)"""
    in_force_from: datetime.date | None = None
    abolished: str | None = None
    """why and under which instrument this version abolishes the procedure"""
    merged_into: str | None = None
    """the code that now covers an abolished procedure"""
    business: bool = False
    registries: Mapping[str, str] = field(default_factory=lambda: dict(BUILTIN_REGISTRIES))
    """registry id -> name, the built-in ones included"""
    legal_basis: tuple[str, ...] = ()
    fees: tuple[Fee, ...] = ()
    cost_model: CostModel = CostModel()
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """the definition as written (plain data); the simplifier edits a copy"""
    source: str = "<definition>"
    warnings: tuple[Problem, ...] = ()

    # Indexes, filled in by __post_init__; the costlier ones are computed on
    # first use (cached_property), since the simplifier builds a definition
    # per pass and most passes need only some of them.
    index: Mapping[str, int] = field(init=False, repr=False)
    role_by_id: Mapping[str, Role] = field(init=False, repr=False)
    document_by_id: Mapping[str, Document] = field(init=False, repr=False)
    field_by_id: Mapping[str, FieldDef] = field(init=False, repr=False)
    producer: Mapping[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "index", {s.id: i for i, s in enumerate(self.steps)})
        put(self, "role_by_id", {r.id: r for r in self.roles})
        put(self, "document_by_id", {d.id: d for d in self.documents})
        put(self, "field_by_id", {f.id: f for f in self.fields})
        put(self, "producer", {d: s.id for s in self.steps for d in s.outputs})

    @cached_property
    def predecessors(self) -> tuple[tuple[int, ...], ...]:
        """Positions of each step's ``after`` steps."""
        index = self.index
        return tuple(tuple(index[a] for a in s.after) for s in self.steps)

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The ``after`` graph: an edge ``a -> b`` when ``b`` waits for ``a``."""
        graph = nx.DiGraph()
        graph.add_nodes_from(s.id for s in self.steps)
        graph.add_edges_from(self.edges())
        return graph

    @cached_property
    def order(self) -> tuple[int, ...]:
        """Step positions in a topological order, list order among ties."""
        preds = self.predecessors
        if all(p < i for i, ps in enumerate(preds) for p in ps):
            return tuple(range(len(preds)))
        waiting = [len(ps) for ps in preds]
        followers: list[list[int]] = [[] for _ in preds]
        for i, ps in enumerate(preds):
            for p in ps:
                followers[p].append(i)
        ready = [i for i, n in enumerate(waiting) if n == 0]
        heapq.heapify(ready)
        out: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            out.append(i)
            for f in followers[i]:
                waiting[f] -= 1
                if waiting[f] == 0:
                    heapq.heappush(ready, f)
        return tuple(out)

    @cached_property
    def ancestors(self) -> tuple[int, ...]:
        """Each step's ancestors as a bitset over positions."""
        preds = self.predecessors
        anc = [0] * len(preds)
        for i in self.order:
            mask = 0
            for p in preds[i]:
                mask |= anc[p] | (1 << p)
            anc[i] = mask
        return tuple(anc)

    @cached_property
    def descendants(self) -> tuple[int, ...]:
        """Each step's descendants as a bitset over positions."""
        preds = self.predecessors
        desc = [0] * len(preds)
        for i in reversed(self.order):
            for p in preds[i]:
                desc[p] |= desc[i] | (1 << i)
        return tuple(desc)

    # -- questions analyses ask -------------------------------------------
    @property
    def applicant_role(self) -> str | None:
        for role in self.roles:
            if role.kind == "applicant":
                return role.id
        return None

    def registry_name(self, registry_id: str) -> str:
        """The name of registry ``registry_id`` (the id itself when unknown)."""
        return self.registries.get(registry_id, registry_id)

    def role_kind(self, step: Step) -> str:
        return self.role_by_id[step.role].kind

    def is_applicant_step(self, step: Step) -> bool:
        return self.role_by_id[step.role].kind == "applicant"

    def step(self, step_id: str) -> Step:
        return self.steps[self.index[step_id]]

    def is_ancestor(self, ancestor: str, of: str) -> bool:
        return bool(self.ancestors[self.index[of]] >> self.index[ancestor] & 1)

    def edges(self) -> Iterator[tuple[str, str]]:
        """``after`` edges (written or defaulted), in list order of the later step."""
        for step in self.steps:
            for before in step.after:
                yield before, step.id

    @cached_property
    def reader_steps(self) -> Mapping[str, tuple[Step, ...]]:
        """Document id -> the steps that read it, in list order."""
        out: dict[str, list[Step]] = {d.id: [] for d in self.documents}
        for step in self.steps:
            for doc in step.inputs:
                out.setdefault(doc, []).append(step)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def reader_masks(self) -> Mapping[str, int]:
        """Document id -> bitset of the steps that read it."""
        masks: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            for doc in step.inputs:
                masks[doc] = masks.get(doc, 0) | (1 << i)
        return masks

    @cached_property
    def role_masks(self) -> Mapping[str, int]:
        """Role id -> bitset of the steps it performs."""
        masks: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            masks[step.role] = masks.get(step.role, 0) | (1 << i)
        return masks

    def finish_hours(self) -> list[float]:
        """For each step, the longest way through the ``after`` graph to its end."""
        preds = self.predecessors
        finish = [0.0] * len(self.steps)
        for i in self.order:
            start = 0.0
            for p in preds[i]:
                if finish[p] > start:
                    start = finish[p]
            finish[i] = start + self.steps[i].duration
        return finish

    def critical_path(self) -> tuple[list[str], float]:
        """The longest path through the ``after`` graph by duration, and its hours.

        Of equally long ways in, the one through the earlier ``after`` item
        wins; of equally long ends, the first in topological order.
        """
        finish: dict[int, float] = {}
        via: dict[int, int | None] = {}
        for i in self.order:
            start, prev = 0.0, None
            for a in self.steps[i].after:
                j = self.index[a]
                if prev is None or finish[j] > start:
                    start, prev = finish[j], j
            finish[i] = start + self.steps[i].duration
            via[i] = prev
        if not finish:
            return [], 0.0
        end = max(self.order, key=finish.__getitem__)
        path: list[str] = []
        cur: int | None = end
        while cur is not None:
            path.append(self.steps[cur].id)
            cur = via[cur]
        return path[::-1], finish[end]

    def lead_time_hours(self) -> float:
        return max(self.finish_hours(), default=0.0)

    @property
    def lead_time_days(self) -> float:
        return self.lead_time_hours() / HOURS_PER_DAY
