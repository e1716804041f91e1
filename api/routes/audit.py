"""``/api/audit``: verifying everything the audit keeps and a signed
checkpoint of the ledger (admin); the public keys that check the
signatures (anyone)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from engine.verify import known_keys, sealed_checkpoint, verify_database

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
        first_bad=None if bad is None else bad.as_dict(),
    )


@router.post(
    "/checkpoint",
    summary="Seal what is pending and answer a signed statement of the ledger's length and head, to keep elsewhere (admin)",
    responses=ADMIN_ONLY,
)
def checkpoint(services: ServicesDep, user: AdminDep) -> dict[str, Any]:
    return sealed_checkpoint(services.store, services.signer)


@router.get("/keys", summary="The public keys that signed here: which one signs now, and which the server trusts")
def keys(services: ServicesDep) -> list[AuditKey]:
    assert services.keys is not None
    return [
        AuditKey(key_id=k.key_id, public_pem=k.public_pem, current=k.current, trusted=k.trusted)
        for k in known_keys(services.store, services.keys)
    ]


@router.get(
    "/public-key",
    summary="The Ed25519 public key (PEM) that verifies decision signatures",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
def public_key(services: ServicesDep) -> PlainTextResponse:
    return PlainTextResponse(services.signer.public_pem(), media_type="application/x-pem-file")
