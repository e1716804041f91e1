"""Dependencies of the routes: the services, the signed-in user, permissions."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from engine.machine import Actor
from engine.users import User, authenticate

from .problems import ApiProblem
from .services import Services

SESSION_COOKIE = "tinhgon_session"


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
        raise ApiProblem(401, "use Authorization: Bearer TOKEN", kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


async def current_user(request: Request, services: ServicesDep) -> User:
    """The caller, from ``Authorization: Bearer``; 401 without a valid token."""
    signed_in: User | None = getattr(request.state, "user", None)
    if signed_in is not None:
        return signed_in
    return await run_in_threadpool(signed_in_user, request, services)


def signed_in_user(request: Request, services: Services) -> User:
    """The caller's user, checked against the database.

    Raises:
        ApiProblem: 401, no token, or an unknown or revoked one.
    """
    token = _bearer(request)
    if token is None:
        raise ApiProblem(
            401, "sign in: send Authorization: Bearer TOKEN", kind="unauthorized", headers={"WWW-Authenticate": "Bearer"}
        )
    user = authenticate(services.store, token)
    if user is None:
        raise ApiProblem(
            401,
            "the token is unknown or revoked",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return user


UserDep = Annotated[User, Depends(current_user)]


class SignedInRoute(APIRoute):
    """A route that authenticates its caller before it reads the body.

    FastAPI decodes a JSON body before it runs any dependency, so a
    malformed body would answer 422 to a caller without a valid token;
    service.md section 3 puts the token first (401), then the body.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def signed_in_first(request: Request) -> Response:
            request.state.user = await run_in_threadpool(signed_in_user, request, request.app.state.services)
            return await handler(request)

        return signed_in_first


async def actor(user: UserDep) -> Actor:
    return user.actor


ActorDep = Annotated[Actor, Depends(actor)]


async def reform_user(user: UserDep) -> User:
    if "reform" not in user.permissions:
        raise ApiProblem(403, "changing procedures needs the reform permission", kind="forbidden")
    return user


async def admin_user(user: UserDep) -> User:
    if "admin" not in user.permissions:
        raise ApiProblem(403, "this needs the admin permission", kind="forbidden")
    return user


ReformDep = Annotated[User, Depends(reform_user)]
AdminDep = Annotated[User, Depends(admin_user)]
