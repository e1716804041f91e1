"""The journal: every change that is not a case event, signed as it is made.

A user created or changed (its name, unit, roles and permissions), a token
issued or revoked, a procedure version stored, amended or published, a
sign-in: each writes one :class:`~engine.db.JournalRow` in the transaction
that makes the change, holding the state the change left (a user's whole
record, a token's owner and whether it is revoked, a version's content hash
and status). Its ``hash`` is the SHA-256 of the entry's canonical JSON and
its signature is made with the server's key, so an entry cannot be forged
without the key; the ledger (:mod:`engine.ledger`) then seals it in order
with the case events, so one cannot be removed unseen either.

Verification folds the journal into the state it vouches for and compares
that with the ``users``, ``tokens`` and ``procedures`` tables
(:func:`compare_state`): a user granted ``admin`` by a direct ``UPDATE``, a
token hash inserted by hand, a body swapped under a published version, each
differs from its last entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import Connection, Table, insert, select

from procedures.messages import t

from .audit import canonical, format_at
from .db import JournalRow, ProcedureRow, TokenRow, UserRow
from .keys import Keyring, Signer

_JOURNAL = cast(Table, JournalRow.__table__)

USER, TOKEN, PROCEDURE, SIGNIN, BACKUP = "user", "token", "procedure", "signin", "backup"
KINDS: Final = frozenset({USER, TOKEN, PROCEDURE, SIGNIN, BACKUP})
BASELINE_ACTOR = "tinhgon:baseline"
"""Who wrote the entries that adopt what a database held before the journal existed."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: int
    at: str
    actor: str
    kind: str
    subject: str
    data: dict[str, Any]
    hash: str
    signature: str | None
    key_id: str | None

    def payload(self) -> dict[str, Any]:
        return {"at": self.at, "actor": self.actor, "kind": self.kind, "subject": self.subject, "data": self.data}


def content_hash(body: str) -> str:
    """A procedure version's content hash: the SHA-256 of its YAML text."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def entry_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(payload))).hexdigest()


def entry_values(
    signer: Signer | None,
    *,
    kind: str,
    subject: str,
    data: Mapping[str, Any],
    actor: str,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The columns of one new entry, hashed and signed.

    Without a ``signer`` the entry is unsigned, which verification reports:
    every process that changes users or procedures holds the key.
    """
    if kind not in KINDS:
        raise ValueError(f"journal: unknown kind {kind!r}")
    payload = {
        "at": format_at(at or dt.datetime.now(dt.UTC)),
        "actor": actor,
        "kind": kind,
        "subject": subject,
        "data": dict(data),
    }
    digest = entry_hash(payload)
    return {
        **payload,
        "hash": digest,
        "signature": signer.sign(digest) if signer is not None else None,
        "key_id": signer.key_id if signer is not None else None,
    }


ENTRY_KEYS: Final = ("at", "actor", "kind", "subject", "data", "hash", "signature", "key_id")


def write(connection: Connection, values: Mapping[str, Any]) -> None:
    """Append one entry, made by :func:`entry_values`, in ``connection``'s transaction."""
    connection.execute(insert(_JOURNAL).values(**values))


def user_state(row: UserRow) -> dict[str, Any]:
    return {"name": row.name, "unit": row.unit, "roles": sorted(row.roles), "permissions": sorted(row.permissions)}


def token_state(row: TokenRow) -> dict[str, Any]:
    return {"user": row.user_id, "revoked": row.revoked_at is not None}


def procedure_state(row: ProcedureRow) -> dict[str, Any]:
    return {"content_hash": row.content_hash, "status": row.status}


def procedure_subject(code: str, version: int) -> str:
    return f"{code}/{version}"


def entries(connection: Connection) -> Iterator[JournalEntry]:
    for row in connection.execute(select(_JOURNAL).order_by(_JOURNAL.c.id)):
        yield JournalEntry(row.id, row.at, row.actor, row.kind, row.subject, dict(row.data), row.hash, row.signature, row.key_id)


def check_entry(entry: JournalEntry, keys: Keyring) -> str | None:
    """What is wrong with one entry on its own, or None."""
    try:
        recomputed = entry_hash(entry.payload())
    except (TypeError, ValueError) as error:
        return t("cannot be hashed ({error}); edited?", error=str(error))
    if recomputed != entry.hash:
        return t("hash mismatch (edited?)")
    if entry.signature is None:
        return t("missing signature (every journal entry is signed)")
    if not keys.knows(entry.key_id):
        return t("signed by key {key}, which is not a trusted key (see tinhgon audit keys)", key=entry.key_id)
    if not keys.verify(entry.key_id, entry.hash, entry.signature):
        return t("bad signature (forged, altered or made by another key?)")
    return None


def fold(journal: Iterable[JournalEntry]) -> dict[str, dict[str, dict[str, Any]]]:
    """The state the journal vouches for: ``{kind: {subject: data of its last entry}}``."""
    state: dict[str, dict[str, dict[str, Any]]] = {USER: {}, TOKEN: {}, PROCEDURE: {}}
    for entry in journal:
        if entry.kind in state:
            state[entry.kind][entry.subject] = entry.data
    return state


def _named(kind: str, subject: str) -> str:
    """A user, token or procedure version as a finding names it."""
    if kind == USER:
        return t("user {subject}", subject=subject)
    if kind == TOKEN:
        return t("token {subject}", subject=subject[:12] + "…")
    return t("procedure version {subject}", subject=subject)


def compare_state(connection: Connection, vouched: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Each difference between the tables and what the journal vouches for, in words."""
    stored: dict[str, dict[str, dict[str, Any]]] = {USER: {}, TOKEN: {}, PROCEDURE: {}}
    problems: list[str] = []
    for user in connection.execute(select(UserRow.__table__)):
        stored[USER][user.id] = user_state(cast(UserRow, user))
    for token in connection.execute(select(TokenRow.__table__)):
        stored[TOKEN][token.token_hash] = token_state(cast(TokenRow, token))
    for version in connection.execute(select(ProcedureRow.__table__)):
        subject = procedure_subject(version.code, version.version)
        stored[PROCEDURE][subject] = procedure_state(cast(ProcedureRow, version))
        if content_hash(version.body) != version.content_hash:
            problems.append(t("{item}: its body does not match its content hash (edited?)", item=_named(PROCEDURE, subject)))
    for kind in (USER, TOKEN, PROCEDURE):
        expected, actual = vouched.get(kind, {}), stored[kind]
        for subject in sorted(set(expected) | set(actual)):
            item = _named(kind, subject)
            if subject not in actual:
                problems.append(t("{item}: in the journal but not in the database (deleted behind its back?)", item=item))
            elif subject not in expected:
                problems.append(t("{item}: in the database but not in the journal (added behind its back?)", item=item))
            elif expected[subject] != actual[subject]:
                keys = sorted(
                    k for k in set(expected[subject]) | set(actual[subject]) if expected[subject].get(k) != actual[subject].get(k)
                )
                problems.append(
                    t(
                        "{item}: {fields} differ from its last journal entry (changed behind its back?)",
                        item=item,
                        fields=", ".join(keys),
                    )
                )
    return problems


def adopt(connection: Connection, signer: Signer, *, at: dt.datetime | None = None) -> int:
    """Journal what the database held before the journal existed: one
    baseline entry per user, token and procedure version that has none.

    Only the sealer calls this, and only before the first seal: afterwards
    a row without an entry is a row added behind the journal's back.
    Returns the number of entries written.
    """
    vouched = fold(entries(connection))
    written = 0

    def adopt_one(kind: str, subject: str, data: dict[str, Any]) -> None:
        nonlocal written
        if subject not in vouched[kind]:
            write(connection, entry_values(signer, kind=kind, subject=subject, data=data, actor=BASELINE_ACTOR, at=at))
            written += 1

    for user in connection.execute(select(UserRow.__table__).order_by(UserRow.id)):
        adopt_one(USER, user.id, user_state(cast(UserRow, user)))
    for token in connection.execute(select(TokenRow.__table__).order_by(TokenRow.id)):
        adopt_one(TOKEN, token.token_hash, token_state(cast(TokenRow, token)))
    for version in connection.execute(select(ProcedureRow.__table__).order_by(ProcedureRow.id)):
        adopt_one(PROCEDURE, procedure_subject(version.code, version.version), procedure_state(cast(ProcedureRow, version)))
    return written
