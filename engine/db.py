"""The database's tables: SQLAlchemy 2 models.

The schema itself is created and changed only by the Alembic migrations in
:mod:`engine.migrations` (``tinhgon db upgrade``); these models are how the
code reads and writes it, and a test checks that the two agree. Opening a
database is :mod:`engine.connection`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NO_DUE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
"""Sort key of an active step without a due time: such steps come last."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Instants stored as UTC and read back as aware UTC datetimes, the same
    on SQLite (which keeps no offset) and PostgreSQL (which converts to the
    session's zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; instants must carry their offset")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC)
        return value.replace(tzinfo=dt.UTC)

    # On SQLite an instant is text, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (the
    # form SQLAlchemy's DateTime writes). A case action converts some fifty
    # of them, so SQLite gets one-step conversions instead of the decorator
    # wrapped around the dialect's own; the text is the same either way.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # (datetime.replace with a keyword costs ten times what parsing does,
        # so the offset is cut off the text and pasted onto it instead)
        def to_text(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not dt.UTC:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given to the database; instants must carry their offset")
                value = value.astimezone(dt.UTC)
            return value.isoformat(" ", "microseconds")[:26]

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> dt.datetime | None:
            return None if value is None else dt.datetime.fromisoformat(value + "+00:00")

        return from_text


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class ProcedureRow(Base):
    """One version of one procedure, as uploaded (``body`` is the YAML text)."""

    __tablename__ = "procedures"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        Index("uq_procedures_code_key_version", "code_key", "version", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(100))
    code_key: Mapped[str] = mapped_column(String(101), server_default="")
    """:func:`engine.codes.code_key` of ``code`` (or, for a row stored under
    a spelling that collided before the rule, :func:`~engine.codes.exact_key`):
    the unique index on it and ``version`` makes codes that differ only in
    case one code (migration 0003_code_key)."""
    version: Mapped[int]
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # draft, published
    body: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    published_at: Mapped[dt.datetime | None]


class AmendmentRow(Base):
    """A stored version's body replaced by one that differs only in what no
    running case depends on (service.md section 4); the old body is kept."""

    __tablename__ = "procedure_amendments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"), index=True)
    amended_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(Text)
    old_body: Mapped[str] = mapped_column(Text)
    old_hash: Mapped[str] = mapped_column(String(64))
    new_hash: Mapped[str] = mapped_column(String(64))


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(100))
    roles: Mapped[list[Any]]
    permissions: Mapped[list[Any]]
    created_at: Mapped[dt.datetime]


class TokenRow(Base):
    """A bearer token's SHA-256 (the token itself is never stored)."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class WebSessionRow(Base):
    """A web page session: the SHA-256 of its random id (the cookie's
    value, never stored), whose user, and when it ends (:mod:`engine.sessions`)."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    """the absolute end: ``created_at`` plus the longest a session lasts"""


class CaseRow(Base):
    """One case. ``version`` grows by one with each accepted change and
    guards every update (optimistic concurrency); ``event_count`` and
    ``head_hash`` close the case's audit chain, so a deleted last event is
    noticed."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_unit_created", "unit", "id"),
        Index("ix_cases_applicant_created", "applicant", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    procedure_id: Mapped[int] = mapped_column(ForeignKey("procedures.id"), index=True)
    code: Mapped[str] = mapped_column(String(100))
    procedure_version: Mapped[int]
    unit: Mapped[str] = mapped_column(String(100))
    applicant: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime | None]
    paused_since: Mapped[dt.datetime | None]
    guided: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    event_count: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))

    steps: Mapped[list[CaseStepRow]] = relationship(
        back_populates="case", order_by="CaseStepRow.position", cascade="all, delete-orphan", lazy="selectin"
    )

    # The code sets ``version`` itself (one step per accepted change, not per
    # flush); SQLAlchemy still adds ``WHERE version = <as read>`` to updates.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}  # noqa: RUF012


class CaseStepRow(Base):
    """One step of one case. ``role``, ``role_kind``, ``unit`` and
    ``applicant`` are copied from the definition and the case so that the
    inbox is one indexed read; ``due_sort`` is ``due_at`` or
    :data:`NO_DUE`, so that steps without a due time sort last on every
    database."""

    __tablename__ = "case_steps"
    __table_args__ = (
        Index(
            "ix_case_steps_inbox_office",
            "unit",
            "role",
            "due_sort",
            "case_id",
            "position",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "ix_case_steps_inbox_applicant",
            "applicant",
            "due_sort",
            "case_id",
            "position",
            sqlite_where=text("status = 'active' AND role_kind = 'applicant'"),
            postgresql_where=text("status = 'active' AND role_kind = 'applicant'"),
        ),
        Index(
            "ix_case_steps_overdue",
            "due_sort",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_id: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(100))
    role_kind: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(100))
    applicant: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    activated_at: Mapped[dt.datetime | None]
    due_at: Mapped[dt.datetime | None]
    due_sort: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(100))

    case: Mapped[CaseRow] = relationship(back_populates="steps")


class EventRow(Base):
    """One audit event. ``at`` is kept as the exact text that was hashed."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    seq: Mapped[int]
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16))
    step: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]]
    decision: Mapped[bool]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(16))
    """the key that signed it (:attr:`engine.keys.Signer.key_id`); None on
    events of the first rules that needed no signature"""


class AuditKeyRow(Base):
    """A public key that signed something here: listed, never trusted from
    this table alone (see :mod:`engine.keys`)."""

    __tablename__ = "audit_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_pem: Mapped[str] = mapped_column(Text)
    first_used: Mapped[dt.datetime]


class JournalRow(Base):
    """One signed change that is not a case event: a user, a token, a
    procedure version, a sign-in (see :mod:`engine.journal`)."""

    __tablename__ = "journal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(16))


class LedgerRow(Base):
    """One place of the database-wide chain: an event or a journal entry,
    in the order the sealer found them (see :mod:`engine.ledger`)."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("kind", "ref_id"),)

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int]
    entry_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[str] = mapped_column(String(40))
    signature: Mapped[str | None] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(16))


class AuditRulesRow(Base):
    """When this database moved to the rules of :mod:`engine.ledger`:
    events up to ``legacy_events`` (their id) were written under the first
    rules, when only decisions were signed."""

    __tablename__ = "audit_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    legacy_events: Mapped[int]
    switched_at: Mapped[dt.datetime]


class IdempotencyRow(Base):
    """A case action's ``Idempotency-Key``: the request it answered and the
    answer, so that a retry gets the same response."""

    __tablename__ = "idempotency"

    user_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime]


class BackupRow(Base):
    """Written by ``tinhgon db backup`` into the copy only (a live database
    holds none): the copy says it is a backup, taken at ``taken_at`` (every
    event in it was committed before) from ``source`` (the database's URL)."""

    __tablename__ = "backups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taken_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(Text)
