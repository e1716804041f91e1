"""Storing and publishing definitions: a new version, the same body again,
or an amendment (a body that differs only in what no running case depends
on, service.md section 4), the replaced body kept."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from procedures import load_text
from procedures.amendment import is_amendment
from procedures.messages import t

from . import journal
from .cases import utcnow
from .db import AmendmentRow, ProcedureRow
from .errors import Conflict
from .journal import content_hash
from .store import PUBLISHED, Store


@dataclass(frozen=True, slots=True)
class Published:
    """What :func:`publish_definition` did: ``status`` is ``new`` (a version
    stored), ``same`` (the body was stored already) or ``amended`` (the stored
    body replaced by one that differs only in what no running case depends on)."""

    row: ProcedureRow
    status: Literal["new", "same", "amended"]


def publish_definition(store: Store, body: str, *, now: dt.datetime | None = None, source: str = "<definition>") -> ProcedureRow:
    """Load, store and publish a definition's YAML text; an identical body
    under an existing code and version is accepted as already published.

    Raises:
        DefinitionError: the text is not a valid definition.
        Conflict: another body is stored under this code and version.
    """
    return publish_or_amend(store, body, now=now, source=source, amend=False).row


def publish_or_amend(
    store: Store, body: str, *, now: dt.datetime | None = None, source: str = "<definition>", amend: bool = True
) -> Published:
    """:func:`publish_definition`, and with ``amend`` a body that differs
    from the stored one only in names, labels, volumes, prices and the like
    (:func:`procedures.amendment.is_amendment`) replaces it, the old body
    kept in ``procedure_amendments`` (service.md section 4).

    Raises:
        DefinitionError: the text is not a valid definition.
        Conflict: another body, which changes how cases run, is stored under
            this code and version, or the code is stored under another spelling.
    """
    defn = load_text(body, source=source)
    now = now or utcnow()
    with store.unit() as uow:
        uow.claim_code(defn.code)  # one spelling per code, whatever the case or look-alikes
        existing = uow.find_procedure(defn.code, defn.version)
        if existing is None:
            return Published(uow.add_procedure(defn, body, now=now, status=PUBLISHED), "new")
        new_hash = content_hash(body)
        if existing.content_hash == new_hash:
            return Published(uow.publish(defn.code, defn.version, now=now), "same")
        if not amend or not is_amendment(existing.body, defn):
            raise Conflict(
                t(
                    "{source}: {code} version {version} is stored with another body, which differs also in what running cases "
                    "depend on (steps, roles, outcomes, time limits, documents, data fields); give it a new version number",
                    source=source,
                    code=defn.code,
                    version=defn.version,
                )
            )
        uow.session.add(
            AmendmentRow(
                procedure_id=existing.id,
                amended_at=now,
                source=source,
                old_body=existing.body,
                old_hash=existing.content_hash,
                new_hash=new_hash,
            )
        )
        existing.body, existing.content_hash, existing.name = body, new_hash, defn.name
        state = journal.procedure_state(existing)
        uow.journal(journal.PROCEDURE, journal.procedure_subject(existing.code, existing.version), state, actor="tinhgon")
        uow.publish(defn.code, defn.version, now=now)
        return Published(existing, "amended")
