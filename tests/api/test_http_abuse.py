"""Bad input and abuse: each gets its documented status, a problem+json
body, and changes nothing; and the order of checks on case actions
(service.md section 3: token 401, body 422, case visible 404, idempotency
replay, If-Match 412, step and outcome exist 422, role 403, state 409),
each boundary tested pairwise."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.requests import Request

from api import web
from api.deps import declared_length
from api.problems import problem
from api.routes.cases import _idempotency, _Rendered
from api.schemas import ActionCreate
from api.web.render import PageRoute
from engine.db import IdempotencyRow
from engine.rows import key_lock
from tests.api.conftest import (
    UPLOAD_LIMIT,
    XUAT_NGU,
    Api,
    Headers,
    assert_no_case_data,
    assert_problem,
    definition_body,
    xuat_ngu_data,
)

YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(c)}: &{chr(c)} [{', '.join(['*' + chr(c - 1)] * 9)}]\n" for c in range(ord("b"), ord("j"))
)
"""a billion laughs: nine levels of nine aliases each"""


def post_action(api: Api, case_id: int | str, body: Any, headers: Headers, **more: str) -> Any:
    if isinstance(body, (bytes, str)):
        return api.client.post(f"/api/cases/{case_id}/actions", content=body, headers={**JSON, **headers, **more})
    return api.client.post(f"/api/cases/{case_id}/actions", json=body, headers={**headers, **more})


# -- procedure uploads ------------------------------------------------------------------
def test_uploads_over_the_limit_are_413(api: Api) -> None:
    before = api.snapshot()
    big = ("# " + "x" * 100 + "\n") * (UPLOAD_LIMIT // 100)
    assert len(big) > UPLOAD_LIMIT
    body = definition_body("che-do-xuat-ngu.v1") + big
    assert_problem(
        api.client.post("/api/procedures", content=body.encode(), headers={**api.reformer(), **YAML}), 413, "too-large"
    )

    streamed = api.client.post("/api/procedures", content=_chunks(body.encode()), headers={**api.reformer(), **YAML})
    assert_problem(streamed, 413, "too-large")
    assert api.snapshot() == before


def _chunks(data: bytes) -> Iterator[bytes]:
    """``data`` sent chunked, without a Content-Length."""
    for i in range(0, len(data), 4096):
        yield data[i : i + 4096]


def test_any_body_over_the_service_limit_is_413_and_stores_nothing(api: Api, world: dict[str, Any]) -> None:
    # A case's data had no bound but the machine's memory: a 20 MB name was
    # stored. Every body is bounded (declared or counted as it arrives), on
    # the fast path and FastAPI's alike, and the refusal is a problem.
    an, officer, case_id = world["applicant"], world["officer"], world["case"]["id"]
    limit = api.services.settings.max_body_bytes
    before = api.snapshot()
    huge = json.dumps({"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data(ho_ten="A" * limit)}).encode()
    for body in (huge, _chunks(huge)):
        assert_problem(api.client.post("/api/cases", content=body, headers={**an, **JSON}), 413, "too-large")
    action = json.dumps({**STEP, "missing": ["x"] * (limit // 4)}).encode()
    for headers in ({**officer, **JSON}, {**officer, **JSON, "If-Match": '"2"', "Idempotency-Key": "k"}):
        assert_problem(api.client.post(f"/api/cases/{case_id}/actions", content=action, headers=headers), 413, "too-large")
    assert api.snapshot() == before
    fits = xuat_ngu_data(ho_ten="A" * (limit - 2000))
    assert api.client.post("/api/cases", json={"procedure": XUAT_NGU, "unit": "u1", "data": fits}, headers=an).status_code == 201


def test_yaml_bombs_malformed_yaml_and_invalid_definitions_are_422(api: Api) -> None:
    reform = {**api.reformer(), **YAML}
    before = api.snapshot()
    bomb = api.client.post("/api/procedures", content=LAUGHS.encode(), headers=reform)
    assert len(LAUGHS) < 1000
    body = assert_problem(bomb, 422)
    assert body["errors"] and all(set(e) >= {"line", "path", "message"} for e in body["errors"])

    for text in ("code: [unclosed\n", "a: 1\n  b: 2\n\t- x\n", "format: tinhgon/1\ncode: X\ncode: Y\n", "- just\n- a list\n", ""):
        assert_problem(api.client.post("/api/procedures", content=text.encode(), headers=reform), 422)
    assert_problem(api.client.post("/api/procedures", content=b"\xff\xfe\x00bad", headers=reform), 422)

    broken = definition_body("che-do-xuat-ngu.v1").replace("{return: lap_danh_sach", "{return: khong_co_buoc_nay", 1)
    assert broken != definition_body("che-do-xuat-ngu.v1")
    invalid = assert_problem(
        api.client.post("/api/procedures", content=broken.encode(), headers=reform), 422, "invalid-definition"
    )
    assert invalid["errors"]
    for error in invalid["errors"]:
        assert isinstance(error["line"], int) and isinstance(error["path"], str) and error["message"]
    assert any("khong_co_buoc_nay" in e["message"] and e["line"] > 1 for e in invalid["errors"])
    assert api.snapshot() == before


def test_unknown_content_types_are_415(api: Api) -> None:
    before = api.snapshot()
    body = definition_body("che-do-xuat-ngu.v1").encode()
    for content_type in (
        "text/plain",
        "application/json",
        "multipart/form-data; boundary=x",
        "application/yaml-ish",
        "application/yaml; charset=latin-1",  # read as UTF-8 all the same: say so instead
        'text/yaml; charset="UTF-16"',
        "application/yaml; charset=",
    ):
        response = api.client.post("/api/procedures", content=body, headers={**api.reformer(), "Content-Type": content_type})
        assert_problem(response, 415, "unsupported-media-type")
    assert_problem(api.client.post("/api/procedures", content=body, headers=api.reformer()), 415)
    assert api.snapshot() == before
    # the YAML media types are all taken, parameters too
    ok = api.client.post("/api/procedures", content=body, headers={**api.reformer(), "Content-Type": "text/yaml; charset=utf-8"})
    assert ok.status_code == 201, ok.text
    again = body.replace(b"\nversion: 1\n", b"\nversion: 9\n")
    quoted = {**api.reformer(), "Content-Type": 'Application/YAML; Charset="UTF-8"; x=1'}
    assert api.client.post("/api/procedures", content=again, headers=quoted).status_code == 201


def test_existing_code_and_version_is_409(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    before = api.snapshot()
    body = definition_body("che-do-xuat-ngu.v1").encode()
    assert_problem(api.client.post("/api/procedures", content=body, headers={**api.reformer(), **YAML}), 409)
    assert api.snapshot() == before


def test_ids_that_do_not_exist_are_404(api: Api, world: dict[str, Any]) -> None:
    user, admin = world["applicant"], api.admin()
    reform = api.reformer()
    before = api.snapshot()
    for headers in (user, admin):
        for url in ("/api/cases/999999", "/api/cases/999999/events"):
            assert_problem(api.client.get(url, headers=headers), 404, "not-found")
        assert_problem(post_action(api, 999999, {"step": "nop_ban_khai", "outcome": "done"}, headers), 404, "not-found")
        assert_problem(api.client.post("/api/cases/999999/withdraw", headers=headers), 404, "not-found")
    for url in (
        "/api/procedures/NO-SUCH/1",
        f"/api/procedures/{XUAT_NGU}/7",
        f"/api/procedures/{XUAT_NGU}/7/analysis",
        f"/api/procedures/{XUAT_NGU}/7/diagram.svg",
        f"/api/procedures/{XUAT_NGU}/compare/1/7",
        f"/api/procedures/{XUAT_NGU}/compare/7/1/diagram.svg",
        "/api/procedures/NO-SUCH/compare/1/2",
    ):
        assert_problem(api.client.get(url, headers=user), 404, "not-found")
    for url in (
        f"/api/procedures/{XUAT_NGU}/7/simplify",
        f"/api/procedures/{XUAT_NGU}/7/publish",
        "/api/procedures/NO/1/publish",
    ):
        assert_problem(api.client.post(url, headers=reform), 404, "not-found")
    assert_problem(api.client.get("/api/no-such-thing", headers=user), 404)
    assert api.snapshot() == before


def test_malformed_json_and_invalid_bodies_are_422(api: Api, world: dict[str, Any]) -> None:
    case_id, an, officer = world["case"]["id"], world["applicant"], world["officer"]
    before = api.snapshot()
    for raw in (b"{", b"not json", b'{"step": "lap_danh_sach", "outcome": }', b"\xff\xfe", b"[]", b'"text"', b"null"):
        assert_problem(post_action(api, case_id, raw, officer), 422)
        assert_problem(api.client.post("/api/cases", content=raw, headers={**an, **JSON}), 422)
    for body in (
        {},
        {"step": "lap_danh_sach"},
        {"step": "", "outcome": "done"},
        {"step": "lap_danh_sach", "outcome": "done", "extra": 1},
        {"step": 1, "outcome": "done"},
        {"step": "lap_danh_sach", "outcome": "done", "missing": "cccd"},
        {"step": "lap_danh_sach", "outcome": "done", "data": []},
        {"step": "x" * 101, "outcome": "done"},
    ):
        assert_problem(post_action(api, case_id, body, officer), 422, "invalid-request")
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", json={"comment": 3}, headers=an), 422)
    assert_problem(api.client.get("/api/cases/abc", headers=an), 422)
    for query in ("limit=0", "limit=100000", "cursor=abc", "status=nope", "overdue=perhaps"):
        assert_problem(api.client.get(f"/api/cases?{query}", headers=an), 422)
    for query in ("limit=0", "cursor=abc", "cursor=" + "A" * 300):
        assert_problem(api.client.get(f"/api/inbox?{query}", headers=an), 422)
    # case creation: data that breaks the fields, an unknown or unpublished procedure
    bad = api.client.post(
        "/api/cases",
        json={"procedure": XUAT_NGU, "unit": "u1", "data": {**xuat_ngu_data(), "so_thang_phuc_vu": "nhiều"}},
        headers=an,
    )
    errors = assert_problem(bad, 422, "invalid-data")["errors"]
    assert errors and all(set(e) == {"field", "message"} for e in errors) and errors[0]["field"] == "so_thang_phuc_vu"
    assert_problem(api.client.post("/api/cases", json={"procedure": "NO-SUCH", "unit": "u1", "data": {}}, headers=an), 422)
    # amending data on an applicant step that breaks the fields is refused whole
    assert api.snapshot() == before


def test_unknown_steps_and_outcomes_are_422(api: Api, world: dict[str, Any]) -> None:
    case_id, officer = world["case"]["id"], world["officer"]
    before = api.snapshot()
    body = assert_problem(post_action(api, case_id, {"step": "khong_co", "outcome": "done"}, officer), 422, "invalid-action")
    assert_no_case_data(body)
    assert_problem(post_action(api, case_id, {"step": "lap_danh_sach", "outcome": "khong_co"}, officer), 422, "invalid-action")
    missing = {"step": "lap_danh_sach", "outcome": "done", "missing": ["giay_khong_co"]}
    assert_problem(post_action(api, case_id, missing, officer), 422, "invalid-action")
    data_on_office = {"step": "lap_danh_sach", "outcome": "done", "data": {"noi_cu_tru": "Huế"}}
    assert_problem(post_action(api, case_id, data_on_office, officer), 422, "invalid-action")
    assert api.snapshot() == before


def test_actions_on_closed_cases_are_409(api: Api, world: dict[str, Any]) -> None:
    case_id, an, officer = world["case"]["id"], world["applicant"], world["officer"]
    assert api.client.post(f"/api/cases/{case_id}/withdraw", headers=an).status_code == 200
    before = api.snapshot()
    body = assert_problem(post_action(api, case_id, {"step": "lap_danh_sach", "outcome": "done"}, officer), 409, "case-closed")
    assert_no_case_data(body)
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", headers=an), 409, "case-closed")
    assert api.snapshot() == before


def test_a_step_that_is_not_active_is_409(api: Api, world: dict[str, Any]) -> None:
    case_id = world["case"]["id"]
    before = api.snapshot()
    assert_problem(
        post_action(api, case_id, {"step": "nop_ban_khai", "outcome": "done"}, world["applicant"]), 409, "step-not-active"
    )
    tieu_doan = world["colleague"]
    assert_problem(post_action(api, case_id, {"step": "xet_tieu_doan", "outcome": "dong_y"}, tieu_doan), 409, "step-not-active")
    assert api.snapshot() == before


def test_amended_data_that_breaks_the_fields_is_422(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    before = api.snapshot()
    bad = {"step": "nop_ban_khai", "outcome": "done", "data": {"nhom_cap_bac": "dai_tuong"}}
    errors = assert_problem(post_action(api, case["id"], bad, an), 422, "invalid-data")["errors"]
    assert [e["field"] for e in errors] == ["nhom_cap_bac"]
    assert api.snapshot() == before


# -- the order of checks on case actions ----------------------------------------------------
STEP = {"step": "lap_danh_sach", "outcome": "done"}


def test_order_token_before_body(api: Api, world: dict[str, Any]) -> None:
    case_id = world["case"]["id"]
    with_bad_token = {"Authorization": "Bearer tg_not-a-token"}
    for headers in ({}, with_bad_token, {"Authorization": "Basic abc"}):
        for body in (b"{", {"step": ""}, {}):
            assert_problem(post_action(api, case_id, body, headers), 401, "unauthorized")
            assert_problem(post_action(api, 999999, body, headers), 401, "unauthorized")
        assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", content=b"{", headers={**JSON, **headers}), 401)
        assert_problem(api.client.post("/api/cases", content=b"{", headers={**JSON, **headers}), 401)
        assert_problem(api.client.post("/api/procedures", content=LAUGHS.encode(), headers={**YAML, **headers}), 401)
        assert_problem(api.client.get("/api/cases?limit=0", headers=headers), 401)


def test_order_body_before_visibility(api: Api, world: dict[str, Any]) -> None:
    case_id, stranger = world["case"]["id"], world["stranger"]
    with_key_and_match = {"Idempotency-Key": "k", "If-Match": '"1"'}
    for body in (b"{", {"step": ""}, {"step": "lap_danh_sach", "outcome": "done", "extra": True}):
        assert_problem(post_action(api, case_id, body, stranger, **with_key_and_match), 422, "invalid-request")
        assert_problem(post_action(api, 999999, body, stranger), 422, "invalid-request")
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", json={"comment": 1}, headers=stranger), 422)


def test_order_visibility_before_idempotency_and_if_match(api: Api, world: dict[str, Any]) -> None:
    case_id, officer, stranger = world["case"]["id"], world["officer"], world["stranger"]
    # the stranger used a key on a case of their own unit; reused on this case it is still 404 first
    api.publish("bao-cao-quan-so.v1")
    own = api.start(stranger, "QP-NB-QS-01", {"don_vi": "E2", "thang": 1, "nam": 2027, "co_bien_dong_lon": False}, unit="u2")
    first = post_action(
        api, own["id"], {"step": "lap_bao_cao_dai_doi", "outcome": "done"}, stranger, **{"Idempotency-Key": "s-1"}
    )
    assert first.status_code == 200, first.text
    before = api.snapshot()
    for more in ({"Idempotency-Key": "s-1"}, {"If-Match": '"1"'}, {"Idempotency-Key": "s-1", "If-Match": '"9"'}):
        body = assert_problem(post_action(api, case_id, STEP, stranger, **more), 404, "not-found")
        assert_no_case_data(body)
        assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", headers={**stranger, **more}), 404)
    # an official's key replayed on a case they no longer see... is 404 too: visibility is checked first
    assert_problem(post_action(api, 999999, STEP, officer, **{"Idempotency-Key": "s-1"}), 404)
    assert api.snapshot() == before


def test_order_idempotency_before_if_match(api: Api, world: dict[str, Any]) -> None:
    case_id, officer = world["case"]["id"], world["officer"]
    first = post_action(api, case_id, STEP, officer, **{"Idempotency-Key": "o-1", "If-Match": '"2"'})
    assert first.status_code == 200
    before = api.snapshot()
    replay = post_action(api, case_id, STEP, officer, **{"Idempotency-Key": "o-1", "If-Match": '"2"'})  # stale by now
    assert replay.status_code == 200 and replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
    other = {"step": "lap_danh_sach", "outcome": "done", "comment": "khác"}
    assert_problem(
        post_action(api, case_id, other, officer, **{"Idempotency-Key": "o-1", "If-Match": '"1"'}), 422, "idempotency-mismatch"
    )
    assert api.snapshot() == before


def test_order_if_match_before_step_and_outcome(api: Api, world: dict[str, Any]) -> None:
    case_id, officer, colleague = world["case"]["id"], world["officer"], world["colleague"]
    before = api.snapshot()
    for who in (officer, colleague):
        for body in ({"step": "khong_co", "outcome": "done"}, {"step": "lap_danh_sach", "outcome": "khong_co"}, STEP):
            body_ = assert_problem(post_action(api, case_id, body, who, **{"If-Match": '"1"'}), 412, "stale")
            assert_no_case_data(body_)
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", headers={**colleague, "If-Match": '"1"'}), 412)
    assert api.snapshot() == before


def test_order_step_and_outcome_before_role(api: Api, world: dict[str, Any]) -> None:
    case_id, colleague, admin = world["case"]["id"], world["colleague"], api.admin()
    before = api.snapshot()
    for who in (colleague, admin):
        assert_problem(post_action(api, case_id, {"step": "khong_co", "outcome": "done"}, who), 422, "invalid-action")
        assert_problem(post_action(api, case_id, {"step": "lap_danh_sach", "outcome": "khong_co"}, who), 422, "invalid-action")
        assert_problem(post_action(api, case_id, STEP, who), 403, "forbidden")
    assert api.snapshot() == before


def test_order_role_before_state(api: Api, world: dict[str, Any]) -> None:
    case_id, an, colleague = world["case"]["id"], world["applicant"], world["colleague"]
    before = api.snapshot()
    # a step that is not active, by someone without its role: 403, not 409
    assert_problem(post_action(api, case_id, {"step": "tham_dinh", "outcome": "dat"}, colleague), 403, "forbidden")
    assert_problem(post_action(api, case_id, {"step": "nop_ban_khai", "outcome": "done"}, colleague), 403, "forbidden")
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", headers=colleague), 403, "forbidden")
    assert api.snapshot() == before
    assert api.client.post(f"/api/cases/{case_id}/withdraw", headers=an).status_code == 200
    closed = api.snapshot()
    assert_problem(post_action(api, case_id, STEP, colleague), 403, "forbidden")  # closed case, no role
    assert_problem(post_action(api, case_id, STEP, world["officer"]), 409, "case-closed")  # closed case, the role
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", headers=colleague), 403)
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", headers=an), 409, "case-closed")
    assert api.snapshot() == closed


def test_forged_and_out_of_range_cursors_and_ids(api: Api, world: dict[str, Any]) -> None:
    an = world["applicant"]
    for value in (["2027-03-01T08:00:00", 1, 0], ["2027-03-01T08:00:00+00:00", 2**40, 0], ["x", 1, 0], [1, 2, 3], {"a": 1}):
        forged = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
        assert_problem(api.client.get(f"/api/inbox?cursor={forged}", headers=an), 422, "invalid-request")
    for far in ("9" * 18 + "." + "9" * 10 + ".99999", "0.0.0"):  # of the cursor's form: a place in the list, however far
        assert api.client.get(f"/api/inbox?cursor={far}", headers=an).status_code == 200
    beyond = api.client.get("/api/cases?cursor=9999999999", headers=an)
    assert beyond.status_code == 200 and [c["id"] for c in beyond.json()["items"]] == [world["case"]["id"]]
    for case_id in ("0", "-1", str(2**31), str(2**63), "1e3"):
        assert_problem(api.client.get(f"/api/cases/{case_id}", headers=an), 422, "invalid-request")
        assert_problem(post_action(api, case_id, {"step": "a", "outcome": "b"}, an), 422, "invalid-request")
    for if_match in ('"²"'.encode("latin-1"), b"W/", b'""', b'"1"'):  # a superscript two is a digit to str.isdigit, not to int
        response = api.client.post(
            f"/api/cases/{world['case']['id']}/actions", json=STEP, headers={**world["officer"], "If-Match": if_match}
        )
        assert_problem(response, 412, "stale")


def test_nul_characters_are_refused_not_a_server_error(api: Api, world: dict[str, Any]) -> None:
    """PostgreSQL keeps no NUL in text: such input is the client's mistake (422), on either database."""
    an, officer, case_id = world["applicant"], world["officer"], world["case"]["id"]
    before = api.snapshot()
    assert_problem(post_action(api, case_id, {**STEP, "comment": "a\x00b"}, officer), 422)
    assert_problem(post_action(api, case_id, {**STEP, "missing": ["\x00"]}, officer), 422)
    for body in (
        {"procedure": XUAT_NGU, "unit": "u\x001", "data": xuat_ngu_data()},
        {"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data(ho_ten="An\x00")},
        {"procedure": XUAT_NGU, "unit": "u1", "data": {**xuat_ngu_data(), "\x00": 1}},
        {"procedure": "X\x00", "unit": "u1", "data": {}},
        {"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data(), "applicant": "a\x00"},
    ):
        assert_problem(api.client.post("/api/cases", json=body, headers=an), 422)
    assert_problem(api.client.get("/api/cases?procedure=%00", headers=an), 422)
    assert_problem(api.client.get("/api/procedures/%00/1", headers=an), 422)
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", json={"comment": "\x00"}, headers=an), 422)
    assert api.snapshot() == before
    assert_problem(post_action(api, case_id, b"[" * 50_000 + b"]" * 50_000, officer), 422)
    assert_problem(post_action(api, case_id, STEP, officer, **{"Idempotency-Key": "a\x01b"}), 422)


def test_lone_surrogates_anywhere_in_a_body_are_422_not_a_server_error(api: Api, world: dict[str, Any]) -> None:
    # JSON may escape half of a surrogate pair ("\ud800"), which Python reads
    # as a str no database can store (no UTF-8): refused wherever it is, and
    # the problem that quotes it is still written.
    an, case_id = world["applicant"], world["case"]["id"]
    data = json.dumps(xuat_ngu_data())
    before = api.snapshot()
    head = f'{{"procedure": "{XUAT_NGU}", '
    starts = [
        head + '"unit": "u1", "data": ' + data.replace('"ho_ten": "', '"ho_ten": "\\ud800') + "}",
        head + '"unit": "u1", "data": ' + data.replace('"ho_ten"', '"\\udc00"') + "}",
        head + '"unit": "u\\udfff", "data": ' + data + "}",
    ]
    for body in starts:
        assert_problem(api.client.post("/api/cases", content=body.encode(), headers={**an, **JSON}), 422)
    for body in (
        '{"step": "lap_danh_sach", "outcome": "done", "comment": "a\\ud800"}',
        '{"step": "lap_danh_sach", "outcome": "done", "missing": ["\\udc00"]}',
        '{"step": "lap_danh_sach", "outcome": "done", "data": {"\\ud800": 1}}',
        '{"step": "\\ud800", "outcome": "done"}',
    ):
        assert_problem(post_action(api, case_id, body, world["officer"]), 422)
    assert_problem(
        api.client.post(f"/api/cases/{case_id}/withdraw", content=b'{"comment": "\\ud800"}', headers={**an, **JSON}), 422
    )
    assert api.snapshot() == before


def test_a_key_whose_first_request_is_in_flight_is_409_until_its_lease_ends(api: Api, world: dict[str, Any]) -> None:
    case_id, officer = world["case"]["id"], world["officer"]
    url_body = {"step": "lap_danh_sach", "outcome": "done"}
    digest = _request_hash(api, case_id, url_body)
    with api.services.store.unit() as uow:  # the claim a worker takes before it applies the action
        uow.session.add(IdempotencyRow(user_id="cb_dai_doi_u1", key="busy", request_hash=digest, created_at=api.clock()))
    before = api.snapshot()
    assert_problem(post_action(api, case_id, url_body, officer, **{"Idempotency-Key": "busy"}), 409, "idempotency-in-flight")
    other = {**url_body, "comment": "khác"}
    assert_problem(post_action(api, case_id, other, officer, **{"Idempotency-Key": "busy"}), 422, "idempotency-mismatch")
    assert api.snapshot() == before
    # a claim older than the lease belongs to a worker that died before committing: it is taken over
    api.clock.advance(seconds=api.services.settings.idempotency_lease_seconds + 1)
    taken = post_action(api, case_id, url_body, officer, **{"Idempotency-Key": "busy"})
    assert taken.status_code == 200, taken.text
    replay = post_action(api, case_id, url_body, officer, **{"Idempotency-Key": "busy"})
    assert replay.status_code == 200 and replay.json() == taken.json()


def test_a_key_held_by_a_running_transaction_is_409_and_a_refusal_frees_it(api: Api, world: dict[str, Any]) -> None:
    """The claim of a key lives in its action's transaction: while that runs,
    a repeat is in flight (PostgreSQL: the advisory lock the claimer holds;
    SQLite lets one writer in at a time, so a repeat only ever waits); when
    the action is refused, its claim is rolled back with it."""
    case_id, officer = world["case"]["id"], world["officer"]
    url_body = {"step": "lap_danh_sach", "outcome": "done"}
    store = api.services.store
    if store.dialect == "postgresql":
        before = api.snapshot()
        with store.engine.connect() as running:  # what the first request's transaction holds
            running.execute(select(func.pg_advisory_xact_lock(key_lock("cb_dai_doi_u1", "held"))))
            answer = post_action(api, case_id, url_body, officer, **{"Idempotency-Key": "held"})
            assert_problem(answer, 409, "idempotency-in-flight")
            assert api.snapshot() == before
            running.rollback()
    refused = post_action(api, case_id, {**url_body, "outcome": "no-such"}, officer, **{"Idempotency-Key": "once"})
    assert_problem(refused, 422)
    with store.unit(write=False) as uow:
        assert uow.session.scalars(select(IdempotencyRow.key)).all() == []
    assert post_action(api, case_id, url_body, officer, **{"Idempotency-Key": "held"}).status_code == 200


def _request_hash(api: Api, case_id: int, body: dict[str, Any]) -> str:
    """The digest the service keeps for an action request (as the route computes it)."""
    idem = _idempotency("busy", f"actions/{case_id}", ActionCreate(**body).model_dump(mode="json"), _Rendered())
    assert idem is not None
    return idem.request_hash


HOSTILE = ("0", "-1", str(2**31), str(2**63), "99999999999999999999", "1e3", "%00", "x%00y", "%ff%fe", "a" * 300, "..%2F..")
"""What a forged address may put in a page's path: beyond every integer
column, NUL (which PostgreSQL keeps in no text), bytes that are no UTF-8."""


BROWSER = {"Accept": "text/html,application/xhtml+xml"}


def test_no_page_answers_a_hostile_address_with_a_server_error(api: Api, world: dict[str, Any]) -> None:
    # Every web page route, each of its path parameters in turn given each
    # hostile value (the others a plausible one), by a user who may see
    # every page: a page in Vietnamese with a 4xx status, never a 500.

    admin = api.user("quan_tri", unit="bo", permissions=["admin", "reform"])
    api.browse_as(admin)
    plausible = {"code": XUAT_NGU, "version": "1", "a": "1", "b": "1", "case_id": str(world["case"]["id"])}
    before = api.snapshot()
    tried = 0
    try:
        for route in (*web.cases.router.routes, *web.procedures.router.routes):
            assert isinstance(route, PageRoute)
            if not route.param_convertors:
                continue
            for method in sorted(route.methods):
                for name in route.param_convertors:
                    for value in HOSTILE:
                        path = route.path_format.format(**{**plausible, name: value})
                        response = api.client.request(method, path, headers=BROWSER)
                        tried += 1
                        assert 400 <= response.status_code < 500, (method, path, response.status_code)
                        assert response.headers["content-type"].startswith("text/html"), (method, path)
        for query in ("/ho-so?sau=", "/hop-thu?sau="):
            for value in HOSTILE:
                response = api.client.get(query + value, headers=BROWSER)
                assert response.status_code in (200, 404), (query + value, response.status_code)
    finally:
        api.client.cookies.clear()
    assert tried > 100
    assert api.snapshot() == before


@pytest.mark.parametrize(("sent", "read"), [(b"12", 12), (b"0", 0), ("²".encode("latin-1"), None), (b"-1", None), (b" 1", None)])
def test_only_a_plain_number_is_a_declared_body_size(sent: bytes, read: int | None) -> None:
    # A header is latin-1: "²" passes str.isdigit and breaks int(). A size
    # that is no plain number is left to the count of what arrives.
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", sent)]}
    assert declared_length(Request(scope)) == read


def test_a_problem_quoting_a_lone_surrogate_is_still_written_as_json() -> None:
    response = problem(422, "no step '\ud800x'", kind="invalid-action", step="\udc00")
    assert json.loads(response.body) == {
        "type": "https://tinhgon.vn/problems/invalid-action",
        "title": "Nội dung không xử lý được",
        "status": 422,
        "detail": "no step '\ud800x'",
        "step": "\udc00",
    }
    assert response.headers["content-type"] == "application/problem+json"


ANY_TEXT = st.lists(st.one_of(st.characters(), st.characters(categories=["Cs"]), st.just("\x00")), max_size=20).map("".join)
"""Text of every code point, lone surrogates and NUL included (Hypothesis's
``text()`` leaves surrogates out even from an alphabet that has them, and so
did the schema-driven tests)."""


def test_no_text_anywhere_in_a_case_is_a_server_error(api: Api, world: dict[str, Any]) -> None:
    # Whatever text a client puts in case data (values or names), a comment,
    # the missing documents or the unit: an answer of its own, never a 500,
    # and what was accepted reads back as sent.
    an, officer = world["applicant"], world["officer"]

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=list(HealthCheck),
    )
    @given(value=ANY_TEXT, name=ANY_TEXT, comment=ANY_TEXT, missing=st.lists(ANY_TEXT, max_size=2), unit=ANY_TEXT)
    def explore(value: str, name: str, comment: str, missing: list[str], unit: str) -> None:
        data = {**xuat_ngu_data(ho_ten=value), name: 1} if name else xuat_ngu_data(ho_ten=value)
        for body in (
            {"procedure": XUAT_NGU, "unit": unit or "u1", "data": data},
            {"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data(ho_ten=value)},
        ):
            started = api.client.post("/api/cases", content=json.dumps(body).encode(), headers={**an, **JSON})
            assert started.status_code in (201, 422), started.text
            if started.status_code == 201:
                # as JSON reads it: a high and a low surrogate escaped one after the other are one character
                assert started.json()["data"]["ho_ten"] == json.loads(json.dumps(value))
        case = api.start(an, XUAT_NGU, xuat_ngu_data())
        case = api.act(an, case["id"], "nop_ban_khai", "done")
        sent = {"step": "lap_danh_sach", "outcome": "done", "comment": comment, "missing": missing}
        acted = api.client.post(
            f"/api/cases/{case['id']}/actions", content=json.dumps(sent).encode(), headers={**officer, **JSON}
        )
        assert acted.status_code in (200, 409, 422), acted.text

    explore()
