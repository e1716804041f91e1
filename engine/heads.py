"""The rows a case change reads, typed.

The change paths read a case through prebuilt statements
(:mod:`engine.rows`), whose rows are named tuples made at run time; these
protocols say which columns the code uses, so that ``mypy --strict`` sees a
column renamed or dropped, and a test (``tests/engine/test_heads.py``)
checks that each statement selects every column its protocol names.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol


class CaseHead(Protocol):
    """A ``cases`` row as a change reads it (:data:`~engine.rows.READ_CASE`;
    on PostgreSQL :data:`~engine.rows.READ_CASE_STEPS`, its steps' state
    with it)."""

    @property
    def id(self) -> int: ...
    @property
    def procedure_id(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def procedure_version(self) -> int: ...
    @property
    def unit(self) -> str: ...
    @property
    def applicant(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def due_at(self) -> dt.datetime | None: ...
    @property
    def paused_since(self) -> dt.datetime | None: ...
    @property
    def guided(self) -> dict[str, Any] | None: ...
    @property
    def version(self) -> int: ...
    @property
    def event_count(self) -> int: ...
    @property
    def head_hash(self) -> str: ...


class ClaimingHead(CaseHead, Protocol):
    """PostgreSQL: :data:`~engine.rows.READ_CASE_STEPS_CLAIM`, the case read
    as the idempotency key is claimed."""

    @property
    def claimed(self) -> int: ...


class SignedInRow(Protocol):
    """PostgreSQL: :data:`~engine.rows.READ_SIGNED_IN_CASE`, the token's
    user, the case (its columns null when there is no such case) and the
    key's earlier use (null when unused). Once ``id`` is known not to be
    null the row is also a :class:`CaseHead`."""

    @property
    def u_id(self) -> str: ...
    @property
    def u_name(self) -> str: ...
    @property
    def u_unit(self) -> str: ...
    @property
    def u_roles(self) -> list[str]: ...
    @property
    def u_permissions(self) -> list[str]: ...
    @property
    def id(self) -> int | None: ...
    @property
    def procedure_id(self) -> int: ...
    @property
    def applicant(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def k_request_hash(self) -> str | None: ...
    @property
    def k_status_code(self) -> int | None: ...
    @property
    def k_response(self) -> Any: ...


def columns_of(protocol: type) -> set[str]:
    """The column names a protocol of this module uses (its properties, its bases' too)."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass is object or klass is Protocol or not klass.__module__.startswith("engine."):
            continue
        names |= {name for name, value in vars(klass).items() if isinstance(value, property)}
    return names
