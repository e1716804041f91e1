"""HTTP test helpers: the ASGI app on each database, and an :class:`Api`
that makes users with tokens and publishes definitions.

The app is built by :func:`api.app.create_app` with ready-made services, so
the case engine runs on the hand-moved :class:`~tests.engine.conftest.Clock`
and the upload limit can be made small; the database is the
``database_url`` fixture of tests/conftest.py (SQLite, then PostgreSQL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import SESSION_COOKIE
from api.services import Services
from api.settings import Settings
from engine.calendar import WorkingCalendar
from engine.compiled import Compiled
from engine.db import CaseRow, EventRow, IdempotencyRow, ProcedureRow
from engine.keys import Signer
from engine.publishing import publish_definition
from engine.schema import upgrade
from engine.sessions import open_session
from engine.store import Store
from engine.users import add_user, authenticate, issue_token
from tests.conftest import DEFINITIONS
from tests.engine.conftest import Clock, local
from tests.transacting import Transacting

XUAT_NGU = "QP-CS-XN-02"
QUAN_SO = "QP-NB-QS-01"
UPLOAD_LIMIT = 64 * 1024
"""small, so that a test can pass it without building megabytes"""
PROBLEM = "application/problem+json"
Headers = dict[str, str]


def definition_body(name: str) -> str:
    """The text of ``definitions/NAME.yaml``."""
    return (DEFINITIONS / f"{name}.yaml").read_text(encoding="utf-8")


class Api:
    """A test client with the means to make users and procedures."""

    def __init__(self, client: TestClient, services: Services, clock: Clock) -> None:
        self.client = client
        self.services = services
        self.clock = clock
        self._tokens: dict[str, str] = {}

    # -- users ------------------------------------------------------------------
    def user(self, user_id: str, *, unit: str = "u1", roles: Iterable[str] = (), permissions: Iterable[str] = ()) -> Headers:
        """``Authorization`` headers for a user, made on first use."""
        token = self._tokens.get(user_id)
        if token is None:
            with self.services.store.unit() as uow:
                add_user(uow, user_id, name=f"Người dùng {user_id}", unit=unit, roles=roles, permissions=permissions)
                token = issue_token(uow, user_id)
            self._tokens[user_id] = token
        return {"Authorization": f"Bearer {token}"}

    def browse_as(self, headers: Headers) -> str:
        """Open a web session for the holder of ``headers``' token, as signing
        in through the form does, and set its cookie in the client; returns
        the session id."""
        user = authenticate(self.services.store, headers["Authorization"].removeprefix("Bearer "))
        assert user is not None, "no such token"
        session_id = open_session(self.services.store, user.id, self.clock(), self.services.settings.session_lifetime)
        self.client.cookies.set(SESSION_COOKIE, session_id)
        return session_id

    def official(self, role: str, unit: str = "u1") -> Headers:
        """A user holding ``role`` alone, in ``unit``."""
        return self.user(f"cb_{role}_{unit}", unit=unit, roles=[role])

    def reformer(self) -> Headers:
        return self.user("reformer", unit="cai_cach", permissions=["reform"])

    def admin(self) -> Headers:
        return self.user("admin", unit="bo", permissions=["admin"])

    # -- procedures and cases -------------------------------------------------------
    def publish(self, *names: str) -> None:
        """Publish ``definitions/NAME.yaml`` for each name."""
        for name in names:
            publish_definition(self.services.store, definition_body(name), source=name)

    def start(self, headers: Headers, code: str, data: dict[str, Any], *, unit: str = "u1") -> dict[str, Any]:
        response = self.client.post("/api/cases", json={"procedure": code, "unit": unit, "data": data}, headers=headers)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def act(self, headers: Headers, case_id: int, step: str, outcome: str, *, expect: int = 200, **extra: Any) -> dict[str, Any]:
        response = self.client.post(
            f"/api/cases/{case_id}/actions", json={"step": step, "outcome": outcome, **extra}, headers=headers
        )
        assert response.status_code == expect, response.text
        body: dict[str, Any] = response.json()
        return body

    def case(self, headers: Headers, case_id: int) -> dict[str, Any]:
        response = self.client.get(f"/api/cases/{case_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def events(self, headers: Headers, case_id: int) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/cases/{case_id}/events", headers=headers)
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body

    # -- what the database holds ----------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything a request could change: cases (with steps), events,
        procedures and idempotency keys, as plain data."""
        with self.services.store.unit(write=False) as uow:
            s = uow.session
            cases = [
                (
                    c.id,
                    c.status,
                    c.version,
                    c.data,
                    c.event_count,
                    c.head_hash,
                    sorted((st.position, st.status, st.outcome) for st in c.steps),
                )
                for c in s.query(CaseRow).order_by(CaseRow.id)
            ]
            events = [(e.case_id, e.seq, e.hash) for e in s.query(EventRow).order_by(EventRow.id)]
            procedures = [(p.code, p.version, p.status) for p in s.query(ProcedureRow).order_by(ProcedureRow.id)]
            keys = sorted((k.user_id, k.key, k.request_hash) for k in s.query(IdempotencyRow))
        return {"cases": cases, "events": events, "procedures": procedures, "idempotency": keys}


def csrf_of(html: str, action: str | None = None) -> str:
    """The CSRF token of a page's form posting to ``action`` (the first form when None)."""
    forms = re.findall(r'<form method="post" action="([^"]*)"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]*)"', html)
    for found, token in forms:
        if action is None or found == action:
            return str(token)
    raise AssertionError(f"no form posting to {action} in the page")


def xuat_ngu_data(**changes: Any) -> dict[str, Any]:
    return {
        "ho_ten": "Nguyễn Văn An",
        "nhom_cap_bac": "binh_si",
        "ngay_nhap_ngu": "2025-02-15",
        "ngay_xuat_ngu": "2027-02-15",
        "so_thang_phuc_vu": 24,
        "hoan_thanh_nghia_vu": True,
        "de_nghi_hoc_nghe": True,
        **changes,
    }


def quan_so_data(**changes: Any) -> dict[str, Any]:
    return {"don_vi": "Trung đoàn 1", "thang": 3, "nam": 2027, "co_bien_dong_lon": False, **changes}


def assert_problem(response: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem document with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and isinstance(body["detail"], str)
    assert isinstance(body["type"], str)
    if kind is not None:
        assert body["type"].endswith("/" + kind), body
    return body


def assert_no_case_data(body: dict[str, Any]) -> None:
    """A refusal that says nothing about the case beyond its id."""
    for key in ("steps", "data", "applicant", "unit", "procedure", "events", "items", "version"):
        assert key not in body, body


@pytest.fixture
def clock() -> Clock:
    return Clock(local(2027, 3, 1, 8, 0))  # a Monday


@pytest.fixture
def services(database_url: str, signer: Signer, clock: Clock, tmp_path: Path) -> Iterator[Services]:
    settings = Settings(database_url=database_url, key_file=tmp_path / "signing.pem", max_upload_bytes=UPLOAD_LIMIT)
    store = Store(database_url)
    upgrade(store.engine)
    calendar = WorkingCalendar()
    compiled = Compiled()
    cases = Transacting(store, signer=signer, calendar=calendar, clock=clock, compiled=compiled)
    services = Services(settings, store, signer, calendar, cases, compiled)
    yield services
    services.close()


@pytest.fixture
def app(services: Services) -> FastAPI:
    return create_app(services.settings, services=services)


@pytest.fixture
def api(app: FastAPI, services: Services, clock: Clock) -> Iterator[Api]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, services, clock)


@pytest.fixture
def world(api: Api) -> dict[str, Any]:
    """A published procedure, a case in unit u1 at its second step, and the people around it."""
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an", unit="u1")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    case = api.act(an, case["id"], "nop_ban_khai", "done")  # lap_danh_sach (dai_doi) is active, version 2
    return {
        "case": case,
        "applicant": an,
        "officer": api.official("dai_doi"),  # may act on lap_danh_sach
        "colleague": api.official("tieu_doan"),  # sees the case, lacks the step's role
        "stranger": api.official("dai_doi", unit="u2"),  # the right role in another unit
    }
