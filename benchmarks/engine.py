"""Benchmark of the case engine: persisted advances, memory per case, the inbox.

What it measures, each figure beside a baseline measured in the same run:

``advances``
    Persisted step advances per second through ``CaseService.act`` (role
    check, outcome, step rows, an audit event hashed with SHA-256 and
    signed with Ed25519, all in one committed
    transaction) on SQLite (a file in a temporary directory) and on
    PostgreSQL, for a generated linear procedure of ten office steps (written
    below) and for the demobilisation procedure
    (``definitions/che-do-xuat-ngu.v1.yaml``, 16 steps with two parallel
    branches). The baseline is a hand-written ``sqlite3`` / ``psycopg`` loop
    doing the same row writes per transaction on cases of the same database:
    read the case row and its step rows, check the step is active and the
    actor holds its role, update the step rows that change, update the case
    row with a version check, insert one event row whose hash is the SHA-256
    of the previous hash and a canonical JSON payload, commit. The raw loop
    follows a script worked out beforehand (which step each advance acts on,
    which rows it changes) and takes due times as wall-clock hours, so it is
    the floor of the database work, not a second engine. Cases are advanced
    one step each in turn (every case's first advance, then every case's
    second, ...), in rounds that alternate which loop goes first. Printed:
    advances/s of each, the ratio tinhgon/raw and whether the targets (40 %
    of the raw loop on SQLite, 50 % on PostgreSQL) are met; to say where the
    time goes, also wall and CPU milliseconds per advance of both loops, the
    same advances on in-memory states (``CompiledProcedure.act`` and sealing
    the events, no database), and the SQL statements one advance sends.

``memory``
    The process's resident set (``VmRSS`` of ``/proc/self/status``) while
    cases of one procedure version pile up, each mode in a fresh child
    process: (a) ``CompiledProcedure.start`` of 100,000 cases whose states are
    kept in a list, against 1,000; (b) cases created and committed one by one
    through ``CaseService.start`` on SQLite (nothing kept in Python), RSS
    after 1,000 against after 100,000 (about 2 ms a case; ``--service-cases``
    changes the count). Per case bytes are the RSS growth between the two points
    divided by the cases added; for (a) they are set against the
    ``tracemalloc`` size of the Python objects one case's state holds (the
    data kept), and the number of ``transitions.Machine`` objects alive
    shows that none is built per case.
    "Flat" means the growth is the data kept, not machines.

``inbox``
    ``CaseService.inbox`` (one official's roles and unit, earliest due first,
    first page of 50) over 1,000,000 cases of the linear procedure on each
    database, bulk-loaded straight into the schema that
    ``engine.schema.upgrade`` creates (``executemany`` in one transaction on
    SQLite, ``COPY`` on PostgreSQL): ten step rows per case, one active step
    per open case spread over the ten roles and twenty units with random due
    times (about a third overdue), a fifth of the cases closed. Events are not
    loaded (the inbox does not read them; each case row records none). After
    ``ANALYZE`` (``VACUUM (ANALYZE)`` on PostgreSQL, so that autovacuum does
    not start during the timing), 200 calls for random officials (one to
    three roles, one unit) are timed, p50 and p95 in milliseconds, target p95 < 50 ms. The
    baseline, timed the same way through the same store, is a primary-key
    read of one ``case_steps`` row (by ``case_id`` and ``position``); the
    mean CPU time of this process per call is printed too, since on a busy
    machine the wall time also counts waiting for a CPU. The
    plan of each statement the inbox sends is printed (``EXPLAIN QUERY PLAN``
    on SQLite, ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL) with whether it
    uses ``ix_case_steps_inbox_office`` and ``ix_case_steps_inbox_applicant``.

PostgreSQL is the server at 127.0.0.1:5432 (user ``postgres``, trust auth;
``$TINHGON_BENCH_POSTGRES`` names another maintenance database): the
benchmark creates the database ``tinhgon_bench`` there and drops it at the
end. Without a server the PostgreSQL figures are skipped with the reason.

Run it from the project root::

    .venv/bin/python benchmarks/engine.py
    .venv/bin/python benchmarks/engine.py --only advances --cases 100
    .venv/bin/python benchmarks/engine.py --only memory
    .venv/bin/python benchmarks/engine.py --only inbox --inbox-cases 200000

The full run takes about a quarter of an hour on a two-core machine (13
minutes measured), most of it loading the million cases twice. This is a benchmark, not a test: it asserts
nothing about timings and is not collected by pytest (it does check that
every advance and every inbox page came out right). Other work on the
machine shows up in the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import hashlib
import json
import math
import os
import random
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Run as a script, this file's folder comes first on sys.path and its name
# would hide the ``engine`` package.
sys.path.remove(str(Path(__file__).resolve().parent))

import psycopg
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from transitions import Machine

from engine.audit import GENESIS
from engine.calendar import WorkingCalendar
from engine.cases import CaseService
from engine.changes import seal_entries
from engine.db import NO_DUE, CaseRow, CaseStepRow, EventRow
from engine.keys import Signer
from engine.machine import ACTIVE, COMPLETED, FINISHED, SKIPPED, WAITING, Actor, CompiledProcedure
from engine.publishing import publish_definition
from engine.schema import upgrade
from engine.store import Store
from procedures import Definition, load_text
from procedures.conditions import evaluate

SEED = 20270301
ROOT = Path(__file__).resolve().parent.parent
DEMOBILISATION = ROOT / "definitions" / "che-do-xuat-ngu.v1.yaml"
DEMOBILISATION_DATA: dict[str, Any] = {
    "ho_ten": "Nguyễn Văn An",
    "nhom_cap_bac": "binh_si",
    "ngay_nhap_ngu": "2025-02-15",
    "ngay_xuat_ngu": "2027-02-15",
    "so_thang_phuc_vu": 24,
    "hoan_thanh_nghia_vu": True,
    "de_nghi_hoc_nghe": True,
}
POSTGRES_ADMIN = os.environ.get("TINHGON_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BENCH_DATABASE = "tinhgon_bench"
UNITS = tuple(f"u{k:02d}" for k in range(1, 21))
UNIT = UNITS[0]
APPLICANT = "dan"

DEFAULT_CASES = 200
"""cases per procedure and per loop in ``advances``"""
ROUNDS = 4
MEMORY_CASES = 100_000
SERVICE_CASES = 100_000
MEMORY_FIRST = 1_000
INBOX_CASES = 1_000_000
INBOX_CALLS = 200
INBOX_WARMUP = 20
PAGE = 50
LOAD_CHUNK = 20_000
"""cases per executemany / COPY chunk while bulk-loading"""
TARGET_SQLITE, TARGET_POSTGRES, TARGET_P95_MS = 0.40, 0.50, 50.0
INBOX_INDEXES = ("ix_case_steps_inbox_office", "ix_case_steps_inbox_applicant")


# -- the linear procedure ----------------------------------------------------------
LINEAR_STEPS: tuple[tuple[str, str, str, str, str], ...] = (
    # role, role name, kind, duration, step name
    ("mot_cua", "Bộ phận một cửa", "receive", "4h", "Tiếp nhận hồ sơ"),
    ("chuyen_vien", "Chuyên viên thụ lý", "verify", "1d", "Kiểm tra hồ sơ"),
    ("truong_phong", "Trưởng phòng chuyên môn", "review", "1d", "Thẩm định hồ sơ"),
    ("phap_che", "Phòng Pháp chế", "review", "2d", "Thẩm định pháp lý"),
    ("pho_giam_doc", "Phó Giám đốc Sở", "approve", "1d", "Phê duyệt kết quả"),
    ("ke_toan", "Kế toán", "task", "4h", "Thu phí, lệ phí"),
    ("giam_doc", "Giám đốc Sở", "sign", "1d", "Ký quyết định"),
    ("van_thu", "Văn thư", "issue", "4h", "Ban hành quyết định"),
    ("thanh_tra", "Thanh tra Sở", "verify", "1d", "Kiểm tra sau ban hành"),
    ("luu_tru", "Lưu trữ cơ quan", "archive", "2h", "Lưu hồ sơ"),
)


def linear_definition() -> str:
    """A valid linear procedure of ten office steps, one role each; the two
    reviews may return the case one step back, the approve and sign steps
    are decisions (their events are signed)."""
    lines = [
        "format: tinhgon/1",
        "code: BENCH.LINEAR10",
        "name: Thủ tục tuyến tính mười bước (benchmark)",
        "version: 1",
        "scope: internal",
        "time_limit: 10d",
        "roles:",
        *(f"  - {{id: {role}, name: {name}, kind: office}}" for role, name, *_ in LINEAR_STEPS),
        "documents:",
        "  - {id: quyet_dinh, name: Quyết định, deliverable: true}",
        "steps:",
    ]
    for i, (role, _, kind, duration, name) in enumerate(LINEAR_STEPS):
        lines += [
            f"  - id: b{i + 1:02d}",
            f"    name: {name}",
            f"    role: {role}",
            f"    kind: {kind}",
            f"    duration: {duration}",
        ]
        if kind == "sign":
            lines.append("    outputs: [quyet_dinh]")
        if kind == "review":
            lines += ["    outcomes:", "      dat: proceed", f"      tra_lai: {{return: b{i:02d}}}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Procedure:
    label: str
    body: str
    definition: Definition
    data: dict[str, Any]


def procedures_under_test() -> list[Procedure]:
    linear = linear_definition()
    demob = DEMOBILISATION.read_text(encoding="utf-8")
    return [
        Procedure("linear 10 steps", linear, load_text(linear, "<linear>"), {}),
        Procedure("demobilisation", demob, load_text(demob, str(DEMOBILISATION)), DEMOBILISATION_DATA),
    ]


# -- helpers -------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned first column, right-aligned others."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([cells[0].ljust(widths[0]), *rest]).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def rss_bytes() -> int:
    """The process's current resident set; the peak where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def sqlite_time(moment: dt.datetime) -> str:
    """An aware instant as SQLAlchemy's SQLite ``DateTime`` stores it (UTC, no offset)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Counting:
    """Counts the SQL statements a store sends while active, through
    SQLAlchemy's connections and straight on the DB-API connection
    (``Store.direct``); keeps the last ones, with their parameters."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.statements: list[tuple[str, Any]] = []

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        self.statements.append((statement, parameters))

    def _direct(self, statement: str, parameters: Any) -> None:
        self.statements.append((statement, parameters))

    @contextmanager
    def recording(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        event.listen(self.store.engine, "before_cursor_execute", self._seen)
        self.store.trace = self._direct
        try:
            yield self.statements
        finally:
            self.store.trace = None
            event.remove(self.store.engine, "before_cursor_execute", self._seen)


class PostgresDatabase:
    """The benchmark's own database on the PostgreSQL server, dropped at the end."""

    def __init__(self, admin_url: str = POSTGRES_ADMIN, name: str = BENCH_DATABASE) -> None:
        self.admin_url = admin_url
        self.name = name
        self.url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        self.conninfo = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._admin: Engine | None = None

    def create(self) -> None:
        self._admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))

    def reset(self) -> None:
        """An empty public schema, as before the first migration."""
        engine = create_engine(self.url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()

    def drop(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()
        self._admin = None


def open_postgres() -> tuple[PostgresDatabase | None, str | None]:
    """The benchmark database, or None and why not."""
    database = PostgresDatabase()
    try:
        database.create()
    except Exception as exc:  # no server: the PostgreSQL figures are skipped
        database.drop()
        return None, f"PostgreSQL at {POSTGRES_ADMIN} is not reachable ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    return database, None


# -- 1. advances ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Advance:
    """One advance of the script: the step acted on and the rows it changes."""

    position: int
    step: str
    outcome: str
    role: str
    by_applicant: bool
    decision: bool
    activated: tuple[tuple[int, str, float], ...]
    """(position, step id, duration in hours) of the steps it activates"""
    skipped: tuple[tuple[int, str], ...]
    closes: bool


def script(defn: Definition, data: dict[str, Any]) -> list[Advance]:
    """The advances that take a case from start to completion, always acting
    on the first active step with its first ``proceed`` outcome.

    Raises:
        ValueError: the procedure has a system step (the raw loop does not
            model steps that complete themselves).
    """
    steps = defn.steps
    kinds = [defn.role_kind(s) for s in steps]
    if "system" in kinds:
        raise ValueError(f"{defn.code}: system steps are not modelled by the raw loop")
    status = [WAITING] * len(steps)

    def settle() -> tuple[list[tuple[int, str, float]], list[tuple[int, str]]]:
        activated: list[tuple[int, str, float]] = []
        skipped: list[tuple[int, str]] = []
        for i in defn.order:
            if status[i] != WAITING or any(status[p] not in FINISHED for p in defn.predecessors[i]):
                continue
            when = steps[i].when
            if when is not None and not evaluate(when, data):
                status[i] = SKIPPED
                skipped.append((i, steps[i].id))
            else:
                status[i] = ACTIVE
                activated.append((i, steps[i].id, steps[i].duration))
        return activated, skipped

    settle()
    out: list[Advance] = []
    while ACTIVE in status:
        i = status.index(ACTIVE)
        step = steps[i]
        outcome = next(name for name, effect in step.outcomes if effect.kind == "proceed")
        status[i] = COMPLETED
        activated, skipped = settle()
        out.append(
            Advance(
                position=i,
                step=step.id,
                outcome=outcome,
                role=step.role,
                by_applicant=kinds[i] == "applicant",
                decision=step.kind in ("approve", "sign"),
                activated=tuple(activated),
                skipped=tuple(skipped),
                closes=all(s in FINISHED for s in status),
            )
        )
    return out


def actor_for(advance: Advance) -> Actor:
    if advance.by_applicant:
        return Actor(APPLICANT, UNIT)
    return Actor(f"cb_{advance.role}", UNIT, frozenset({advance.role}))


class RawDb(Protocol):
    """What the raw loop needs of a DB-API connection."""

    def begin(self) -> None: ...
    def one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...]: ...
    def all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...
    def run(self, sql: str, params: Sequence[Any]) -> int: ...
    def commit(self) -> None: ...
    def time(self, moment: dt.datetime) -> Any: ...
    def close(self) -> None: ...


class RawSqlite:
    """``sqlite3`` with the pragmas tinhgon uses and ``BEGIN IMMEDIATE``."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
            self.conn.execute(f"PRAGMA {pragma}")

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...]:
        row: tuple[Any, ...] = self.conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any]) -> int:
        return self.conn.execute(sql, params).rowcount

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def time(self, moment: dt.datetime) -> str:
        return sqlite_time(moment)

    def close(self) -> None:
        self.conn.close()


class RawPostgres:
    """``psycopg`` 3; a transaction opens with the first statement."""

    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo)
        self.cur = self.conn.cursor()

    def begin(self) -> None:
        pass

    def one(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...]:
        row = self.cur.execute(sql.replace("?", "%s"), params).fetchone()
        assert row is not None
        return row

    def all(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.cur.execute(sql.replace("?", "%s"), params).fetchall()

    def run(self, sql: str, params: Sequence[Any]) -> int:
        return self.cur.execute(sql.replace("?", "%s"), params).rowcount

    def commit(self) -> None:
        self.conn.commit()

    def time(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)

    def close(self) -> None:
        self.conn.close()


RAW_CASE = "SELECT status, unit, applicant, version, event_count, head_hash FROM cases WHERE id = ?"
RAW_STEPS = "SELECT position, status, role FROM case_steps WHERE case_id = ? ORDER BY position"
RAW_FINISH = (
    "UPDATE case_steps SET status = 'completed', completed_at = ?, outcome = ?, actor = ? WHERE case_id = ? AND position = ?"
)
RAW_ACTIVATE = (
    "UPDATE case_steps SET status = 'active', activated_at = ?, due_at = ?, due_sort = ? WHERE case_id = ? AND position = ?"
)
RAW_SKIP = "UPDATE case_steps SET status = 'skipped' WHERE case_id = ? AND position = ?"
RAW_CASE_UPDATE = "UPDATE cases SET status = ?, version = ?, event_count = ?, head_hash = ? WHERE id = ? AND version = ?"
RAW_EVENT = (
    "INSERT INTO events (case_id, seq, at, actor, type, step, outcome, comment, data, decision, prev_hash, hash, signature) "
    "VALUES (?, ?, ?, ?, 'action', ?, ?, NULL, ?, ?, ?, ?, NULL)"
)


def raw_advance(db: RawDb, case_id: int, advance: Advance, actor: Actor) -> None:
    """One advance as a hand-written transaction (see the module's description)."""
    db.begin()
    status, unit, applicant, version, count, head = db.one(RAW_CASE, (case_id,))
    steps = {position: (step_status, role) for position, step_status, role in db.all(RAW_STEPS, (case_id,))}
    step_status, role = steps[advance.position]
    allowed = actor.id == applicant if advance.by_applicant else actor.unit == unit and role in actor.roles
    if status != "open" or step_status != ACTIVE or not allowed:
        raise AssertionError(f"raw loop: case {case_id} cannot take {advance.step} ({status}, {step_status}, {actor})")
    now = dt.datetime.now(dt.UTC)
    at = db.time(now)
    db.run(RAW_FINISH, (at, advance.outcome, actor.id, case_id, advance.position))
    for position, _, hours in advance.activated:
        due = db.time(now + dt.timedelta(hours=hours)) if hours > 0 else None
        db.run(RAW_ACTIVATE, (at, due, due if due is not None else db.time(NO_DUE), case_id, position))
    for position, _ in advance.skipped:
        db.run(RAW_SKIP, (case_id, position))
    data = {
        "effect": "proceed",
        "activated": [step for _, step, _ in advance.activated],
        "skipped": [step for _, step in advance.skipped],
    }
    payload = {
        "case_id": case_id,
        "seq": count + 1,
        "at": now.isoformat(timespec="microseconds"),
        "actor": actor.id,
        "type": "action",
        "step": advance.step,
        "outcome": advance.outcome,
        "comment": None,
        "data": data,
        "decision": advance.decision,
    }
    digest = hashlib.sha256(head.encode("ascii") + canonical_json(payload)).hexdigest()
    new_status = "completed" if advance.closes else "open"
    if db.run(RAW_CASE_UPDATE, (new_status, version + 1, count + 1, digest, case_id, version)) != 1:
        raise AssertionError(f"raw loop: case {case_id} changed under it")
    event_row = (case_id, count + 1, payload["at"], actor.id, advance.step, advance.outcome)
    db.run(RAW_EVENT, (*event_row, json.dumps(data, ensure_ascii=False), advance.decision, head, digest))
    db.commit()


def act(service: CaseService, actor: Actor, case_id: int, advance: Advance) -> None:
    """One advance through ``CaseService.act``, in a transaction of its own as a request makes it."""
    with service.store.direct() as db:
        service.act(actor, case_id, step=advance.step, outcome=advance.outcome, db=db)


def start(service: CaseService, actor: Actor, code: str, unit: str, data: Any) -> int:
    """A case started through ``CaseService.start`` in a transaction of its own."""
    with service.store.direct() as db:
        return service.start(actor, code=code, unit=unit, data=data, db=db).id


def inbox(service: CaseService, actor: Actor) -> tuple[list[Any], str | None]:
    """A page of ``actor`` 's inbox, read as the API reads it."""
    with service.store.reading() as db:
        return service.inbox(actor, limit=PAGE, db=db)


def tinhgon_waves(service: CaseService, plan: Sequence[Advance], actors: Sequence[Actor], cases: Sequence[int]) -> None:
    """Every case's first advance, then every case's second, ..., through ``CaseService.act``."""
    for advance, actor in zip(plan, actors, strict=True):
        for case_id in cases:
            act(service, actor, case_id, advance)


def raw_waves(db: RawDb, plan: Sequence[Advance], actors: Sequence[Actor], cases: Sequence[int]) -> None:
    """The same advances in the same order through the raw loop."""
    for advance, actor in zip(plan, actors, strict=True):
        for case_id in cases:
            raw_advance(db, case_id, advance, actor)


def raw_statements(advance: Advance) -> int:
    """Statements the raw loop sends for ``advance``, BEGIN and COMMIT included."""
    return 2 + 2 + 1 + len(advance.activated) + len(advance.skipped) + 1 + 1


@dataclass
class AdvanceResult:
    database: str
    procedure: str
    steps: int
    advances: int
    tinhgon_seconds: float
    raw_seconds: float
    tinhgon_cpu: float
    raw_cpu: float
    logic_seconds: float
    """the same advances on in-memory states: CompiledProcedure.act and seal only, no database"""
    tinhgon_statements: float
    raw_statements: float

    def ms(self, seconds: float) -> str:
        return f"{seconds / self.advances * 1000:.2f}"

    @property
    def tinhgon_rate(self) -> float:
        return self.advances / self.tinhgon_seconds

    @property
    def raw_rate(self) -> float:
        return self.advances / self.raw_seconds

    @property
    def ratio(self) -> float:
        return self.tinhgon_rate / self.raw_rate

    @property
    def target(self) -> float:
        return TARGET_SQLITE if self.database == "SQLite" else TARGET_POSTGRES


def start_cases(service: CaseService, proc: Procedure, n: int) -> list[int]:
    applicant = Actor(APPLICANT, UNIT)
    return [start(service, applicant, proc.definition.code, UNIT, proc.data) for _ in range(n)]


def measure_advances(database: str, url: str, raw: Callable[[], RawDb], cases: int) -> list[AdvanceResult]:
    store = Store(url)
    upgrade(store.engine)
    service = CaseService(store, signer=Signer.generate(), calendar=WorkingCalendar())
    counting = Counting(store)
    db = raw()
    results = []
    try:
        for proc in procedures_under_test():
            publish_definition(store, proc.body, source=proc.label)
            plan = script(proc.definition, proc.data)
            actors = [actor_for(a) for a in plan]
            # Warm up both loops (compiling the machine, preparing statements)
            # on cases of their own, and count the statements of each advance.
            warm_tinhgon, warm_raw = start_cases(service, proc, 2), start_cases(service, proc, 2)
            sent = 0
            for advance, actor in zip(plan, actors, strict=True):
                with counting.recording() as statements:
                    act(service, actor, warm_tinhgon[0], advance)
                sent += len(statements)
                act(service, actor, warm_tinhgon[1], advance)
                for case_id in warm_raw:
                    raw_advance(db, case_id, advance, actor)
            tinhgon_cases, raw_cases = start_cases(service, proc, cases), start_cases(service, proc, cases)
            log(f"  {database} {proc.label}: {2 * cases} cases started, {len(plan)} advances each")
            seconds = {"tinhgon": 0.0, "raw": 0.0}
            cpu = {"tinhgon": 0.0, "raw": 0.0}
            for r in range(ROUNDS):
                order: list[tuple[str, Callable[[], None]]] = [
                    ("tinhgon", functools.partial(tinhgon_waves, service, plan, actors, tinhgon_cases[r::ROUNDS])),
                    ("raw", functools.partial(raw_waves, db, plan, actors, raw_cases[r::ROUNDS])),
                ]
                for name, run in order if r % 2 == 0 else order[::-1]:
                    gc.collect()
                    started, used = time.perf_counter(), time.process_time()
                    run()
                    seconds[name] += time.perf_counter() - started
                    cpu[name] += time.process_time() - used
            check_completed(store, [*warm_tinhgon, *warm_raw, *tinhgon_cases, *raw_cases], len(plan))
            result = AdvanceResult(
                database=database,
                procedure=proc.label,
                steps=len(proc.definition.steps),
                advances=cases * len(plan),
                tinhgon_seconds=seconds["tinhgon"],
                raw_seconds=seconds["raw"],
                tinhgon_cpu=cpu["tinhgon"],
                raw_cpu=cpu["raw"],
                logic_seconds=logic_only(proc, plan, actors, cases, service.signer),
                tinhgon_statements=sent / len(plan),
                raw_statements=sum(raw_statements(a) for a in plan) / len(plan),
            )
            log(
                f"  {database} {proc.label}: tinhgon {result.tinhgon_rate:,.0f}/s, raw {result.raw_rate:,.0f}/s "
                f"(ratio {result.ratio:.2f})"
            )
            results.append(result)
    finally:
        db.close()
        store.dispose()
    return results


def logic_only(proc: Procedure, plan: Sequence[Advance], actors: Sequence[Actor], cases: int, signer: Signer) -> float:
    """Seconds the engine's own work takes for ``cases`` cases of ``plan``
    without a database: the compiled machine's ``act`` on plain states and
    sealing (hashing, signing) the events it returns."""
    machine = CompiledProcedure(proc.definition)
    calendar = WorkingCalendar()
    applicant = Actor(APPLICANT, UNIT)
    now = dt.datetime.now(dt.UTC)
    states = [
        machine.start(data=proc.data, unit=UNIT, applicant=APPLICANT, actor=applicant, now=now, calendar=calendar)[0]
        for _ in range(cases)
    ]
    heads, seqs = [GENESIS] * cases, [1] * cases
    gc.collect()
    began = time.perf_counter()
    for advance, actor in zip(plan, actors, strict=True):
        for k, state in enumerate(states):
            entries = machine.act(
                state, step=advance.step, outcome=advance.outcome, actor=actor, now=dt.datetime.now(dt.UTC), calendar=calendar
            )
            records = seal_entries(k + 1, heads[k], seqs[k], entries, signer)
            if records:
                heads[k], seqs[k] = records[-1].hash, records[-1].seq
    return time.perf_counter() - began


def check_completed(store: Store, case_ids: list[int], advances: int) -> None:
    """Every case completed, with its creation event and one event per advance."""
    with store.unit(write=False) as uow:
        statuses = {
            r.id: r.status for r in uow.session.execute(select(CaseRow.id, CaseRow.status).where(CaseRow.id.in_(case_ids)))
        }
        counted = (
            select(EventRow.case_id, func.count().label("n")).where(EventRow.case_id.in_(case_ids)).group_by(EventRow.case_id)
        )
        events = {r.case_id: r.n for r in uow.session.execute(counted)}
    bad = [c for c in case_ids if statuses.get(c) != "completed" or events.get(c) != advances + 1]
    if bad:
        raise AssertionError(f"cases not completed as scripted: {bad[:5]} ({len(bad)} in all)")


def report_advances(results: Sequence[AdvanceResult]) -> str:
    headers = [
        "database",
        "procedure",
        "advances",
        "tinhgon/s",
        "raw/s",
        "tinhgon/raw",
        "target",
        "met",
        "ms/adv",
        "CPU ms/adv",
        "no-DB ms/adv",
        "SQL per adv.",
    ]
    rows = [
        [
            r.database,
            f"{r.procedure} ({r.steps} steps)",
            f"{r.advances:,}",
            f"{r.tinhgon_rate:,.0f}",
            f"{r.raw_rate:,.0f}",
            f"{r.ratio:.2f}",
            f">= {r.target:.2f}",
            "yes" if r.ratio >= r.target else "NO",
            f"{r.ms(r.tinhgon_seconds)} vs {r.ms(r.raw_seconds)}",
            f"{r.ms(r.tinhgon_cpu)} vs {r.ms(r.raw_cpu)}",
            r.ms(r.logic_seconds),
            f"{r.tinhgon_statements:.1f} vs {r.raw_statements:.1f}",
        ]
        for r in results
    ]
    return "\n".join(
        [
            "1. Persisted step advances per second (CaseService.act against the hand-written raw loop).",
            "   ms/adv and CPU ms/adv: wall and client-process CPU time per advance, tinhgon vs raw; no-DB ms/adv: the same",
            "   advances with CompiledProcedure.act + seal on in-memory states (the engine's own work, no database);",
            "   SQL per adv.: statements sent per advance, tinhgon (BEGIN and COMMIT not counted) vs raw (BEGIN and COMMIT counted)",
            table(headers, rows),
        ]
    )


# -- 2. memory -----------------------------------------------------------------------
def machines_alive() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, Machine))


def memory_child(mode: str, n: int) -> dict[str, Any]:
    """Runs in a fresh process: RSS after the first 1,000 cases and after ``n``."""
    linear = linear_definition()
    calendar = WorkingCalendar()
    start = dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)
    checkpoints = sorted({c for c in (MEMORY_FIRST, n // 10, n // 2, n) if MEMORY_FIRST <= c <= n})
    points: list[tuple[int, int, float]] = []
    out: dict[str, Any] = {"mode": mode, "cases": n}
    if mode == "machine":
        machine = CompiledProcedure(load_text(linear, "<linear>"))

        def one(k: int) -> Any:
            state, _ = machine.start(
                data={},
                unit=UNITS[k % len(UNITS)],
                applicant=f"{APPLICANT}{k}",
                actor=Actor(f"{APPLICANT}{k}", UNIT),
                now=start + dt.timedelta(seconds=k),
                calendar=calendar,
            )
            return state

        for k in range(100):  # warm up: caches of the calendar, the machine's first triggers
            one(k)
        gc.collect()
        out["rss_base"] = rss_bytes()
        kept = []
        began = time.perf_counter()
        for k in range(n):
            kept.append(one(k))
            if k + 1 in checkpoints:
                gc.collect()
                points.append((k + 1, rss_bytes(), time.perf_counter() - began))
        out["machines"] = machines_alive()
        del kept
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        sample = [one(k) for k in range(MEMORY_FIRST)]
        out["traced_per_case"] = (tracemalloc.get_traced_memory()[0] - before) / len(sample)
        tracemalloc.stop()
    else:
        with tempfile.TemporaryDirectory(prefix="tinhgon-bench-") as folder:
            path = Path(folder) / "memory.db"
            store = Store(f"sqlite:///{path}")
            upgrade(store.engine)
            publish_definition(store, linear, source="<linear>")
            service = CaseService(store, signer=Signer.generate(), calendar=calendar)
            code = load_text(linear, "<linear>").code
            for k in range(200):
                start(service, Actor(f"w{k}", UNIT), code, UNIT, {})
            gc.collect()
            out["rss_base"] = rss_bytes()
            began = time.perf_counter()
            for k in range(n):
                start(service, Actor(f"{APPLICANT}{k}", UNIT), code, UNITS[k % len(UNITS)], {})
                if k + 1 in checkpoints:
                    gc.collect()
                    points.append((k + 1, rss_bytes(), time.perf_counter() - began))
            out["machines"] = machines_alive()
            out["db_bytes"] = path.stat().st_size + sum(p.stat().st_size for p in Path(folder).glob("memory.db-*"))
            store.dispose()
    out["points"] = points
    return out


@dataclass
class MemoryResult:
    label: str
    cases: int
    rss_base: int
    points: list[tuple[int, int, float]]
    machines: int
    traced_per_case: float | None
    db_bytes: int | None

    @property
    def first(self) -> tuple[int, int, float]:
        return self.points[0]

    @property
    def last(self) -> tuple[int, int, float]:
        return self.points[-1]

    @property
    def per_case(self) -> float:
        (n1, r1, _), (n2, r2, _) = self.first, self.last
        return (r2 - r1) / (n2 - n1) if n2 > n1 else float("nan")


def measure_memory(machine_cases: int, service_cases: int) -> list[MemoryResult]:
    results = []
    for mode, n, label in (
        ("machine", machine_cases, "CompiledProcedure.start, states kept in a list"),
        ("service", service_cases, "CaseService.start on SQLite, committed, nothing kept"),
    ):
        log(f"  memory: {label}, {n:,} cases (fresh process) ...")
        command = [sys.executable, __file__, "--memory-child", mode, "--memory-cases", str(n)]
        done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        raw = json.loads(done.stdout)
        results.append(
            MemoryResult(
                label=label,
                cases=n,
                rss_base=raw["rss_base"],
                points=[tuple(p) for p in raw["points"]],
                machines=raw["machines"],
                traced_per_case=raw.get("traced_per_case"),
                db_bytes=raw.get("db_bytes"),
            )
        )
    return results


def report_memory(results: Sequence[MemoryResult]) -> str:
    out = ["2. Memory: VmRSS of a fresh process as cases of one version pile up (MiB; base = after warm-up)"]
    headers = ["mode", "base", "RSS @1k", "RSS @last", "last", "last/1k", "bytes/case", "machines", "s per 1k"]
    rows = []
    for r in results:
        (_, r1, _), (n2, r2, t2) = r.first, r.last
        rows.append(
            [
                r.label,
                mib(r.rss_base),
                mib(r1),
                mib(r2),
                f"{n2:,}",
                f"{r2 / r1:.2f}",
                f"{r.per_case:,.0f}",
                str(r.machines),
                f"{t2 / n2 * 1000:.2f}",
            ]
        )
    out.append(table(headers, rows))
    for r in results:
        out.append(f"   {r.label}: " + ", ".join(f"{n:,} cases {mib(rss)} MiB" for n, rss, _ in r.points))
        if r.traced_per_case is not None:
            out.append(
                f"   data kept per case (tracemalloc of 1,000 states): {r.traced_per_case:,.0f} bytes; "
                f"RSS growth per case {r.per_case:,.0f} bytes ({r.per_case / r.traced_per_case:.2f}x the data); "
                f"{r.machines} transitions.Machine objects alive after {r.cases:,} cases "
                "(the step lifecycle and the one compiled version)"
            )
        if r.db_bytes is not None:
            n2, _, t2 = r.last
            out.append(
                f"   {n2:,} cases through CaseService took {t2:.0f} s ({t2 / n2 * 1000:.2f} ms each; 100,000 would take "
                f"about {t2 / n2 * 100_000 / 60:.0f} min); database {mib(r.db_bytes)} MiB on disk"
            )
    return "\n".join(out)


# -- 3. inbox ------------------------------------------------------------------------
CASE_COLUMNS = (
    "id, procedure_id, code, procedure_version, unit, applicant, status, data, created_at, due_at, "
    "paused_since, guided, version, event_count, head_hash"
)
STEP_COLUMNS = "case_id, position, step_id, role, role_kind, unit, applicant, status, activated_at, due_at, due_sort, completed_at, outcome, actor"


@dataclass(frozen=True, slots=True)
class LoadStats:
    cases: int
    steps: int
    active: int
    open: int
    load_seconds: float
    analyze_seconds: float
    size_bytes: int


def generate_rows(
    defn: Definition, procedure_id: int, n: int, now: dt.datetime, seed: int
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Case rows and step rows, ``LOAD_CHUNK`` cases at a time (times as UTC text)."""
    rng = random.Random(seed)
    steps = defn.steps
    outcome = [next(name for name, effect in s.outcomes if effect.kind == "proceed") for s in steps]
    actor = [f"cb_{s.role}" for s in steps]
    no_due = sqlite_time(NO_DUE)
    past = [sqlite_time(now - dt.timedelta(minutes=17 * k)) for k in range(8_000)]  # back about 94 days
    created_span = len(past) - len(steps) * 2 - 1
    chunk_cases: list[tuple[Any, ...]] = []
    chunk_steps: list[tuple[Any, ...]] = []
    for case_id in range(1, n + 1):
        unit = UNITS[rng.randrange(len(UNITS))]
        applicant = f"{APPLICANT}{rng.randrange(200_000)}"
        roll = rng.random()
        status = "open" if roll < 0.80 else "completed" if roll < 0.95 else "withdrawn"
        at = rng.randrange(len(steps)) if status != "completed" else len(steps)
        made = rng.randrange(created_span) + len(steps) * 2
        created = past[made]
        chunk_cases.append(
            (
                case_id,
                procedure_id,
                defn.code,
                defn.version,
                unit,
                applicant,
                status,
                "{}",
                created,
                *(None,) * 3,
                at + 1,
                0,
                GENESIS,
            )
        )
        for j, step in enumerate(steps):
            base = (case_id, j, step.id, step.role, "office", unit, applicant)
            row: tuple[str | None, ...]
            if j < at:
                begun, ended = past[made - 2 * j], past[made - 2 * j - 1]
                row = (COMPLETED, begun, ended, ended, ended, outcome[j], actor[j])
            elif j == at and status == "open":
                due = sqlite_time(now + dt.timedelta(minutes=rng.randrange(-20 * 24 * 60, 40 * 24 * 60)))
                row = (ACTIVE, past[made - 2 * j], due, due, None, None, None)
            elif status == "withdrawn":
                row = ("cancelled", None, None, no_due, None, None, None)
            else:
                row = (WAITING, None, None, no_due, None, None, None)
            chunk_steps.append(base + row)
        if len(chunk_cases) == LOAD_CHUNK or case_id == n:
            yield chunk_cases, chunk_steps
            chunk_cases, chunk_steps = [], []


def load_sqlite(path: Path, defn: Definition, procedure_id: int, n: int, now: dt.datetime) -> tuple[float, float]:
    """Bulk-load ``n`` cases into the migrated database at ``path``: seconds to load, to ANALYZE.

    The load alone runs without a journal (a crash would only lose the
    benchmark's data); the database goes back to WAL afterwards.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1048576"):
            conn.execute(f"PRAGMA {pragma}")
        cases_sql = f"INSERT INTO cases ({CASE_COLUMNS}) VALUES ({', '.join('?' * 15)})"
        steps_sql = f"INSERT INTO case_steps ({STEP_COLUMNS}) VALUES ({', '.join('?' * 14)})"
        began = time.perf_counter()
        conn.execute("BEGIN")
        for k, (cases, steps) in enumerate(generate_rows(defn, procedure_id, n, now, SEED)):
            conn.executemany(cases_sql, cases)
            conn.executemany(steps_sql, steps)
            if k % 10 == 9:
                log(f"    SQLite: {(k + 1) * LOAD_CHUNK:,} cases loaded ({time.perf_counter() - began:.0f} s)")
        conn.execute("COMMIT")
        loaded = time.perf_counter() - began
        began = time.perf_counter()
        conn.execute("ANALYZE")
        analyzed = time.perf_counter() - began
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    return loaded, analyzed


def load_postgres(conninfo: str, defn: Definition, procedure_id: int, n: int, now: dt.datetime) -> tuple[float, float]:
    """Bulk-load ``n`` cases with COPY: seconds to load, to VACUUM (ANALYZE).

    Foreign-key triggers are off for the load (``session_replication_role =
    replica``; the rows are consistent by construction). VACUUM (ANALYZE)
    rather than ANALYZE alone, so that autovacuum does not start on the ten
    million new rows while the queries are timed.
    """
    with psycopg.connect(conninfo) as conn:
        began = time.perf_counter()
        conn.execute("SET session_replication_role = replica")
        with conn.cursor() as cur:
            for k, (cases, steps) in enumerate(generate_rows(defn, procedure_id, n, now, SEED)):
                with cur.copy(f"COPY cases ({CASE_COLUMNS}) FROM STDIN") as copy:
                    for row in cases:
                        copy.write_row(row)
                with cur.copy(f"COPY case_steps ({STEP_COLUMNS}) FROM STDIN") as copy:
                    for row in steps:
                        copy.write_row(row)
                if k % 10 == 9:
                    log(f"    PostgreSQL: {(k + 1) * LOAD_CHUNK:,} cases loaded ({time.perf_counter() - began:.0f} s)")
            cur.execute("SELECT setval(pg_get_serial_sequence('cases', 'id'), (SELECT max(id) FROM cases))")
        conn.commit()
        loaded = time.perf_counter() - began
        conn.autocommit = True
        began = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        analyzed = time.perf_counter() - began
    return loaded, analyzed


@dataclass
class InboxResult:
    database: str
    stats: LoadStats
    inbox_ms: list[float]
    lookup_ms: list[float]
    inbox_cpu_ms: float
    """mean CPU time of this process per inbox call"""
    lookup_cpu_ms: float
    statements: int
    plans: list[tuple[int, str, list[str]]]
    """(times sent per call, statement, plan lines) of each SELECT one inbox call sends"""

    def p(self, which: str, q: float) -> float:
        return percentile(self.inbox_ms if which == "inbox" else self.lookup_ms, q)

    def uses(self, index: str) -> bool:
        return any(index in line for _, _, plan in self.plans for line in plan)


def random_official(rng: random.Random, roles: Sequence[str], k: int) -> Actor:
    return Actor(f"cb{k}", rng.choice(UNITS), frozenset(rng.sample(roles, rng.choice((1, 2, 2, 3)))))


def check_page(items: Sequence[Any], cursor: str | None, actor: Actor, defn: Definition) -> None:
    """A full page (or the last one), earliest due first, of steps of the official's roles."""
    keys = [(i.due_at or NO_DUE, i.case_id) for i in items]
    roles = {defn.steps[defn.index[i.step]].role for i in items}
    if len(items) > PAGE or (len(items) < PAGE and cursor is not None) or keys != sorted(keys) or not roles <= actor.roles:
        raise AssertionError(f"inbox of {actor}: {len(items)} items, roles {roles}, sorted {keys == sorted(keys)}")


def explain(store: Store, statement: str, parameters: Any) -> list[str]:
    if isinstance(parameters, list):  # positional, as the direct path passes them
        parameters = tuple(parameters)
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + str(detail))
            return lines
        return [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()]


def measure_inbox(
    database: str, url: str, load: Callable[[Definition, int, int, dt.datetime], tuple[float, float]], n: int, calls: int
) -> InboxResult:
    defn = load_text(linear_definition(), "<linear>")
    store = Store(url)
    upgrade(store.engine)
    procedure_id = publish_definition(store, linear_definition(), source="<linear>").id
    store.dispose()
    now = dt.datetime.now(dt.UTC)
    log(f"  {database}: loading {n:,} cases ...")
    loaded, analyzed = load(defn, procedure_id, n, now)
    store = Store(url)
    service = CaseService(store, signer=Signer.generate(), calendar=WorkingCalendar())
    try:
        with store.unit(write=False) as uow:
            count = uow.session.scalar(select(func.count()).select_from(CaseStepRow)) or 0
            active = uow.session.scalar(select(func.count()).select_from(CaseStepRow).where(CaseStepRow.status == ACTIVE)) or 0
            opened = uow.session.scalar(select(func.count()).select_from(CaseRow).where(CaseRow.status == "open")) or 0
            if store.dialect == "sqlite":
                size = Path(make_url(url).database or "").stat().st_size
            else:
                size = uow.session.scalar(text("SELECT pg_database_size(current_database())")) or 0
        stats = LoadStats(n, count, active, opened, loaded, analyzed, size)
        log(f"  {database}: {count:,} step rows ({active:,} active) in {loaded:.0f} s, analyzed in {analyzed:.0f} s")
        roles = sorted({s.role for s in defn.steps})
        rng = random.Random(SEED)
        for k in range(INBOX_WARMUP):
            inbox(service, random_official(rng, roles, k))
        inbox_ms = []
        used = 0.0
        for k in range(calls):
            actor = random_official(rng, roles, k)
            began, cpu = time.perf_counter(), time.process_time()
            items, cursor = inbox(service, actor)
            inbox_ms.append((time.perf_counter() - began) * 1000)
            used += time.process_time() - cpu
            check_page(items, cursor, actor, defn)
        inbox_cpu = used / calls * 1000
        lookup_ms = []
        used = 0.0
        for _ in range(calls):
            key = (rng.randrange(1, n + 1), rng.randrange(len(defn.steps)))
            began, cpu = time.perf_counter(), time.process_time()
            with store.unit(write=False) as uow:
                row = uow.session.get(CaseStepRow, key)
            lookup_ms.append((time.perf_counter() - began) * 1000)
            used += time.process_time() - cpu
            if row is None:
                raise AssertionError(f"no step row {key}")
        lookup_cpu = used / calls * 1000
        counting = Counting(store)
        with counting.recording() as sent:
            inbox(service, random_official(rng, roles, calls))
        plans: list[tuple[int, str, list[str]]] = []
        seen: dict[str, int] = {}
        for statement, _ in sent:
            seen[statement] = seen.get(statement, 0) + 1
        for statement, parameters in sent:
            if statement.lstrip().upper().startswith("SELECT") and all(s != statement for _, s, _ in plans):
                plans.append((seen[statement], statement, explain(store, statement, parameters)))
    finally:
        store.dispose()
    return InboxResult(database, stats, inbox_ms, lookup_ms, inbox_cpu, lookup_cpu, len(sent), plans)


def condensed(plan: Sequence[str], keep: int = 4) -> list[str]:
    """``plan`` with lines that differ only in numbers shown ``keep`` times, then counted."""
    shape = [re.sub(r"\d+(\.\d+)?", "#", line) for line in plan]
    counts = Counter(shape)
    shown: Counter[str] = Counter()
    out = []
    for line, key in zip(plan, shape, strict=True):
        shown[key] += 1
        if shown[key] <= keep:
            out.append(line)
    out += [f"[{n} lines like: {key.strip()}]" for key, n in counts.items() if n > keep]
    return out


def report_inbox(results: Sequence[InboxResult]) -> str:
    headers = [
        "database",
        "cases",
        "step rows",
        "active",
        "load s",
        "analyze s",
        "size MiB",
        "SQL/call",
        "inbox p50",
        "inbox p95",
        "PK p50",
        "PK p95",
        "CPU inbox/PK",
        "p50 ratio",
        "p95 ratio",
        "p95 < 50 ms",
    ]
    rows = [
        [
            r.database,
            f"{r.stats.cases:,}",
            f"{r.stats.steps:,}",
            f"{r.stats.active:,}",
            f"{r.stats.load_seconds:.0f}",
            f"{r.stats.analyze_seconds:.0f}",
            mib(r.stats.size_bytes),
            str(r.statements),
            f"{r.p('inbox', 0.5):.2f}",
            f"{r.p('inbox', 0.95):.2f}",
            f"{r.p('lookup', 0.5):.3f}",
            f"{r.p('lookup', 0.95):.3f}",
            f"{r.inbox_cpu_ms:.2f}/{r.lookup_cpu_ms:.3f}",
            f"{r.p('inbox', 0.5) / r.p('lookup', 0.5):.0f}",
            f"{r.p('inbox', 0.95) / r.p('lookup', 0.95):.0f}",
            "yes" if r.p("inbox", 0.95) < TARGET_P95_MS else "NO",
        ]
        for r in results
    ]
    out = [
        f"3. Inbox (first page of {PAGE}, {len(results[0].inbox_ms) if results else 0} random officials; ms) against a "
        "primary-key read of one case_steps row (PK), same store, same timing;",
        "   CPU inbox/PK: mean CPU time of this process per call (the rest of the wall time is the database and waiting for a CPU)",
        table(headers, rows),
    ]
    for r in results:
        used = ", ".join(f"{index} {'yes' if r.uses(index) else 'NO'}" for index in INBOX_INDEXES)
        out += ["", f"   {r.database}: plans of the statements one inbox call sends ({r.statements} in all); uses {used}"]
        for times, statement, plan in r.plans:
            first = " ".join(statement.split())
            out.append(f"   -- sent {times}x: {first[:150]}{' ...' if len(first) > 150 else ''}")
            out += [f"      {line}" for line in condensed(plan)]
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------
SECTIONS = ("advances", "memory", "inbox")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", choices=SECTIONS, help="run one section only")
    parser.add_argument(
        "--cases", type=int, default=DEFAULT_CASES, help="advances: cases per procedure and per loop (default: %(default)s)"
    )
    parser.add_argument(
        "--memory-cases", type=int, default=MEMORY_CASES, help="memory: CompiledProcedure.start cases (default: %(default)s)"
    )
    parser.add_argument(
        "--service-cases", type=int, default=SERVICE_CASES, help="memory: CaseService.start cases (default: %(default)s)"
    )
    parser.add_argument("--inbox-cases", type=int, default=INBOX_CASES, help="inbox: cases loaded (default: %(default)s)")
    parser.add_argument("--inbox-calls", type=int, default=INBOX_CALLS, help="inbox: timed calls (default: %(default)s)")
    parser.add_argument("--memory-child", choices=("machine", "service"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.memory_cases)))
        return 0
    sections = (args.only,) if args.only else SECTIONS
    started = time.perf_counter()
    print(
        f"python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, psycopg {psycopg.__version__}, {os.cpu_count()} CPUs"
    )
    postgres, why_not = open_postgres() if {"advances", "inbox"} & set(sections) else (None, None)
    if why_not:
        print(f"PostgreSQL figures skipped: {why_not}")
    summary: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tinhgon-bench-") as folder:
            if "advances" in sections:
                log("1. advances ...")
                runs: list[AdvanceResult] = measure_advances(
                    "SQLite", f"sqlite:///{folder}/advances.db", lambda: RawSqlite(f"{folder}/advances.db"), args.cases
                )
                if postgres is not None:
                    pg = postgres
                    runs += measure_advances("PostgreSQL", pg.url, lambda: RawPostgres(pg.conninfo), args.cases)
                print("\n" + report_advances(runs), flush=True)
                summary += [
                    f"advances {r.database}, {r.procedure}: {r.tinhgon_rate:,.0f}/s vs raw {r.raw_rate:,.0f}/s = {r.ratio:.2f} "
                    f"(target {r.target:.2f}: {'met' if r.ratio >= r.target else 'NOT met'})"
                    for r in runs
                ]
            if "memory" in sections:
                log("2. memory ...")
                memory = measure_memory(args.memory_cases, args.service_cases)
                print("\n" + report_memory(memory), flush=True)
                summary += [
                    f"memory {r.label}: RSS {mib(r.first[1])} MiB @ {r.first[0]:,} -> {mib(r.last[1])} MiB @ {r.last[0]:,} "
                    f"(x{r.last[1] / r.first[1]:.2f}, {r.per_case:,.0f} bytes/case)"
                    for r in memory
                ]
            if "inbox" in sections:
                log("3. inbox ...")
                path = Path(folder) / "inbox.db"
                inbox = [
                    measure_inbox(
                        "SQLite",
                        f"sqlite:///{path}",
                        lambda d, p, n, now: load_sqlite(path, d, p, n, now),
                        args.inbox_cases,
                        args.inbox_calls,
                    )
                ]
                path.unlink()
                if postgres is not None:
                    pg = postgres
                    pg.reset()
                    inbox.append(
                        measure_inbox(
                            "PostgreSQL",
                            pg.url,
                            lambda d, p, n, now: load_postgres(pg.conninfo, d, p, n, now),
                            args.inbox_cases,
                            args.inbox_calls,
                        )
                    )
                print("\n" + report_inbox(inbox), flush=True)
                summary += [
                    f"inbox {r.database}, {r.stats.cases:,} cases: p50 {r.p('inbox', 0.5):.1f} ms, p95 {r.p('inbox', 0.95):.1f} ms "
                    f"(target < {TARGET_P95_MS:.0f} ms: {'met' if r.p('inbox', 0.95) < TARGET_P95_MS else 'NOT met'}); "
                    f"PK read p50 {r.p('lookup', 0.5):.2f} ms, p95 {r.p('lookup', 0.95):.2f} ms"
                    for r in inbox
                ]
    finally:
        if postgres is not None:
            postgres.drop()
    command = " ".join(["benchmarks/engine.py", *(argv if argv is not None else sys.argv[1:])])
    print("\nSummary")
    print("\n".join(f"  {line}" for line in summary))
    print(f"  command: .venv/bin/python {command}")
    print(f"  run time: {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
