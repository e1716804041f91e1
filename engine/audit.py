"""The audit trail: hash-chained case events, signed decisions, verification.

Every change to a case appends one :class:`EventRecord`. Each event's
``hash`` is the SHA-256 of the previous event's hash followed by the
canonical JSON of the event's payload (:func:`compute_hash`), so editing,
deleting or reordering a stored event breaks the chain at that event.
Decision events (an approve or sign step's outcome, any reject or return)
also carry an Ed25519 signature over their hash, made with the server's
private key, which lives in a key file and never in the database: rewriting
history before a decision would need that key.

This module is pure: it builds and checks records and leaves storing them to
the persistence layer, which must give back exactly what it was given
(``at`` as the same text, ``data`` as the same JSON values). Key order in
``data`` does not matter, so JSON columns that reorder keys are fine.

Limits worth knowing: a hash chain alone cannot stop someone with write
access from recomputing every hash after an edit, and the case row's head
(:func:`verify_chain`'s ``expected_head``) can be rewritten too. What they
cannot forge without the key are the signatures of decision events, which
cover the hash of everything before them.

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
BadEvent(case_id=1, seq=1, reason='missing event seq 1 (deleted or out of order?): the next event has seq 2')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from procedures.errors import TinhgonError

GENESIS: Final = "0" * 64
"""The ``prev_hash`` of a case's first event, and the head of a case with none."""

EVENT_TYPES: Final = frozenset({"created", "action", "system", "data", "withdrawn"})

DECISION_STEP_KINDS: Final = frozenset({"approve", "sign"})
DECISION_EFFECTS: Final = frozenset({"reject", "return"})


class AuditError(TinhgonError):
    """Root of the errors of the audit trail."""


class KeyFileError(AuditError):
    """A signing or verification key could not be read or is not an Ed25519 key.

    ``source`` is the key file's path, or a description of where a PEM given
    as text came from.
    """

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")


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
        raise ValueError(f"canonical JSON: text cannot be encoded as UTF-8 ({error.reason})") from None


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
            raise ValueError(f"canonical JSON: {_spelled(where)} is {value!r}, which JSON cannot hold")
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
                    f"canonical JSON: {_spelled(where)} has a key {key!r} of type {type(key).__name__}; keys must be strings"
                )
            plain[key] = _plain(item, (where, key))
        return plain
    hint = " (convert it to an ISO 8601 string first)" if isinstance(value, datetime) else ""
    raise TypeError(f"canonical JSON: {_spelled(where)} is a {type(value).__name__}, which is not a JSON type{hint}")


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
    changes or other details. ``decision`` marks events that must be signed
    (see :func:`is_decision`). ``signature`` is the standard base64 (with
    padding) of the Ed25519 signature over the 32 raw bytes of ``hash``, or
    ``None``.
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
    """A complete event: fields checked, hash computed, signed when a decision.

    ``data`` is stored in its canonical form (integral floats as ints, tuples
    as lists), which is what the database will give back.

    Raises:
        ValueError: ``seq`` is below 1, ``type`` is not one of
            :data:`EVENT_TYPES`, ``at`` is not ISO 8601 with an offset,
            ``prev_hash`` is not 64 lowercase hex digits, or ``decision`` is
            set and there is no ``signer``; also as :func:`canonical`.
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
        signature=signer.sign(hexdigest) if decision and signer is not None else None,
    )


_HASH = re.compile(r"[0-9a-f]{64}")


def _is_hash(text: str) -> bool:
    return isinstance(text, str) and _HASH.fullmatch(text) is not None


# --- keys -------------------------------------------------------------------


class Signer:
    """The server's Ed25519 private key, which signs decision events."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Signer:
        """A fresh key held only in memory (tests, one-off tools)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Signer:
        """The key in the PEM file at ``path`` (unencrypted PKCS #8).

        Raises:
            KeyFileError: the file cannot be read, or does not hold an
                unencrypted Ed25519 private key. The message names the file.
        """
        source = os.fspath(path)
        try:
            pem = Path(source).read_bytes()
        except OSError as error:
            raise KeyFileError(source, f"cannot read the signing key: {error.strerror or error}") from None
        return cls(_private_key(pem, source))

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Signer:
        """The key in ``path``, created (mode 0600, parents too) when missing.

        An existing file is never overwritten. Several processes starting at
        once for the first time all end up with the same key: each writes its
        own key to a private temporary file and hard-links it into place,
        which succeeds for exactly one of them; the others get
        ``FileExistsError`` and read the winner's key. Linking a complete
        file, rather than creating ``path`` with ``O_EXCL`` and then writing
        to it, means no process can ever read a half-written key.

        Raises:
            KeyFileError: the file exists but cannot be read or is not an
                Ed25519 private key, or it cannot be created (the message
                names the file and the reason).
        """
        source = os.fspath(path)
        try:
            return cls.load(source)
        except KeyFileError:
            if os.path.lexists(source):
                # Either another process has just linked its (complete) key
                # into place, or the file is bad: a second read tells which,
                # and reports a bad file itself.
                return cls.load(source)
        target = Path(source)
        signer = cls.generate()
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _install(target, signer.private_pem())
        except FileExistsError:
            return cls.load(source)
        except OSError as error:
            raise KeyFileError(source, f"cannot create the signing key: {error.strerror or error}") from None
        return signer

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS #8 PEM, for writing the key file only."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> str:
        """The public half as SubjectPublicKeyInfo PEM, safe to store or publish."""
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def verifier(self) -> Verifier:
        """A verifier for this key's signatures."""
        return Verifier(self._key.public_key())

    def sign(self, hash_hex: str) -> str:
        """The base64 signature of an event hash's raw bytes.

        Raises:
            ValueError: ``hash_hex`` is not hex.
        """
        return base64.b64encode(self._key.sign(bytes.fromhex(hash_hex))).decode("ascii")


def _install(target: Path, pem: bytes) -> None:
    # The temporary name is unique per process, and O_EXCL makes sure we
    # never write into a file someone else (or a symlink) put there.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            # The umask can only take bits away; make the mode exact anyway.
            os.fchmod(descriptor, 0o600)
            remaining = memoryview(pem)
            while remaining:
                remaining = remaining[os.write(descriptor, remaining) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.link(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    # Without this a crash right after creating the key could lose the
    # directory entry while the first events were already signed with it.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise KeyFileError(
            source, "the private key is encrypted; tinhgon needs an unencrypted PEM key file (protect it with mode 0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(source, "not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(source, f"not an Ed25519 key ({type(key).__name__})")
    return key


class Verifier:
    """Checks event signatures with the server's public key."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def from_pem(cls, pem: str | bytes, source: str = "public key PEM") -> Verifier:
        """A verifier from a SubjectPublicKeyInfo PEM, e.g. one an operator gives.

        Raises:
            KeyFileError: ``pem`` is not an Ed25519 public key; the message
                starts with ``source``.
        """
        data = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFileError(source, "not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(source, f"not an Ed25519 key ({type(key).__name__})")
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Verifier:
        """A verifier from a PEM file holding the public key or the private key file itself.

        Raises:
            KeyFileError: the file cannot be read or holds no Ed25519 key;
                the message names the file.
        """
        source = os.fspath(path)
        try:
            pem = Path(source).read_bytes()
        except OSError as error:
            raise KeyFileError(source, f"cannot read the key: {error.strerror or error}") from None
        if b"PRIVATE KEY-----" in pem:
            return Signer(_private_key(pem, source)).verifier()
        return cls.from_pem(pem, source)

    def public_pem(self) -> str:
        """The public key as SubjectPublicKeyInfo PEM."""
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def verify(self, hash_hex: str, signature: str) -> bool:
        """Whether ``signature`` is this key's signature of ``hash_hex``.

        Malformed input gives ``False``, never an exception. Only the
        canonical base64 spelling is accepted: a decoder that ignores stray
        padding bits would otherwise let a stored signature be altered
        without the check noticing.
        """
        try:
            message = bytes.fromhex(hash_hex)
            raw = base64.b64decode(signature, validate=True)
        except (ValueError, binascii.Error):
            return False
        if base64.b64encode(raw).decode("ascii") != signature:
            return False
        try:
            self._key.verify(raw, message)
        except InvalidSignature:
            return False
        return True


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
        return f"case {self.case_id}, event {self.seq}: {self.reason}"


def verify_chain(
    records: Iterable[EventRecord],
    verifier: Verifier,
    expected_head: tuple[int, str] | None = None,
    *,
    case_id: int | None = None,
) -> BadEvent | None:
    """The first bad event of one case's chain, or ``None`` when it holds.

    ``records`` are the case's events in ``seq`` order. Each must have the
    next ``seq`` (1, 2, 3, ...), a ``prev_hash`` equal to the previous
    event's hash (:data:`GENESIS` for the first), a hash that recomputes,
    and a valid signature when it is a decision; any signature present must
    verify. ``expected_head`` is ``(count, last_hash)`` as the case row
    records them (``(0, GENESIS)`` for no events): it catches deleting the
    last events, which leaves a chain that is otherwise sound.
    ``case_id``, when given, is the case the events were read for; otherwise
    the first event's is used.

    Raises:
        ValueError: ``records`` is empty, ``expected_head`` says there should
            be events and ``case_id`` is not given, so the problem cannot be
            attributed to a case.
    """
    position = 0
    previous = GENESIS
    owner = case_id
    for record in records:
        position += 1
        if owner is None:
            owner = record.case_id
        problem = _check(record, position, previous, owner, verifier)
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
            owner, position + 1, f"chain ends at event {position} but the case records {count} events (last events deleted?)"
        )
    if count < position:
        return BadEvent(
            owner,
            count + 1,
            f"chain goes on to event {position} but the case records {count} events (events appended behind its back?)",
        )
    if head != previous:
        return BadEvent(owner, position, "the last event's hash is not the head hash the case records")
    return None


def _check(record: EventRecord, position: int, previous: str, owner: int, verifier: Verifier) -> str | None:
    # Order matters for the message: a gap or a broken link explains a
    # failing hash further down, not the other way round.
    if record.case_id != owner:
        return f"event belongs to case {record.case_id}, not {owner} (copied from another case?)"
    if record.seq > position:
        return f"missing event seq {position} (deleted or out of order?): the next event has seq {record.seq}"
    if record.seq < position:
        return f"seq {record.seq} comes again at position {position} (reordered or duplicated?)"
    if record.prev_hash != previous:
        before = f"event {position - 1}" if position > 1 else "the start of the chain"
        return f"prev_hash does not match {before} (reordered or deleted?)"
    try:
        recomputed = compute_hash(record.prev_hash, record.payload())
    except (TypeError, ValueError) as error:
        return f"cannot be hashed ({error}); edited?"
    if record.hash != recomputed:
        return "hash mismatch (edited?)"
    if record.signature is None:
        return "missing signature on a decision event" if record.decision else None
    if not verifier.verify(record.hash, record.signature):
        return "bad signature (forged, altered or made by another key?)"
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


def verify_all(chains: Iterable[tuple[int, list[EventRecord], tuple[int, str] | None]], verifier: Verifier) -> Report:
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
