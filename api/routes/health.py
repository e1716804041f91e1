"""What an operator's probes and Prometheus read, without signing in:
``/healthz`` (the process answers), ``/readyz`` (the database answers and
its schema is at this tinhgon's head) and ``/metrics`` (only from the
addresses of :attr:`api.settings.Settings.metrics_allow`)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

from engine.schema import current
from procedures.messages import t

from .. import metrics
from ..deps import ServicesDep

log = logging.getLogger("tinhgon.api")
router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """The process answers: nothing else is looked at (no database)."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    """200 when the database answers and its schema revision is the one
    this tinhgon's migrations end at (read once, when the worker started);
    503 with the reason otherwise. One read of ``alembic_version``, no write."""
    head = services.schema_head
    try:
        revision = current(services.store.engine)
    except DBAPIError as exc:
        log.warning("not ready: the database does not answer: %s", type(exc.orig or exc).__name__)
        return _not_ready("database", t("the database does not answer"))
    if revision != head:
        at = (
            t("the database's schema is at {revision}, not at {head}: run tinhgon db upgrade", revision=revision, head=head)
            if revision
            else t("the database's schema is at nothing, not at {head}: run tinhgon db upgrade", head=head)
        )
        return _not_ready("schema", at)
    return JSONResponse({"status": "ready", "revision": revision}, headers=NO_STORE)


def _not_ready(reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "reason": reason, "detail": detail}, status_code=503, headers=NO_STORE)


@router.get("/metrics")
def read_metrics(request: Request) -> Response:
    """Prometheus' scrape; from any address not allowed, the 404 of a wrong
    address (the addresses are the app's :attr:`~api.settings.Settings.metrics_allow`)."""
    if not metrics.allowed(request.client.host if request.client else None, request.app.state.metrics_allow):
        raise HTTPException(404, "Not Found")
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE, headers=NO_STORE)
