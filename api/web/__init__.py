"""The web pages: server-rendered Vietnamese HTML (Jinja2) for people,
beside the JSON API. No page loads anything from another site or runs a
script; the stylesheet is in :data:`STATIC`.

:data:`router` holds every page; :func:`api.app.create_app` includes it and
serves :data:`STATIC` at ``/static``.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import cases, procedures, signin
from .render import STATIC

router = APIRouter(include_in_schema=False)
router.include_router(signin.router)
router.include_router(procedures.router)
router.include_router(cases.router)

__all__ = ["STATIC", "router"]
