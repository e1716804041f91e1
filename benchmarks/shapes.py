"""Benchmark of the analysis on the shapes that once blew it up.

A 2,000-step chain of reviews by one official, each reading what all before
it read, had made ``tinhgon analyze`` take 41 s and 5.4 GB (every earlier
review qualified for every later one). Each shape here has ``--steps``
steps (10,000 by default):

* ``review chain``: reviews in one chain, one role, one document each reads;
* ``mixed chain``: the same with two roles taking turns (overlapping reviews);
* ``fan-out``: one review, then every other review waits for it alone;

and the baseline, measured in the same run: a ``plain chain`` of as many
task steps that read nothing. For each: findings (``find_all``) and
simplify, wall-clock time, and the ``tracemalloc`` peak of each in one extra
run, with the ratio to the plain chain's.

Run it from the project root::

    .venv/bin/python benchmarks/shapes.py
    .venv/bin/python benchmarks/shapes.py --steps 2000

This is a benchmark, not a test: it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence

import procedures
from procedures.model import Definition

HEAD = """\
format: tinhgon/1
code: HINH-1
name: Thủ tục đo hình dạng
version: 1
roles:
  - {id: dv, name: Đơn vị đề nghị, kind: applicant}
  - {id: cb, name: Cán bộ, kind: office}
  - {id: ld, name: Lãnh đạo, kind: office}
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: kq, name: Kết quả, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dv, inputs: [don]}
"""


def _text(steps: list[str]) -> str:
    return HEAD + "".join(steps)


def review_chain(n: int, roles: Sequence[str] = ("cb",)) -> str:
    lines = [
        f"  - {{id: x{i}, name: Xét {i}, role: {roles[i % len(roles)]}, kind: review, duration: 1h, inputs: [don]"
        + (", outputs: [kq]}\n" if i == n - 2 else "}\n")
        for i in range(n - 1)
    ]
    return _text(lines)


def fan_out(n: int) -> str:
    lines = ["  - {id: x0, name: Xét 0, role: cb, kind: review, duration: 1h, inputs: [don], outputs: [kq]}\n"]
    lines += [
        f"  - {{id: x{i}, name: Xét {i}, role: cb, kind: review, duration: 1h, inputs: [don], after: [x0]}}\n"
        for i in range(1, n - 1)
    ]
    return _text(lines)


def plain_chain(n: int) -> str:
    lines = [
        f"  - {{id: x{i}, name: Việc {i}, role: cb, duration: 1h" + (", outputs: [kq]}\n" if i == n - 2 else "}\n")
        for i in range(n - 1)
    ]
    return _text(lines)


def _timed(action: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _peak_mib(action: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def measure(defn: Definition) -> dict[str, float]:
    return {
        "findings s": _timed(lambda: procedures.find_all(defn)),
        "simplify s": _timed(lambda: procedures.simplify(defn)),
        "findings MiB": _peak_mib(lambda: procedures.find_all(defn)),
        "simplify MiB": _peak_mib(lambda: procedures.simplify(defn)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    n = parser.parse_args(argv).steps
    shapes = {
        "plain chain": plain_chain(n),
        "review chain": review_chain(n),
        "mixed chain": review_chain(n, ("cb", "ld")),
        "fan-out": fan_out(n),
    }
    rows: dict[str, dict[str, float]] = {}
    for name, text in shapes.items():
        defn = procedures.load_text(text, f"<{name}>")
        assert len(defn.steps) == n, (name, len(defn.steps))
        rows[name] = measure(defn)
        print(f"measured {name}", file=sys.stderr)
    keys = list(rows["plain chain"])
    print(f"{n} steps; ratio to the plain chain in brackets")
    print(f"{'':14}" + "".join(f"{k:>22}" for k in keys))
    for name, figures in rows.items():
        cells = "".join(f"{figures[k]:>12.3f} (x{figures[k] / max(rows['plain chain'][k], 1e-9):>6.1f})" for k in keys)
        print(f"{name:14}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
