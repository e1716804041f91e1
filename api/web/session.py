"""Signing in to the pages, and CSRF tokens on their forms.

Signing in with a token opens a web session (:mod:`engine.sessions`): the
session cookie holds the session's random id, never the token, HttpOnly
(no script reads it), SameSite=Lax (no other site's form sends it), for
the session's longest life, and ``Secure`` when ``settings.secure_cookies``
says the service is behind HTTPS. Every page checks the session in the
database, so signing out, the session's idle or absolute end, or revoking
the user's tokens ends it at once, and several workers share it.

A form's CSRF token is an HMAC, keyed by that session id, of the path
the form posts to: only a page served to this session can hold it, and a
token taken from one form is worth nothing on another. The sign-in form,
which has no session yet, uses a random value set in a cookie and repeated
in the form (double submit). A POST without the right token is refused
with 403 before anything is read or changed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from engine.sessions import session_user
from engine.users import User

from ..deps import SESSION_COOKIE, ServicesDep

LOGIN_COOKIE = "tinhgon_login"
CSRF_FIELD = "csrf"


class SignInNeeded(Exception):
    """The page needs a signed-in user; the browser is sent to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageRefused(Exception):
    """A page or form refused with an HTTP status and a message in Vietnamese."""

    def __init__(self, status: int, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.title = status, message, title


CSRF_REFUSED = "Biểu mẫu không hợp lệ hoặc đã hết hạn (thiếu mã chống giả mạo). Hãy tải lại trang rồi thực hiện lại; không có gì bị thay đổi."


def csrf_token(session: str, action: str) -> str:
    """The token a form posting to ``action`` carries in the session ``session``."""
    return hmac.new(session.encode("utf-8"), b"tinhgon-csrf\x00" + action.encode("utf-8"), hashlib.sha256).hexdigest()


def set_session(response: Response, request: Request, session_id: str) -> None:
    settings = request.app.state.services.settings
    longest = int(settings.session_lifetime.absolute.total_seconds())
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=longest, httponly=True, samesite="lax", secure=bool(settings.secure_cookies), path="/"
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def login_nonce(request: Request) -> str:
    """The sign-in form's double-submit value: the browser's, or a new one."""
    value = request.cookies.get(LOGIN_COOKIE)
    return value if value and len(value) < 100 else secrets.token_urlsafe(24)


def keep_login_nonce(response: Response, request: Request, value: str) -> None:
    secure = bool(request.app.state.services.settings.secure_cookies)
    response.set_cookie(LOGIN_COOKIE, value, httponly=True, samesite="strict", secure=secure, path="/dang-nhap")


def local_path(value: str | None) -> str:
    """``value`` when it is a path of this site, else ``/`` (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or any(c < " " for c in value):
        return "/"
    return value


def page_user(request: Request, services: ServicesDep) -> User:
    """The signed-in user, from the session cookie; else (no session, or
    one that ended) the browser goes to sign in."""
    session_id = request.cookies.get(SESSION_COOKIE)
    now = services.cases.clock()
    user = session_user(services.store, session_id, now, services.settings.session_lifetime) if session_id else None
    if user is None or session_id is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(target if request.method == "GET" else "/")
    request.state.user = user
    request.state.session = session_id
    return user


PageUser = Annotated[User, Depends(page_user)]


async def _read_form(request: Request) -> FormData:
    # A body over the limit stops the reading (api.problems.BodyLimit), and
    # its page says so (api.web.render.PageRoute).
    limit = int(request.app.state.services.settings.max_body_bytes)
    return await request.form(max_files=2, max_fields=500, max_part_size=limit)


async def checked_form(request: Request, user: PageUser) -> AsyncIterator[FormData]:
    """The posted form, once its CSRF token is checked against the session and the path."""
    form = await _read_form(request)
    try:
        sent = form.get(CSRF_FIELD)
        expected = csrf_token(request.state.session, request.url.path)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
            raise PageRefused(403, CSRF_REFUSED, "Yêu cầu bị từ chối")
        yield form
    finally:
        await form.close()


async def login_form(request: Request) -> AsyncIterator[FormData]:
    """The sign-in form, once its double-submit value matches the cookie."""
    form = await _read_form(request)
    try:
        sent, kept = form.get(CSRF_FIELD), request.cookies.get(LOGIN_COOKIE)
        if not isinstance(sent, str) or not kept or not hmac.compare_digest(sent, kept):
            raise PageRefused(403, CSRF_REFUSED, "Yêu cầu bị từ chối")
        yield form
    finally:
        await form.close()


CheckedForm = Annotated[FormData, Depends(checked_form)]
LoginForm = Annotated[FormData, Depends(login_form)]
