"""Web page sessions: what the session cookie names, kept apart from the
bearer tokens.

Signing in on the web with a token opens a session: a random id of 32
bytes (:func:`secrets.token_urlsafe`) goes into the cookie, and only its
SHA-256 is stored, with the user, when it was opened, when it was last
seen and when it ends at the latest. A session ends when it has not been
seen for the idle time, at its absolute end, at sign-out, and when the
user's tokens are revoked (:func:`engine.users.revoke_tokens`).

A page checks its session in one prebuilt statement (the session joined to
its user by the hash, both ends in the ``WHERE``), as a read that stands
alone (:meth:`engine.store.Store.reading`). The last-seen instant is
written only when it is more than :data:`TOUCH_SECONDS` old, so a busy
session costs one write a minute, not one per page; the idle time is thus
counted from a last-seen instant up to a minute early.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, or_, select, update

from . import journal
from .db import JournalRow, UserRow, WebSessionRow
from .direct import Direct, Statement
from .store import Store
from .users import User

TOUCH_SECONDS = 60
"""how old the last-seen instant may grow before a page writes it again"""
_LONGEST_ID = 100
"""a cookie value longer than this is no session id of ours (one is 43 characters)"""

_USER_BY_SESSION = Statement(
    select(UserRow.id, UserRow.name, UserRow.unit, UserRow.roles, UserRow.permissions, WebSessionRow.last_seen_at)
    .join(WebSessionRow, WebSessionRow.user_id == UserRow.id)
    .where(
        WebSessionRow.id_hash == bindparam("h"),
        WebSessionRow.expires_at > bindparam("now"),
        WebSessionRow.last_seen_at > bindparam("idle_since"),
    )
)
_OPEN = Statement(insert(WebSessionRow), keys=["id_hash", "user_id", "created_at", "last_seen_at", "expires_at"])
_DROP_ENDED = Statement(
    delete(WebSessionRow).where(
        WebSessionRow.user_id == bindparam("u"),
        or_(
            WebSessionRow.expires_at <= bindparam("now"),
            WebSessionRow.last_seen_at <= bindparam("idle_since"),
        ),
    )
)
_TOUCH = Statement(update(WebSessionRow).where(WebSessionRow.id_hash == bindparam("h")).values(last_seen_at=bindparam("now")))
_CLOSE = Statement(delete(WebSessionRow).where(WebSessionRow.id_hash == bindparam("h")))
_SIGNED_IN = Statement(insert(JournalRow), keys=list(journal.ENTRY_KEYS))


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long a session lasts: unseen for ``idle`` it ends, and at the
    latest ``absolute`` after it was opened."""

    idle: dt.timedelta
    absolute: dt.timedelta


def session_hash(session_id: str) -> str | None:
    """The hash a session id is stored under, or None for a text that cannot be one."""
    if not session_id or len(session_id) > _LONGEST_ID:
        return None
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


@contextmanager
def _write(store: Store) -> Iterator[Direct]:
    """One write: on PostgreSQL a statement in autocommit, on SQLite a
    transaction through the writer gate."""
    if store.one_writer:
        with store.direct() as db:
            yield db
    else:
        with store.statements() as db:
            yield db


def open_session(store: Store, user_id: str, now: dt.datetime, lifetime: Lifetime) -> str:
    """A new session of the user; returns its id (the cookie's value,
    stored nowhere). The user's sessions that have ended are deleted, and
    the sign-in is journalled (:mod:`engine.journal`) in the same
    transaction, signed with the store's key."""
    session_id = new_session_id()
    digest = session_hash(session_id)
    with store.direct() as db:
        db.run(_DROP_ENDED, {"u": user_id, "now": now, "idle_since": now - lifetime.idle})
        db.run(
            _OPEN,
            {
                "id_hash": digest,
                "user_id": user_id,
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + lifetime.absolute,
            },
        )
        db.run(
            _SIGNED_IN,
            journal.entry_values(store.signer, kind=journal.SIGNIN, subject=user_id, data={"via": "web"}, actor=user_id, at=now),
        )
    return session_id


def session_user(store: Store, session_id: str, now: dt.datetime, lifetime: Lifetime) -> User | None:
    """The user of a live session, or None (unknown, ended or revoked)."""
    digest = session_hash(session_id)
    if digest is None:
        return None
    with store.reading() as db:
        row = db.one(_USER_BY_SESSION, {"h": digest, "now": now, "idle_since": now - lifetime.idle})
    if row is None:
        return None
    if (now - row.last_seen_at).total_seconds() > TOUCH_SECONDS:
        with _write(store) as db:
            db.run(_TOUCH, {"h": digest, "now": now})
    return User(row.id, row.name, row.unit, tuple(row.roles), tuple(row.permissions))


def close_session(store: Store, session_id: str) -> bool:
    """End a session (sign-out); whether it was there."""
    digest = session_hash(session_id)
    if digest is None:
        return False
    with _write(store) as db:
        return db.run(_CLOSE, {"h": digest}) > 0
