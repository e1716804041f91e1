"""Signing in with a token and out again (see :mod:`api.web.session`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.sessions import close_session, open_session
from engine.users import authenticate

from ..deps import SESSION_COOKIE, ServicesDep
from .render import PageRoute, page
from .session import CheckedForm, LoginForm, clear_session, keep_login_nonce, local_path, login_nonce, set_session

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _form(request: Request, next_path: str, error: str | None = None, status_code: int = 200) -> Response:
    nonce = login_nonce(request)
    response = page(request, "signin.html", status_code, next_path=next_path, error=error, nonce=nonce)
    keep_login_nonce(response, request, nonce)
    return response


@router.get("/dang-nhap", response_class=HTMLResponse)
def signin_form(request: Request, next: str | None = None) -> Response:
    return _form(request, local_path(next))


@router.post("/dang-nhap", response_class=HTMLResponse)
def signin(request: Request, services: ServicesDep, form: LoginForm) -> Response:
    token, next_path = form.get("token"), form.get("next")
    target = local_path(next_path if isinstance(next_path, str) else None)
    user = authenticate(services.store, token.strip()) if isinstance(token, str) else None
    if user is None or not isinstance(token, str):
        return _form(request, target, "Mã đăng nhập không đúng hoặc đã bị thu hồi.", 401)
    earlier = request.cookies.get(SESSION_COOKIE)
    if earlier:  # signing in again, perhaps as another user: the earlier session ends
        close_session(services.store, earlier)
    session_id = open_session(services.store, user.id, services.cases.clock(), services.settings.session_lifetime)
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, session_id)
    return response


@router.post("/dang-xuat", response_class=HTMLResponse)
def signout(request: Request, services: ServicesDep, form: CheckedForm) -> Response:
    close_session(services.store, request.state.session)
    response = RedirectResponse("/dang-nhap", status_code=303)
    clear_session(response)
    return response
