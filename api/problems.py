"""Errors as RFC 9457 problem documents, in exactly one place.

Domain errors (:mod:`engine.errors`, definition errors) map to their status
by class; request validation errors to 422; anything unexpected is logged
with an id and answered 500 with that id, never as a client error.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import errors as E
from engine.users import InvalidUser
from procedures.errors import DefinitionError, ReadError
from procedures.messages import accepted, speaking, t

from .invalid import request_errors
from .offload import LimitExceeded

log = logging.getLogger("tinhgon.api")
PROBLEM = "application/problem+json"
TYPE_BASE = "https://tinhgon.vn/problems/"

STATUS: list[tuple[type[Exception], int]] = [
    # most specific first
    (E.CorruptRecord, 500),
    (E.GuideOnce, 409),
    (E.StaleCase, 412),
    (E.IdempotencyInFlight, 409),
    (E.IdempotencyMismatch, 422),
    (E.Conflict, 409),
    (E.NotFound, 404),
    (E.Forbidden, 403),
    (E.InvalidData, 422),
    (E.InvalidAction, 422),
    (E.NotPublished, 422),
    (InvalidUser, 422),
]


def title(status: int) -> str:
    """A problem's ``title``: its status in words, in the request's language."""
    titles = {
        400: t("Bad request"),
        401: t("Not signed in"),
        403: t("Not allowed"),
        404: t("Not found"),
        405: t("Method not allowed"),
        409: t("Conflict"),
        412: t("Precondition failed"),
        413: t("Content too large"),
        415: t("Unsupported media type"),
        422: t("Unprocessable content"),
        428: t("Precondition required"),
        500: t("Internal server error"),
    }
    return titles.get(status) or t("Error")


class Language:
    """Each request speaks the language its ``Accept-Language`` asks for
    first: English for ``en``, else Vietnamese (:func:`procedures.messages.accepted`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((value for name, value in scope["headers"] if name == b"accept-language"), b"")
        with speaking(accepted(header.decode("latin-1"))):
            await self.app(scope, receive, send)


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error is answered."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="a URI naming the kind of problem; its last segment is a short slug", examples=[TYPE_BASE + "guide-once"]
    )
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None,
        description="for an invalid definition [{line, path, message}], for invalid case data [{field, message}], for an invalid request [{location, message}]",
    )


PROBLEM_SCHEMA = Problem.model_json_schema()


def documented(statuses: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each a problem document with its description."""
    return {
        status: {"description": description, "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}}
        for status, description in statuses.items()
    }


class ApiProblem(Exception):
    """A problem the HTTP layer itself finds (a body too large, a bad cursor...)."""

    def __init__(
        self, status: int, detail: str, *, kind: str | None = None, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind, self.headers, self.extra = status, detail, kind, headers, extra


class ProblemResponse(JSONResponse):
    """A problem document. Its details may quote what the client sent, and
    JSON may carry a lone surrogate (``"\\ud800"``) that has no UTF-8: such
    a character is written back as the same JSON escape, never a 500."""

    media_type = PROBLEM

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


class BodyTooLarge(StarletteHTTPException):
    """A request body over :attr:`api.settings.Settings.max_body_bytes`,
    raised where the body is read: an HTTP exception, so that FastAPI's own
    reading lets it through, and answered as a 413 problem (a page on the
    web's routes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "the body passes the limit")  # answered by install()'s handler, in the request's language
        self.limit = limit


class BodyLimit:
    """Refuse a request body over ``limit`` bytes, declared or counted as it
    arrives (chunked), the moment the app reads it: no route reads or stores
    more, case data included (a 20 MB name had been stored)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        over = declared is not None and declared.isdigit() and int(declared) > limit
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            if over:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_limited, send)


def problem(
    status: int, detail: str, *, kind: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (kind or str(status)),
        "title": title(status),
        "status": status,
        "detail": detail,
        **extra,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def engine_problem(exc: E.EngineError) -> JSONResponse:
    status = next((code for cls, code in STATUS if isinstance(exc, cls)), 409)
    extra: dict[str, Any] = {}
    if exc.case_id is not None:
        extra["case"] = exc.case_id
    if exc.step is not None:
        extra["step"] = exc.step
    if exc.outcome is not None:
        extra["outcome"] = exc.outcome
    if isinstance(exc, E.InvalidData):
        extra["errors"] = [p.as_dict() for p in exc.problems]
    if isinstance(exc, E.GuideOnce):
        extra["earlier"] = exc.earlier.as_dict()
    if isinstance(exc, E.Abolished):
        extra["merged_into"] = exc.merged_into
    return problem(status, exc.message, kind=kind_of(exc), **extra)


def kind_of(exc: BaseException) -> str:
    """The ``type`` slug of the problem an exception is answered with (the
    handlers of :func:`install` answer with it; the action counters of
    :mod:`api.metrics` count refusals by it); ``internal`` for the
    unexpected."""
    if isinstance(exc, E.EngineError):
        return exc.kind
    if isinstance(exc, ApiProblem):
        return exc.kind or str(exc.status)
    if isinstance(exc, DefinitionError):
        return "invalid-definition"
    if isinstance(exc, ReadError):
        return "unreadable"
    if isinstance(exc, RequestValidationError) or _malformed_json(exc):
        return "invalid-request"
    if isinstance(exc, BodyTooLarge):
        return "too-large"
    if isinstance(exc, StarletteHTTPException):
        return str(exc.status_code)
    return "internal"


def _malformed_json(exc: BaseException) -> bool:
    """FastAPI's 400 to a JSON body that is not UTF-8, nests too deep or
    writes an integer too long to convert: malformed JSON like any other
    (only the parsing of the body is inside FastAPI's 400, so a ValueError
    there is the client's JSON, not a bug of ours)."""
    return (
        isinstance(exc, StarletteHTTPException)
        and exc.status_code == 400
        and isinstance(exc.__cause__, (ValueError, RecursionError))
    )


def _wants_page(request: Request) -> bool:
    """A browser asking for a page, outside the API and the static files."""
    path = request.url.path
    return not path.startswith(("/api/", "/static/")) and path != "/api" and "text/html" in request.headers.get("accept", "")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes at the request's path.

    Starlette's 405 names the methods of the first route whose path
    matched, where a path such as ``/api/cases`` has one route per method
    (RFC 9110: ``Allow`` lists the target's methods, all of them)."""
    methods: set[str] = set()
    routes: list[Any] = list(request.app.router.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)  # FastAPI keeps an included router's routes there
        if included is not None:
            routes.extend(included.routes)
        elif isinstance(route, BaseRoute) and route.matches(request.scope)[0] is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(E.EngineError)
    async def _engine(request: Request, exc: E.EngineError) -> JSONResponse:
        if isinstance(exc, E.CorruptRecord):
            log.error("corrupt record on %s %s: %s", request.method, request.url.path, exc.message)
        return engine_problem(exc)

    @app.exception_handler(DefinitionError)
    async def _definition(request: Request, exc: DefinitionError) -> JSONResponse:
        return problem(
            422,
            t("the definition is not valid: {count} problem(s)", count=len(exc.problems)),
            kind=kind_of(exc),
            errors=[p.as_dict() for p in exc.problems],
        )

    @app.exception_handler(LimitExceeded)
    async def _limit(request: Request, exc: LimitExceeded) -> JSONResponse:
        return problem(422, exc.message, kind="limit-exceeded", limit=exc.limit, allowed=exc.allowed, found=exc.found)

    @app.exception_handler(ReadError)
    async def _read(request: Request, exc: ReadError) -> JSONResponse:
        return problem(422, exc.message, kind=kind_of(exc), errors=[{"line": 0, "path": "", "message": exc.message}])

    @app.exception_handler(ApiProblem)
    async def _api(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.detail, kind=exc.kind, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, t("the request is not valid"), kind=kind_of(exc), errors=request_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        if _wants_page(request) and exc.status_code in (404, 405):
            # a browser that followed a wrong link gets a page in Vietnamese;
            # imported here, since the pages' modules import this one
            from .web.render import error_page

            return error_page(request, exc.status_code, t("There is no such page: the address is wrong or has changed."))
        if _malformed_json(exc):
            # FastAPI answers 400 to a JSON body that is not UTF-8, nests too
            # deep or writes an integer of more digits than Python converts
            # (4,300: a ValueError); it is malformed JSON like any other
            cause = exc.__cause__
            digits = isinstance(cause, ValueError) and not isinstance(cause, UnicodeDecodeError)
            detail = t("the body has an integer of more than 4,300 digits") if digits else t("the body is not valid JSON")
            return problem(422, detail, kind=kind_of(exc), errors=[{"location": "body", "message": type(cause).__name__}])
        if isinstance(exc, BodyTooLarge):
            return problem(413, t("the body passes the limit of {limit} bytes", limit=exc.limit), kind=kind_of(exc))
        return problem(exc.status_code, _http_detail(exc), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s on %s %s", error_id, request.method, request.url.path)
        # answered by Starlette's outermost middleware, outside Language's
        with speaking(accepted(request.headers.get("accept-language"))):
            detail = t("an unexpected error happened; quote id {id} to the operator", id=error_id)
            return problem(500, detail, kind=kind_of(exc), error_id=error_id)


def _http_detail(exc: StarletteHTTPException) -> str:
    """The detail of Starlette's and FastAPI's own answers ("Not Found") in
    the request's language; any other detail as it was given."""
    detail = str(exc.detail)
    if detail == HTTPStatus.NOT_FOUND.phrase:
        return t("Not Found")
    if detail == HTTPStatus.METHOD_NOT_ALLOWED.phrase:
        return t("Method Not Allowed")
    if detail == "There was an error parsing the body":
        return t("There was an error parsing the body")
    return detail
