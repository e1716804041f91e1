"""Benchmark: does heavy reform work stall other users?

``tinhgon serve`` (SQLite, one worker) runs; a reform user uploads a
definition of ``--steps`` reviews in one chain (20,000 by default, about
1.7 MB) and simplifies it, while an applicant reads one of their cases
(``GET /api/cases/{id}``) again and again on a connection of their own.
The applicant's latencies while that work runs are compared with the same
reads when nothing else runs (the baseline, measured first in the same
run), each as p50, p95 and max in milliseconds.

It runs twice: as the service is configured (big definitions worked on in
a child process, :mod:`api.offload`) and with the work kept in the
request's thread (``TINHGON_OFFLOAD_BYTES`` set above the definition's
size), so that the effect is shown in the same run.

Run it from the project root::

    .venv/bin/python benchmarks/heavy.py
    .venv/bin/python benchmarks/heavy.py --steps 5000

This is a benchmark, not a test: it asserts nothing about timings.
"""

# ruff: noqa: E402 (the path is set before the standard library's http is imported)
from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/http.py would hide the standard library's http package: this folder leaves sys.path first
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOKEN_LINE = re.compile(r"^(\S+)(?: \([^)]*\))? token: (\S+)$", re.MULTILINE)
CASE_PROCEDURE = """\
format: tinhgon/1
code: DOC-1
name: Thủ tục để đọc
version: 1
roles:
  - {id: dv, name: Người đề nghị, kind: applicant}
  - {id: cb, name: Cán bộ, kind: office}
documents:
  - {id: kq, name: Kết quả, deliverable: true}
steps:
  - {id: nop, name: Nộp, role: dv}
  - {id: xu_ly, name: Xử lý, role: cb, duration: 1d, outputs: [kq]}
"""


def review_chain(n: int) -> str:
    steps = "".join(
        f"  - {{id: x{i}, name: Xét lần {i}, role: cb, kind: review, duration: 1h, inputs: [don]"
        + (", outputs: [kq]}\n" if i == n - 2 else "}\n")
        for i in range(n - 1)
    )
    return (
        "format: tinhgon/1\ncode: DAI-1\nname: Thủ tục rất dài\nversion: 1\n"
        "roles:\n  - {id: dv, name: Người đề nghị, kind: applicant}\n  - {id: cb, name: Cán bộ, kind: office}\n"
        "documents:\n  - {id: don, name: Đơn, from: applicant}\n  - {id: kq, name: Kết quả, deliverable: true}\n"
        "steps:\n  - {id: nop, name: Nộp, role: dv, inputs: [don]}\n" + steps
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def call(port: int, method: str, path: str, token: str, body: bytes | None = None, kind: str | None = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        if kind:
            headers["Content-Type"] = kind
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        raw = answer.read()
        return answer.status, json.loads(raw) if raw else None
    finally:
        connection.close()


@contextlib.contextmanager
def service(folder: Path, offload_bytes: int | None) -> Iterator[tuple[int, dict[str, str]]]:
    port = free_port()
    definitions = folder / "definitions"
    definitions.mkdir(exist_ok=True)
    (definitions / "doc.v1.yaml").write_text(CASE_PROCEDURE, encoding="utf-8")
    script = Path(sys.executable).with_name("tinhgon")
    env = {**os.environ}
    if offload_bytes is not None:
        env["TINHGON_OFFLOAD_BYTES"] = str(offload_bytes)
    log = folder / "serve.log"
    command = [str(script), "serve", "--database-url", f"sqlite:///{folder / 'heavy.db'}", "--definitions", str(definitions),
               "--port", str(port), "--demo", "--key-file", str(folder / "signing.key"), "--checkpoint-dir", str(folder / "cp"),
               "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "serving on" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        tokens = dict(TOKEN_LINE.findall(log.read_text(errors="replace")))
        while True:
            with contextlib.suppress(OSError):
                if call(port, "GET", "/healthz", tokens["admin"])[0] == 200:
                    break
            time.sleep(0.2)
        yield port, tokens
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def reads(port: int, token: str, path: str, until: threading.Event | float) -> list[float]:
    """Sequential reads on one keep-alive connection, in ms, until the event is set or the seconds pass."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Authorization": f"Bearer {token}"}
    out: list[float] = []
    end = time.monotonic() + until if isinstance(until, float) else None
    while (end is None or time.monotonic() < end) and not (isinstance(until, threading.Event) and until.is_set()):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        answer.read()
        out.append((time.perf_counter() - started) * 1000)
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status}")
        time.sleep(0.01)  # a person's client, not a load generator
    connection.close()
    return out


def figures(latencies: list[float]) -> str:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return f"n={len(latencies):4d}  p50 {q[49]:7.1f}  p95 {q[94]:7.1f}  max {max(latencies):7.1f} ms"


def run(steps: int, baseline_seconds: float, offload_bytes: int | None, label: str) -> None:
    text = review_chain(steps).encode()
    with tempfile.TemporaryDirectory() as tmp, service(Path(tmp), offload_bytes) as (port, tokens):
        reform, applicant = tokens["demo_reform"], tokens["demo_applicant"]
        status, case = call(
            port, "POST", "/api/cases", applicant, json.dumps({"procedure": "DOC-1", "unit": "demo"}).encode(), "application/json"
        )
        assert status == 201, case
        path = f"/api/cases/{case['id']}"
        reads(port, applicant, path, 1.0)  # warm up
        quiet = reads(port, applicant, path, baseline_seconds)
        done = threading.Event()
        timings: dict[str, float] = {}

        def heavy() -> None:
            try:
                started = time.perf_counter()
                status, body = call(port, "POST", "/api/procedures", reform, text, "application/yaml")
                assert status == 201, body
                timings["upload"] = time.perf_counter() - started
                started = time.perf_counter()
                status, body = call(port, "POST", "/api/procedures/DAI-1/1/simplify", reform)
                assert status == 201, body
                timings["simplify"] = time.perf_counter() - started
            finally:
                done.set()

        worker = threading.Thread(target=heavy)
        worker.start()
        busy = reads(port, applicant, path, done)
        worker.join()
    print(
        f"{label}: {steps:,} steps, {len(text) / 1e6:.1f} MB; upload {timings.get('upload', 0):.1f} s, simplify {timings.get('simplify', 0):.1f} s"
    )
    print(f"  GET /api/cases/ID alone        {figures(quiet)}")
    print(f"  GET /api/cases/ID meanwhile    {figures(busy)}")
    q_busy = statistics.quantiles(busy, n=100, method="inclusive")[94]
    q_quiet = statistics.quantiles(quiet, n=100, method="inclusive")[94]
    print(f"  p95 meanwhile / alone: x{q_busy / q_quiet:.1f} (the issue's bound: p95 under 100 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    args = parser.parse_args()
    run(args.steps, args.baseline_seconds, None, "child process (as configured)")
    run(args.steps, args.baseline_seconds, 1 << 40, "in the request's thread (for comparison)")


if __name__ == "__main__":
    main()
