"""An error log never carries what a failing statement was given: no token
hash, no session hash, no name, on the direct path and the ORM's, on both
databases."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from engine import sessions, users
from engine.db import ProcedureRow
from engine.logsafe import LOGGERS, safe_traceback
from engine.users import add_user, issue_token
from tests.api.conftest import XUAT_NGU, Api, assert_problem, csrf_of, xuat_ngu_data

SECRET_NAME = "Nguyễn Thị Bí Mật"


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything the service's loggers write (uvicorn's own do not pass it up)."""
    for name in LOGGERS:
        logging.getLogger(name).addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    yield caplog
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(caplog.handler)


def test_a_failing_statement_on_the_direct_path_logs_no_values(
    api: Api, logged: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two sign-ins given the same session id: the second insert clashes on
    # the key, whose value PostgreSQL's DETAIL would quote.
    fixed = "s" * 43
    monkeypatch.setattr(sessions, "new_session_id", lambda: fixed)
    dan = api.user("dan")
    token = dan["Authorization"].removeprefix("Bearer ")
    for expected in (303, 500):
        api.client.cookies.clear()
        page = api.client.get("/dang-nhap")
        answer = api.client.post("/dang-nhap", data={"csrf": csrf_of(page.text), "token": token}, follow_redirects=False)
        assert answer.status_code == expected, answer.text
    assert "Lỗi hệ thống" in answer.text
    text = logged.text
    assert "unexpected error" in text and "Traceback" in text
    assert "UniqueViolation: SQLSTATE 23505" in text or "UNIQUE constraint failed: web_sessions.id_hash" in text, text
    for value in (hashlib.sha256(fixed.encode()).hexdigest(), fixed, token):
        assert value not in text


def test_a_failing_statement_of_the_orm_logs_no_values(
    api: Api, logged: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with api.services.store.unit() as uow:
        add_user(uow, "lan", name=SECRET_NAME, unit="u1")
        token = issue_token(uow, "lan")
    monkeypatch.setattr(users, "new_token", lambda: token)  # the same token again: its hash clashes
    digest = hashlib.sha256(token.encode()).hexdigest()
    with pytest.raises(Exception) as raised, api.services.store.unit() as uow:
        issue_token(uow, "lan")
    if api.services.store.dialect == "sqlite":  # PostgreSQL's own message quotes the key; the log leaves it out
        assert digest not in str(raised.value)  # the engine hides the parameters
    for name in LOGGERS:
        logging.getLogger(name).error("a statement failed", exc_info=raised.value)
        logging.getLogger(name).error("a statement failed: %s", raised.value)
    text = logged.text
    # each logger's record carries the whole chain (the driver's error under SQLAlchemy's)
    assert {r.name for r in logged.records if r.exc_info} == set(LOGGERS)
    assert "a statement failed\nTraceback" in text and "IntegrityError" in text and "[SQL: INSERT INTO tokens" in text
    assert digest not in text and token not in text


def test_the_safe_traceback_keeps_what_caused_what() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError("outer") from exc
    except ValueError as exc:
        text = safe_traceback(exc)
    assert text.startswith("Traceback") and "KeyError: 'inner'" in text and text.endswith("ValueError: outer")
    assert "direct cause" in text


def test_a_stored_body_that_no_longer_matches_its_hash_is_a_server_fault_and_logged(
    api: Api, logged: pytest.LogCaptureFixture
) -> None:
    api.publish("che-do-xuat-ngu.v1")
    with api.services.store.unit() as uow:  # edited behind the service's back, before any case compiled it
        uow.session.execute(update(ProcedureRow).values(body=ProcedureRow.body + "\n# sửa lén\n"))
    answer = api.client.post(
        "/api/cases", json={"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data()}, headers=api.user("an")
    )
    body = assert_problem(answer, 500, "corrupt-record")
    assert "không khớp với mã băm" in body["detail"]
    assert "corrupt record on POST /api/cases" in logged.text
