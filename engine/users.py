"""Users, their roles and units, and bearer tokens (service.md section 2).

A token is 32 random bytes, shown once; only its SHA-256 is stored, so a
copy of the database lets nobody sign in. Revoking a user's tokens marks
them all revoked at once and ends the user's web sessions
(:mod:`engine.sessions`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import String, delete, select, update

from procedures.messages import t

from . import journal
from .db import TokenRow, UserRow, WebSessionRow
from .direct import Direct
from .errors import Conflict, EngineError
from .fields import unstorable
from .machine import Actor
from .store import Store, UnitOfWork

PERMISSIONS = frozenset({"reform", "admin"})
TOKEN_PREFIX = "tg_"
_ID = re.compile(r"[A-Za-z0-9_.@-]{1,100}")
UNIT_LENGTH = cast(int, cast(String, UserRow.__table__.c["unit"].type).length)
"""the longest unit a user (and so a case) may have: the ``unit`` column's length"""


class InvalidUser(EngineError):
    kind = "invalid-user"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    unit: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.unit, frozenset(self.roles), frozenset(self.permissions))

    @classmethod
    def of(cls, row: UserRow) -> User:
        return cls(row.id, row.name, row.unit, tuple(row.roles), tuple(row.permissions))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def add_user(
    uow: UnitOfWork,
    user_id: str,
    *,
    name: str,
    unit: str,
    roles: Iterable[str] = (),
    permissions: Iterable[str] = (),
    actor: str = "tinhgon",
) -> User:
    """Create a user.

    Raises:
        InvalidUser: a bad id, an empty name or unit, a unit longer than
            100 characters, a NUL character or a lone surrogate in the name or unit, or an
            unknown permission.
        Conflict: the id is taken.
    """
    roles, permissions = tuple(dict.fromkeys(roles)), tuple(dict.fromkeys(permissions))
    if not _ID.fullmatch(user_id):
        # shown as a Python literal, so that an invisible character shows
        raise InvalidUser(t("user id {user}: use 1-100 letters, digits or _ . @ -", user=repr(user_id)))
    if not name.strip() or not unit.strip():
        raise InvalidUser(t("user «{user}»: name and unit must not be empty", user=user_id))
    if unstorable(name) or unstorable(unit):
        raise InvalidUser(t("user «{user}»: name and unit must not contain NUL characters or lone surrogates", user=user_id))
    if len(unit) > UNIT_LENGTH:
        raise InvalidUser(
            t(
                "user «{user}»: unit is {length} characters long; at most {limit}",
                user=user_id,
                length=len(unit),
                limit=UNIT_LENGTH,
            )
        )
    unknown = sorted(set(permissions) - PERMISSIONS)
    if unknown:
        raise InvalidUser(
            t(
                "user «{user}»: unknown permission {permissions} (known: admin, reform)",
                user=user_id,
                permissions=", ".join(unknown),
            )
        )
    bad_roles = [r for r in roles if not re.fullmatch(r"[a-z][a-z0-9_]*", r)]
    if bad_roles:
        raise InvalidUser(
            t(
                "user «{user}»: role ids look like definitions' ids ([a-z][a-z0-9_]*), not {roles}",
                user=user_id,
                roles=", ".join(bad_roles),
            )
        )
    taken = t("user «{user}» exists already", user=user_id)
    if uow.session.get(UserRow, user_id) is not None:
        raise Conflict(taken)
    row = UserRow(id=user_id, name=name, unit=unit, roles=list(roles), permissions=list(permissions), created_at=_now())
    uow.insert(row, taken)
    uow.journal(journal.USER, user_id, journal.user_state(row), actor=actor)
    return User.of(row)


def issue_token(uow: UnitOfWork, user_id: str, *, actor: str = "tinhgon") -> str:
    """A new bearer token for the user (the caller shows it once).

    Raises:
        NotFound: no such user.
    """
    uow.user(user_id)
    token = new_token()
    row = TokenRow(user_id=user_id, token_hash=token_hash(token), created_at=_now())
    uow.session.add(row)
    uow.session.flush()
    uow.journal(journal.TOKEN, row.token_hash, journal.token_state(row), actor=actor)
    return token


def revoke_tokens(uow: UnitOfWork, user_id: str, *, actor: str = "tinhgon") -> int:
    """Invalidate every token of the user, and end the user's web sessions
    (opened with those tokens); returns how many tokens were live."""
    uow.user(user_id)
    revoked = uow.session.scalars(
        update(TokenRow)
        .where(TokenRow.user_id == user_id, TokenRow.revoked_at.is_(None))
        .values(revoked_at=_now())
        .returning(TokenRow.token_hash)
    ).all()
    for hash_ in revoked:
        uow.journal(journal.TOKEN, hash_, {"user": user_id, "revoked": True}, actor=actor)
    uow.session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
    return len(revoked)


def token_lookup(token: str) -> str | None:
    """The hash a bearer token is stored under, or None for a text that is no token of ours."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return token_hash(token)


def authenticate(store: Store, token: str, db: Direct | None = None) -> User | None:
    """The user a bearer token belongs to, or None (unknown or revoked);
    read in ``db``, a transaction of the caller's, when given."""
    digest = token_lookup(token)
    row = store.user_by_token_hash(digest, db) if digest is not None else None
    return User(row.id, row.name, row.unit, tuple(row.roles), tuple(row.permissions)) if row is not None else None


def all_users(uow: UnitOfWork) -> list[User]:
    return [User.of(r) for r in uow.session.scalars(select(UserRow).order_by(UserRow.id))]
