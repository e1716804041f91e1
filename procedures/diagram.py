"""Drawing a procedure: swimlanes, the critical path, returns and rejections.

:func:`diagram` builds a :class:`graphviz.Digraph` of one definition:

* one lane (cluster) per role: the applicant's first, then office lanes in
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

Text is drawn with DejaVu Sans, named explicitly: without an installed font
Graphviz draws empty boxes without a word of warning.
"""

from __future__ import annotations

import html
import itertools
import os
from collections.abc import Mapping
from pathlib import Path

import graphviz
import networkx as nx

from .conditions import describe
from .durations import format_hours
from .errors import TinhgonError
from .labels import money, number
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


def _step_label(step: Step, status: str | None) -> str:
    rows = [f"<TR><TD><B>{html.escape(step.name)}</B></TD></TR>"]
    facts = [KIND_LABELS.get(step.kind, step.kind)]
    if step.duration:
        facts.append(format_hours(step.duration))
    if step.fee:
        facts.append(f"phí {money(step.fee)}")
    if step.visit:
        facts.append("◆ đến trực tiếp")
    rows.append(f'<TR><TD><FONT POINT-SIZE="9">{html.escape(" · ".join(facts))}</FONT></TD></TR>')
    if step.when is not None:
        rows.append(f'<TR><TD><FONT POINT-SIZE="9"><I>chỉ khi {html.escape(describe(step.when))}</I></FONT></TD></TR>')
    if status is not None:
        rows.append(f'<TR><TD><FONT POINT-SIZE="9">[{html.escape(STATUS_LABELS.get(status, status))}]</FONT></TD></TR>')
    return "<" + '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">' + "".join(rows) + "</TABLE>>"


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


def diagram(
    defn: Definition,
    *,
    documents: bool = False,
    statuses: Mapping[str, str] | None = None,
    collapse_over: int = COLLAPSE_OVER,
    full: bool = False,
) -> graphviz.Digraph:
    """The diagram of ``defn`` (see the module's description)."""
    statuses = statuses or {}
    unknown = set(statuses) - set(defn.index)
    if unknown:
        raise DiagramError(f"statuses name unknown steps: {', '.join(sorted(unknown))}")
    m = metrics(defn)
    path, _ = defn.critical_path()
    critical_nodes = set(path)
    critical_edges = set(itertools.pairwise(path))

    dot = graphviz.Digraph(name=defn.code)
    title = (
        f"{defn.code} v{defn.version} — {defn.name}\n"
        f"Thời gian giải quyết: {number(m['lead_time_days'])} ngày làm việc · "
        f"Chi phí tuân thủ: {money(m['compliance_cost'])}/hồ sơ"
    )
    dot.attr(
        "graph",
        rankdir="LR",
        fontname=FONT,
        label=title,
        labelloc="t",
        fontsize="16",
        newrank="true",
        nodesep="0.35",
        ranksep="0.5",
        compound="true",
    )
    dot.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled", margin="0.12,0.06")
    dot.attr("edge", fontname=FONT, fontsize="9")

    collapsed = not full and len(defn.steps) > collapse_over
    step_groups = groups(defn, collapse_over) if collapsed else []
    node_of: dict[str, str] = {}
    role_name = {r.id: r.name for r in defn.roles}
    role_kind = {r.id: r.kind for r in defn.roles}

    dot.node("start", "Bắt đầu", shape="circle", style="filled", fillcolor="#111827", fontcolor="white", width="0.6")
    dot.node("end", "Kết thúc", shape="doublecircle", style="filled", fillcolor="#111827", fontcolor="white", width="0.6")

    for lane_index, role in enumerate(lanes(defn)):
        with dot.subgraph(name=f"cluster_lane_{lane_index}") as lane:
            lane.attr(
                label=role_name[role],
                style="filled",
                fillcolor=LANE_COLOURS[role_kind[role]],
                color="#9ca3af",
                fontsize="12",
                labeljust="l",
                id=f"lane-{role}",
                **{"class": "lane"},
            )
            if collapsed:
                for group in step_groups:
                    first = defn.steps[group[0]]
                    if _group_role(defn, group) != role:
                        continue
                    gid = f"group-{first.id}"
                    for i in group:
                        node_of[defn.steps[i].id] = gid
                    if len(group) == 1:
                        node_of[first.id] = f"step-{first.id}"
                        _draw_step(lane, first, statuses.get(first.id), first.id in critical_nodes)
                        continue
                    hours = sum(defn.steps[i].duration for i in group)
                    crit = any(defn.steps[i].id in critical_nodes for i in group)
                    others = len({defn.steps[i].role for i in group}) - 1
                    label = f"{len(group)} bước: {first.name} …\n{format_hours(hours)}" + (
                        f"\n(cùng {others} vai trò khác)" if others else ""
                    )
                    lane.node(
                        gid,
                        label,
                        id=gid,
                        fillcolor="#f3f4f6",
                        shape="box3d",
                        style="filled",
                        color=CRITICAL if crit else "black",
                        penwidth="3" if crit else "1",
                        **({"class": "critical group"} if crit else {"class": "group"}),
                    )
            else:
                for step in defn.steps:
                    if step.role == role:
                        node_of[step.id] = f"step-{step.id}"
                        _draw_step(lane, step, statuses.get(step.id), step.id in critical_nodes)

    drawn: set[tuple[str, str]] = set()

    def edge(a: str, b: str, **attrs: str) -> None:
        if (a, b) in drawn or a == b:
            return
        drawn.add((a, b))
        dot.edge(a, b, **attrs)

    implied = _implied_group_edges(defn, node_of) if collapsed else set()
    has_followers = {a for step in defn.steps for a in step.after}
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
        if step.id not in has_followers:
            crit = bool(path) and step.id == path[-1]
            edge(target, "end", **_crit_attrs(crit))
    rejecting = [s for s in defn.steps if s.can_reject]
    if rejecting:
        dot.node("rejected", "Từ chối", shape="octagon", style="filled", fillcolor="#fee2e2", color="#b91c1c")
        for step in rejecting:
            names = ", ".join(n for n, e in step.outcomes if e.kind == "reject")
            edge(
                node_of[step.id],
                "rejected",
                label=names,
                color="#b91c1c",
                fontcolor="#b91c1c",
                style="dotted",
                constraint="false",
            )
    for step in defn.steps:
        for name, target in step.returns:
            a, b = node_of[step.id], node_of[target]
            if (a, b) in drawn or a == b:
                continue
            drawn.add((a, b))
            dot.edge(
                a,
                b,
                label=f"↩ {name}",
                style="dashed",
                color="#6b7280",
                fontcolor="#374151",
                constraint="false",
                **{"class": "return"},
            )
    if documents:
        _draw_documents(dot, defn, node_of)
    _legend(dot, statuses)
    return dot


def _implied_group_edges(defn: Definition, node_of: Mapping[str, str]) -> set[tuple[str, str]]:
    """Edges between group nodes that other group edges already imply: drawn,
    they would only add crossings (and cost dot minutes on large procedures)."""
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


def _draw_step(graph: graphviz.Digraph, step: Step, status: str | None, critical: bool) -> None:
    fill = STATUS_COLOURS.get(status, "#ffffff") if status else KIND_COLOURS.get(step.kind, "#ffffff")
    styles = ["rounded", "filled"]
    if step.when is not None:
        styles.append("dashed")
    attrs = {
        "id": f"step-{step.id}",
        "fillcolor": fill,
        "style": ",".join(styles),
        "color": CRITICAL if critical else "#374151",
        "penwidth": "3" if critical else "1",
        "tooltip": f"{step.id} ({step.kind})",
        "class": " ".join(
            c for c in ("step", f"kind-{step.kind}", f"status-{status}" if status else "", "critical" if critical else "") if c
        ),
    }
    if step.kind in ("approve", "sign"):
        attrs["shape"] = "box"
        attrs["peripheries"] = "2"
    graph.node(f"step-{step.id}", _step_label(step, status), **attrs)


def _draw_documents(dot: graphviz.Digraph, defn: Definition, node_of: Mapping[str, str]) -> None:
    applicant_lane = "cluster_lane_0" if defn.applicant_role and any(defn.is_applicant_step(s) for s in defn.steps) else None
    readers = defn.reader_steps
    for doc in defn.documents:
        did = f"doc-{doc.id}"
        if doc.source == "registry":
            label = f"{doc.name}\n(CSDL {doc.registry})" if doc.registry else f"{doc.name}\n(khai thác từ CSDL)"
            attrs = {"shape": "cylinder", "fillcolor": "#ecfccb", "style": "filled"}
        elif doc.source == "applicant":
            label = doc.name + (f"\n(đã có trong CSDL {doc.registry})" if doc.registry else "")
            attrs = {"shape": "note", "fillcolor": "#fff7ed", "style": "filled"}
        else:
            label = doc.name + ("\n★ kết quả" if doc.deliverable else "")
            attrs = {"shape": "note", "fillcolor": "#f0fdf4" if doc.deliverable else "#ffffff", "style": "filled"}
        attrs.update({"fontsize": "9", "id": did, "class": f"document source-{doc.source or 'produced'}"})
        if doc.source == "applicant" and applicant_lane is not None:
            with dot.subgraph(name=applicant_lane) as lane:
                lane.node(did, label, **attrs)
        else:
            dot.node(did, label, **attrs)
        producer = defn.producer.get(doc.id)
        if producer is not None:
            dot.edge(node_of[producer], did, style="dotted", arrowhead="none", color="#9ca3af")
        for reader in readers.get(doc.id, ()):
            dot.edge(did, node_of[reader.id], style="dotted", color="#9ca3af", constraint="false" if producer else "true")


def _legend(dot: graphviz.Digraph, statuses: Mapping[str, str]) -> None:
    rows = ['<TR><TD COLSPAN="2"><B>Chú giải</B></TD></TR>']
    entries = (
        [(STATUS_COLOURS[s], STATUS_LABELS[s]) for s in STATUS_COLOURS]
        if statuses
        else [(KIND_COLOURS[k], KIND_LABELS[k]) for k in ("submit", "review", "approve", "sign", "pay", "issue", "task")]
    )
    for colour, text in entries:
        rows.append(f'<TR><TD BGCOLOR="{colour}" WIDTH="18"> </TD><TD ALIGN="LEFT">{html.escape(text)}</TD></TR>')
    rows.append(f'<TR><TD><FONT COLOR="{CRITICAL}">━━</FONT></TD><TD ALIGN="LEFT">đường găng (quyết định thời gian)</TD></TR>')
    rows.append('<TR><TD>╌╌</TD><TD ALIGN="LEFT">viền đứt: bước có điều kiện; mũi tên đứt: trả lại</TD></TR>')
    rows.append('<TR><TD>◆</TD><TD ALIGN="LEFT">người nộp phải đến trực tiếp</TD></TR>')
    label = (
        "<" + '<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2" BGCOLOR="white">' + "".join(rows) + "</TABLE>>"
    )
    dot.node("legend", label, shape="plaintext", style="", id="legend", fontsize="9")


def write(graph: graphviz.Digraph, out: str | os.PathLike[str]) -> Path:
    """Render ``graph`` to ``out``; the suffix (.svg, .png, .pdf, .dot) picks the format."""
    path = Path(out)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DiagramError(f"{path}: write the diagram as .svg, .png, .pdf or .dot, not {path.suffix or 'no suffix'}")
    if fmt == "dot":
        path.write_text(graph.source, encoding="utf-8")
        return path
    try:
        data = graph.pipe(format=fmt, encoding=None)
    except graphviz.ExecutableNotFound:
        raise DiagramError("Graphviz's 'dot' program is not installed (run bash scripts/setup)") from None
    except graphviz.CalledProcessError as exc:
        raise DiagramError(f"dot failed: {exc.stderr.decode(errors='replace') if exc.stderr else exc}") from None
    path.write_bytes(data)
    return path
