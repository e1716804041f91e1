"""``/api/audit``: verifying everything the audit keeps and a signed
checkpoint of the ledger (admin); the public keys that check the
signatures (anyone)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from engine.ledger import checkpoint as checkpoint_of
from engine.verify import listed_keys, seal_all, verify_database

from ..deps import AdminDep, ServicesDep
from ..problems import documented
from ..schemas import AuditKey, AuditReport

ADMIN_ONLY = documented({401: "not signed in, or the token is unknown or revoked", 403: "this needs the admin permission"})

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get(
    "/verify",
    summary="Re-check every case's chain, signatures and replay, the journal and the ledger (admin)",
    responses=ADMIN_ONLY,
)
def verify(services: ServicesDep, user: AdminDep) -> AuditReport:
    assert services.keys is not None
    report = verify_database(services.store, services.keys, calendar=services.calendar)
    bad = report.first_bad
    return AuditReport(
        ok=report.ok,
        events=report.events,
        cases=report.cases,
        journal=report.journal,
        ledger=report.places,
        unsealed=report.unsealed,
        problems=len(report.bad),
        first_bad=None
        if bad is None
        else {"part": bad.part, "case": bad.case_id, "seq": bad.seq, "reason": bad.reason, "text": bad.render()},
    )


@router.post(
    "/checkpoint",
    summary="Seal what is pending and answer a signed statement of the ledger's length and head, to keep elsewhere (admin)",
    responses=ADMIN_ONLY,
)
def checkpoint(services: ServicesDep, user: AdminDep) -> dict[str, Any]:
    seal_all(services.store, services.signer)
    with services.store.unit(write=False) as uow:
        return checkpoint_of(uow.connection, services.signer)


@router.get("/keys", summary="The public keys that signed here: which one signs now, and which the server trusts")
def keys(services: ServicesDep) -> list[AuditKey]:
    assert services.keys is not None
    trusted = services.keys
    out = [
        AuditKey(key_id=key_id, public_pem=pem, current=key_id == services.signer.key_id, trusted=True)
        for key_id, pem in trusted.public_pems()
    ]
    out += [
        AuditKey(key_id=key_id, public_pem=pem, current=False, trusted=False)
        for key_id, pem in listed_keys(services.store)
        if not trusted.knows(key_id)
    ]
    return out


@router.get(
    "/public-key",
    summary="The Ed25519 public key (PEM) that verifies decision signatures",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
def public_key(services: ServicesDep) -> PlainTextResponse:
    return PlainTextResponse(services.signer.public_pem(), media_type="application/x-pem-file")
