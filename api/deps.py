"""Dependencies of the routes: the services, the signed-in user, permissions."""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from engine.direct import Direct
from engine.machine import Actor
from engine.users import User, authenticate
from procedures.messages import t

from . import metrics
from .problems import ApiProblem, kind_of
from .services import Services

SESSION_COOKIE = "tinhgon_session"
M = TypeVar("M", bound=BaseModel)


def declared_length(request: Request) -> int | None:
    """The body size the client declared in ``Content-Length``, when that
    is a plain number (ASCII digits: ``str.isdigit`` takes "²" too); the
    limits check it first, then count what arrives."""
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isascii() and declared.isdigit() else None


# The dependencies are coroutines: FastAPI runs a plain function dependency
# in its thread pool, and each such hop cost more than the work it carried
# (five per request before). Only a token still to be checked goes to a
# thread, since that reads the database.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, t("use Authorization: Bearer TOKEN"), kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


async def current_user(request: Request, services: ServicesDep) -> User:
    """The caller, from ``Authorization: Bearer``; 401 without a valid token."""
    signed_in: User | None = getattr(request.state, "user", None)
    if signed_in is not None:
        return signed_in
    return await run_in_threadpool(signed_in_user, request, services)


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer``.

    Raises:
        ApiProblem: 401, no token.
    """
    token = _bearer(request)
    if token is None:
        raise ApiProblem(
            401, t("sign in: send Authorization: Bearer TOKEN"), kind="unauthorized", headers={"WWW-Authenticate": "Bearer"}
        )
    return token


def signed_in_user(request: Request, services: Services, db: Direct | None = None) -> User:
    """The caller's user, checked against the database (in ``db``, the
    request's own transaction, when given).

    Raises:
        ApiProblem: 401, no token, or an unknown or revoked one.
    """
    token = bearer_token(request)
    user = authenticate(services.store, token, db)
    if user is None:
        raise invalid_token()
    return user


def invalid_token() -> ApiProblem:
    """The 401 of a token that is unknown or revoked."""
    return ApiProblem(
        401,
        t("the token is unknown or revoked"),
        kind="unauthorized",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


UserDep = Annotated[User, Depends(current_user)]


FastPath = Callable[[Request], Coroutine[Any, Any, Response | None]]
"""A route's own handling of a plain request: its response, or None when
the request is not plain and the framework's handling should answer it."""


def fast_path(handle: FastPath) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give an endpoint of a :class:`SignedInRoute` a fast path: ``handle``
    is tried first, and the endpoint (with FastAPI's validation, errors and
    dependencies) answers whatever ``handle`` leaves (returns None for).

    For the busiest routes: FastAPI's per-request work (dependency solving,
    parameter validation, a thread-pool hop for the token and another for
    the endpoint) cost more than the case action itself. ``handle`` must
    accept only what the endpoint would accept, and answer it as the
    endpoint would; anything unusual it leaves to the endpoint, so every
    error keeps the framework's single path.
    """

    def attach(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.fast_path = handle  # type: ignore[attr-defined]
        return endpoint

    return attach


def counted(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Count what becomes of every request to a case action's endpoint
    (``tinhgon_case_actions``, :mod:`api.metrics`) under ``action``: on
    its fast path and through the endpoint alike, a refusal by the type of
    the problem it is answered with, wherever it was raised (the token,
    the request's validation, the engine)."""

    def attach(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.counted_as = action  # type: ignore[attr-defined]
        return endpoint

    return attach


def _counting(
    action: str, handler: Callable[[Request], Coroutine[Any, Any, Response]]
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def answered(request: Request) -> Response:
        try:
            response = await handler(request)
        except Exception as exc:
            metrics.action_answered(action, "refused", kind_of(exc))
            raise
        if response.status_code >= 400:  # an answer a route gives itself
            metrics.action_answered(action, "refused", str(response.status_code))
        elif "idempotent-replayed" in response.headers:
            metrics.action_answered(action, "replayed")
        else:
            metrics.action_answered(action, "accepted")
        return response

    return answered


class NotPlain(enum.Enum):
    NOT_PLAIN = "not plain"


NOT_PLAIN = NotPlain.NOT_PLAIN


def json_media(content_type: str | None) -> bool:
    """Whether ``content_type`` declares JSON: ``application/json`` or a
    ``+json`` type of its family, any parameters aside (the types FastAPI
    reads as JSON)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def refuse_other_media(request: Request) -> None:
    """A JSON endpoint's body must be declared JSON (service.md: a content
    type the endpoint does not take, ``415``); an empty body is no body.

    Raises:
        ApiProblem: 415, a body sent without a JSON content type.
    """
    if await request.body() and not json_media(request.headers.get("content-type")):
        shown = request.headers.get("content-type") or t("no Content-Type")
        raise ApiProblem(
            415,
            t("send the body as JSON (Content-Type: application/json), not {media}", media=shown),
            kind="unsupported-media-type",
        )


async def plain_json(request: Request, model: type[M], *, optional: bool = False) -> M | NotPlain | None:
    """The request's body as ``model``, when FastAPI would read it alike:
    ``Content-Type: application/json`` and a body that is valid. An empty
    body is None when ``optional``. Anything else is :data:`NOT_PLAIN`."""
    body = await request.body()
    if not body:
        return None if optional else NOT_PLAIN
    content_type = request.headers.get("content-type")
    if content_type is None or content_type.partition(";")[0].strip().lower() != "application/json":
        return NOT_PLAIN
    try:
        return model.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        return NOT_PLAIN


class SignedInRoute(APIRoute):
    """A route that authenticates its caller before it reads the body.

    FastAPI decodes a JSON body before it runs any dependency, so a
    malformed body would answer 422 to a caller without a valid token;
    service.md section 3 puts the token first (401), then the body.

    An endpoint that takes a JSON body then refuses a body of another
    content type (415, :func:`refuse_other_media`), before FastAPI reads it.

    An endpoint with a :func:`fast_path` has it tried first; one marked
    :func:`counted` has its answers counted, whichever path gave them.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handled = self._signed_in_handler()
        action: str | None = getattr(self.endpoint, "counted_as", None)
        return handled if action is None else _counting(action, handled)

    def _signed_in_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_json = self.body_field is not None

        async def signed_in_first(request: Request) -> Response:
            request.state.user = await run_in_threadpool(signed_in_user, request, request.app.state.services)
            if takes_json:
                await refuse_other_media(request)
            return await handler(request)

        fast: FastPath | None = getattr(self.endpoint, "fast_path", None)
        if fast is None:
            return signed_in_first

        async def fast_first(request: Request) -> Response:
            response = await fast(request)
            return response if response is not None else await signed_in_first(request)

        return fast_first


async def actor(user: UserDep) -> Actor:
    return user.actor


ActorDep = Annotated[Actor, Depends(actor)]


async def reform_user(user: UserDep) -> User:
    if "reform" not in user.permissions:
        raise ApiProblem(403, t("changing procedures needs the reform permission"), kind="forbidden")
    return user


async def admin_user(user: UserDep) -> User:
    if "admin" not in user.permissions:
        raise ApiProblem(403, t("this needs the admin permission"), kind="forbidden")
    return user


ReformDep = Annotated[User, Depends(reform_user)]
AdminDep = Annotated[User, Depends(admin_user)]
