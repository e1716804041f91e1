"""Rendering pages: the Jinja2 environment (autoescape on), the filters
that write numbers, money and times the Vietnamese way, and the route class
that turns refusals into pages instead of problem documents."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import Response

from engine import errors as E
from engine.calendar import local_time
from engine.machine import COMMENT_LENGTH
from procedures.labels import metric_text, money, number, percent

from ..offload import LimitExceeded
from ..problems import BodyTooLarge
from .messages import refusal_text
from .session import PageRefused, SignInNeeded, csrf_token

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
log = logging.getLogger("tinhgon.web")


def when(value: dt.datetime | str | None) -> str:
    """An instant as local time: ``14:05 03/02/2027``; ``—`` for none."""
    if value is None or value == "":
        return "—"
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return local_time(moment).strftime("%H:%M %d/%m/%Y")


def day(value: dt.date | dt.datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return value.strftime("%d/%m/%Y")


def metric(value: Any, key: str) -> str:
    """``value|metric(key)``: a metric's value as :func:`procedures.labels.metric_text` writes it."""
    return metric_text(key, value)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    env.filters.update(number=number, metric=metric, money=money, percent=percent, when=when, day=day)
    env.globals["COMMENT_LENGTH"] = COMMENT_LENGTH
    return env


ENV = _environment()


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page ``template`` rendered for this request's user (if any)."""
    session: str | None = getattr(request.state, "session", None)

    def csrf(action: str) -> str:
        return csrf_token(session, action) if session else ""

    body = ENV.get_template(template).render(
        request=request,
        user=getattr(request.state, "user", None),
        csrf=csrf,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(body, status_code=status_code)


def error_page(request: Request, status_code: int, message: str, title: str | None = None) -> HTMLResponse:
    titles = {403: "Không có quyền", 404: "Không tìm thấy", 409: "Không thực hiện được", 413: "Quá lớn", 422: "Không hợp lệ"}
    return page(
        request,
        "error.html",
        status_code,
        title=title or titles.get(status_code, "Có lỗi"),
        message=message,
        status=status_code,
    )


class PageRoute(APIRoute):
    """A page's route: refusals become Vietnamese pages with their status
    (404 for a case one may not see, 403 without the role or a CSRF token),
    a page that needs sign-in sends the browser to the sign-in form."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            response: Response
            try:
                response = await handler(request)
            except SignInNeeded as exc:
                response = RedirectResponse(f"/dang-nhap?next={quote(exc.next_path, safe='/')}", status_code=303)
            except PageRefused as exc:
                response = error_page(request, exc.status, exc.message, exc.title)
            except (E.NotFound, E.Forbidden, E.NotPublished) as exc:
                status = 404 if isinstance(exc, E.NotFound) else 403 if isinstance(exc, E.Forbidden) else 422
                response = error_page(request, status, refusal_text(exc))
            except RequestValidationError:
                response = error_page(request, 404, "Không có trang này: địa chỉ không đúng.")
            except BodyTooLarge as exc:
                response = error_page(request, 413, f"Nội dung gửi lên quá lớn (giới hạn {exc.limit // 1024} KB).")
            except LimitExceeded as exc:
                response = error_page(request, 422, f"Vượt giới hạn của dịch vụ: {exc.message}.", "Vượt giới hạn")
            except Exception:
                error_id = uuid.uuid4().hex[:12]
                log.exception("unexpected error %s on page %s %s", error_id, request.method, request.url.path)
                response = error_page(
                    request, 500, f"Đã có lỗi ngoài dự kiến. Hãy báo cho quản trị viên mã lỗi {error_id}.", "Lỗi hệ thống"
                )
            return response

        return page_handler
