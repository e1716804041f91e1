"""Codes that differ only in case are one code, on SQLite and PostgreSQL:
the store refuses a second spelling, finds a code however it is spelled,
and the migration keeps and reports what was stored before the rule."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from engine.cases import CaseService
from engine.errors import Conflict
from engine.publishing import publish_definition
from engine.schema import _config, upgrade
from engine.store import Store
from tests.conftest import definition_text
from tests.engine.conftest import applicant, local
from tests.engine.test_machine import SMALL

NOW = local(2027, 1, 4, 8, 0)


def body(code: str, version: int = 1) -> str:
    return definition_text(SMALL).replace("code: T-1", f"code: {code}").replace("version: 1", f"version: {version}")


def test_a_second_spelling_of_a_stored_code_is_a_conflict_naming_the_first(store: Store) -> None:
    publish_definition(store, body("XSS-2"), now=NOW)
    for spelling, version in (("xss-2", 1), ("Xss-2", 2)):
        with pytest.raises(Conflict, match="XSS-2"):
            publish_definition(store, body(spelling, version), now=NOW)
    publish_definition(store, body("XSS-2", 2), now=NOW)  # the same spelling goes on
    with store.unit(write=False) as uow:
        assert [(r.code, r.version) for r in uow.procedures()] == [("XSS-2", 1), ("XSS-2", 2)]


def test_a_code_is_found_in_any_case(store: Store, service: CaseService) -> None:
    publish_definition(store, body("XSS-2"), now=NOW)
    with store.unit(write=False) as uow:
        assert uow.procedure("xss-2", 1).code == "XSS-2"
        assert [r.version for r in uow.versions("xSs-2")] == [1]
    case = service.start(applicant("dan"), code="xss-2", unit="u1", data={"kind": "a"})
    assert case.code == "XSS-2"
    views, _ = service.list_cases(applicant("dan"), code="Xss-2")
    assert [v.id for v in views] == [case.id]


def test_the_upgrade_keeps_and_reports_codes_stored_before_the_rule(database_url: str) -> None:
    """Colliding spellings cannot all have the plain key under a unique
    index: the first keeps it, later ones their exact spelling; none is
    dropped, every one is reported."""
    s = Store(database_url)
    try:
        with s.engine.begin() as connection:
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            for code in ("XSS-2", "xss-2", "XSS-2 ", "ＸＳＳ-2", "XSS-2\u200b"):
                connection.execute(
                    text(
                        "INSERT INTO procedures (code, version, name, status, body, content_hash, created_at)"
                        " VALUES (:c, 1, 'n', 'published', 'b', 'h', '2027-01-04 01:00:00')"
                    ),
                    {"c": code},
                )
        upgrade(s.engine)
        with s.unit(write=False) as uow:
            assert sorted(r.code for r in uow.procedures()) == sorted(["XSS-2", "xss-2", "XSS-2 ", "ＸＳＳ-2", "XSS-2\u200b"])
            assert uow.procedure("XSS-2", 1).code == "XSS-2" and uow.procedure("Xss-2", 1).code == "XSS-2"
            assert uow.procedure("xss-2", 1).code == "xss-2"  # the exact spelling reaches the row kept under it
            problems = uow.code_problems()
        assert len(problems) == 4, problems
        assert any("'xss-2'" in line and "'XSS-2'" in line for line in problems)
        for shown in ("'XSS-2 '", "'\\uff38\\uff33\\uff33-2'", "'XSS-2\\u200b'"):
            assert any(shown in line and "quy tắc" in line for line in problems), (shown, problems)
        with pytest.raises(Conflict, match="XSS-2"):
            publish_definition(s, body("Xss-2", 2), now=NOW)
    finally:
        s.dispose()
