"""Section 8: the redundancy rules.

Each rule is one function that takes a :class:`~procedures.model.Definition`
and returns a list of :class:`Finding` (plain data), in a stable order. The
``auto`` rules are the ones :mod:`procedures.simplify` applies; the
``advice`` rules need a person to decide. Messages are written for a
Vietnamese reform officer.

All rules answer reachability questions with the ancestor bitsets kept on the
definition, so they stay close to linear on large procedures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .durations import HOURS_PER_DAY
from .merging import MergeState
from .model import REVIEW_KINDS, Definition, Step, bits

Fix = Literal["auto", "advice"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a reform officer should look at."""

    rule: str
    fix: Fix
    steps: tuple[str, ...]
    documents: tuple[str, ...]
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "fix": self.fix,
            "steps": list(self.steps),
            "documents": list(self.documents),
            "message": self.message,
        }


def _quote(text: str) -> str:
    return f"“{text}”"


def _steps_named(defn: Definition, ids: tuple[str, ...], joiner: str = ", ") -> str:
    """Steps as people read them: their names, quoted."""
    return joiner.join(_quote(defn.step(i).name) for i in ids)


def _applicant_readers(defn: Definition, doc: str) -> tuple[str, ...]:
    return tuple(s.id for s in defn.reader_steps.get(doc, ()) if defn.is_applicant_step(s))


def once_only(defn: Definition) -> list[Finding]:
    """Applicant documents whose information a state registry already holds.

    The once-only principle forbids asking the applicant for them: the office
    fetches them itself (fix: ``from: registry``, and the applicant's steps
    stop reading them).
    """
    out = []
    for doc in defn.documents:
        if doc.source == "applicant" and doc.registry:
            out.append(
                Finding(
                    "once-only",
                    "auto",
                    _applicant_readers(defn, doc.id),
                    (doc.id,),
                    f"Giấy tờ {_quote(doc.name)} đã có trong {defn.registry_name(doc.registry)}: "
                    "cơ quan tự khai thác, không yêu cầu người nộp cung cấp (nguyên tắc chỉ cung cấp thông tin một lần).",
                )
            )
    return out


def unused_document(defn: Definition) -> list[Finding]:
    """Applicant documents that no office or system step reads: nobody looks
    at them, so asking for them is pure burden (fix: drop them)."""
    out = []
    for doc in defn.documents:
        if doc.source != "applicant":
            continue
        if any(not defn.is_applicant_step(s) for s in defn.reader_steps.get(doc.id, ())):
            continue
        out.append(
            Finding(
                "unused-document",
                "auto",
                _applicant_readers(defn, doc.id),
                (doc.id,),
                f"Giấy tờ {_quote(doc.name)} không được bước xử lý nào của cơ quan sử dụng: bỏ khỏi thành phần hồ sơ.",
            )
        )
    return out


def duplicate_request(defn: Definition) -> list[Finding]:
    """Applicant documents asked for at more than one applicant step (fix:
    ask at the first, in list order, only)."""
    out = []
    for doc in defn.documents:
        if doc.source != "applicant":
            continue
        asked = _applicant_readers(defn, doc.id)
        if len(asked) > 1:
            out.append(
                Finding(
                    "duplicate-request",
                    "auto",
                    asked,
                    (doc.id,),
                    f"Giấy tờ {_quote(doc.name)} bị yêu cầu {len(asked)} lần (tại các bước {_steps_named(defn, asked)}): "
                    f"chỉ yêu cầu một lần, tại bước {_quote(defn.step(asked[0]).name)}.",
                )
            )
    return out


def repeated_review_pairs(defn: Definition) -> list[tuple[int, int]]:
    """``(earlier, later)`` positions of mergeable reviews: for each later step
    in list order (the simplifier's order), the latest qualifying earlier one."""
    return list(MergeState(defn).pairs())


def repeated_review_finding(first: Step, again: Step) -> Finding:
    return Finding(
        "repeated-review",
        "auto",
        (first.id, again.id),
        again.inputs,
        f"Bước {_quote(again.name)} xem xét lại đúng những giấy tờ mà bước {_quote(first.name)} "
        "của cùng người thực hiện đã xem xét: gộp vào một lần xem xét.",
    )


def repeated_review(defn: Definition) -> list[Finding]:
    """A review (or verification, approval) repeated by the same role on
    nothing new: S2 reads only what an earlier S1 of the same role, kind and
    condition already read, and only that role worked in between (fix: merge
    S2 into S1). One finding per later step: of the earlier steps that
    qualify, the one latest in list order."""
    return [repeated_review_finding(defn.steps[i], defn.steps[j]) for i, j in repeated_review_pairs(defn)]


def reduced_order(defn: Definition) -> tuple[list[list[int]], list[int]]:
    """The transitively reduced graph of the steps the data really makes each
    step wait for: each step's predecessors in it (positions, list order) and
    each step's ancestors in it (bitsets).

    A step waits for the producer of each input; for an applicant document
    read by an office or system step, for the first applicant step (list
    order) among its ancestors that hands it in; for each step it may return
    to; and, if it is an office or system step, for every ancestor that can
    reject the case (a gate: nothing is decided or issued before a check that
    can refuse). A step that reads nothing keeps its written ``after`` steps.

    Gates are many on large procedures and each office step waits for all of
    its ancestor gates, so their contribution is carried along the original
    graph as one bitset per step (the union of the reduced ancestors of every
    gate above it) instead of being enumerated step by step.
    """
    index = defn.index
    readers = defn.reader_masks
    steps = defn.steps
    n = len(steps)
    applicant = [defn.is_applicant_step(s) for s in steps]
    applicant_mask = sum(1 << i for i in range(n) if applicant[i])
    gates = sum(1 << i for i, s in enumerate(steps) if s.can_reject)
    anc, preds = defn.ancestors, defn.predecessors
    req_anc = [0] * n  # ancestors in the reduced graph
    gate_anc = [0] * n  # union of req_anc over the gates among a step's ancestors
    reduced: list[list[int]] = [[] for _ in range(n)]
    for j in defn.order:
        step = steps[j]
        inherited = 0
        for u in preds[j]:
            inherited |= gate_anc[u]
            if gates >> u & 1:
                inherited |= req_anc[u]
        gate_anc[j] = inherited
        needed: set[int] = set()
        if not step.inputs:
            needed.update(preds[j])
        for doc in step.inputs:
            made_by = defn.producer.get(doc)
            if made_by is not None:
                needed.add(index[made_by])
            elif not applicant[j] and defn.document_by_id[doc].source == "applicant":
                handed_in = anc[j] & applicant_mask & readers.get(doc, 0)
                if handed_in:
                    needed.add((handed_in & -handed_in).bit_length() - 1)
        needed.update(index[target] for _, target in step.returns)
        above = 0 if applicant[j] else inherited
        for p in needed:
            above |= req_anc[p]
        gate_bits = 0 if applicant[j] else anc[j] & gates
        kept = {p for p in needed if not above >> p & 1}
        kept.update(bits(gate_bits & ~above))
        reduced[j] = sorted(kept)
        mask = above | gate_bits
        for p in needed:
            mask |= 1 << p
        req_anc[j] = mask
    return reduced, req_anc


def needless_order(defn: Definition) -> list[Finding]:
    """``after`` edges that no data, return or rejecting check requires: the
    later step could run in parallel (fix: every step waits only for its
    predecessors in the reduced graph of required predecessors)."""
    _, anc = reduced_order(defn)
    out = []
    for a, b in defn.edges():
        ia, ib = defn.index[a], defn.index[b]
        if not anc[ib] >> ia & 1:
            out.append(
                Finding(
                    "needless-order",
                    "auto",
                    (a, b),
                    (),
                    f"Bước {_quote(defn.steps[ib].name)} không cần chờ bước {_quote(defn.steps[ia].name)}: "
                    "không dùng kết quả của bước đó; có thể thực hiện song song.",
                )
            )
    return out


def unused_output(defn: Definition) -> list[Finding]:
    """Papers a step produces that nothing reads and nobody receives."""
    read = {doc for step in defn.steps for doc in step.inputs}
    out = []
    for step in defn.steps:
        for doc_id in step.outputs:
            doc = defn.document_by_id[doc_id]
            if doc_id not in read and not doc.deliverable:
                out.append(
                    Finding(
                        "unused-output",
                        "advice",
                        (step.id,),
                        (doc_id,),
                        f"Bước {_quote(step.name)} lập {_quote(doc.name)} nhưng không bước nào sử dụng và đây không phải kết quả "
                        "trả cho người nộp: xem xét bỏ văn bản này.",
                    )
                )
    return out


def overlapping_review(defn: Definition) -> list[Finding]:
    """Two reviews by different roles, the later one reading nothing the
    earlier did not: a person should decide whether both are needed. One
    finding per later step: of the earlier steps that qualify, the one latest
    in list order."""
    review_mask = 0
    for i, step in enumerate(defn.steps):
        if step.kind in REVIEW_KINDS:
            review_mask |= 1 << i
    readers = defn.reader_masks
    roles = defn.role_masks
    out = []
    for j, later in enumerate(defn.steps):
        if later.kind not in REVIEW_KINDS or not later.inputs:
            continue
        candidates = defn.ancestors[j] & review_mask & ~roles[later.role]
        for doc in later.inputs:
            candidates &= readers.get(doc, 0)
        if candidates:
            first = defn.steps[candidates.bit_length() - 1]
            out.append(
                Finding(
                    "overlapping-review",
                    "advice",
                    (first.id, later.id),
                    later.inputs,
                    f"Bước {_quote(later.name)} ({defn.role_by_id[later.role].name}) xem xét lại những giấy tờ mà bước "
                    f"{_quote(first.name)} ({defn.role_by_id[first.role].name}) đã xem xét: cân nhắc giữ một lần xem xét "
                    "hoặc phân định rõ nội dung.",
                )
            )
    return out


def extra_visit(defn: Definition) -> list[Finding]:
    """More than one in-person visit: each visit after the first."""
    visits = [s for s in defn.steps if s.visit]
    if len(visits) < 2:
        return []
    extra = tuple(s.id for s in visits[1:])
    return [
        Finding(
            "extra-visit",
            "advice",
            extra,
            (),
            f"Người nộp phải đến trực tiếp {len(visits)} lần: cân nhắc trả kết quả qua bưu chính hoặc trực tuyến "
            f"thay cho các lần đến tại bước {_steps_named(defn, extra)}.",
        )
    ]


APPROVAL_KINDS = frozenset({"approve", "sign"})


def approval_chain(defn: Definition) -> list[Finding]:
    """Three or more approvals or signatures in a row (joined by direct
    ``after`` edges): one finding per connected group, its longest chain."""
    members = [i for i, s in enumerate(defn.steps) if s.kind in APPROVAL_KINDS]
    if len(members) < 3:
        return []
    member_set = set(members)
    index = defn.index
    links: dict[int, list[int]] = {i: [] for i in members}
    for j in members:
        for a in defn.steps[j].after:
            i = index[a]
            if i in member_set:
                links[j].append(i)
    # Connected groups (direction ignored), by union-find.
    parent = {i: i for i in members}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for j, preds in links.items():
        for i in preds:
            parent[root(i)] = root(j)
    # Best chain ending at each member: longest, then lowest list positions.
    best: dict[int, tuple[int, ...]] = {}
    for j in defn.order:
        if j not in member_set:
            continue
        chain: tuple[int, ...] = (j,)
        for i in links[j]:
            candidate = (*best[i], j)
            if (len(candidate), _neg(candidate)) > (len(chain), _neg(chain)):
                chain = candidate
        best[j] = chain
    groups: dict[int, tuple[int, ...]] = {}
    for j, chain in best.items():
        g = root(j)
        have = groups.get(g)
        if have is None or (len(chain), _neg(chain)) > (len(have), _neg(have)):
            groups[g] = chain
    out = []
    for chain in sorted(groups.values()):
        if len(chain) >= 3:
            ids = tuple(defn.steps[i].id for i in chain)
            out.append(
                Finding(
                    "approval-chain",
                    "advice",
                    ids,
                    (),
                    f"{len(chain)} bước duyệt, ký nối tiếp nhau ({_steps_named(defn, ids, ' → ')}): "
                    "cân nhắc ủy quyền hoặc giảm cấp ký duyệt.",
                )
            )
    return out


def _neg(chain: tuple[int, ...]) -> tuple[int, ...]:
    """Makes lower list positions compare higher."""
    return tuple(-i for i in chain)


def rework_loop(defn: Definition) -> list[Finding]:
    """Every ``return`` outcome: work is done twice."""
    out = []
    for step in defn.steps:
        for name, target_id in step.returns:
            target = defn.step(target_id)
            if defn.is_applicant_step(target):
                advice = (
                    "trả hồ sơ về cho người nộp: phải hướng dẫn một lần, liệt kê đầy đủ mọi giấy tờ còn thiếu "
                    "trong một văn bản (không trả lại nhiều lần)"
                )
            else:
                advice = "công việc phải làm lại; xem xét kiểm tra ngay từ bước đầu để tránh trả lại"
            out.append(
                Finding(
                    "rework-loop",
                    "advice",
                    (step.id, target_id),
                    (),
                    f"Kết quả {_quote(step.outcome_label(name))} của bước {_quote(step.name)} quay lại bước "
                    f"{_quote(target.name)}: {advice}.",
                )
            )
    return out


def over_time_limit(defn: Definition) -> list[Finding]:
    """The procedure cannot finish within its legal time limit."""
    if defn.time_limit is None:
        return []
    lead = defn.lead_time_hours()
    if lead <= defn.time_limit:
        return []
    return [
        Finding(
            "over-time-limit",
            "advice",
            (),
            (),
            f"Thời gian giải quyết theo quy trình là {lead / HOURS_PER_DAY:g} ngày làm việc, "
            f"vượt thời hạn luật định {defn.time_limit / HOURS_PER_DAY:g} ngày.",
        )
    ]


Rule = Callable[[Definition], list[Finding]]

RULES: tuple[tuple[str, Fix, Rule], ...] = (
    ("once-only", "auto", once_only),
    ("unused-document", "auto", unused_document),
    ("duplicate-request", "auto", duplicate_request),
    ("repeated-review", "auto", repeated_review),
    ("needless-order", "auto", needless_order),
    ("unused-output", "advice", unused_output),
    ("overlapping-review", "advice", overlapping_review),
    ("extra-visit", "advice", extra_visit),
    ("approval-chain", "advice", approval_chain),
    ("rework-loop", "advice", rework_loop),
    ("over-time-limit", "advice", over_time_limit),
)
"""Every rule, in the order of the format's table (the simplifier's order)."""

AUTO_RULES = tuple(r for r in RULES if r[1] == "auto")
ADVICE_RULES = tuple(r for r in RULES if r[1] == "advice")


def find_all(defn: Definition, rules: tuple[tuple[str, Fix, Rule], ...] = RULES) -> list[Finding]:
    """Every finding of ``rules`` on ``defn``, rule by rule."""
    return [f for _, _, rule in rules for f in rule(defn)]
