"""The HTTP service: :func:`create_app` builds it from one :class:`Settings`.

The lifespan opens the database (migrating it), the signing key and the
calendar once per worker; routes reach them through dependencies
(:mod:`api.deps`). Errors become problem documents in :mod:`api.problems`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from engine.logsafe import hide_statement_values

from . import headers, problems, web
from .metrics import ALLOW_ENV
from .observe import Observed
from .routes import audit, cases, health, procedures
from .services import Services
from .settings import Settings, audit_settings, limit_settings, web_settings

LEASE_ENV = "TINHGON_IDEMPOTENCY_LEASE"
WRITE_THREADS_ENV = "TINHGON_WRITE_THREADS"

DESCRIPTION = """\
Run administrative procedures published as `tinhgon/1` definitions: upload,
analyse, simplify and publish them (permission `reform`), start cases, act
on their steps, withdraw, and read the tamper-evident audit trail.

Sign in with `Authorization: Bearer TOKEN` (`tinhgon user token ID` issues one).
Errors are `application/problem+json` (RFC 9457).
"""

TAGS = [
    {"name": "procedures", "description": "Definitions: upload, analyse, simplify, publish, compare"},
    {"name": "cases", "description": "Cases: start, act, withdraw, read; the inbox"},
    {"name": "audit", "description": "The audit trail's verification and public key"},
]


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """The application. ``services`` may be given ready-made (tests); else
    they are opened from ``settings`` when the app starts."""
    settings = settings or Settings()
    hide_statement_values()  # the error logs of every worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or Services.start(settings)
        app.state.statements = None
        try:
            app.state.statements = await app.state.services.open_statements()
            yield
        finally:
            if app.state.statements is not None:
                await app.state.statements.close()
            if owned:
                app.state.services.close()

    app = FastAPI(
        title="tinhgon",
        summary="Tinh gọn thủ tục hành chính: simplify administrative procedures, then run them",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        openapi_tags=TAGS,
        # The schema only: Swagger UI and ReDoc pages would load their scripts from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    if services is not None:
        app.state.services = services
    app.state.metrics_allow = settings.metrics_allow
    problems.install(app)
    app.add_middleware(problems.BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(problems.Language)
    app.add_middleware(Observed)  # added last, it runs first: it sees every answer's status
    # Requests are matched against the routers in this order, route by route:
    # the case routes, which take the load (actions, the inbox), come first.
    # The documentation keeps its own order (TAGS).
    app.include_router(cases.router)
    app.include_router(procedures.router)
    app.include_router(audit.router)
    app.include_router(health.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    headers.install(app)
    return app


def app_from_environment() -> FastAPI:
    """The app as ``tinhgon serve``'s workers build it: settings from the
    environment the parent process set (database, key, calendar),
    ``$TINHGON_IDEMPOTENCY_LEASE`` (seconds) when set, which tests shorten,
    ``$TINHGON_WRITE_THREADS`` (PostgreSQL: actions run at once per worker),
    ``$TINHGON_METRICS_ALLOW`` (who may read ``/metrics``), the limits
    (:data:`api.settings.LIMIT_ENV`: upload size, steps, the heavy work's time) and the web's
    settings (:data:`api.settings.WEB_ENV`: secure cookies, the sessions'
    idle and absolute ends) and the sealer's (:data:`api.settings.AUDIT_ENV`:
    how often it seals, where and how often it writes checkpoints)."""
    calendar = os.environ.get("TINHGON_CALENDAR")
    values: dict[str, object] = {
        "calendar_file": Path(calendar) if calendar else None,
        **web_settings(os.environ),
        **audit_settings(os.environ),
    }
    lease = os.environ.get(LEASE_ENV)
    if lease:
        values["idempotency_lease_seconds"] = lease
    threads = os.environ.get(WRITE_THREADS_ENV)
    if threads:
        values["write_threads"] = threads
    allow = os.environ.get(ALLOW_ENV)
    if allow:
        values["metrics_allow"] = allow
    values.update(limit_settings(os.environ))
    return create_app(Settings.model_validate(values))
