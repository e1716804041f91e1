"""Benchmark of the reform-plan report over a large generated catalog.

What it measures: a folder of ``--procedures`` generated procedures (2,000 by
default), each in three versions of 30 to 60 steps (the generator of
``benchmarks/analysis.py``, a fixed seed), with a ``catalog.yaml`` price list;
half the codes are ``internal``, a quarter ``business``, versions are dated
around the Resolution 66 baseline, and a few codes are abolished in their
third version. Each of two runs happens in a fresh Python process, so that
its peak resident set (``ru_maxrss``) is its own:

* ``analyze`` (the baseline): what ``tinhgon analyze DIR --json`` does for
  each file: load it under the catalog's prices, its metrics and findings;
* ``report``: what ``tinhgon report DIR --json`` does: load the catalog, the
  per-case totals, the programmes' targets and the path to each target not
  met, and the JSON text.

The figure to watch is ``report / analyze``, time and memory, both measured
in the same run on the same files; the target is at most 1.5.

Run it from the project root::

    .venv/bin/python benchmarks/report.py
    .venv/bin/python benchmarks/report.py --procedures 200

This is a benchmark, not a test: it asserts nothing about timings. Timings are
one run each; other work on the machine shows up in them.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis import generate

SEED = 20261207
ROOT = Path(__file__).resolve().parent.parent

CATALOG = """\
format: tinhgon-catalog/1
name: Danh mục sinh ra cho benchmark
cost_model: {hourly_cost: 43200, visit_cost: 50000, visit_hours: 2, office_hourly_cost: 43200, source: benchmark}
"""


def _version(text: str, code: str, version: int, *, scope: str, business: bool, day: str | None, limit: int) -> str:
    """A generated text as ``version`` of ``code``: its head rewritten."""
    head = [f'code: "{code}"', f"version: {version}"]
    if version > 1:
        head.append(f"based_on: {version - 1}")
    head.append(f"scope: {scope}")
    if business:
        head.append("business: true")
    if day is not None:
        head.append(f"in_force_from: '{day}'")
    lines = []
    for line in text.splitlines():
        if line.startswith(("code:", "version:")):
            continue
        if line.startswith("time_limit:"):
            line = f"time_limit: {limit}d"
        lines.append(line)
        if line.startswith("format:"):
            lines.extend(head)
    return "\n".join(lines) + "\n"


def write_catalog(folder: Path, procedures: int) -> int:
    """The generated catalog in ``folder``; returns the number of files."""
    rng = random.Random(SEED)
    (folder / "catalog.yaml").write_text(CATALOG, encoding="utf-8")
    files = 0
    for k in range(procedures):
        code = f"BM-{k:05d}"
        scope = "internal" if k % 2 else "public"
        business = k % 4 == 0
        limit = rng.randint(10, 30)
        days = (None, "2024-06-01", "2025-06-01")
        for version in (1, 2, 3):
            path = folder / f"{code.lower()}.v{version}.yaml"
            if version == 3 and k % 10 == 0:
                path.write_text(
                    f'format: tinhgon/1\ncode: "{code}"\nname: Bãi bỏ\nversion: 3\nscope: {scope}\n'
                    f"abolished: Bãi bỏ trong benchmark\nmerged_into: BM-{(k + 1) % procedures:05d}\n",
                    encoding="utf-8",
                )
            else:
                text = generate(rng.randint(30, 60), seed=SEED + k * 3 + version)
                day = days[version - 1]
                path.write_text(
                    _version(text, code, version, scope=scope, business=business, day=day, limit=limit - 2 * version),
                    encoding="utf-8",
                )
            files += 1
    return files


ANALYZE = """
import json, sys
from procedures.analysis import analysis
from procedures.catalog import CatalogFiles, definition_files
files = CatalogFiles()
out = [analysis(files.load(f)) for f in definition_files([sys.argv[1]])]
text = json.dumps(out, ensure_ascii=False, indent=1)
"""

REPORT = """
import json, sys
from procedures.catalog import load_catalog
from procedures.report import report_data
catalog = load_catalog([sys.argv[1]])
assert not catalog.errors, catalog.errors[:1]
text = json.dumps(report_data(catalog), ensure_ascii=False, indent=1)
"""

TIMED = """
import resource, time
start = time.perf_counter()
exec(compile(BODY, "<bench>", "exec"))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "bytes": len(text)}))
"""


def run(body: str, folder: Path) -> dict[str, float]:
    """``body`` in a fresh interpreter on ``folder``: its time, peak memory and output size."""
    program = f"import json\nBODY = {body!r}\n{TIMED}"
    done = subprocess.run([sys.executable, "-c", program, str(folder)], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procedures", type=int, default=2000, help="procedure codes to generate (three versions each)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        files = write_catalog(folder, args.procedures)
        print(f"generated {files} files ({args.procedures} codes x 3 versions) in {time.perf_counter() - start:.1f} s")
        analyze = run(ANALYZE, folder)
        report = run(REPORT, folder)
    print(f"{'':10} {'seconds':>10} {'peak MiB':>10} {'JSON MiB':>10}")
    for name, fig in (("analyze", analyze), ("report", report)):
        print(f"{name:10} {fig['seconds']:10.1f} {fig['maxrss_mib']:10.0f} {fig['bytes'] / 2**20:10.1f}")
    print(
        f"report / analyze: time x{report['seconds'] / analyze['seconds']:.2f}, "
        f"peak memory x{report['maxrss_mib'] / analyze['maxrss_mib']:.2f} (target: at most x1.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
