"""Benchmark of the HTTP service under a bounded load on loopback.

What it measures, for ``tinhgon serve`` with 1 and 2 workers, on SQLite (a
file in a temporary directory) and on PostgreSQL, each beside a baseline
measured in the same run:

``bare``
    The baseline: ``GET /bare`` of a tiny FastAPI app defined in this file
    (one route returning ``{"ok": true}``), served as ``tinhgon serve``
    serves its app (:func:`api.supervisor.run`: 127.0.0.1, the same worker
    count, log level, timeouts and worker sockets; uvicorn's defaults
    otherwise, so httptools and uvloop on both).
``commit`` (PostgreSQL only, for information)
    ``GET /bare-commit`` of the same bare app: one row inserted, in
    autocommit, through a pool of four asyncio psycopg connections (as many
    as a tinhgon worker acts on at once), into a table of its own database
    on the same server. The floor of any request that commits durably on
    this machine: the report says what share of it actions reach, beside
    the target's share of the bare endpoint.
``action``
    ``POST /api/cases/{id}/actions`` by an official with ``If-Match`` and a
    fresh ``Idempotency-Key`` (as a careful client sends them): each request
    completes the active step of a case of a linear procedure of twelve
    office steps (generated below), so each commits the step rows, the case
    version, a hash-chained audit event and the answer stored under its key
    (on SQLite in one transaction with the key's claim; on PostgreSQL in one
    write statement after one read). Every connection acts on cases
    of its own, round-robin, so no request is refused for a race: a status
    other than 200, or a case version other than the expected one, counts as
    an error.
``inbox``
    ``GET /api/inbox?limit=20`` by the same official while the open cases
    (a few thousand, each with one active step) wait in it.
``start``
    ``POST /api/cases`` by the applicant, the setup that makes the cases
    (measured without a warm-up, for information).

The load generator is this process: a fixed number of keep-alive HTTP/1.1
connections (``--connections``, default 16), each an asyncio task sending a
request as soon as the previous answer has arrived (a closed loop), on
uvloop when it is installed. Requests answered in the first ``--warmup``
seconds are not counted; then for ``--duration`` seconds each answer counts
once. Each workload runs ``--rounds`` times, interleaved with the others
(bare, commit, action, inbox, bare, commit, action, inbox...), so that other work on the
machine weighs on all of them alike; the figures pool the rounds. Printed
per configuration: requests per second, p50 and p99 latency in milliseconds,
errors, the share of the bare endpoint's throughput, and the CPU time spent
per request by the server (its workers together), by PostgreSQL (every
server process on the machine; zero on SQLite but for other work) and by
the load generator, read from ``/proc``; with several workers, how each
round's server CPU fell among its processes (the kernel hands a burst of new
connections to whichever worker accepts first, so one worker may get most
of them, and that round measures mostly one worker); then whether actions
reach the target of 30 % of the bare endpoint.

The load generator shares the machine's cores with the servers (and on a
two-core machine that is most of what limits both the bare endpoint and the
service): the figures are for comparing one with the other in one run, not
capacities. This is a benchmark, not a test: it asserts nothing and is not
collected by pytest.

PostgreSQL is the server at 127.0.0.1:5432 (user ``postgres``, trust auth;
``$TINHGON_BENCH_POSTGRES`` names another maintenance database): a database
of its own is created there for each run of the service and dropped
afterwards. Without a server the PostgreSQL rows are skipped with the
reason.

Run it from the project root::

    .venv/bin/python benchmarks/http.py
    .venv/bin/python benchmarks/http.py --workers 2 --databases postgresql --duration 10

The default run (four configurations, two rounds of five seconds per
workload, 4,000 cases started for each configuration) takes about three
minutes on a two-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
POSTGRES = os.environ.get("TINHGON_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
STEPS = 12
CODE = "BENCH-HTTP"
UNIT = "demo"  # the unit of serve --demo's users
TOKEN_LINE = re.compile(r"^(\S+)(?: \([^)]*\))? token: (\S+)$", re.MULTILINE)


def unshadow() -> None:
    """This file is ``http.py``: run as a script, its folder comes first on
    ``sys.path`` and would hide the standard library's ``http`` package from
    uvicorn and everything else imported later. Drop the folder."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))


unshadow()


def definition() -> str:
    """A linear procedure of ``STEPS`` office steps of one role."""
    steps = "\n".join(
        f"  - {{id: b{i:02d}, name: Bước {i}, role: can_bo, duration: 1d" + (", outputs: [ket_qua]}" if i == STEPS else "}")
        for i in range(1, STEPS + 1)
    )
    return f"""\
format: tinhgon/1
code: {CODE}
name: Thủ tục đo tải HTTP
version: 1
roles:
  - {{id: nguoi_nop, name: Người nộp hồ sơ, kind: applicant}}
  - {{id: can_bo, name: Cán bộ xử lý, kind: office}}
documents:
  - {{id: ket_qua, name: Kết quả, deliverable: true}}
steps:
{steps}
"""


# -- the baseline app -----------------------------------------------------------------
COMMIT_ENV = "TINHGON_BENCH_COMMIT_DB"
"""the database of ``/bare-commit`` (its ``bench_commit`` table), set by the parent"""


def bare_app() -> Any:
    """The bare endpoint: FastAPI, one route, a small JSON answer; with
    ``$TINHGON_BENCH_COMMIT_DB``, also ``/bare-commit``, one row committed."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    conninfo = os.environ.get(COMMIT_ENV)
    pools: list[Any] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        if conninfo:
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(conninfo, min_size=4, max_size=4, kwargs={"autocommit": True}, open=False)
            await pool.open(wait=True)
            pools.append(pool)
        try:
            yield
        finally:
            for pool in pools:
                await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/bare")
    def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/bare-commit")
    async def bare_commit() -> dict[str, bool]:
        async with pools[0].connection() as conn:
            await conn.execute("INSERT INTO bench_commit DEFAULT VALUES")
        return {"ok": True}

    return app


def serve_bare(port: int, workers: int) -> None:
    """Serve :func:`bare_app` as ``tinhgon serve`` serves its app (the same
    uvicorn settings, and the same worker sockets)."""
    from api.supervisor import run

    # Spawned workers run this file again as ``__mp_main__`` (its name being
    # ``http`` keeps it from being imported under its own): the factory is
    # found there. One worker runs in this process, like tinhgon serve's.
    target = "__mp_main__:bare_app" if workers > 1 else "__main__:bare_app"
    run(target, host="127.0.0.1", port=port, workers=workers, log_level="warning")


# -- servers ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server process in its own group; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, command: list[str], cwd: Path, label: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.cwd = cwd
        self.log = cwd / f"{label}.log"
        self.command = [c.replace("{port}", str(self.port)) for c in command]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **env} if env else None,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_answering(self, path: str, token: str | None, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[:3]} exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            with contextlib.suppress(OSError):
                status, _ = asyncio.run(one_request(self.port, "GET", path, token))
                if status == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer on port {self.port}:\n{self.output()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)


@contextlib.contextmanager
def bare_server(workers: int, cwd: Path, commit_db: str | None) -> Iterator[Server]:
    server = Server(
        [sys.executable, str(Path(__file__).resolve()), "--serve-bare", "{port}", "--workers", str(workers)],
        cwd,
        f"bare{workers}",
        env={COMMIT_ENV: commit_db} if commit_db else None,
    )
    try:
        server.wait_answering("/bare", None)
        yield server
    finally:
        server.stop()


@dataclass
class Tinhgon:
    server: Server
    tokens: dict[str, str]


@contextlib.contextmanager
def tinhgon_server(database_url: str, workers: int, cwd: Path) -> Iterator[Tinhgon]:
    folder = cwd / "definitions"
    folder.mkdir(exist_ok=True)
    (folder / "bench.v1.yaml").write_text(definition(), encoding="utf-8")
    script = Path(sys.executable).with_name("tinhgon")
    command = [
        *([str(script)] if script.exists() else [sys.executable, "-m", "api.cli"]),
        "serve",
        "--database-url",
        database_url,
        "--definitions",
        str(folder),
        "--port",
        "{port}",
        "--workers",
        str(workers),
        "--demo",
        "--key-file",
        str(cwd / "signing.key"),
        "--log-level",
        "warning",
    ]
    server = Server(command, cwd, f"tinhgon{workers}")
    try:
        deadline = time.monotonic() + 90
        while "serving on" not in server.output():
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tinhgon serve did not start:\n{server.output()[-3000:]}")
            time.sleep(0.2)
        tokens = dict(TOKEN_LINE.findall(server.output()))
        server.wait_answering("/api/procedures", tokens["admin"])
        yield Tinhgon(server, tokens)
    finally:
        server.stop()


@contextlib.contextmanager
def database(kind: str, cwd: Path) -> Iterator[str]:
    """A new, empty database of ``kind``, dropped at the end."""
    if kind == "sqlite":
        yield f"sqlite:///{cwd / 'bench.db'}"
        return
    from sqlalchemy import create_engine, make_url, text

    name = f"tinhgon_bench_http_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def commit_database(cwd: Path) -> Iterator[str]:
    """A database of its own for ``/bare-commit``, with its table, as the
    libpq connection string the bare app takes; dropped at the end."""
    from sqlalchemy import create_engine, text

    with database("postgresql", cwd) as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_commit (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"))
        engine.dispose()
        yield url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_reason() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect: report it and go on without
        return f"PostgreSQL at {POSTGRES} is not reachable ({type(exc).__name__})"
    finally:
        engine.dispose()
    return None


# -- the load generator -------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    token: str | None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[int, Any], bool] = lambda status, body: status == 200


def encode(port: int, method: str, path: str, token: str | None, body: Any, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunks.append(await reader.readexactly(size + 2))
            if size == 0:
                return status, b"".join(chunks)
    return status, b""


async def one_request(port: int, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(encode(port, method, path, token, body, {"Connection": "close"}))
        status, raw = await asyncio.wait_for(read_response(reader), 30)
        return status, json.loads(raw) if raw else None
    finally:
        writer.close()


@dataclass
class Figures:
    """Pooled over rounds: answers counted, errors, latencies in seconds, time measured."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    first_error: str | None = None
    answered: int = 0
    """good answers, warm-up included (what the CPU time was spent on)"""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds used meanwhile, by whom (see :func:`cpu_seconds`)"""
    splits: list[str] = field(default_factory=list)
    """each round's server CPU shared among its processes, in percent, busiest first"""

    def cpu_ms(self, who: str) -> float:
        """Milliseconds of ``who``'s CPU time per good answer (NaN when unknown)."""
        return 1000 * self.cpu[who] / self.answered if who in self.cpu and self.answered else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def load(
    port: int, connections: int, warmup: float, duration: float, source: Callable[[int], Request | None], figures: Figures
) -> None:
    """``connections`` closed-loop connections; ``source(n)`` gives connection
    n its next request (None: it has no more work)."""
    start = time.perf_counter()
    counted_from, end = start + warmup, start + warmup + duration

    async def connection(n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < end:
                request = source(n)
                if request is None:
                    return
                sent = time.perf_counter()
                writer.write(encode(port, request.method, request.path, request.token, request.body, request.headers))
                try:
                    status, raw = await asyncio.wait_for(read_response(reader), 30)
                    ok = request.check(status, json.loads(raw) if raw else None)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    figures.errors += 1
                    figures.first_error = figures.first_error or f"{request.method} {request.path}: {exc!r}"
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                done = time.perf_counter()
                figures.answered += ok
                if counted_from <= done <= end:
                    if ok:
                        figures.latencies.append(done - sent)
                    else:
                        figures.errors += 1
                        figures.first_error = figures.first_error or f"{request.method} {request.path}: {status} {raw[:300]!r}"
        finally:
            writer.close()

    await asyncio.gather(*(connection(n) for n in range(connections)))
    figures.seconds += min(duration, max(0.0, time.perf_counter() - counted_from))


def cpu_seconds(session: int) -> dict[str, float]:
    """CPU time (user and system) used so far by the processes of the server
    started as ``session`` (its workers included; each also as ``pid N``),
    by every PostgreSQL server process on the machine, and by this load
    generator; from ``/proc``, so empty where there is none."""
    if not os.path.isdir("/proc/self"):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    out = {"server": 0.0, "postgres": 0.0}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if int(fields[3]) == session:
            out["server"] += used
            out[f"pid {pid}"] = used
        elif name.startswith("postgres"):
            out["postgres"] += used
    times = os.times()
    out["load"] = times.user + times.system
    return out


def run_load(
    port: int,
    connections: int,
    warmup: float,
    duration: float,
    source: Callable[[int], Request | None],
    figures: Figures,
    session: int | None = None,
) -> None:
    """A load on ``port``; with ``session`` (the server's process session),
    the CPU time each side used meanwhile is added to ``figures``."""
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    before = cpu_seconds(session) if session is not None else {}
    runner(load(port, connections, warmup, duration, source, figures))
    if before:
        after = cpu_seconds(session or 0)
        for who in ("server", "postgres", "load"):
            figures.cpu[who] = figures.cpu.get(who, 0.0) + after[who] - before[who]
        processes = sorted((after[k] - before.get(k, 0.0) for k in after if k.startswith("pid ")), reverse=True)
        spent = sum(processes)
        if len(processes) > 1 and spent > 0:  # workers (and their supervisor): how evenly the connections fell
            figures.splits.append("/".join(f"{100 * p / spent:.0f}" for p in processes if p >= 0.02 * spent))


# -- the workloads -------------------------------------------------------------------------
def answered_version(expected: int) -> Callable[[int, Any], bool]:
    """An action's answer is right when it is 200 with the case at ``expected``."""

    def check(status: int, body: Any) -> bool:
        return status == 200 and isinstance(body, dict) and body.get("version") == expected

    return check


class CaseQueues:
    """Each connection's cases, round-robin, with the version each is at."""

    def __init__(self, cases: list[int], connections: int, token: str) -> None:
        self.token = token
        self.queues: list[list[list[int]]] = [[] for _ in range(connections)]
        for i, case_id in enumerate(cases):
            self.queues[i % connections].append([case_id, 1])
        self.turn = [0] * connections
        self.exhausted = 0

    def next_action(self, n: int) -> Request | None:
        queue = self.queues[n]
        while queue:
            i = self.turn[n] % len(queue)
            case_id, version = queue[i]
            if version > STEPS:
                queue.pop(i)
                continue
            queue[i][1] = version + 1
            self.turn[n] = i + 1
            return Request(
                "POST",
                f"/api/cases/{case_id}/actions",
                self.token,
                {"step": f"b{version:02d}", "outcome": "done"},
                {"If-Match": f'"{version}"', "Idempotency-Key": uuid.uuid4().hex},
                answered_version(version + 1),
            )
        self.exhausted += 1
        return None


def start_cases(port: int, token: str, count: int, connections: int, session: int) -> tuple[list[int], Figures]:
    made: list[int] = []
    left = [count]
    figures = Figures()

    def check(status: int, body: Any) -> bool:
        if status == 201:
            made.append(body["id"])
            return True
        return False

    def source(_n: int) -> Request | None:
        if left[0] <= 0:
            return None
        left[0] -= 1
        return Request("POST", "/api/cases", token, {"procedure": CODE, "unit": UNIT, "data": {}}, check=check)

    run_load(port, connections, 0.0, 3600.0, source, figures, session)
    return made, figures


@dataclass
class Row:
    database: str
    workers: int
    workload: str
    figures: Figures
    command: str


def measure(args: argparse.Namespace, database_kind: str, workers: int, cwd: Path, bare: Server) -> list[Row]:
    rows: list[Row] = []
    with database(database_kind, cwd) as url, tinhgon_server(url, workers, cwd) as service:
        port, c = service.server.port, args.connections
        official, applicant = service.tokens["demo_can_bo"], service.tokens["demo_applicant"]
        cases, starts = start_cases(port, applicant, args.cases, c, service.server.process.pid)
        queues = CaseQueues(cases, c, official)
        inbox = Request("GET", "/api/inbox?limit=20", official)
        bare_request = Request("GET", "/bare", None)
        commit_request = Request("GET", "/bare-commit", None)
        results = {"bare": Figures(), "commit": Figures(), "action": Figures(), "inbox": Figures()}
        for _ in range(args.rounds):
            session = service.server.process.pid
            run_load(bare.port, c, args.warmup, args.duration, lambda _n: bare_request, results["bare"], bare.process.pid)
            if database_kind == "postgresql":
                run_load(bare.port, c, args.warmup, args.duration, lambda _n: commit_request, results["commit"], bare.process.pid)
            run_load(port, c, args.warmup, args.duration, queues.next_action, results["action"], session)
            run_load(port, c, args.warmup, args.duration, lambda _n: inbox, results["inbox"], session)
        if queues.exhausted:
            print(f"  note: {queues.exhausted} connection(s) ran out of cases; raise --cases", file=sys.stderr)
        serve = " ".join(service.server.command[1:]).replace(str(cwd), "$TMP")
        bare_cmd = " ".join(bare.command[1:]).replace(str(ROOT) + "/", "")
        rows.append(Row(database_kind, workers, "bare", results["bare"], bare_cmd))
        if database_kind == "postgresql":
            rows.append(Row(database_kind, workers, "commit", results["commit"], bare_cmd))
        for workload in ("action", "inbox"):
            rows.append(Row(database_kind, workers, workload, results[workload], serve))
        rows.append(Row(database_kind, workers, "start", starts, serve))
    return rows


# -- report ------------------------------------------------------------------------------
def report(rows: list[Row], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.connections} connections, {args.rounds} round(s) of {args.warmup:g} s warm-up + {args.duration:g} s "
        f"per workload; {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at the end"
    )
    print()
    header = (
        f"{'database':<11} {'workers':>7} {'workload':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'% bare':>7}"
        f"  {'CPU ms/req: server':>18} {'pg':>5} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for database_kind in dict.fromkeys(r.database for r in rows):
        for workers in dict.fromkeys(r.workers for r in rows if r.database == database_kind):
            group = [r for r in rows if r.database == database_kind and r.workers == workers]
            bare = next(r for r in group if r.workload == "bare")
            for r in group:
                share = f"{100 * r.figures.rate / bare.figures.rate:6.0f}%" if bare.figures.rate else "      -"
                print(
                    f"{r.database:<11} {r.workers:>7} {r.workload:<8} {r.figures.rate:>8.0f} {r.figures.percentile(0.5):>8.1f} "
                    f"{r.figures.percentile(0.99):>8.1f} {r.figures.errors:>6} {share}"
                    f"  {r.figures.cpu_ms('server'):>18.2f} {r.figures.cpu_ms('postgres'):>5.2f} {r.figures.cpu_ms('load'):>5.2f}"
                )
                if r.figures.first_error:
                    print(f"    first error: {r.figures.first_error}")
                if r.workers > 1 and r.figures.splits:
                    print(f"    server CPU by process, % per round: {'  '.join(r.figures.splits)}")
            action = next(r for r in group if r.workload == "action")
            ratio = action.figures.rate / bare.figures.rate if bare.figures.rate else 0.0
            met = ratio >= 0.30 and action.figures.errors == 0
            commit = next((r for r in group if r.workload == "commit"), None)
            floor = (
                f" (and {100 * action.figures.rate / commit.figures.rate:.0f}% of one commit per request)"
                if commit is not None and commit.figures.rate
                else ""
            )
            verdicts.append(
                f"{database_kind}, {workers} worker(s): actions {100 * ratio:.0f}% of bare, "
                f"{action.figures.errors} error(s): {'met' if met else 'NOT met'}{floor}"
            )
    print()
    print("target: actions at least 30% of the bare endpoint's throughput, no errors")
    for v in verdicts:
        print("  " + v)
    print()
    print("commands:")
    for cmd in dict.fromkeys(f"  {'bare' if r.workload in ('bare', 'commit') else 'service'}: {r.command}" for r in rows):
        print(cmd)
    print("  load: " + " ".join(["benchmarks/http.py", *sys.argv[1:]]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="HTTP service throughput and latency against a bare FastAPI endpoint.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--databases", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (default 16)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per workload and round (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted before each measurement (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the workloads, interleaved (default 2)")
    parser.add_argument("--cases", type=int, default=4000, help="cases started for the actions to act on (default 4000)")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare, args.workers[0])
        return 0

    began = time.monotonic()
    kinds = list(args.databases)
    if "postgresql" in kinds:
        reason = postgres_reason()
        if reason:
            print(f"skipping PostgreSQL: {reason}", file=sys.stderr)
            kinds.remove("postgresql")
    rows: list[Row] = []
    for workers in args.workers:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="tinhgon-bench-http-"))
            commit_db = stack.enter_context(commit_database(Path(tmp))) if "postgresql" in kinds else None
            bare = stack.enter_context(bare_server(workers, Path(tmp), commit_db))
            for kind in kinds:
                run_dir = Path(tmp) / kind
                run_dir.mkdir()
                print(f"measuring {kind} with {workers} worker(s)...", file=sys.stderr, flush=True)
                rows += measure(args, kind, workers, run_dir, bare)
    report(rows, args)
    print(f"\nrun time {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
