"""The security headers, set in one place on every response the service sends.

Pages, the API's JSON and problems, SVG diagrams, static files, 404s and the
500 answer all carry them: :func:`install` wraps the whole application,
outside Starlette's own error middleware, so no response goes out without.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    # No page runs a script, nor may an SVG opened on its own: an injected one would not run either.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    """Wrap ``app``'s whole middleware stack (its error middleware included) in :class:`SecurityHeaders`."""
    build: Callable[[], ASGIApp] = app.build_middleware_stack

    def wrapped() -> ASGIApp:
        return SecurityHeaders(build())

    app.build_middleware_stack = wrapped  # type: ignore[method-assign]
