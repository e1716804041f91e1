"""Benchmark of diagram rendering at 15, 150 and 1,500 steps.

For generated procedures (the generator of ``benchmarks/analysis.py``) it
times building the Graphviz source (:func:`procedures.diagram.diagram`) and
rendering it to SVG with ``dot``, for the default drawing (runs of one role
grouped beyond 150 steps) and, up to 1,500 steps, the full drawing; as the
baseline, in the same run, ``dot`` rendering a plain chain of as many nodes
with no labels, lanes or styling. Each figure is printed in seconds and as a
ratio to that baseline, with the size of the SVG.

Run it from the project root::

    .venv/bin/python benchmarks/diagrams.py
    .venv/bin/python benchmarks/diagrams.py --sizes 15,150

A benchmark, not a test: it asserts nothing about timings (best of 3 runs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import graphviz

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis import generate

from procedures import load_text
from procedures.diagram import diagram, write

DEFAULT_SIZES = (15, 150, 1500)


def best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def chain(n: int) -> graphviz.Digraph:
    g = graphviz.Digraph()
    g.attr("graph", rankdir="LR")
    for i in range(1, n):
        g.edge(f"n{i - 1}", f"n{i}")
    return g


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time diagram rendering at several sizes.")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"graphviz {'.'.join(map(str, graphviz.version()))}, best of {args.runs}")
    header = f"{'steps':>6}  {'drawing':<8}  {'nodes':>6}  {'build s':>8}  {'dot→svg s':>9}  {'baseline s':>10}  {'ratio':>6}  {'svg KiB':>8}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "d.svg"
        for n in sizes:
            defn = load_text(generate(n), f"generated-{n}")
            baseline = best_of(args.runs, lambda n=n: chain(n).pipe(format="svg"))
            for label, full in (("default", False), ("full", True)):
                if full and n <= 150:
                    continue
                build = best_of(args.runs, lambda defn=defn, full=full: diagram(defn, full=full))
                graph = diagram(defn, full=full)
                render = best_of(args.runs, lambda graph=graph: write(graph, out))
                nodes = graph.source.count("id=\"step-") + graph.source.count("id=\"group-")
                print(f"{n:>6}  {label:<8}  {nodes:>6}  {build:>8.3f}  {render:>9.3f}  {baseline:>10.3f}  "
                      f"{(build + render) / baseline:>6.1f}  {out.stat().st_size / 1024:>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
