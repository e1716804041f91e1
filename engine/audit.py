"""The audit trail: hash-chained case events, every one signed, and their verification.

Every change to a case appends one :class:`EventRecord`. Each event's
``hash`` is the SHA-256 of the previous event's hash followed by the
canonical JSON of the event's payload (:func:`compute_hash`), so editing,
deleting or reordering a stored event breaks the chain at that event. Every
event carries an Ed25519 signature over its hash, made with the server's
private key (:mod:`engine.keys`), which lives in a key file and never in the
database, and names that key (``key_id``): rewriting an event, or
recomputing the chain after an edit, needs the key.

Databases from before these rules signed only decisions (an approve or sign
step's outcome, any reject or return). Their events keep those rules
(``legacy``, see :func:`verify_chain`); which events are decisions is
derived from the procedure, never read from the stored ``decision`` flag.
What a chain cannot show alone (a whole case deleted, the last events of a
case removed with its head) is caught by the database-wide ledger
(:mod:`engine.ledger`).

This module is pure: it builds and checks records and leaves storing them to
the persistence layer, which must give back exactly what it was given
(``at`` as the same text, ``data`` as the same JSON values). Key order in
``data`` does not matter, so JSON columns that reorder keys are fine.

>>> signer = Signer.generate()
>>> first = seal(case_id=1, seq=1, at="2024-05-02T08:00:00+07:00", actor="citizen:42", type="created", prev_hash=GENESIS, signer=signer)
>>> second = seal(
...     case_id=1,
...     seq=2,
...     at="2024-05-03T09:30:00+07:00",
...     actor="officer:7",
...     type="action",
...     step="approve",
...     outcome="done",
...     decision=True,
...     prev_hash=first.hash,
...     signer=signer,
... )
>>> verify_chain([first, second], signer.verifier(), expected_head=(2, second.hash)) is None
True
>>> verify_chain([second], signer.verifier())
BadEvent(case_id=1, seq=1, reason='thiếu sự kiện số 1 (bị xóa hoặc sai thứ tự?): sự kiện kế tiếp mang số 2')
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from procedures.errors import TinhgonError
from procedures.messages import t

from .keys import Keyring, Signer, Verifier

GENESIS: Final = "0" * 64
"""The ``prev_hash`` of a case's first event, and the head of a case with none."""

EVENT_TYPES: Final = frozenset({"created", "action", "system", "data", "withdrawn"})

DECISION_STEP_KINDS: Final = frozenset({"approve", "sign"})
DECISION_EFFECTS: Final = frozenset({"reject", "return"})


class AuditError(TinhgonError):
    """Root of the errors of the audit trail."""


# --- canonical JSON ---------------------------------------------------------


def canonical(value: Any) -> bytes:
    """The canonical JSON encoding of ``value``, as UTF-8 bytes.

    Keys are sorted (by code point), there is no whitespace, and text is kept
    as UTF-8 rather than ``\\u`` escapes, so Vietnamese reads as written. The
    output depends only on the logical value, never on key insertion order,
    the Python version (floats use the shortest round-trip form, fixed since
    Python 3.1) or the database: a PostgreSQL ``jsonb`` column returns keys
    in its own order and writes ``1e20`` as ``100000000000000000000``, so
    hashes must be computed from the parsed payload, not from stored text.
    For the same reason a float with an integral value is written as an
    integer (``1.0`` as ``1``); tuples are written as lists.

    Only JSON values are accepted: ``None``, ``bool``, ``int``, ``float``,
    ``str``, lists or tuples of them and dicts with ``str`` keys.

    Raises:
        TypeError: a value is not one of those types (a ``datetime`` must be
            turned into an ISO string first, see :func:`format_at`), or a
            dict key is not a string. The message gives the value's path.
        ValueError: a float is NaN or infinite, or a string cannot be encoded
            as UTF-8 (a lone surrogate).

    >>> canonical({"b": 1, "a": [True, None, 2.0]})
    b'{"a":[true,null,2],"b":1}'
    >>> canonical({"tên": "Nguyễn Văn A"}).decode()
    '{"tên":"Nguyễn Văn A"}'
    """
    return _encode(_plain(value, "$"))


def _encode(plain: Any) -> bytes:
    """The canonical bytes of a value :func:`_plain` has already checked."""
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(t("canonical JSON: text cannot be encoded as UTF-8 ({reason})", reason=error.reason)) from None


Where = str | tuple[Any, str | int]
"""Where a value sits in what is being encoded: the root's name, or (where
its parent sits, its key or index). Spelled out (:func:`_spelled`) only for
an error message, since every value of every event passes here."""


def _spelled(where: Where) -> str:
    if isinstance(where, str):
        return where
    parent, key = where
    return f"{_spelled(parent)}[{key}]" if isinstance(key, int) else f"{_spelled(parent)}.{key}"


def _plain(value: Any, where: Where) -> Any:
    # Walk the value ourselves rather than trusting json.dumps: it would
    # silently turn int keys into strings (so {1: x} and {"1": x} would hash
    # alike) and its error messages do not say where the bad value is.
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(t("canonical JSON: {where} is {value}, which JSON cannot hold", where=_spelled(where), value=value))
        if value.is_integer():
            return int(value)
        return value
    if isinstance(value, list | tuple):
        return [_plain(item, (where, index)) for index, item in enumerate(value)]
    if isinstance(value, dict):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    t(
                        "canonical JSON: {where} has a key «{key}» of type {type}; keys must be strings",
                        where=_spelled(where),
                        key=key,
                        type=type(key).__name__,
                    )
                )
            plain[key] = _plain(item, (where, key))
        return plain
    if isinstance(value, datetime):
        raise TypeError(
            t(
                "canonical JSON: {where} is a {type}, which is not a JSON type (convert it to an ISO 8601 string first)",
                where=_spelled(where),
                type=type(value).__name__,
            )
        )
    raise TypeError(
        t("canonical JSON: {where} is a {type}, which is not a JSON type", where=_spelled(where), type=type(value).__name__)
    )


def format_at(moment: datetime) -> str:
    """``moment`` as the ISO 8601 text an event's ``at`` should hold.

    Always UTC with microseconds, so the text survives a round trip through a
    ``timestamptz`` column (which keeps microseconds but not the offset).

    Raises:
        ValueError: ``moment`` has no time zone.

    >>> from datetime import timedelta, timezone
    >>> format_at(datetime(2024, 5, 2, 15, 0, tzinfo=timezone(timedelta(hours=7))))
    '2024-05-02T08:00:00.000000+00:00'
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"format_at: {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# --- events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event of a case's audit trail, as stored.

    ``type`` is one of :data:`EVENT_TYPES`. ``data`` holds the case data
    changes or other details. ``decision`` says whether the event is a
    decision (:func:`is_decision`); it is kept because the hash covers it, and
    verification derives it again from the procedure. ``signature`` is the
    standard base64 (with padding) of the Ed25519 signature over the 32 raw
    bytes of ``hash`` (``None`` only on a non-decision event of the first
    rules), ``key_id`` the key that made it (:attr:`engine.keys.Signer.key_id`).
    """

    case_id: int
    seq: int
    at: str
    actor: str
    type: str
    step: str | None
    outcome: str | None
    comment: str | None
    data: dict[str, Any]
    decision: bool
    prev_hash: str
    hash: str
    signature: str | None
    key_id: str | None = None

    def payload(self) -> dict[str, Any]:
        """Everything the hash covers besides ``prev_hash``.

        ``prev_hash`` is chained explicitly by :func:`compute_hash`, and
        ``hash`` and ``signature`` are derived from this, so they are left
        out.
        """
        return {
            "case_id": self.case_id,
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "type": self.type,
            "step": self.step,
            "outcome": self.outcome,
            "comment": self.comment,
            "data": self.data,
            "decision": self.decision,
        }


def compute_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    """SHA-256, in lowercase hex, of ``prev_hash``'s ASCII bytes then ``canonical(payload)``.

    ``prev_hash`` always has 64 characters, so where it ends and the payload
    begins is never ambiguous.

    Raises:
        TypeError, ValueError: as :func:`canonical`; ``ValueError`` also when
            ``prev_hash`` is not ASCII.
    """
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical(payload))
    return digest.hexdigest()


def is_decision(step_kind: str | None, effect: str | None) -> bool:
    """Whether an action event must be signed.

    ``step_kind`` is the step's kind in the definition, ``effect`` the
    effect of the outcome taken (``proceed``, ``reject`` or ``return``).

    >>> is_decision("sign", "proceed"), is_decision("review", "return"), is_decision("review", "proceed")
    (True, True, False)
    """
    return step_kind in DECISION_STEP_KINDS or effect in DECISION_EFFECTS


def seal(
    *,
    case_id: int,
    seq: int,
    at: str,
    actor: str,
    type: str,
    step: str | None = None,
    outcome: str | None = None,
    comment: str | None = None,
    data: dict[str, Any] | None = None,
    decision: bool = False,
    prev_hash: str,
    signer: Signer | None = None,
) -> EventRecord:
    """A complete event: fields checked, hash computed, signed by ``signer``.

    ``data`` is stored in its canonical form (integral floats as ints, tuples
    as lists), which is what the database will give back.

    Raises:
        ValueError: ``seq`` is below 1, ``type`` is not one of
            :data:`EVENT_TYPES`, ``at`` is not ISO 8601 with an offset,
            ``prev_hash`` is not 64 lowercase hex digits, or ``decision`` is
            set and there is no ``signer``; also as :func:`canonical`. Without
            a ``signer`` the event is unsigned, which verification refuses
            (tests of the verifier build such events on purpose).
        TypeError: as :func:`canonical`.
    """
    if seq < 1:
        raise ValueError(f"seal: case {case_id}: seq must be 1 or more, not {seq}")
    if type not in EVENT_TYPES:
        raise ValueError(f"seal: case {case_id} event {seq}: type {type!r} is not one of {', '.join(sorted(EVENT_TYPES))}")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"seal: case {case_id} event {seq}: at {at!r} is not an ISO 8601 time") from None
    if moment.utcoffset() is None:
        raise ValueError(f"seal: case {case_id} event {seq}: at {at!r} has no UTC offset")
    if not _is_hash(prev_hash):
        raise ValueError(f"seal: case {case_id} event {seq}: prev_hash {prev_hash!r} is not 64 lowercase hex digits")
    if decision and signer is None:
        raise ValueError(f"seal: case {case_id} event {seq}: a decision event needs a signer")
    # The data is walked once: its plain form is both what is stored and
    # what the hash covers (the hash of the payload, as compute_hash does).
    stored: dict[str, Any] = _plain(data or {}, ("$", "data"))
    payload = {
        "case_id": case_id,
        "seq": seq,
        "at": at,
        "actor": actor,
        "type": type,
        "step": step,
        "outcome": outcome,
        "comment": comment,
        "data": stored,
        "decision": decision,
    }
    for name in ("case_id", "seq", "at", "actor", "type", "step", "outcome", "comment", "decision"):
        _plain(payload[name], ("$", name))
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(_encode(payload))
    hexdigest = digest.hexdigest()
    return EventRecord(
        case_id=case_id,
        seq=seq,
        at=at,
        actor=actor,
        type=type,
        step=step,
        outcome=outcome,
        comment=comment,
        data=stored,
        decision=decision,
        prev_hash=prev_hash,
        hash=hexdigest,
        signature=signer.sign(hexdigest) if signer is not None else None,
        key_id=signer.key_id if signer is not None else None,
    )


_HASH = re.compile(r"[0-9a-f]{64}")


def _is_hash(text: str) -> bool:
    return isinstance(text, str) and _HASH.fullmatch(text) is not None


# --- verification -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadEvent:
    """The first thing wrong with a case's chain.

    ``seq`` is the position (1-based) where the chain breaks: the event at
    that place, or the first missing one when events were deleted.
    """

    case_id: int
    seq: int
    reason: str

    def render(self) -> str:
        return t("case {case}, event {seq}: {reason}", case=self.case_id, seq=self.seq, reason=self.reason)


def verify_chain(
    records: Iterable[EventRecord],
    keys: Keyring | Verifier,
    expected_head: tuple[int, str] | None = None,
    *,
    case_id: int | None = None,
    legacy: int = 0,
    decision_of: Callable[[EventRecord], bool | None] | None = None,
) -> BadEvent | None:
    """The first bad event of one case's chain, or ``None`` when it holds.

    ``records`` are the case's events in ``seq`` order. Each must have the
    next ``seq`` (1, 2, 3, ...), a ``prev_hash`` equal to the previous
    event's hash (:data:`GENESIS` for the first), a hash that recomputes,
    and a signature by a key of ``keys``. The first ``legacy`` events were
    written under the first rules, which signed only decisions: of those,
    only decisions must be signed (any signature present must still verify).
    ``decision_of`` says whether an event is a decision, derived from the
    procedure (None: it cannot tell, e.g. an unknown step, which the replay
    reports); the stored flag must agree with it. Without ``decision_of`` the
    stored flag is taken. ``expected_head`` is ``(count, last_hash)`` as the
    case row records them (``(0, GENESIS)`` for no events): it catches
    deleting the last events, which leaves a chain that is otherwise sound.
    ``case_id``, when given, is the case the events were read for; otherwise
    the first event's is used.

    Raises:
        ValueError: ``records`` is empty, ``expected_head`` says there should
            be events and ``case_id`` is not given, so the problem cannot be
            attributed to a case.
    """
    ring = keys if isinstance(keys, Keyring) else Keyring([keys])
    position = 0
    previous = GENESIS
    owner = case_id
    for record in records:
        position += 1
        if owner is None:
            owner = record.case_id
        derived = decision_of(record) if decision_of is not None else record.decision
        problem = _check(record, position, previous, owner, ring, position <= legacy, derived)
        if problem is not None:
            return BadEvent(owner, position, problem)
        previous = record.hash
    if expected_head is None:
        return None
    count, head = expected_head
    if owner is None:
        if count == 0 and head == GENESIS:
            return None
        raise ValueError("verify_chain: no events and no case_id, so a missing chain cannot be reported")
    if count > position:
        return BadEvent(
            owner,
            position + 1,
            t(
                "chain ends at event {position} but the case records {count} events (last events deleted?)",
                position=position,
                count=count,
            ),
        )
    if count < position:
        return BadEvent(
            owner,
            count + 1,
            t(
                "chain goes on to event {position} but the case records {count} events (events appended behind its back?)",
                position=position,
                count=count,
            ),
        )
    if head != previous:
        return BadEvent(owner, position, t("the last event's hash is not the head hash the case records"))
    return None


def _check(
    record: EventRecord, position: int, previous: str, owner: int, keys: Keyring, legacy: bool, decision: bool | None
) -> str | None:
    # Order matters for the message: a gap or a broken link explains a
    # failing hash further down, not the other way round.
    if record.case_id != owner:
        return t("event belongs to case {case}, not {owner} (copied from another case?)", case=record.case_id, owner=owner)
    if record.seq > position:
        return t(
            "missing event seq {position} (deleted or out of order?): the next event has seq {seq}",
            position=position,
            seq=record.seq,
        )
    if record.seq < position:
        return t("seq {seq} comes again at position {position} (reordered or duplicated?)", seq=record.seq, position=position)
    if record.prev_hash != previous:
        if position > 1:
            return t("prev_hash does not match event {seq} (reordered or deleted?)", seq=position - 1)
        return t("prev_hash does not match the start of the chain (reordered or deleted?)")
    try:
        recomputed = compute_hash(record.prev_hash, record.payload())
    except (TypeError, ValueError) as error:
        return t("cannot be hashed ({error}); edited?", error=str(error))
    if record.hash != recomputed:
        return t("hash mismatch (edited?)")
    if decision is not None and decision != record.decision:
        return t("the decision flag does not match what the procedure makes of this step and outcome (altered?)")
    if record.signature is None:
        if not legacy:
            return t("missing signature (every event is signed)")
        return t("missing signature on a decision event") if decision else None
    if record.key_id is not None and not keys.knows(record.key_id):
        return t("signed by key {key}, which is not a trusted key (see tinhgon audit keys)", key=record.key_id)
    if not keys.verify(record.key_id, record.hash, record.signature):
        return t("bad signature (forged, altered or made by another key?)")
    return None


@dataclass(frozen=True, slots=True)
class Report:
    """What :func:`verify_all` found.

    ``bad`` holds each broken case's first bad event in ``(case_id, seq)``
    order; ``first_bad`` is the first of them.
    """

    cases: int
    events: int
    bad: tuple[BadEvent, ...]

    @property
    def ok(self) -> bool:
        return not self.bad

    @property
    def first_bad(self) -> BadEvent | None:
        return self.bad[0] if self.bad else None


def verify_all(chains: Iterable[tuple[int, list[EventRecord], tuple[int, str] | None]], verifier: Keyring | Verifier) -> Report:
    """Check every case's chain; see :func:`verify_chain`.

    ``chains`` gives ``(case_id, events in seq order, (count, head hash) or
    None)`` per case, in any order. Every chain is checked, so the report
    counts every event and lists each broken case.

    >>> verify_all([], Signer.generate().verifier()).ok
    True
    """
    cases = 0
    events = 0
    bad: list[BadEvent] = []
    for case_id, records, head in chains:
        cases += 1
        events += len(records)
        problem = verify_chain(records, verifier, head, case_id=case_id)
        if problem is not None:
            bad.append(problem)
    bad.sort(key=lambda item: (item.case_id, item.seq))
    return Report(cases=cases, events=events, bad=tuple(bad))
