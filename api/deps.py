"""Dependencies of the routes: the services, the signed-in user, permissions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from engine.machine import Actor
from engine.users import User, authenticate

from .problems import ApiProblem
from .services import Services

SESSION_COOKIE = "tinhgon_session"


def get_services(request: Request) -> Services:
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


def current_user(request: Request, services: ServicesDep) -> User:
    """The caller, from ``Authorization: Bearer``; 401 without a valid token."""
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


def actor(user: UserDep) -> Actor:
    return user.actor


ActorDep = Annotated[Actor, Depends(actor)]


def reform_user(user: UserDep) -> User:
    if "reform" not in user.permissions:
        raise ApiProblem(403, "changing procedures needs the reform permission", kind="forbidden")
    return user


def admin_user(user: UserDep) -> User:
    if "admin" not in user.permissions:
        raise ApiProblem(403, "this needs the admin permission", kind="forbidden")
    return user


ReformDep = Annotated[User, Depends(reform_user)]
AdminDep = Annotated[User, Depends(admin_user)]
