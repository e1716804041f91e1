"""Diagrams: what the SVG says, and that text is really drawn."""

from __future__ import annotations

import itertools
import re
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from procedures import load_path, load_text
from procedures.diagram import COLLAPSE_OVER, DiagramError, diagram, lanes, write
from tests.conftest import definition_text, shared_path

SVG = "{http://www.w3.org/2000/svg}"
pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (bash scripts/setup)")


def svg_of(graph: object, tmp_path: Path) -> ET.Element:
    out = write(graph, tmp_path / "d.svg")  # type: ignore[arg-type]
    return ET.parse(out).getroot()


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if cls in (g.get("class") or "").split()]


def texts(element: ET.Element) -> str:
    return " ".join(t.text or "" for t in element.iter(f"{SVG}text"))


@pytest.fixture
def xuat_ngu():  # type: ignore[no-untyped-def]
    return load_path(shared_path("procedures", "xuat-ngu.v1.yaml"))


def test_every_step_is_a_node_with_its_name_and_id(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = svg_of(diagram(xuat_ngu), tmp_path)
    nodes = {g.get("id"): g for g in groups(root, "step")}
    assert set(nodes) == {f"step-{s.id}" for s in xuat_ngu.steps}
    for step in xuat_ngu.steps:
        assert step.name.replace(",", "") in texts(nodes[f"step-{step.id}"]).replace(",", "")


def test_one_lane_per_role_applicant_first(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = svg_of(diagram(xuat_ngu), tmp_path)
    lane_ids = [g.get("id") for g in groups(root, "lane")]
    assert lane_ids == [f"lane-{r}" for r in lanes(xuat_ngu)]
    assert lanes(xuat_ngu)[0] == "quan_nhan"
    assert len(lane_ids) == len({s.role for s in xuat_ngu.steps})


def test_critical_path_is_marked(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = svg_of(diagram(xuat_ngu), tmp_path)
    path, hours = xuat_ngu.critical_path()
    assert hours / 8 == pytest.approx(22.5)
    critical_nodes = {g.get("id") for g in groups(root, "critical") if "node" in (g.get("class") or "")}
    assert critical_nodes == {f"step-{s}" for s in path}
    critical_edges = [g for g in groups(root, "critical") if "edge" in (g.get("class") or "")]
    assert len(critical_edges) == len(path) + 1  # start -> ... -> end


def test_returns_are_dashed_and_named(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = svg_of(diagram(xuat_ngu), tmp_path)
    returns = groups(root, "return")
    assert len(returns) == 1
    assert "tra_lai" in texts(returns[0])
    paths = list(returns[0].iter(f"{SVG}path"))
    assert paths and all(p.get("stroke-dasharray") for p in paths)


def test_conditional_step_is_dashed_and_says_when(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = svg_of(diagram(xuat_ngu), tmp_path)
    node = next(g for g in groups(root, "step") if g.get("id") == "step-chot_so_bhxh")
    assert "Đã có sổ BHXH = có" in texts(node)  # the field by its name, the value in words
    assert "co_so_bhxh" not in texts(node)
    assert any(p.get("stroke-dasharray") for p in node.iter(f"{SVG}path"))


def test_title_and_rejected_end(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = svg_of(diagram(xuat_ngu), tmp_path)
    everything = texts(root)
    assert "QK-CS-01 v1" in everything and "22,5 ngày" in everything and "514.000 đ" in everything
    assert "Từ chối" in everything and "Bắt đầu" in everything and "Kết thúc" in everything


def test_documents_are_drawn_on_request(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = svg_of(diagram(xuat_ngu, documents=True), tmp_path)
    docs = {g.get("id") for g in groups(root, "document")}
    assert docs == {f"doc-{d.id}" for d in xuat_ngu.documents}
    assert not groups(svg_of(diagram(xuat_ngu), tmp_path), "document")


def test_status_colouring(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    statuses = {"nop_don": "completed", "lap_danh_sach": "overdue", "kham_suc_khoe": "waiting"}
    root = svg_of(diagram(xuat_ngu, statuses=statuses), tmp_path)
    node = next(g for g in groups(root, "step") if g.get("id") == "step-lap_danh_sach")
    assert "status-overdue" in (node.get("class") or "")
    fills = {p.get("fill") for p in node.iter(f"{SVG}path")}
    assert "#fca5a5" in fills
    with pytest.raises(DiagramError):
        diagram(xuat_ngu, statuses={"ghost": "active"})


def test_large_procedures_collapse_runs_of_one_role(tmp_path: Path) -> None:
    steps = "".join(
        f"  - {{id: s{i}, name: Bước {i}, role: {'cb' if (i // 10) % 2 else 'ld'}, duration: 1h}}\n"
        for i in range(COLLAPSE_OVER + 10)
    )
    defn = load_text(
        definition_text(
            "roles: [{id: cb, name: Cán bộ, kind: office}, {id: ld, name: Lãnh đạo, kind: office}]\n"
            "documents: []\nsteps:\n" + steps
        )
    )
    collapsed = diagram(defn)
    assert "group-s0" in collapsed.source and "step-s5" not in collapsed.source
    assert "10 bước" in collapsed.source
    full = diagram(defn, full=True)
    assert "step-s5" in full.source and "group-s0" not in full.source


def test_unknown_format_is_refused(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DiagramError):
        write(diagram(xuat_ngu), tmp_path / "d.gif")
    dot_file = write(diagram(xuat_ngu), tmp_path / "d.dot")
    assert 'fontname="DejaVu Sans"' in dot_file.read_text(encoding="utf-8")


def test_dot_resolves_the_font_so_text_is_drawn(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Without the font Graphviz draws empty boxes silently: check what it
    resolved DejaVu Sans to, rendering as ``write`` does, and that the PNG it
    draws is a real picture."""
    dot_file = write(diagram(xuat_ngu), tmp_path / "d.dot")
    proc = subprocess.run(
        ["neato", "-n2", "-v", "-Tpng", str(dot_file), "-o", str(tmp_path / "d.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    resolved = re.findall(r'fontname: "DejaVu Sans" resolved to: (.*)', proc.stderr)
    assert resolved and all("DejaVu" in r for r in resolved), proc.stderr[-2000:]
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf"])
def test_every_format_renders(xuat_ngu, tmp_path: Path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    out = write(diagram(xuat_ngu, documents=True), tmp_path / f"d{suffix}")
    assert out.stat().st_size > 1000


def test_compare_diagram_colours_what_changed(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from procedures import simplify
    from procedures.compare import compare
    from procedures.compare_view import compare_diagram, compare_page

    after = simplify(xuat_ngu).after
    root = svg_of(compare_diagram(xuat_ngu, after), tmp_path)
    by_id = {g.get("id"): (g.get("class") or "").split() for g in groups(root, "step")}
    assert "merged" in by_id["step-kiem_tra_lai"] and "removed" in by_id["step-kiem_tra_lai"]
    assert "changed" in by_id["step-nop_don"]
    assert "unchanged" in by_id["step-lap_danh_sach"]
    merged = next(g for g in groups(root, "merged"))
    assert "gộp vào" in texts(merged) and "thẩm định" in texts(merged)
    fills = {p.get("fill") for p in merged.iter(f"{SVG}path")}
    assert "#fee2e2" in fills
    edges = compare(xuat_ngu, after)["edges"]
    assert len(groups(root, "edge-removed")) == len(edges["removed"]) > 0
    assert len(groups(root, "edge-added")) == len(edges["added"]) > 0
    removed_edge = groups(root, "edge-removed")[0]
    assert all(p.get("stroke-dasharray") for p in removed_edge.iter(f"{SVG}path"))
    page = compare_page(xuat_ngu, after, write(compare_diagram(xuat_ngu, after), tmp_path / "c.svg").read_text(encoding="utf-8"))
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "http" not in page.split("<svg", 1)[0]
    assert "514.000" in page and "350.000" in page and "-31,9%" in page
    assert "once-only" in page


def test_alternating_roles_are_grouped_in_stretches() -> None:
    from procedures.diagram import groups as step_groups

    n = COLLAPSE_OVER * 2 + 7
    steps = "".join(f"  - {{id: s{i}, name: Bước {i}, role: {'cb' if i % 2 else 'ld'}}}\n" for i in range(n))
    defn = load_text(
        definition_text(
            "roles: [{id: cb, name: Cán bộ, kind: office}, {id: ld, name: Lãnh đạo, kind: office}]\ndocuments: []\nsteps:\n"
            + steps
        )
    )
    found = step_groups(defn, COLLAPSE_OVER)
    assert len(found) <= COLLAPSE_OVER
    assert [i for g in found for i in g] == list(range(n))
    source = diagram(defn).source
    assert "group-s0" in source and "vai trò khác" in source


def png_rows(data: bytes, rows: int) -> tuple[int, list[bytes]]:
    """The width and the first ``rows`` rows of an 8-bit RGB or RGBA PNG, as RGB bytes.

    Enough of PNG for the test below (no new dependency): the rows are
    inflated and unfiltered only as far as asked, which keeps it quick.
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks, header = 8, [], b""
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IHDR":
            header = data[at + 8 : at + 8 + length]
        elif kind == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    rows = min(rows, height)
    raw = zlib.decompressobj().decompress(b"".join(chunks), rows * (stride + 1))
    out: list[bytes] = []
    prev = bytearray(stride)
    for r in range(rows):
        kind, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                best = min((abs(p - left), 0, left), (abs(p - up), 1, up), (abs(p - corner), 2, corner))[2]
                line[i] = (line[i] + best) & 255
        prev = line
        out.append(bytes(v for j in range(0, stride, bpp) for v in line[j : j + 3]))
    return width, out


def text_boxes(root: ET.Element, element: ET.Element) -> list[tuple[float, float, float, float]]:
    """The boxes (left, top, right, bottom, in the SVG's points) of ``element``'s
    text lines, from their anchor, size and number of characters."""
    transform = next(root.iter(f"{SVG}g")).get("transform") or ""
    tx, ty = (float(v) for v in re.findall(r"translate\(([-\d.]+) ([-\d.]+)\)", transform)[0])
    boxes = []
    for text in element.findall(f"{SVG}text"):
        size, x, y = float(text.get("font-size", "14")), float(text.get("x", "0")), float(text.get("y", "0"))
        width = len(text.text or "") * size * 0.5
        left = x - width / 2 if text.get("text-anchor") == "middle" else x
        boxes.append((left + tx, y + ty - size * 0.8, left + tx + width, y + ty + size * 0.2))
    return boxes


def dark_share(width: int, rows: list[bytes], scale: float, box: tuple[float, float, float, float]) -> float:
    """The share of pixels in ``box`` darker than mid-grey."""
    left, top, right, bottom = (round(v * scale) for v in box)
    dark = total = 0
    for row in rows[max(top, 0) : bottom]:
        for x in range(max(left, 0), min(right, width)):
            total += 1
            dark += sum(row[3 * x : 3 * x + 3]) < 3 * 128
    return dark / max(total, 1)


def stroke_share(width: int, rows: list[bytes], scale: float, box: tuple[float, float, float, float], least: int) -> float:
    """The share of ``box``'s dark pixels that lie in horizontal runs of at least ``least`` pixels."""
    left, top, right, bottom = (round(v * scale) for v in box)
    dark = in_runs = 0
    for row in rows[max(top, 0) : bottom]:
        run = 0
        for x in range(max(left, 0), min(right, width) + 1):
            if x < min(right, width) and sum(row[3 * x : 3 * x + 3]) < 3 * 128:
                run += 1
                dark += 1
                continue
            in_runs += run if run >= least else 0
            run = 0
    return in_runs / max(dark, 1)


def test_png_has_the_title_and_lane_names_in_letters(xuat_ngu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Text really is drawn: where the SVG of the same graph puts the title and
    the first lane's name, the PNG is dark for a good share of the pixels
    (ink), while a box of the same size beside them is blank; and the ink of
    the lane's name is letters, not the empty boxes Pango draws when no font
    is found at all: the tops and bottoms of those boxes are horizontal
    strokes of a third of an em and more (measured: over a quarter of the
    ink without fonts, under a twentieth with DejaVu Sans)."""
    graph = diagram(xuat_ngu)
    root = svg_of(graph, tmp_path)
    width, rows = png_rows(write(graph, tmp_path / "d.png").read_bytes(), 0)
    scale = width / float((root.get("width") or "0").removesuffix("pt"))
    title = text_boxes(root, next(root.iter(f"{SVG}g")))
    lane = text_boxes(root, next(g for g in groups(root, "lane") if g.get("id") == f"lane-{lanes(xuat_ngu)[0]}"))
    assert len(title) == 2 and len(lane) == 1
    width, rows = png_rows((tmp_path / "d.png").read_bytes(), round(lane[0][3] * scale) + 2)
    for box in [*title, *lane]:
        assert dark_share(width, rows, scale, box) > 0.08, box
    left, top, right, bottom = title[0]
    blank = (2.0, top, 2.0 + min(right - left, title[0][0] - 4), bottom)
    assert dark_share(width, rows, scale, blank) < 0.01
    lane_font = 12
    assert stroke_share(width, rows, scale, lane[0], round(lane_font * scale * 0.3)) < 0.15


def test_a_large_procedure_renders_quickly_in_bands(tmp_path: Path) -> None:
    """1,500 steps whose roles alternate, each waiting for two earlier ones:
    dot took minutes; the pinned layout renders in seconds, grouped and in
    full, with lanes as bands that hold their nodes."""
    roles = ["cd", "cb", "ld", "ht"]
    steps = "".join(
        f"  - {{id: s{i}, name: Bước {i}, role: {roles[i % 4]}, duration: 1h"
        + (f", after: [s{i - 1}, s{max(i - 7, 0)}]" if i > 7 else (f", after: [s{i - 1}]" if i else ""))
        + (f", outcomes: {{ok: proceed, sai: {{return: s{i - 1}}}}}" if i % 97 == 5 else "")
        + "}\n"
        for i in range(1500)
    )
    defn = load_text(
        definition_text(
            "roles: [{id: cd, name: Công dân, kind: applicant}, {id: cb, name: Cán bộ, kind: office},"
            " {id: ld, name: Lãnh đạo, kind: office}, {id: ht, name: Hệ thống, kind: system}]\n"
            "documents: []\nsteps:\n" + steps
        )
    )
    for full in (False, True):
        started = time.perf_counter()
        root = svg_of(diagram(defn, full=full), tmp_path)
        assert time.perf_counter() - started < 30
        bands = {g.get("id"): _y_range(g) for g in groups(root, "lane")}
        assert list(bands) == ["lane-cd", "lane-cb", "lane-ld", "lane-ht"]
        ranges = list(bands.values())
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))  # top to bottom, apart
        nodes = groups(root, "group" if not full else "step")
        assert len(nodes) == 1500 if full else 0 < len(nodes) <= COLLAPSE_OVER
        for node in nodes:
            top, bottom = _y_range(node)
            assert any(lo <= top and bottom <= hi for lo, hi in ranges), node.get("id")
        assert groups(root, "critical") and groups(root, "return") and texts(root).count("Chú giải") == 1
        assert "T-1 v1" in texts(root)


def _y_range(element: ET.Element) -> tuple[float, float]:
    ys = [float(v) for p in element.iter() for v in re.findall(r"[-\d.]+,([-\d.]+)", p.get("points") or p.get("d") or "")]
    return min(ys), max(ys)
