"""Diagrams inlined into pages, made safe to inline.

Graphviz writes the SVG from labels that :mod:`procedures.diagram` escapes,
so a step named ``<script>`` comes out as text. The page does not rely on
that alone: the SVG is parsed and written out again keeping only drawing
elements and presentation attributes, so nothing a definition says can
become a script, an event handler or a link off the page.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from typing import Any

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ELEMENTS = frozenset(
    {
        "svg",
        "g",
        "title",
        "desc",
        "path",
        "polygon",
        "polyline",
        "ellipse",
        "circle",
        "rect",
        "line",
        "text",
        "tspan",
        "a",
        "defs",
        "linearGradient",
        "radialGradient",
        "stop",
        "clipPath",
    }
)
"""What a Graphviz drawing uses; anything else (script, foreignObject, image...) is dropped with its content."""


def _local(name: str) -> tuple[str, str]:
    """``{ns}local`` as ``(ns, local)``."""
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


def _attributes(element: ET.Element) -> list[tuple[str, str]]:
    out = []
    for name, value in element.attrib.items():
        ns, local = _local(name)
        if ns not in ("", XLINK_NS) or local.lower().startswith("on") or (local == "style" and "url(" in value):
            continue
        if local == "href" and not value.startswith("#"):
            continue
        out.append((f"xlink:{local}" if ns == XLINK_NS else local, value))
    return out


def _write(element: ET.Element, out: list[str], root: bool = False) -> None:
    ns, tag = _local(element.tag)
    if ns != SVG_NS or tag not in ELEMENTS:
        return
    attrs = _attributes(element)
    if root:
        # 1pt drawn as 1px: three quarters of print size, still readable when zoomed in
        attrs = [
            (k, v.replace("pt", "px") if k in ("width", "height") else v) for k, v in attrs if k not in ("xmlns", "xmlns:xlink")
        ]
        attrs += [("xmlns", SVG_NS), ("xmlns:xlink", XLINK_NS)]
    out.append("<" + tag + "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs) + ">")
    if element.text:
        out.append(html.escape(element.text, quote=False))
    for child in element:
        _write(child, out)
        if child.tail:
            out.append(html.escape(child.tail, quote=False))
    out.append(f"</{tag}>")


def safe_svg(svg: str) -> str:
    """``svg`` (a Graphviz SVG document) as markup safe to put inside a page.

    >>> safe_svg('<svg xmlns="http://www.w3.org/2000/svg" onload="x()"><script>alert(1)</script><text>&lt;b&gt;</text></svg>')
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><text>&lt;b&gt;</text></svg>'
    """
    root = ET.fromstring(svg.encode("utf-8"))
    out: list[str] = []
    _write(root, out, root=True)
    return "".join(out)


def render_svg(graph: Any) -> str:
    """A :mod:`procedures` diagram (a ``graphviz`` graph) as safe inline SVG.

    A graph :func:`procedures.diagram.diagram` laid out itself (engine
    ``neato``, positions pinned in points) is drawn with ``neato -n2``, as
    :func:`procedures.diagram.write` does; without ``-n2`` neato reads the
    points as inches and the picture comes out 72 times too large.
    """
    no_op = 2 if graph.engine == "neato" else None
    return safe_svg(graph.pipe(format="svg", encoding="utf-8", neato_no_op=no_op, quiet=True))
