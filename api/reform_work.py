"""The reform side's heavy work, as pure functions of a version's text and
the served price list: checking an upload, measuring (metrics and
findings), simplifying, drawing.

They take and give plain, picklable values, so that :class:`api.offload.Offload`
can run them in a child process for a big definition; the service keeps
what they give per version (:class:`api.services.Services`), and pages and
routes render it per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from procedures import Definition, load_bytes, load_text
from procedures.catalog import priced
from procedures.catalog_file import PriceList
from procedures.compare import compare, time_limit_text
from procedures.compare_view import compare_diagram
from procedures.diagram import diagram
from procedures.findings import Finding, find_all
from procedures.labels import number
from procedures.messages import t
from procedures.metrics import Metrics, metrics
from procedures.simplify import next_version_text, simplify

from .offload import MAX_STEPS, LimitExceeded
from .schemas import ProcedureDetail
from .svg import render_svg


@dataclass(frozen=True, slots=True)
class Header:
    """What pages and the store need of a version without reading it again."""

    code: str
    version: int
    name: str
    based_on: int | None
    steps: int

    @classmethod
    def of(cls, defn: Definition) -> Header:
        return cls(defn.code, defn.version, defn.name, defn.based_on, len(defn.steps))


@dataclass(frozen=True, slots=True)
class Measured:
    """A version's metrics and findings, as data."""

    header: Header
    metrics: Metrics
    findings: tuple[Finding, ...]

    @property
    def analysis(self) -> dict[str, Any]:
        """The ``analyze --json`` object."""
        return {
            "procedure": {"code": self.header.code, "version": self.header.version},
            "metrics": self.metrics,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class Simplified:
    """What simplifying a version gave: the new version's header and text
    (None when nothing applies), and the ``simplify --json`` object."""

    after: Header | None
    text: str | None
    report: dict[str, Any]
    applied: list[tuple[str, str]]
    """(rule, message) of each fix applied"""


def _within(defn: Definition, max_steps: int) -> Definition:
    if len(defn.steps) > max_steps:
        raise LimitExceeded(
            "steps",
            max_steps,
            len(defn.steps),
            t(
                "the definition has {steps} steps, over the service's limit of {limit} steps (limit: steps)",
                steps=number(len(defn.steps)),
                limit=number(max_steps),
            ),
        )
    return defn


def checked_upload(raw: bytes, source: str, max_steps: int = MAX_STEPS) -> Header:
    """An uploaded definition checked (format and the step limit).

    Raises:
        DefinitionError, ReadError: not a valid definition.
        LimitExceeded: more than ``max_steps`` steps.
    """
    return Header.of(_within(load_bytes(raw, source=source), max_steps))


def _read(body: str, source: str, prices: PriceList | None) -> Definition:
    return priced(load_text(body, source=source), prices)


def measured(body: str, source: str, prices: PriceList | None) -> Measured:
    defn = _read(body, source, prices)
    return Measured(Header.of(defn), metrics(defn), tuple(find_all(defn)))


def drawn(body: str, source: str, prices: PriceList | None, inline: bool) -> str:
    """The version's swimlane diagram: as safe SVG to put in a page
    (``inline``), or as the SVG file Graphviz writes."""
    graph = diagram(_read(body, source, prices))
    return render_svg(graph) if inline else svg_file(graph)


def svg_file(graph: Any) -> str:
    """A drawing as an SVG file: a graph :func:`diagram` laid out itself
    (engine ``neato``) is drawn with ``neato -n2``, which keeps its
    positions; plain ``neato`` would lay it out again, far too large and slowly."""
    return graph.pipe(format="svg", encoding="utf-8", neato_no_op=2 if graph.engine == "neato" else None)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Compared:
    """Two versions compared: the ``compare --json`` object and what the
    page says of it in words, by name."""

    before: Header
    after: Header
    result: dict[str, Any]
    removed: list[str]
    added: list[str]
    changed: list[tuple[str, list[str]]]
    """(step name, the keys that differ)"""
    time_limit: str
    svg: str
    """both versions in one picture, for a page (``inline``) or as a file"""


def compared(
    before_body: str, before_source: str, after_body: str, after_source: str, prices: PriceList | None, inline: bool
) -> Compared:
    before, after = _read(before_body, before_source, prices), _read(after_body, after_source, prices)
    result = compare(before, after)
    steps = result["steps"]
    graph = compare_diagram(before, after)
    return Compared(
        Header.of(before),
        Header.of(after),
        result,
        [before.step(s).name for s in steps["removed"]],
        [after.step(s).name for s in steps["added"]],
        [(after.step(c["id"]).name, list(c["fields"])) for c in steps["changed"]],
        time_limit_text(result["time_limit"], before, after),
        render_svg(graph) if inline else svg_file(graph),
    )


def detail_json(body: str, source: str, prices: PriceList | None, status: str) -> str:
    """``GET /api/procedures/CODE/VERSION``'s answer, as JSON text: the
    definition's data, its status and its metrics under the served prices."""
    defn = _read(body, source, prices)
    detail = ProcedureDetail(
        code=defn.code,
        version=defn.version,
        name=defn.name,
        status=status,  # type: ignore[arg-type]
        definition=dict(defn.data),
        metrics=dict(metrics(defn)),
    )
    return detail.model_dump_json()


def simplified(body: str, source: str) -> Simplified:
    """The version simplified as written (the stored text's own prices; the
    new text is written like the old one)."""
    result = simplify(load_text(body, source=source))
    applied = [(f.rule, f.message) for f in result.applied]
    if not result.changed:
        return Simplified(None, None, result.report(), applied)
    after = result.after
    text = next_version_text(result, body, source=f"{after.code}.v{after.version}")
    return Simplified(Header.of(after), text, result.report(), applied)
