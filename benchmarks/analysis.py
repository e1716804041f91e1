"""Benchmark of the procedure analyser on large generated procedures.

What it measures: for generated procedure-like definitions of 100, 1,000 and
10,000 steps (deterministic, fixed random seed), the wall-clock time of

* ``load``     -- ``procedures.load_text``: YAML parse + validation + indexes;
* ``metrics``  -- ``procedures.metrics``;
* ``findings`` -- ``procedures.find_all`` (every rule of section 8);
* ``simplify`` -- ``procedures.simplify`` (auto fixes to a fixed point, reload);

and, in the same run and on the same graph, the baseline
``networkx.transitive_reduction(defn.graph)``. Every phase is also shown as a
ratio to that baseline, with metrics + findings + simplify summed, and the
growth factor from 1,000 to 10,000 steps of that sum against the baseline's
(x10 is linear, x100 quadratic). Memory is the process's peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after each size, a high-water
mark that only grows as sizes run in increasing order; with ``--tracemalloc``,
also the ``tracemalloc`` peak of Python allocations of each phase, measured in
one extra, untimed run of that phase (tracing slows Python down, so it never
runs during a timed run).

Each generated step waits (``after``) for about two of the fifty steps before
it, reads documents its predecessors produced (and sometimes applicant
documents, some of which a registry already holds), produces a document, and
mostly has ``{ok: proceed}`` as outcome, some a ``reject``, a few a ``return``
to one of its ``after`` steps. A few patterns are planted so that every rule
finds something: documents a registry holds, documents asked for twice,
documents nobody reads, reviews repeated by the same official, cross-checks by
another role, approval chains, several visits, and a time limit below the lead
time. Loading asserts that the generated definition is valid.

Run it from the project root::

    .venv/bin/python benchmarks/analysis.py
    .venv/bin/python benchmarks/analysis.py --sizes 100,1000,10000
    .venv/bin/python benchmarks/analysis.py --sizes 100,1000 --tracemalloc

This is a benchmark, not a test: it asserts nothing about timings and is not
collected by pytest. Timings are the best of 5 runs up to 100 steps, of 3 runs
below 10,000 steps, and a single run from 10,000 steps on; other work on the
machine shows up in them.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import networkx as nx

import procedures
from procedures import Definition, DefinitionError
from procedures.durations import HOURS_PER_DAY, parse_hours

T = TypeVar("T")

SEED = 20240611
DEFAULT_SIZES = (100, 1_000, 10_000)
WINDOW = 50
"""a step's ``after`` steps are among the fifty before it"""

APPLICANT = "cong_dan"
SYSTEM = "he_thong"
ROLES: tuple[tuple[str, str, str], ...] = (
    (APPLICANT, "Công dân, tổ chức nộp hồ sơ", "applicant"),
    (SYSTEM, "Hệ thống thông tin giải quyết thủ tục hành chính", "system"),
    ("mot_cua", "Bộ phận tiếp nhận và trả kết quả", "office"),
    ("chuyen_vien", "Chuyên viên thụ lý", "office"),
    ("truong_phong", "Trưởng phòng chuyên môn", "office"),
    ("pho_giam_doc", "Phó Giám đốc Sở", "office"),
    ("giam_doc", "Giám đốc Sở", "office"),
    ("van_thu", "Văn thư", "office"),
    ("ke_toan", "Kế toán", "office"),
    ("phap_che", "Phòng Pháp chế", "office"),
    ("thanh_tra", "Thanh tra Sở", "office"),
    ("luu_tru", "Lưu trữ cơ quan", "office"),
)
OFFICE_KINDS: dict[str, tuple[str, ...]] = {
    "mot_cua": ("receive", "verify", "transfer", "issue"),
    "chuyen_vien": ("review", "review", "verify", "task", "task"),
    "truong_phong": ("review", "approve"),
    "pho_giam_doc": ("approve", "sign"),
    "giam_doc": ("approve", "sign"),
    "van_thu": ("task", "issue", "transfer", "archive"),
    "ke_toan": ("verify", "task"),
    "phap_che": ("review", "verify"),
    "thanh_tra": ("verify", "review"),
    "luu_tru": ("archive",),
}
OFFICE_WEIGHTS: dict[str, int] = {
    "mot_cua": 12,
    "chuyen_vien": 30,
    "truong_phong": 12,
    "pho_giam_doc": 6,
    "giam_doc": 4,
    "van_thu": 10,
    "ke_toan": 7,
    "phap_che": 7,
    "thanh_tra": 5,
    "luu_tru": 4,
}
SYSTEM_KINDS = ("notify", "verify", "task", "transfer", "archive")
APPLICANT_KINDS = ("submit", "submit", "submit", "submit", "pay", "receive", "receive")
REVIEW_KINDS = frozenset({"review", "verify", "approve"})
APPROVERS = ("truong_phong", "pho_giam_doc", "giam_doc")
KIND_NAMES: dict[str, str] = {
    "submit": "Nộp hồ sơ bổ sung",
    "receive": "Tiếp nhận",
    "review": "Thẩm định",
    "verify": "Kiểm tra, xác minh",
    "approve": "Phê duyệt",
    "sign": "Ký",
    "pay": "Nộp phí, lệ phí",
    "notify": "Thông báo",
    "issue": "Ban hành",
    "archive": "Lưu hồ sơ",
    "transfer": "Chuyển hồ sơ",
    "task": "Xử lý",
}
DURATIONS = ("30m", "1h", "2h", "4h", "1d", "1d", "2d", "3d")
EFFORTS = ("15m", "30m", "1h", "2h")
REGISTRIES = ("population", "civil_status", "insurance", "land", "business")
REGISTRY_DOCS: tuple[tuple[str, str, str], ...] = (
    ("csdl_dan_cu", "Thông tin công dân trên Cơ sở dữ liệu quốc gia về dân cư", "population"),
    ("csdl_bhxh", "Thông tin quá trình đóng bảo hiểm xã hội", "insurance"),
    ("csdl_dat_dai", "Thông tin thửa đất", "land"),
)


# -- generation ------------------------------------------------------------------
@dataclass
class _GenStep:
    index: int
    role: str
    kind: str
    after: list[int]
    inputs: list[str]
    outputs: list[str]
    duration: str
    effort: str | None = None
    visit: bool = False
    fee: int = 0
    when: str | None = None
    outcomes: list[tuple[str, str]] = field(default_factory=lambda: [("ok", "proceed")])
    handed_in: list[str] = field(default_factory=list)
    omit_after: bool = False


@dataclass
class _GenDoc:
    id: str
    name: str
    source: str | None = None
    registry: str | None = None
    prep_hours: float = 0.0
    prep_cost: int = 0
    deliverable: bool = False


def q(text: str) -> str:
    """``text`` as a double-quoted YAML scalar (JSON strings are YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _sid(i: int) -> str:
    return f"s{i:05d}"


class _Generator:
    """Builds one definition step by step, keeping it valid by construction."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed * 1_000_003 + n)
        self.steps: list[_GenStep] = []
        self.docs: list[_GenDoc] = []
        self.applicant_docs: list[str] = []
        """applicant documents, in the order they were first asked for"""
        self.unread: set[str] = set()
        """applicant documents planted as read by no office step"""
        self.repeated = False
        """whether a repeated review was planted"""
        self.office_roles = list(OFFICE_WEIGHTS)
        self.office_weights = [OFFICE_WEIGHTS[r] for r in self.office_roles]

    # documents
    def _new_applicant_doc(self) -> str:
        rng = self.rng
        k = len(self.applicant_docs)
        doc = _GenDoc(
            f"hs_{k:05d}",
            f"Giấy tờ số {k} của người nộp",
            source="applicant",
            prep_hours=rng.choice((0.25, 0.5, 1.0, 2.0)),
            prep_cost=rng.choice((0, 0, 2000, 5000, 10000)),
        )
        if rng.random() < 0.12:
            doc.registry = rng.choice(REGISTRIES)
            doc.name = f"Bản sao giấy tờ số {k} (đã có trong cơ sở dữ liệu)"
        if rng.random() < 0.06:
            self.unread.add(doc.id)
        self.docs.append(doc)
        self.applicant_docs.append(doc.id)
        return doc.id

    def _new_output(self, i: int, suffix: str = "") -> str:
        doc = _GenDoc(f"kq_{i:05d}{suffix}", f"Kết quả bước {i}{suffix}")
        self.docs.append(doc)
        return doc.id

    # steps
    def _preds(self, i: int) -> list[int]:
        if i == 0 or self.rng.random() < 0.002:
            return []
        k = self.rng.choices((1, 2, 3), weights=(30, 55, 15))[0]
        lo = max(0, i - WINDOW)
        return sorted(self.rng.sample(range(lo, i), min(k, i - lo)))

    def _role_and_kind(self, i: int) -> tuple[str, str]:
        rng = self.rng
        if i == 0:
            return APPLICANT, "submit"
        r = rng.random()
        if r < 0.12:
            return APPLICANT, rng.choice(APPLICANT_KINDS)
        if r < 0.20:
            return SYSTEM, rng.choice(SYSTEM_KINDS)
        role = rng.choices(self.office_roles, weights=self.office_weights)[0]
        return role, rng.choice(OFFICE_KINDS[role])

    def _ancestor_handed_in(self, preds: list[int]) -> list[str]:
        """Applicant documents handed in by the step's preds and their preds."""
        seen: list[str] = []
        for p in preds:
            for q in (p, *self.steps[p].after):
                for doc in self.steps[q].handed_in:
                    if doc not in seen and doc not in self.unread:
                        seen.append(doc)
        return seen

    def _read_predecessors(self, preds: list[int]) -> list[str]:
        rng = self.rng
        inputs: list[str] = []
        for p in preds:
            outputs = self.steps[p].outputs
            if outputs and rng.random() < 0.85:
                inputs.append(rng.choice(outputs))
            elif rng.random() < 0.25 and self.steps[p].after:
                grand = self.steps[rng.choice(self.steps[p].after)]
                if grand.outputs:
                    inputs.append(rng.choice(grand.outputs))
        return list(dict.fromkeys(inputs))

    def _repeat_review(self, i: int) -> _GenStep | None:
        """Same role and kind reviews again what the previous step reviewed."""
        prev = self.steps[i - 1]
        if prev.kind not in REVIEW_KINDS or prev.role in (APPLICANT, SYSTEM) or not prev.inputs:
            return None
        inputs = self.rng.sample(prev.inputs, self.rng.randint(1, len(prev.inputs)))
        return _GenStep(
            i, prev.role, prev.kind, [i - 1], inputs, [self._new_output(i)], self.rng.choice(DURATIONS[:4]), when=prev.when
        )

    def _cross_check(self, i: int) -> _GenStep | None:
        """Another role checks again what a recent review read (overlapping review)."""
        recent = [s for s in self.steps[max(0, i - 10) : i] if s.kind in REVIEW_KINDS and s.role != "thanh_tra" and s.inputs]
        if not recent:
            return None
        base = self.rng.choice(recent)
        return _GenStep(i, "thanh_tra", "verify", [base.index], list(base.inputs[:2]), [self._new_output(i)], "1d", effort="2h")

    def _approval(self, i: int) -> _GenStep | None:
        """Continue an approval chain: a higher official approves or signs next."""
        prev = self.steps[i - 1]
        if prev.kind not in ("approve", "sign"):
            return None
        role = self.rng.choice(APPROVERS)
        kind = self.rng.choice(("approve", "sign"))
        extra = [p for p in self._preds(i) if p != i - 1][:1]
        inputs = list(prev.outputs[:1])
        duration = self.rng.choice(("2h", "4h", "1d"))
        return _GenStep(i, role, kind, sorted([i - 1, *extra]), inputs, [self._new_output(i)], duration)

    def _ordinary(self, i: int) -> _GenStep:
        rng = self.rng
        preds = self._preds(i)
        role, kind = self._role_and_kind(i)
        inputs: list[str] = [] if rng.random() < 0.04 else self._read_predecessors(preds)
        handed_in: list[str] = []
        step = _GenStep(i, role, kind, preds, inputs, [], rng.choice(DURATIONS))
        if role == APPLICANT:
            step.duration = rng.choice(("30m", "1h", "2h"))
            if kind == "submit":
                handed_in = [self._new_applicant_doc() for _ in range(rng.choice((1, 1, 2, 3)))]
                if self.applicant_docs and rng.random() < 0.10:  # asked for again: a duplicate request
                    again = rng.choice(self.applicant_docs[-40:])
                    if again not in handed_in:
                        handed_in.append(again)
                step.visit = rng.random() < 0.3
            elif kind == "pay":
                step.fee = rng.choice((20000, 50000, 100000))
            else:
                step.visit = rng.random() < 0.2
            step.inputs = list(dict.fromkeys([*handed_in, *(inputs if kind == "receive" else [])]))
            step.handed_in = handed_in
        else:
            if role != SYSTEM:
                step.effort = rng.choice(EFFORTS) if rng.random() < 0.6 else None
            else:
                step.duration = rng.choice(("15m", "30m"))
            if kind in REVIEW_KINDS or kind == "receive":
                available = self._ancestor_handed_in(preds)
                if available:
                    picked = rng.sample(available, min(len(available), rng.randint(1, 2)))
                    step.inputs.extend(d for d in picked if d not in step.inputs)
                elif rng.random() < 0.3:
                    pool = [d for d in self.applicant_docs[-30:] if d not in self.unread and d not in step.inputs]
                    if pool:
                        step.inputs.append(rng.choice(pool))
            if kind == "verify" and rng.random() < 0.1:
                step.inputs.append(rng.choice(REGISTRY_DOCS)[0])
        # outcomes: mostly proceed, some reject, a few return to an after step
        if role not in (APPLICANT, SYSTEM) and kind in REVIEW_KINDS:
            if rng.random() < 0.25:
                step.outcomes.append(("refuse", "reject"))
            if preds and rng.random() < 0.10:
                step.outcomes.append(("request_supplement", f"return:{_sid(rng.choice(preds))}"))
        elif role not in (APPLICANT, SYSTEM) and preds and rng.random() < 0.01:
            step.outcomes.append(("redo", f"return:{_sid(rng.choice(preds))}"))
        if rng.random() < 0.03:
            step.when = rng.choice(("{field: khan, equals: true}", "{field: loai_ho_so, equals: phuc_tap}"))
        # a step whose only after step is the previous one may leave it implicit
        step.omit_after = preds == [i - 1] and rng.random() < 0.3
        return step

    def generate(self) -> str:
        rng = self.rng
        for i in range(self.n):
            step: _GenStep | None = None
            roll = rng.random()
            if i >= self.n // 2 and not self.repeated:
                roll = 0.0  # plant at least one repeated review, even in a small definition
            if i > 0 and roll < 0.045:
                step = self._repeat_review(i)
                self.repeated = self.repeated or step is not None
            elif i > 0 and roll < 0.055:
                step = self._cross_check(i)
            elif i > 0 and roll < 0.40:
                step = self._approval(i)
            if step is None:
                step = self._ordinary(i)
            if not step.outputs and step.role != APPLICANT:
                step.outputs.append(self._new_output(i))
                if step.kind in ("sign", "issue") and rng.random() < 0.1:
                    step.outputs.append(self._new_output(i, "_ban_sao"))
            if step.kind == "issue" and rng.random() < 0.3:
                self.docs[-1].deliverable = True
                self.docs[-1].name = f"Quyết định giải quyết số {i}"
            self.steps.append(step)
        last = self.steps[-1]
        if not any(d.deliverable for d in self.docs) and last.outputs:
            self.docs[-1].deliverable = True
        return self._text()

    def _lead_days(self) -> float:
        finish: list[float] = []
        for s in self.steps:
            finish.append(max((finish[p] for p in s.after), default=0.0) + parse_hours(s.duration))
        return max(finish, default=0.0) / HOURS_PER_DAY

    def _text(self) -> str:
        time_limit = max(1, int(self._lead_days() * 0.8))
        lines = [
            "format: tinhgon/1",
            f'code: "BENCH.{self.n}"',
            f"name: {q(f'Thủ tục tổng hợp {self.n} bước (benchmark)')}",
            "version: 1",
            "sector: Hành chính tư pháp",
            "agency: Sở Tư pháp",
            "channels: [in_person, online]",
            f"time_limit: {time_limit}d",
            "annual_volume: 20000",
            "legal_basis:",
            "  - Nghị định số 61/2018/NĐ-CP",
            "  - Nghị định số 107/2021/NĐ-CP",
            "fees:",
            "  - {name: Lệ phí giải quyết thủ tục, amount: 50000}",
            "fields:",
            "  - {id: khan, name: Hồ sơ khẩn, type: boolean}",
            "  - {id: loai_ho_so, name: Loại hồ sơ, type: enum, values: [thuong, phuc_tap], required: true}",
            "registries:",
            "  - {id: land, name: Cơ sở dữ liệu quốc gia về đất đai}",
            "  - {id: business, name: Cơ sở dữ liệu quốc gia về đăng ký doanh nghiệp}",
            "roles:",
        ]
        for rid, name, kind in ROLES:
            lines.append(f"  - {{id: {rid}, name: {q(name)}, kind: {kind}}}")
        lines.append("documents:")
        for did, name, registry in REGISTRY_DOCS:
            lines.append(f"  - {{id: {did}, name: {q(name)}, from: registry, registry: {registry}}}")
        for d in self.docs:
            parts = [f"id: {d.id}", f"name: {q(d.name)}"]
            if d.source:
                parts.append(f"from: {d.source}")
            if d.registry:
                parts.append(f"registry: {d.registry}")
            if d.prep_hours:
                parts.append(f"prep_hours: {d.prep_hours:g}")
            if d.prep_cost:
                parts.append(f"prep_cost: {d.prep_cost}")
            if d.deliverable:
                parts.append("deliverable: true")
            lines.append("  - {" + ", ".join(parts) + "}")
        lines.append("steps:")
        for s in self.steps:
            lines.append(f"  - id: {_sid(s.index)}")
            lines.append(f"    name: {q(f'{KIND_NAMES[s.kind]} (bước {s.index})')}")
            lines.append(f"    role: {s.role}")
            lines.append(f"    kind: {s.kind}")
            lines.append(f"    duration: {s.duration}")
            if s.effort:
                lines.append(f"    effort: {s.effort}")
            if s.visit:
                lines.append("    visit: true")
            if s.fee:
                lines.append(f"    fee: {s.fee}")
            if not s.omit_after:
                lines.append(f"    after: [{', '.join(_sid(p) for p in s.after)}]")
            if s.inputs:
                lines.append(f"    inputs: [{', '.join(s.inputs)}]")
            if s.outputs:
                lines.append(f"    outputs: [{', '.join(s.outputs)}]")
            if s.when:
                lines.append(f"    when: {s.when}")
            lines.append("    outcomes:")
            for name, effect in s.outcomes:
                value = f"{{return: {effect.removeprefix('return:')}}}" if effect.startswith("return:") else effect
                lines.append(f"      {name}: {value}")
        return "\n".join(lines) + "\n"


def generate(n: int, seed: int = SEED) -> str:
    """The YAML text of a valid generated procedure of ``n`` steps (same text for the same ``n`` and seed)."""
    return _Generator(n, seed).generate()


# -- measuring --------------------------------------------------------------------
PHASES = ("load", "metrics", "findings", "simplify", "baseline")
ANALYSIS = ("metrics", "findings", "simplify")


@dataclass
class Result:
    size: int
    repeats: int
    yaml_mib: float
    seconds: dict[str, float]
    peak_mib: dict[str, float]
    maxrss_mib: float
    edges: int
    reduced_edges: int
    findings: Counter[str]
    applied: Counter[str]
    skipped: int
    after_steps: int
    after_edges: int

    @property
    def analysis(self) -> float:
        return sum(self.seconds[p] for p in ANALYSIS)


def _best_of(repeats: int, action: Callable[[], T]) -> tuple[float, T]:
    """The best wall-clock time of ``repeats`` runs of ``action``, and what its last run returned."""
    best = float("inf")
    value: T | None = None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        value = action()
        best = min(best, time.perf_counter() - start)
    assert value is not None
    return best, value


def _peak_mib(action: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def _maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _load(text: str, source: str) -> Definition:
    try:
        return procedures.load_text(text, source)
    except DefinitionError as exc:  # the generator must only make valid definitions
        raise AssertionError(f"generated definition {source} is not valid:\n{exc}") from exc


def measure(size: int, *, memory: bool, log: Callable[[str], None]) -> Result:
    start = time.perf_counter()
    text = generate(size)
    source = f"<generated {size} steps>"
    defn = _load(text, source)
    assert len(defn.steps) == size, (len(defn.steps), size)
    log(
        f"  {size:>6} steps  generated and checked: {len(text.encode()) / 2**20:.1f} MiB of YAML, "
        f"{defn.graph.number_of_edges():,} after-edges ({time.perf_counter() - start:.1f} s)"
    )
    repeats = 5 if size <= 100 else 3 if size < 10_000 else 1
    seconds: dict[str, float] = {}

    def timed(phase: str, action: Callable[[], T]) -> T:
        seconds[phase], value = _best_of(repeats, action)
        log(f"  {size:>6} steps  {phase:<9} {seconds[phase]:9.3f} s")
        return value

    timed("load", lambda: procedures.load_text(text, source))
    timed("metrics", lambda: procedures.metrics(defn))
    findings = timed("findings", lambda: procedures.find_all(defn))
    result = timed("simplify", lambda: procedures.simplify(defn))
    reduced = timed("baseline", lambda: nx.transitive_reduction(defn.graph))
    peaks: dict[str, float] = {}
    if memory:
        actions: dict[str, Callable[[], object]] = {
            "load": lambda: procedures.load_text(text, source),
            "metrics": lambda: procedures.metrics(defn),
            "findings": lambda: procedures.find_all(defn),
            "simplify": lambda: procedures.simplify(defn),
            "baseline": lambda: nx.transitive_reduction(defn.graph),
        }
        for phase in PHASES:
            peaks[phase] = _peak_mib(actions[phase])
            log(f"  {size:>6} steps  {phase:<9} tracemalloc peak {peaks[phase]:.1f} MiB")
    return Result(
        size=size,
        repeats=repeats,
        yaml_mib=len(text.encode()) / 2**20,
        seconds=seconds,
        peak_mib=peaks,
        maxrss_mib=_maxrss_mib(),
        edges=defn.graph.number_of_edges(),
        reduced_edges=reduced.number_of_edges(),
        findings=Counter(f.rule for f in findings),
        applied=Counter(f.rule for f in result.applied),
        skipped=len(result.skipped),
        after_steps=len(result.after.steps),
        after_edges=result.after.graph.number_of_edges(),
    )


# -- reporting ----------------------------------------------------------------------
def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].rjust(widths[0]) if cells[0][:1].isdigit() else cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def report(results: Sequence[Result], *, memory: bool) -> str:
    out: list[str] = []
    headers = ["steps", "edges", "YAML MiB", "runs", "load s", "metrics s", "findings s", "simplify s", "m+f+s s", "nx.TR s"]
    rows = [
        [
            f"{r.size:,}",
            f"{r.edges:,}",
            f"{r.yaml_mib:.2f}",
            str(r.repeats),
            *(f"{r.seconds[p]:.4f}" for p in ("load", *ANALYSIS)),
            f"{r.analysis:.4f}",
            f"{r.seconds['baseline']:.4f}",
        ]
        for r in results
    ]
    out += [
        "Time (seconds, best of 'runs'; nx.TR = networkx.transitive_reduction(defn.graph), the baseline)",
        _table(headers, rows),
        "",
    ]
    headers = ["steps", "load/TR", "metrics/TR", "findings/TR", "simplify/TR", "m+f+s/TR"]
    rows = [
        [
            f"{r.size:,}",
            *(f"{r.seconds[p] / r.seconds['baseline']:.3f}" for p in ("load", "metrics", "findings", "simplify")),
            f"{r.analysis / r.seconds['baseline']:.3f}",
        ]
        for r in results
    ]
    out += ["Ratio to the baseline (below 1.000: faster than networkx.transitive_reduction alone)", _table(headers, rows), ""]
    if memory:
        headers = ["steps", *(f"{p} MiB" for p in ("load", "metrics", "findings", "simplify")), "nx.TR MiB", "maxrss MiB"]
        rows = [[f"{r.size:,}", *(f"{r.peak_mib[p]:.1f}" for p in PHASES), f"{r.maxrss_mib:.0f}"] for r in results]
        out += [
            "Memory: tracemalloc peak of Python allocations per phase (one extra untimed run each);",
            "maxrss = resource.getrusage(RUSAGE_SELF).ru_maxrss, the whole process's peak RSS so far",
            _table(headers, rows),
            "",
        ]
    else:
        out += [
            "Memory: resource.getrusage(RUSAGE_SELF).ru_maxrss, the whole process's peak RSS so far, after each size "
            "(MiB; --tracemalloc adds per-phase peaks): " + ", ".join(f"{r.size:,} steps {r.maxrss_mib:.0f}" for r in results),
            "",
        ]
    rules = sorted({rule for r in results for rule in r.findings})
    headers = ["rule", *(f"{r.size:,} steps" for r in results)]
    rows = [[rule, *(str(r.findings[rule]) for r in results)] for rule in rules]
    out += ["Findings per rule (find_all on the generated definition)", _table(headers, rows), ""]
    for r in results:
        applied = ", ".join(f"{rule} {n}" for rule, n in sorted(r.applied.items()))
        out.append(
            f"simplify {r.size:,} steps: applied {applied or 'nothing'}; auto findings left (skipped): {r.skipped}; "
            f"{r.size:,} -> {r.after_steps:,} steps, {r.edges:,} -> {r.after_edges:,} after-edges "
            f"(transitive reduction of the input: {r.reduced_edges:,} edges)"
        )
    by_size = {r.size: r for r in results}
    small, big = by_size.get(1_000), by_size.get(10_000)
    if small is None or big is None:
        sizes = sorted(by_size)
        small, big = (by_size[sizes[-2]], by_size[sizes[-1]]) if len(sizes) >= 2 else (None, None)
    if small is not None and big is not None:
        step = big.size / small.size
        out += [
            "",
            f"Growth from {small.size:,} to {big.size:,} steps "
            f"(x{step:g} steps; x{step:g} is linear, x{step * step:g} quadratic):",
        ]
        for label, a, b in (
            ("metrics+findings+simplify", small.analysis, big.analysis),
            ("  metrics", small.seconds["metrics"], big.seconds["metrics"]),
            ("  findings", small.seconds["findings"], big.seconds["findings"]),
            ("  simplify", small.seconds["simplify"], big.seconds["simplify"]),
            ("load", small.seconds["load"], big.seconds["load"]),
            ("networkx.transitive_reduction", small.seconds["baseline"], big.seconds["baseline"]),
        ):
            out.append(f"  {label:<30} x{b / a:8.1f}   ({a:.4f} s -> {b:.4f} s)")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated numbers of steps (default: %(default)s)"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also measure each phase's tracemalloc peak, in one extra untimed run per phase",
    )
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    memory = bool(args.tracemalloc)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results: list[Result] = []
    for size in sizes:
        log(f"{size:,} steps ...")
        results.append(measure(size, memory=memory, log=log))
    print(f"python {sys.version.split()[0]}, networkx {nx.__version__}, seed {SEED}")
    print(report(results, memory=memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
