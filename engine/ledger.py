"""The ledger: one append-only chain over the whole database, and checkpoints of it.

Each case has its own chain of events, and the journal (:mod:`engine.journal`)
records every other change; neither alone shows that a whole case was
deleted, or that the last events of a case and its head were cut together.
The ledger does: a sealer (:func:`seal_pending`) takes the events and
journal entries written since the last seal, in the order of their ids, and
appends one place for each, whose ``hash`` chains the previous place's hash
with what the entry is and its own hash. The last place of every seal is
signed with the server's key. Writers never wait for the sealer: they write
their events and entries as before, and the sealer, run by the service every
few seconds (one at a time: a lock), catches up in batches.

A **checkpoint** (:func:`checkpoint`) is a signed statement of the ledger's
length and head, meant to be kept outside the database. Whoever holds the
database but not the key can rewrite nothing the ledger covers without
breaking a signature, and can cut the ledger's tail cleanly; a checkpoint
kept elsewhere catches that too (:func:`check_checkpoint`). What the ledger
cannot catch: a change made after the last seal (an event is still signed,
so it can be deleted there but not altered), and anything done by someone
who also holds the key, after the last checkpoint kept elsewhere.

A checkpoint also lists the backups taken before it (``backups``: the place
of each backup's journal entry and its hash), so that a database restored
from one of them is recognised: its ledger is that checkpoint's ledger up to
the backup, and then goes its own way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import Connection, Table, insert, select, text

from procedures.messages import t

from .audit import GENESIS, canonical, format_at
from .db import AuditKeyRow, AuditRulesRow, EventRow, JournalRow, LedgerRow
from .journal import BACKUP, adopt
from .keys import Keyring, Signer

_LEDGER = cast(Table, LedgerRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)
_JOURNAL = cast(Table, JournalRow.__table__)
_KEYS = cast(Table, AuditKeyRow.__table__)
_RULES = cast(Table, AuditRulesRow.__table__)

EVENT, JOURNAL, RULES = "event", "journal", "rules"
BATCH: Final = 5000
"""the most entries one seal takes (a seal is one transaction)"""
WINDOW: Final = 100_000
"""how far below the newest sealed event the sealer looks for events that
committed late (PostgreSQL hands ids out before commit); see :func:`seal_pending`"""
CHECKPOINT_FORMAT: Final = "tinhgon-checkpoint/1"
_LOCK_ID: Final = 0x7467_6E02


@dataclass(frozen=True, slots=True)
class Place:
    position: int
    kind: str
    ref_id: int
    entry_hash: str
    prev_hash: str
    hash: str
    sealed_at: str
    signature: str | None
    key_id: str | None


def place_hash(prev_hash: str, position: int, kind: str, ref_id: int, entry: str) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical({"position": position, "kind": kind, "ref": ref_id, "entry": entry}))
    return digest.hexdigest()


def rules_hash(legacy_events: int) -> str:
    """What the ledger's first place vouches for: which events keep the first rules."""
    return hashlib.sha256(canonical({"legacy_events": legacy_events})).hexdigest()


def places(connection: Connection, *, after: int = 0) -> Iterator[Place]:
    rows = connection.execute(select(_LEDGER).where(_LEDGER.c.position > after).order_by(_LEDGER.c.position))
    for r in rows:
        yield Place(r.position, r.kind, r.ref_id, r.entry_hash, r.prev_hash, r.hash, r.sealed_at, r.signature, r.key_id)


def head(connection: Connection) -> tuple[int, str]:
    """``(length, hash of the last place)`` of the ledger; ``(0, GENESIS)`` when empty."""
    row = connection.execute(select(_LEDGER.c.position, _LEDGER.c.hash).order_by(_LEDGER.c.position.desc()).limit(1)).first()
    return (0, GENESIS) if row is None else (int(row.position), str(row.hash))


def legacy_events(connection: Connection) -> int:
    """The highest event id written under the first rules (0 on a database born with the ledger)."""
    value = connection.execute(select(_RULES.c.legacy_events).where(_RULES.c.id == 1)).scalar()
    return int(value or 0)


def _lock(connection: Connection) -> None:
    # One sealer at a time across every worker and host: on PostgreSQL an
    # advisory lock for the transaction; SQLite's write lock already is one.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})


def _pending(connection: Connection, length: int) -> list[tuple[str, int, str]]:
    """What the next seal takes: ``(kind, id, hash)`` in order, at most :data:`BATCH`."""
    out: list[tuple[str, int, str]] = []
    if length == 0:
        out.append((RULES, 1, rules_hash(legacy_events(connection))))
    sealed = select(_LEDGER.c.ref_id).where(_LEDGER.c.kind == JOURNAL).scalar_subquery()
    for row in connection.execute(
        select(_JOURNAL.c.id, _JOURNAL.c.hash).where(_JOURNAL.c.id.not_in(sealed)).order_by(_JOURNAL.c.id).limit(BATCH)
    ):
        out.append((JOURNAL, int(row.id), str(row.hash)))
    newest = connection.execute(
        select(_LEDGER.c.ref_id).where(_LEDGER.c.kind == EVENT).order_by(_LEDGER.c.position.desc()).limit(1)
    ).scalar()
    low = max(0, int(newest or 0) - WINDOW)
    sealed_events = select(_LEDGER.c.ref_id).where(_LEDGER.c.kind == EVENT, _LEDGER.c.ref_id > low).scalar_subquery()
    for row in connection.execute(
        select(_EVENTS.c.id, _EVENTS.c.hash)
        .where(_EVENTS.c.id > low, _EVENTS.c.id.not_in(sealed_events))
        .order_by(_EVENTS.c.id)
        .limit(BATCH - len(out) if len(out) < BATCH else 0)
    ):
        out.append((EVENT, int(row.id), str(row.hash)))
    return out


def record_key(connection: Connection, signer: Signer, now: dt.datetime) -> None:
    """List the signer's public key among the keys ever used (for people; never trusted from here)."""
    if connection.execute(select(_KEYS.c.key_id).where(_KEYS.c.key_id == signer.key_id)).first() is None:
        connection.execute(insert(_KEYS).values(key_id=signer.key_id, public_pem=signer.public_pem(), first_used=now))


def seal_pending(connection: Connection, signer: Signer, *, now: dt.datetime | None = None) -> int:
    """Append what was written since the last seal to the ledger; returns how many places.

    Run inside a writing transaction. Before the very first seal, what the
    database held before the journal existed is adopted into it
    (:func:`engine.journal.adopt`). An event whose transaction committed more
    than :data:`WINDOW` events after newer ones were sealed is not picked up
    (no transaction lives that long); verification still checks its chain.
    """
    now = now or dt.datetime.now(dt.UTC)
    _lock(connection)
    length, previous = head(connection)
    record_key(connection, signer, now)
    if length == 0:
        adopt(connection, signer, at=now)
    pending = _pending(connection, length)
    if not pending:
        return 0
    sealed_at = format_at(now)
    rows: list[dict[str, Any]] = []
    for kind, ref_id, entry in pending:
        length += 1
        before, previous = previous, place_hash(previous, length, kind, ref_id, entry)
        rows.append(
            {
                "position": length,
                "kind": kind,
                "ref_id": ref_id,
                "entry_hash": entry,
                "prev_hash": before,
                "hash": previous,
                "sealed_at": sealed_at,
                "signature": None,
                "key_id": None,
            }
        )
    rows[-1]["signature"], rows[-1]["key_id"] = signer.sign(previous), signer.key_id
    connection.execute(insert(_LEDGER), rows)
    return len(rows)


# -- checkpoints -------------------------------------------------------------------


def _statement_hash(statement: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in statement.items() if k != "signature"})).hexdigest()


def checkpoint(connection: Connection, signer: Signer, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """A signed statement of the ledger as it stands (seal first to cover everything)."""
    length, last = head(connection)
    backups = [
        {"position": int(r.position), "hash": str(r.hash)}
        for r in connection.execute(
            select(_LEDGER.c.position, _LEDGER.c.hash)
            .join(_JOURNAL, (_LEDGER.c.kind == JOURNAL) & (_LEDGER.c.ref_id == _JOURNAL.c.id))
            .where(_JOURNAL.c.kind == BACKUP)
            .order_by(_LEDGER.c.position)
        )
    ]
    statement: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "length": length,
        "head": last,
        "at": format_at(now or dt.datetime.now(dt.UTC)),
        "backups": backups,
        "key_id": signer.key_id,
    }
    statement["signature"] = signer.sign(_statement_hash(statement))
    return statement


class CheckpointError(ValueError):
    """A checkpoint file that is not one, or whose signature does not hold."""


def read_checkpoint(text_: str, keys: Keyring, source: str) -> dict[str, Any]:
    """A checkpoint's statement, checked for form and signature.

    Raises:
        CheckpointError: not a checkpoint, or a signature that does not hold.
    """
    try:
        statement = json.loads(text_)
    except json.JSONDecodeError as error:
        raise CheckpointError(
            t("{source}: not JSON ({error} at line {line})", source=source, error=error.msg, line=error.lineno)
        ) from None
    if not isinstance(statement, dict) or statement.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            t("{source}: not a tinhgon checkpoint (format «{format}» expected)", source=source, format=CHECKPOINT_FORMAT)
        )
    length, last, signature = statement.get("length"), statement.get("head"), statement.get("signature")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0 or not isinstance(last, str):
        raise CheckpointError(t("{source}: length and head are missing or malformed", source=source))
    if not isinstance(signature, str) or not keys.verify(statement.get("key_id"), _statement_hash(statement), signature):
        raise CheckpointError(
            t("{source}: the signature does not hold (altered, or made by a key that is not trusted)", source=source)
        )
    return statement


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    ok: bool
    message: str
    restored_from: int | None = None
    """the ledger place of the backup this database was restored from, when it was"""


def check_checkpoint(connection: Connection, statement: Mapping[str, Any]) -> CheckpointResult:
    """Whether the ledger (already verified as a chain) extends the checkpoint.

    The ledger holds the checkpoint's place ``length`` with the same hash:
    it extends it, since that hash covers every place before. Otherwise, if
    it holds a backup's place the checkpoint lists, with the same hash, the
    database was restored from that backup, and what came after it (up to
    the checkpoint) is gone: recognised as a restore, not as tampering.
    """
    length, last = int(statement["length"]), str(statement["head"])
    at = statement.get("at", "?")

    def hash_at(position: int) -> str | None:
        value = connection.execute(select(_LEDGER.c.hash).where(_LEDGER.c.position == position)).scalar()
        return None if value is None else str(value)

    if length == 0 or hash_at(length) == last:
        return CheckpointResult(True, t("the ledger extends the checkpoint of {at} (place {length})", at=at, length=length))
    for backup in reversed(list(statement.get("backups") or [])):
        position = backup.get("position") if isinstance(backup, dict) else None
        if isinstance(position, int) and position <= length and hash_at(position) == backup.get("hash"):
            return CheckpointResult(
                True,
                t(
                    "restored from the backup at ledger place {position}: the checkpoint of {at} had {length} places,"
                    " and the {lost} after the backup were lost by the restore",
                    position=position,
                    at=at,
                    length=length,
                    lost=length - position,
                ),
                restored_from=position,
            )
    current, _ = head(connection)
    if current < length:
        return CheckpointResult(
            False,
            t(
                "the ledger has {current} places but the checkpoint of {at} vouches for {length} (its tail was cut)",
                current=current,
                at=at,
                length=length,
            ),
        )
    return CheckpointResult(
        False,
        t("the ledger's place {length} is not the one the checkpoint of {at} vouches for (rewritten)", length=length, at=at),
    )
