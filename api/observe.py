"""Every request, measured: counted for Prometheus (:mod:`api.metrics`) by
its route template and status, with its latency, and written to the access
log (logger ``tinhgon.access``, used by ``--log-format json``) with method,
route, status and duration; never the raw path, headers, cookies or body."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import metrics

access = logging.getLogger("tinhgon.access")

UNMATCHED = "(unmatched)"
"""the route label of a request no route took (a wrong address): its path is the client's, not ours"""


def route_of(scope: Scope) -> str:
    """The template of the route that took the request (``/api/cases/{case_id}``),
    ``/static`` for the stylesheet, else :data:`UNMATCHED`."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str):
        return template
    if scope.get("path", "").startswith("/static/"):
        return "/static"
    return UNMATCHED


class Observed:
    """ASGI middleware around the whole app (outside the error handlers, so
    that it sees the status each problem got; a request that failed
    unexpectedly counts as the 500 it is answered with)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - start
            route = route_of(scope)
            metrics.request_answered(scope["method"], route, status, seconds)
            if access.isEnabledFor(logging.INFO):
                access.info(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    route,
                    status,
                    seconds * 1000,
                    extra={"method": scope["method"], "route": route, "status": status, "duration_ms": round(seconds * 1000, 3)},
                )
