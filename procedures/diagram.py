"""Drawing a procedure: swimlanes, the critical path, returns and rejections.

:func:`diagram` builds a :class:`graphviz.Digraph` of one definition:

* one lane (a band) per role: the applicant's first, then office lanes in
  the order their steps first appear, system steps last;
* a node per step with its name, duration, fee and a mark for an in-person
  visit; the fill colour says its kind; a conditional step has a dashed
  border and its condition written as a sentence;
* ``after`` edges solid, ``return`` outcomes dashed back to their target and
  labelled with the outcome's name, ``reject`` outcomes to one "rejected" end,
  and a start and an end node;
* the critical path (the one that gives the lead time) drawn thick and red,
  its nodes and edges carrying the SVG class ``critical``; each step's node
  has the SVG id ``step-ID``;
* a legend and a title with the code, version, lead time and compliance cost.

``statuses`` colours steps by their state in one case (completed, active,
waiting, skipped, cancelled, overdue): the engine and the web pages pass what
they know, this module knows nothing of cases. Beyond ``collapse_over``
steps, consecutive steps of one role become one group node with a count,
unless ``full=True``.

Graphviz's ``dot`` needs minutes for a few hundred edges that cross lanes
and draws clusters as a staircase rather than bands, so :func:`diagram`
places every node itself (x by rank along the longest path from the start,
y by lane band, nodes stacked in a band ordered by where their predecessors
are), pins the positions, draws straight edges (returns arched) and leaves
``neato -n2`` only the drawing: :func:`write` passes ``-n2``. On a large
procedure a node says when its steps can reject or end the procedure, instead
of a line across the whole picture.

Text is drawn with DejaVu Sans, named explicitly: without an installed font
Graphviz draws empty boxes without a word of warning.
"""

from __future__ import annotations

import itertools
import math
import os
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import graphviz
import networkx as nx

from . import dottext
from .conditions import Condition, describe
from .dottext import text
from .durations import format_hours
from .errors import TinhgonError
from .labels import duration_words, money, number
from .metrics import metrics
from .model import Definition, Step

FONT = "DejaVu Sans"
FORMATS = ("svg", "png", "pdf", "dot")
COLLAPSE_OVER = 150
"""Above this many steps, consecutive steps of one role are drawn as one node."""

KIND_COLOURS: dict[str, str] = {
    "submit": "#dbeafe",
    "receive": "#dbeafe",
    "review": "#fef3c7",
    "verify": "#fef3c7",
    "approve": "#fde68a",
    "sign": "#fcd34d",
    "pay": "#e9d5ff",
    "notify": "#e0f2fe",
    "issue": "#bbf7d0",
    "archive": "#e5e7eb",
    "transfer": "#f3f4f6",
    "task": "#ffffff",
}
KIND_LABELS: dict[str, str] = {
    "submit": "nộp",
    "receive": "nhận",
    "review": "xem xét",
    "verify": "kiểm tra",
    "approve": "duyệt",
    "sign": "ký",
    "pay": "chi trả, nộp phí",
    "notify": "thông báo",
    "issue": "cấp, trả kết quả",
    "archive": "lưu trữ",
    "transfer": "chuyển",
    "task": "xử lý",
}
STATUS_COLOURS: dict[str, str] = {
    "completed": "#86efac",
    "active": "#93c5fd",
    "waiting": "#f3f4f6",
    "skipped": "#e5e7eb",
    "cancelled": "#d1d5db",
    "overdue": "#fca5a5",
}
STATUS_LABELS: dict[str, str] = {
    "completed": "đã xong",
    "active": "đang xử lý",
    "waiting": "đang chờ",
    "skipped": "bỏ qua",
    "cancelled": "đã hủy",
    "overdue": "quá hạn",
}
CRITICAL = "#dc2626"
LANE_COLOURS = {"applicant": "#eff6ff", "office": "#f9fafb", "system": "#f0fdf4"}


class DiagramError(TinhgonError):
    """A diagram could not be written (unknown format, ``dot`` missing or failing)."""


def lanes(defn: Definition) -> list[str]:
    """Role ids in lane order: applicant, offices by first step, then system roles."""
    kinds = {r.id: r.kind for r in defn.roles}
    seen: list[str] = []
    for step in defn.steps:
        if step.role not in seen:
            seen.append(step.role)
    applicant = [r for r in seen if kinds[r] == "applicant"]
    office = [r for r in seen if kinds[r] == "office"]
    system = [r for r in seen if kinds[r] == "system"]
    return applicant + office + system


Line = tuple[str, float, str]
"""One line of a node's label: its text, point size and style ("", "B" bold, "I" italic)."""

BASE_SIZE = 11.0
NAME_WRAP = 26
"""On a pinned layout, names are wrapped at this many characters so that a
long name does not widen its whole column."""
NOTE_WRAP = 38
_ADVANCE = {"": 0.6, "B": 0.68, "I": 0.6}
"""DejaVu Sans's mean advance per point of size, rounded up: Graphviz grows a
node that is too small, but a node grown past its estimate overlaps its
neighbour on a pinned layout."""


def _wrapped(text: str, width: int | None) -> list[str]:
    if width is None:
        return [text]
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [text]


def _text_width(text: str, size: float, style: str = "") -> float:
    return len(text) * size * _ADVANCE[style]


def _box(lines: Sequence[Line], pad_x: float = 22.0, pad_y: float = 12.0) -> tuple[float, float]:
    """Estimated width and height, in points, of a node showing ``lines``."""
    width = max((_text_width(text, size, style) for text, size, style in lines), default=0.0)
    height = sum(size * 1.25 + 2 for _, size, _ in lines)
    return width + pad_x, height + pad_y


def _html(lines: Sequence[Line]) -> str:
    rows = []
    for line, size, style in lines:
        content = dottext.cell(line)
        if style:
            content = f"<{style}>{content}</{style}>"
        if size != BASE_SIZE:
            content = f'<FONT POINT-SIZE="{size:g}">{content}</FONT>'
        rows.append(f"<TR><TD>{content}</TD></TR>")
    return "<" + '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">' + "".join(rows) + "</TABLE>>"


def _step_lines(defn: Definition, step: Step, status: str | None, wrap: int | None = None) -> list[Line]:
    lines: list[Line] = [(part, BASE_SIZE, "B") for part in _wrapped(step.name, wrap)]
    facts = [KIND_LABELS.get(step.kind, step.kind)]
    if step.duration:
        facts.append(duration_words(step.duration))
    if step.fee:
        facts.append(f"phí {money(step.fee)}")
    if step.visit:
        facts.append("◆ đến trực tiếp")
    lines.append((" · ".join(facts), 9, ""))
    if step.when is not None:
        note_wrap = None if wrap is None else NOTE_WRAP
        lines += [(part, 9, "I") for part in _wrapped(f"chỉ khi {condition_words(defn, step.when)}", note_wrap)]
    if status is not None:
        lines.append((f"[{STATUS_LABELS.get(status, status)}]", 9, ""))
    return lines


def groups(defn: Definition, most: int) -> list[list[int]]:
    """Steps drawn as one node on a large procedure, each a list of positions.

    Consecutive steps (list order) of one role form a group. When roles
    alternate so often that this still leaves more than ``most`` groups,
    consecutive steps are taken in equal stretches instead, whatever their
    roles, so that the picture keeps about ``most`` nodes; such a stretch
    sits in the lane of the role with most steps in it.
    """
    runs: list[list[int]] = []
    for i, step in enumerate(defn.steps):
        if runs and defn.steps[runs[-1][-1]].role == step.role:
            runs[-1].append(i)
        else:
            runs.append([i])
    if len(runs) <= most:
        return runs
    size = -(-len(defn.steps) // most)
    return [list(range(start, min(start + size, len(defn.steps)))) for start in range(0, len(defn.steps), size)]


def _group_role(defn: Definition, group: list[int]) -> str:
    counts: dict[str, int] = {}
    for i in group:
        role = defn.steps[i].role
        counts[role] = counts.get(role, 0) + 1
    return max(counts, key=lambda r: counts[r])


@dataclass(frozen=True)
class _Unit:
    """One drawn node: a step, or on a large procedure a group of steps."""

    node: str
    role: str
    members: tuple[int, ...]
    lines: tuple[Line, ...]
    critical: bool


def _units(
    defn: Definition,
    statuses: Mapping[str, str],
    critical: set[str],
    most: int | None,
    wrap: int | None,
) -> list[_Unit]:
    if most is None:
        return [
            _Unit(f"step-{s.id}", s.role, (i,), tuple(_step_lines(defn, s, statuses.get(s.id), wrap)), s.id in critical)
            for i, s in enumerate(defn.steps)
        ]
    units = []
    for group in groups(defn, most):
        first = defn.steps[group[0]]
        if len(group) == 1:
            units.append(
                _Unit(
                    f"step-{first.id}",
                    first.role,
                    (group[0],),
                    tuple(_step_lines(defn, first, statuses.get(first.id), wrap)),
                    first.id in critical,
                )
            )
            continue
        hours = sum(defn.steps[i].duration for i in group)
        others = len({defn.steps[i].role for i in group}) - 1
        texts = [*_wrapped(f"{len(group)} bước: {first.name} …", wrap), format_hours(hours)]
        if others:
            texts.append(f"(cùng {others} vai trò khác)")
        units.append(
            _Unit(
                f"group-{first.id}",
                _group_role(defn, group),
                tuple(group),
                tuple((t, BASE_SIZE, "") for t in texts),
                any(defn.steps[i].id in critical for i in group),
            )
        )
    return units


def _with_exits(unit: _Unit, defn: Definition, has_followers: set[str], last: str | None) -> _Unit:
    """``unit`` with a line for the rejections and ends of its steps."""
    steps = [defn.steps[i] for i in unit.members]
    names = sorted({s.outcome_label(n) for s in steps for n, e in s.outcomes if e.kind == "reject"})
    extra: list[Line] = []
    if names:
        extra += [(part, 9, "B") for part in _wrapped(f"✕ từ chối: {', '.join(names)}", NOTE_WRAP)]
    if any(s.id not in has_followers and s.id != last for s in steps):
        extra.append(("■ có thể kết thúc tại đây", 9, "B"))
    return replace(unit, lines=unit.lines + tuple(extra)) if extra else unit


def diagram(
    defn: Definition,
    *,
    documents: bool = False,
    statuses: Mapping[str, str] | None = None,
    collapse_over: int = COLLAPSE_OVER,
    full: bool = False,
) -> graphviz.Digraph:
    """The diagram of ``defn`` (see the module's description).

    Raises :class:`DiagramError` when ``statuses`` names a step ``defn`` does not have.
    """
    statuses = statuses or {}
    unknown = set(statuses) - set(defn.index)
    if unknown:
        raise DiagramError(f"statuses name unknown steps: {', '.join(sorted(unknown))}")
    m = metrics(defn)
    path, _ = defn.critical_path()
    critical_nodes = set(path)
    critical_edges = set(itertools.pairwise(path))

    collapsed = not full and len(defn.steps) > collapse_over
    units = _units(defn, statuses, critical_nodes, collapse_over if collapsed else None, NAME_WRAP)
    node_of = {defn.steps[i].id: u.node for u in units for i in u.members}
    lane_order = lanes(defn)
    role_name = {r.id: r.name for r in defn.roles}
    role_kind = {r.id: r.kind for r in defn.roles}
    rejecting = [s for s in defn.steps if s.can_reject]
    has_followers = {a for step in defn.steps for a in step.after}
    # On a large procedure, lines from everywhere to one "rejected" and one
    # end node fill the lanes with long parallel strokes: the node says so
    # instead, and only the critical path runs on to the end.
    written_out = len(defn.steps) > collapse_over
    if written_out:
        units = [_with_exits(u, defn, has_followers, path[-1] if path else None) for u in units]
        rejecting = []

    forward = [(node_of[a], node_of[s.id]) for s in defn.steps for a in s.after]
    layout = _pin(
        units,
        forward,
        [(role, role_name[role]) for role in lane_order],
        first=node_of[path[0]] if path else None,
        last=node_of[path[-1]] if path else None,
        rejected=bool(rejecting),
        documents=[
            (f"doc-{d.id}", _document_anchor(defn, d.id, node_of), _box(_document_lines(defn, d.id), 16, 14))
            for d in defn.documents
        ]
        if documents
        else [],
        legend=_box(_legend_lines(statuses), 40, 16),
    )

    def at(node: str) -> dict[str, str]:
        x, y = layout.pos[node]
        return {"pos": f"{x:.1f},{y:.1f}!"}

    dot = graphviz.Digraph(name=text(defn.code), engine="neato", comment="laid out by tinhgon: render with neato -n2")
    title = (
        f"{defn.code} v{defn.version} — {defn.name}\n"
        f"Thời gian giải quyết: {number(m['lead_time_days'])} ngày làm việc · "
        f"Chi phí tuân thủ: {money(m['compliance_cost'])}/hồ sơ"
    )
    # Straight edges: neato's spline routers treat the lanes as obstacles
    # every node sits inside, and cost what dot did. Edges go under the
    # nodes, so that a line crossing a node is hidden by it.
    dot.attr(
        "graph",
        fontname=FONT,
        label=text(title),
        labelloc="t",
        fontsize="16",
        splines="line",
        outputorder="edgesfirst",
        bb=layout.bb,
    )
    dot.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled", margin="0.12,0.06")
    dot.attr("edge", fontname=FONT, fontsize="9")

    dot.node(
        "start", "Bắt đầu", shape="circle", style="filled", fillcolor="#111827", fontcolor="white", width="0.6", **at("start")
    )
    dot.node(
        "end", "Kết thúc", shape="doublecircle", style="filled", fillcolor="#111827", fontcolor="white", width="0.6", **at("end")
    )

    for lane_index, role in enumerate(lane_order):
        with dot.subgraph(name=f"cluster_lane_{lane_index}") as lane:
            lane.attr(
                label=text(role_name[role]),
                style="filled",
                fillcolor=LANE_COLOURS[role_kind[role]],
                color="#9ca3af",
                fontsize="12",
                labeljust="l",
                id=text(f"lane-{role}"),
                bb=layout.lanes[role],
                lp=layout.lane_labels[role],
                **{"class": "lane"},
            )
            for unit in units:
                if unit.role != role:
                    continue
                width, height = layout.size[unit.node]
                size = {"width": f"{width / 72:.2f}", "height": f"{height / 72:.2f}"}
                if unit.node.startswith("step-"):
                    step = defn.steps[unit.members[0]]
                    _draw_step(lane, step, statuses.get(step.id), unit.critical, _html(unit.lines), **at(unit.node), **size)
                else:
                    lane.node(
                        unit.node,
                        text("\n".join(line for line, _, _ in unit.lines)),
                        id=unit.node,
                        fillcolor="#f3f4f6",
                        shape="box3d",
                        style="filled",
                        color=CRITICAL if unit.critical else "black",
                        penwidth="3" if unit.critical else "1",
                        **({"class": "critical group"} if unit.critical else {"class": "group"}),
                        **at(unit.node),
                        **size,
                    )

    drawn: set[tuple[str, str]] = set()

    def edge(a: str, b: str, **attrs: str) -> None:
        if (a, b) in drawn or a == b:
            return
        drawn.add((a, b))
        dot.edge(a, b, **attrs)

    implied = _implied_group_edges(defn, node_of) if collapsed else set()
    for step in defn.steps:
        target = node_of[step.id]
        if not step.after:
            crit = bool(path) and step.id == path[0]
            edge("start", target, **_crit_attrs(crit))
        for a in step.after:
            if (node_of[a], target) in implied:
                continue
            crit = (a, step.id) in critical_edges
            edge(node_of[a], target, **_crit_attrs(crit))
        if step.id not in has_followers and (not written_out or (bool(path) and step.id == path[-1])):
            crit = bool(path) and step.id == path[-1]
            edge(target, "end", **_crit_attrs(crit))
    if rejecting:
        dot.node("rejected", "Từ chối", shape="octagon", style="filled", fillcolor="#fee2e2", color="#b91c1c", **at("rejected"))
        for step in rejecting:
            names = ", ".join(step.outcome_label(n) for n, e in step.outcomes if e.kind == "reject")
            edge(
                node_of[step.id],
                "rejected",
                label=text(names),
                color="#b91c1c",
                fontcolor="#b91c1c",
                style="dotted",
            )
    for step in defn.steps:
        for name, target in step.returns:
            a, b = node_of[step.id], node_of[target]
            if (a, b) in drawn or a == b:
                continue
            drawn.add((a, b))
            curve, label_at = layout.bow(a, b)
            dot.edge(
                a,
                b,
                label=text(f"↩ {step.outcome_label(name)}"),
                style="dashed",
                color="#6b7280",
                fontcolor="#374151",
                pos=curve,
                lp=label_at,
                **{"class": "return"},
            )
    if documents:
        _draw_documents(dot, defn, node_of, layout)
    _legend(dot, statuses, at("legend"))
    return dot


@dataclass
class _Layout:
    """Pinned positions, in points with y upwards as ``neato -n2`` reads them."""

    pos: dict[str, tuple[float, float]] = field(default_factory=dict)
    lanes: dict[str, str] = field(default_factory=dict)
    """role -> the lane's ``bb``"""
    lane_labels: dict[str, str] = field(default_factory=dict)
    """role -> the ``lp`` of the lane's name, near its top left corner"""
    size: dict[str, tuple[float, float]] = field(default_factory=dict)
    """node -> its estimated width and height, which it is given as its least size"""
    bb: str = ""

    def bow(self, a: str, b: str) -> tuple[str, str]:
        """The ``pos`` and ``lp`` of an edge ``a -> b`` arched to one side.

        A return runs against an ``after`` edge between the same nodes; drawn
        straight it would lie on it and vanish. It leaves ``a`` and reaches
        ``b`` on the upper side of the line between them (the left side when
        that line is vertical), so the two stay apart.
        """
        (ax, ay), (bx, by) = self.pos[a], self.pos[b]
        length = math.hypot(bx - ax, by - ay) or 1.0
        ux, uy = (bx - ax) / length, (by - ay) / length
        nx_, ny_ = -uy, ux
        if ny_ < 0 or (ny_ == 0 and nx_ > 0):
            nx_, ny_ = -nx_, -ny_
        out = _unit(ux + nx_, uy + ny_)
        back = _unit(-ux + nx_, -uy + ny_)
        bulge = min(max(length / 3, 30.0), 120.0)
        p0 = _rim(self.pos[a], self.size.get(a, (40.0, 40.0)), out)
        tip = _rim(self.pos[b], self.size.get(b, (40.0, 40.0)), back)
        # the curve stops where the arrowhead (10 points long) begins
        p3 = (tip[0] + back[0] * 10, tip[1] + back[1] * 10)
        c1 = (p0[0] + out[0] * bulge, p0[1] + out[1] * bulge)
        c2 = (p3[0] + back[0] * bulge, p3[1] + back[1] * bulge)
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (p0, c1, c2, p3))
        mid_x = (p0[0] + 3 * c1[0] + 3 * c2[0] + p3[0]) / 8 + nx_ * 8
        mid_y = (p0[1] + 3 * c1[1] + 3 * c2[1] + p3[1]) / 8 + ny_ * 8
        return f"e,{tip[0]:.1f},{tip[1]:.1f} {points}", f"{mid_x:.1f},{mid_y:.1f}"


def _unit(x: float, y: float) -> tuple[float, float]:
    length = math.hypot(x, y) or 1.0
    return x / length, y / length


def _rim(centre: tuple[float, float], size: tuple[float, float], direction: tuple[float, float]) -> tuple[float, float]:
    """Where a ray from ``centre`` along ``direction`` leaves a box of ``size``."""
    (cx, cy), (w, h), (dx, dy) = centre, size, direction
    t = min(w / 2 / abs(dx) if dx else math.inf, h / 2 / abs(dy) if dy else math.inf)
    return cx + dx * t, cy + dy * t


MARGIN = 12.0
COLUMN_GAP = 56.0
ROW_GAP = 26.0
LANE_HEADER = 26.0
LANE_GAP = 6.0
END_COLUMN = 70.0


def _ranks(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's rank: 1 + the longest chain of edges leading to it (nodes
    of one cycle, possible between groups, share a rank)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((a, b) for a, b in edges if a != b)
    if nx.is_directed_acyclic_graph(graph):
        dag, part = graph, {n: n for n in nodes}
    else:
        dag = nx.condensation(graph)
        part = dag.graph["mapping"]
    rank: dict[object, int] = {}
    for c in nx.topological_sort(dag):
        rank[c] = 1 + max((rank[p] for p in dag.predecessors(c)), default=0)
    return {n: rank[part[n]] for n in nodes}


def _pin(
    units: Sequence[_Unit],
    forward: Sequence[tuple[str, str]],
    lane_names: Sequence[tuple[str, str]],
    *,
    first: str | None,
    last: str | None,
    rejected: bool,
    documents: Sequence[tuple[str, str | None, tuple[float, float]]],
    legend: tuple[float, float],
) -> _Layout:
    """Where every node goes on a large diagram.

    Columns are ranks (the start left, the end right); each lane is a band as
    high as its most crowded column. In one lane and column, nodes are taken
    in the order of where their predecessors sit, each put in the free row
    nearest that place, so that edges cross as little as a single sweep
    from left to right can manage.
    """
    size = {u.node: _box(u.lines) for u in units}
    rank = _ranks([u.node for u in units], forward)
    end_rank = max(rank.values(), default=0) + 1
    widths = [END_COLUMN] * (end_rank + 1)
    for u in units:
        widths[rank[u.node]] = max(widths[rank[u.node]], size[u.node][0])
    xs: list[float] = []
    x = MARGIN
    for w in widths:
        xs.append(x + w / 2)
        x += w + COLUMN_GAP
    lanes_right = x - COLUMN_GAP / 2

    cells: dict[tuple[str, int], list[_Unit]] = {}
    for u in units:
        cells.setdefault((u.role, rank[u.node]), []).append(u)
    rows = {role: max((len(c) for (r, _), c in cells.items() if r == role), default=1) for role, _ in lane_names}
    row_height = {role: max((size[u.node][1] for u in units if u.role == role), default=40.0) + ROW_GAP for role, _ in lane_names}
    # y grows downwards while placing, and is turned over at the end.
    top: dict[str, float] = {}
    y = MARGIN
    for role, _ in lane_names:
        top[role] = y
        y += LANE_HEADER + rows[role] * row_height[role] + LANE_GAP * 2
    lanes_bottom = y
    placed: dict[str, float] = {}
    preds: dict[str, list[str]] = {}
    for a, b in forward:
        if a != b:
            preds.setdefault(b, []).append(a)
    order = {u.node: i for i, u in enumerate(units)}
    by_rank: dict[int, list[tuple[str, list[_Unit]]]] = {}
    for (role, r), cell in cells.items():
        by_rank.setdefault(r, []).append((role, cell))
    for r in sorted(by_rank):
        for role, cell in by_rank[r]:
            first_row = top[role] + LANE_HEADER + row_height[role] / 2
            middle = first_row + (rows[role] - 1) * row_height[role] / 2

            def wanted(u: _Unit, first_row: float = first_row, middle: float = middle) -> float:
                ys = [placed[p] for p in preds.get(u.node, ()) if p in placed]
                return sum(ys) / len(ys) if ys else middle

            ranked = sorted(cell, key=lambda u: (wanted(u), order[u.node]))
            slots = [min(max(round((wanted(u) - first_row) / row_height[role]), 0), rows[role] - 1) for u in ranked]
            for i in range(1, len(slots)):
                slots[i] = max(slots[i], slots[i - 1] + 1)
            slots[-1] = min(slots[-1], rows[role] - 1)
            for i in range(len(slots) - 2, -1, -1):
                slots[i] = min(slots[i], slots[i + 1] - 1)
            for u, slot in zip(ranked, slots, strict=True):
                placed[u.node] = first_row + slot * row_height[role]

    pos: dict[str, tuple[float, float]] = {u.node: (xs[rank[u.node]], placed[u.node]) for u in units}
    centre = (MARGIN + lanes_bottom) / 2
    pos["start"] = (xs[0], placed[first] if first else centre)
    pos["end"] = (xs[end_rank], placed[last] if last else centre)
    right = lanes_right
    if rejected:
        pos["rejected"] = (lanes_right + COLUMN_GAP + 40, centre)
        right = lanes_right + COLUMN_GAP + 80

    # Papers go in a strip under the lanes, in the column of the step that
    # makes them (or first reads them).
    y = lanes_bottom + ROW_GAP
    stacks: dict[int, float] = {}
    for node, anchor, (_, h) in documents:
        column = rank[anchor] if anchor is not None else 0
        below = stacks.get(column, y)
        pos[node] = (xs[column], below + h / 2)
        stacks[column] = below + h + ROW_GAP / 2
    y = max(stacks.values(), default=y)
    pos["legend"] = (MARGIN + legend[0] / 2, y + legend[1] / 2)
    height = y + legend[1] + MARGIN
    right = max(right, MARGIN + legend[0])

    def up(v: float) -> float:
        return height - v

    layout = _Layout(bb=f"0,0,{right + MARGIN:.1f},{height:.1f}", size=size)
    layout.pos = {n: (px, up(py)) for n, (px, py) in pos.items()}
    for role, name in lane_names:
        bottom = top[role] + LANE_HEADER + rows[role] * row_height[role] + LANE_GAP
        layout.lanes[role] = f"{MARGIN / 2:.1f},{up(bottom):.1f},{lanes_right:.1f},{up(top[role]):.1f}"
        layout.lane_labels[role] = f"{MARGIN + 4 + _text_width(name, 12) / 2:.1f},{up(top[role] + 13):.1f}"
    return layout


def _implied_group_edges(defn: Definition, node_of: Mapping[str, str]) -> set[tuple[str, str]]:
    """Edges between group nodes that other group edges already imply: drawn,
    they would only add crossings."""
    graph = nx.DiGraph()
    graph.add_edges_from((node_of[a], node_of[s.id]) for s in defn.steps for a in s.after if node_of[a] != node_of[s.id])
    if not nx.is_directed_acyclic_graph(graph):
        return set()
    kept = set(nx.transitive_reduction(graph).edges())
    return {e for e in graph.edges() if e not in kept}


def _crit_attrs(critical: bool) -> dict[str, str]:
    if critical:
        return {"color": CRITICAL, "penwidth": "3", "class": "critical"}
    return {}


def _draw_step(graph: graphviz.Digraph, step: Step, status: str | None, critical: bool, label: str, **extra: str) -> None:
    fill = STATUS_COLOURS.get(status, "#ffffff") if status else KIND_COLOURS.get(step.kind, "#ffffff")
    styles = ["rounded", "filled"]
    if step.when is not None:
        styles.append("dashed")
    attrs = {
        "id": text(f"step-{step.id}"),
        "fillcolor": fill,
        "style": ",".join(styles),
        "color": CRITICAL if critical else "#374151",
        "penwidth": "3" if critical else "1",
        "tooltip": text(f"{step.id} ({step.kind})"),
        "class": " ".join(
            c for c in ("step", f"kind-{step.kind}", f"status-{status}" if status else "", "critical" if critical else "") if c
        ),
        **extra,
    }
    if step.kind in ("approve", "sign"):
        attrs["shape"] = "box"
        attrs["peripheries"] = "2"
    graph.node(f"step-{step.id}", label, **attrs)


def condition_words(defn: Definition, cond: Condition) -> str:
    """A step's condition in words: fields by their names, values by their labels."""

    def name(field_id: str) -> str:
        field = defn.field_by_id.get(field_id)
        return field.name if field is not None and field.name else field_id

    def value(field_id: str, raw: Any) -> str:
        field = defn.field_by_id.get(field_id)
        if isinstance(raw, bool):
            return "có" if raw else "không"
        if field is not None and isinstance(raw, str) and field.value_label(raw) != raw:
            return field.value_label(raw)
        return number(raw) if isinstance(raw, (int, float)) else str(raw)

    return describe(cond, name, value)


def _document_lines(defn: Definition, doc_id: str) -> list[Line]:
    doc = defn.document_by_id[doc_id]
    if doc.source == "registry":
        note = f"({defn.registry_name(doc.registry)})" if doc.registry else "(khai thác từ CSDL)"
    elif doc.source == "applicant":
        note = f"(đã có trong {defn.registry_name(doc.registry)})" if doc.registry else ""
    else:
        note = "★ kết quả" if doc.deliverable else ""
    texts = _wrapped(doc.name, NAME_WRAP) + ([note] if note else [])
    return [(t, 9, "") for t in texts]


def _document_anchor(defn: Definition, doc_id: str, node_of: Mapping[str, str]) -> str | None:
    """The node a paper is drawn beside: the step that makes it, else the first that reads it."""
    producer = defn.producer.get(doc_id)
    if producer is not None:
        return node_of[producer]
    readers = defn.reader_steps.get(doc_id, ())
    return node_of[readers[0].id] if readers else None


def _draw_documents(dot: graphviz.Digraph, defn: Definition, node_of: Mapping[str, str], layout: _Layout) -> None:
    readers = defn.reader_steps
    for doc in defn.documents:
        did = f"doc-{doc.id}"
        if doc.source == "registry":
            attrs = {"shape": "cylinder", "fillcolor": "#ecfccb", "style": "filled"}
        elif doc.source == "applicant":
            attrs = {"shape": "note", "fillcolor": "#fff7ed", "style": "filled"}
        else:
            attrs = {"shape": "note", "fillcolor": "#f0fdf4" if doc.deliverable else "#ffffff", "style": "filled"}
        attrs.update({"fontsize": "9", "id": did, "class": f"document source-{doc.source or 'produced'}"})
        x, y = layout.pos[did]
        label = text("\n".join(line for line, _, _ in _document_lines(defn, doc.id)))
        dot.node(did, label, pos=f"{x:.1f},{y:.1f}!", **attrs)
        producer = defn.producer.get(doc.id)
        if producer is not None:
            dot.edge(node_of[producer], did, style="dotted", arrowhead="none", color="#9ca3af")
        for reader in readers.get(doc.id, ()):
            dot.edge(did, node_of[reader.id], style="dotted", color="#9ca3af")


LEGEND_NOTES = (
    (f'<FONT COLOR="{CRITICAL}">━━</FONT>', "đường găng (quyết định thời gian)"),
    ("╌╌", "viền đứt: bước có điều kiện; mũi tên đứt: trả lại"),
    ("◆", "người nộp phải đến trực tiếp"),
)


def _legend_entries(statuses: Mapping[str, str]) -> list[tuple[str, str]]:
    if statuses:
        return [(STATUS_COLOURS[s], STATUS_LABELS[s]) for s in STATUS_COLOURS]
    return [(KIND_COLOURS[k], KIND_LABELS[k]) for k in ("submit", "review", "approve", "sign", "pay", "issue", "task")]


def _legend_lines(statuses: Mapping[str, str]) -> list[Line]:
    texts = ["Chú giải"] + [text for _, text in _legend_entries(statuses)] + [text for _, text in LEGEND_NOTES]
    return [(t, 9, "") for t in texts]


def _legend(dot: graphviz.Digraph, statuses: Mapping[str, str], extra: Mapping[str, str]) -> None:
    rows = ['<TR><TD COLSPAN="2"><B>Chú giải</B></TD></TR>']
    for colour, words in _legend_entries(statuses):
        rows.append(f'<TR><TD BGCOLOR="{colour}" WIDTH="18"> </TD><TD ALIGN="LEFT">{dottext.cell(words)}</TD></TR>')
    for mark, words in LEGEND_NOTES:
        rows.append(f'<TR><TD>{mark}</TD><TD ALIGN="LEFT">{dottext.cell(words)}</TD></TR>')
    label = (
        "<" + '<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2" BGCOLOR="white">' + "".join(rows) + "</TABLE>>"
    )
    dot.node("legend", label, shape="plaintext", style="", id="legend", fontsize="9", **extra)


def write(graph: graphviz.Digraph, out: str | os.PathLike[str]) -> Path:
    """Render ``graph`` to ``out``; the suffix (.svg, .png, .pdf, .dot) picks the format.

    A graph :func:`diagram` laid out itself (engine ``neato``) is rendered
    with ``neato -n2``, which keeps the pinned positions as they are.

    Raises :class:`DiagramError` for another suffix, or when Graphviz is
    missing or fails.
    """
    path = Path(out)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DiagramError(f"{path}: write the diagram as .svg, .png, .pdf or .dot, not {path.suffix or 'no suffix'}")
    if fmt == "dot":
        path.write_text(graph.source, encoding="utf-8")
        return path
    try:
        data = graph.pipe(format=fmt, encoding=None, neato_no_op=2 if graph.engine == "neato" else None)
    except graphviz.ExecutableNotFound:
        raise DiagramError(f"Graphviz's '{graph.engine}' program is not installed (run bash scripts/setup)") from None
    except graphviz.CalledProcessError as exc:
        raise DiagramError(f"{graph.engine} failed: {exc.stderr.decode(errors='replace') if exc.stderr else exc}") from None
    path.write_bytes(data)
    return path
