"""``/api/audit``: verifying every chain (admin) and the public key that
checks decision signatures (anyone)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from ..deps import AdminDep, ServicesDep
from ..problems import documented
from ..schemas import AuditReport

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get(
    "/verify",
    summary="Re-check every case's hash chain and signatures (admin)",
    responses=documented({401: "not signed in, or the token is unknown or revoked", 403: "this needs the admin permission"}),
)
def verify(services: ServicesDep, user: AdminDep) -> AuditReport:
    report = services.cases.verify_audit()
    bad = report.first_bad
    return AuditReport(
        ok=report.ok,
        events=report.events,
        cases=report.cases,
        first_bad=None if bad is None else {"case": bad.case_id, "seq": bad.seq, "reason": bad.reason},
    )


@router.get(
    "/public-key",
    summary="The Ed25519 public key (PEM) that verifies decision signatures",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
def public_key(services: ServicesDep) -> PlainTextResponse:
    return PlainTextResponse(services.signer.public_pem(), media_type="application/x-pem-file")
