"""Benchmark of diagram rendering at 15, 150 and 1,500 steps.

For generated procedures (the generator of ``benchmarks/analysis.py``) it
times building the Graphviz source (:func:`procedures.diagram.diagram`, which
computes the layout) and rendering it to SVG the way
:func:`procedures.diagram.write` does (``neato -n2``: positions are pinned),
for the default drawing (runs of one role grouped beyond 150 steps) and for
``--full``; as the baseline, in the same run, ``dot`` rendering a plain chain
of as many nodes with no labels, lanes or styling. Each figure is printed in
seconds, with build + render as a ratio to that baseline, and the size of
the SVG.

Run it from the project root::

    .venv/bin/python benchmarks/diagrams.py
    .venv/bin/python benchmarks/diagrams.py --sizes 15,150

A benchmark, not a test: it asserts nothing about timings (best of 3 runs).
A render that takes longer than ``--timeout`` seconds (default 120) is
stopped and reported as such.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import graphviz

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis import generate

from procedures import load_text
from procedures.diagram import diagram

DEFAULT_SIZES = (15, 150, 1500)


def best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def render(graph: graphviz.Digraph, out: Path, timeout: float) -> float | None:
    """Seconds Graphviz takes to write SVG as ``write`` runs it, or None past ``timeout``."""
    source = out.with_suffix(".dot")
    source.write_text(graph.source, encoding="utf-8")
    command = [graph.engine, *(["-n2"] if graph.engine == "neato" else []), "-Tsvg", str(source), "-o", str(out)]
    start = time.perf_counter()
    try:
        subprocess.run(command, check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - start


def chain(n: int) -> graphviz.Digraph:
    g = graphviz.Digraph()
    g.attr("graph", rankdir="LR")
    for i in range(1, n):
        g.edge(f"n{i - 1}", f"n{i}")
    return g


def _nodes(graph: graphviz.Digraph) -> int:
    source: str = graph.source
    return source.count('id="step-') + source.count('id="group-')


def _chain_svg(n: int) -> bytes:
    svg: bytes = chain(n).pipe(format="svg")
    return svg


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time diagram rendering at several sizes.")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one render may take")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"graphviz {'.'.join(map(str, graphviz.version()))}, best of {args.runs}")
    header = f"{'steps':>6}  {'drawing':<8}  {'nodes':>6}  {'build s':>8}  {'render s':>9}  {'baseline s':>10}  {'ratio':>6}  {'svg KiB':>8}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "d.svg"
        for n in sizes:
            defn = load_text(generate(n), f"generated-{n}")
            baseline = best_of(args.runs, functools.partial(_chain_svg, n))
            for label, full in (("default", False), ("full", True)):
                build = best_of(args.runs, functools.partial(diagram, defn, full=full))
                graph = diagram(defn, full=full)
                times: list[float] = []
                for _ in range(args.runs):
                    took = render(graph, out, args.timeout)
                    if took is None:
                        break
                    times.append(took)
                done = times
                if not done:
                    print(
                        f"{n:>6}  {label:<8}  {_nodes(graph):>6}  {build:>8.3f}  {'> ' + str(int(args.timeout)):>9}  "
                        f"{baseline:>10.3f}  {'—':>6}  {'—':>8}"
                    )
                    continue
                best = min(done)
                print(
                    f"{n:>6}  {label:<8}  {_nodes(graph):>6}  {build:>8.3f}  {best:>9.3f}  {baseline:>10.3f}  "
                    f"{(build + best) / baseline:>6.1f}  {out.stat().st_size / 1024:>8.0f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
