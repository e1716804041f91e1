"""Values that overflow or deceive, over HTTP (SQLite and PostgreSQL): JSON
under another content type, integers past what the databases keep, cursors
and paths outside their documented form, an applicant who is no user, and
the ``Allow`` of a 405."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import XUAT_NGU, Api, assert_problem, xuat_ngu_data
from tests.conftest import DEFINITIONS

STEP = {"step": "lap_danh_sach", "outcome": "done"}


def _opened(api: Api) -> tuple[int, dict[str, str], dict[str, str]]:
    """A case at its second step: its id, its applicant and the official who acts next."""
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an", unit="u1")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    api.act(an, case["id"], "nop_ban_khai", "done")
    return case["id"], an, api.official("dai_doi")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/yaml"])
def test_json_under_another_content_type_is_415_on_every_json_endpoint(api: Api, content_type: str | None) -> None:
    case_id, an, officer = _opened(api)
    before = api.snapshot()
    headers = {"Content-Type": content_type} if content_type else {}
    start = b'{"procedure": "%s", "unit": "u1", "data": {}}' % XUAT_NGU.encode()
    for url, body, who in (
        ("/api/cases", start, an),
        (f"/api/cases/{case_id}/actions", b'{"step": "lap_danh_sach", "outcome": "done"}', officer),
        (f"/api/cases/{case_id}/withdraw", b'{"comment": "th\xc3\xb4i"}', an),
    ):
        problem = assert_problem(api.client.post(url, content=body, headers={**who, **headers}), 415, "unsupported-media-type")
        assert "application/json" in problem["detail"]
        # the token still comes first
        assert_problem(api.client.post(url, content=body, headers=headers), 401)
    assert api.snapshot() == before
    # JSON's own types pass, and a withdrawal without a body needs no type
    assert (
        api.client.post(
            f"/api/cases/{case_id}/actions",
            content=b'{"step": "lap_danh_sach", "outcome": "done"}',
            headers={**officer, "Content-Type": "application/merge-patch+json"},
        ).status_code
        == 200
    )
    assert api.client.post(f"/api/cases/{case_id}/withdraw", headers={**an, **headers}).status_code == 200


def test_an_integer_of_more_digits_than_python_reads_is_422(api: Api) -> None:
    case_id, an, officer = _opened(api)
    before = api.snapshot()
    huge = "9" * 4301
    start = f'{{"procedure": "{XUAT_NGU}", "unit": "u1", "data": {{"so_thang_phuc_vu": {huge}}}}}'
    json_type = {"Content-Type": "application/json"}
    for url, body, who in (
        ("/api/cases", start, an),
        (f"/api/cases/{case_id}/actions", f'{{"step": "nop_ban_khai", "outcome": "done", "data": {{"x": {huge}}}}}', officer),
        (f"/api/cases/{case_id}/withdraw", f'{{"comment": {huge}}}', an),
    ):
        problem = assert_problem(api.client.post(url, content=body, headers={**who, **json_type}), 422, "invalid-request")
        assert "4.300" in problem["detail"]
    assert api.snapshot() == before


@pytest.mark.parametrize("value", [-(2**63), 2**63 - 1])
def test_an_integer_field_keeps_the_64_bit_bounds_exactly(api: Api, value: int) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an", unit="u1")
    case = api.start(an, XUAT_NGU, xuat_ngu_data(so_thang_phuc_vu=value))
    assert case["data"]["so_thang_phuc_vu"] == value
    assert api.case(an, case["id"])["data"]["so_thang_phuc_vu"] == value


@pytest.mark.parametrize("value", [-(2**63) - 1, 2**63, 10**4000])
def test_an_integer_field_past_the_64_bit_bounds_is_refused_by_name(api: Api, value: int) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an", unit="u1")
    before = api.snapshot()
    response = api.client.post(
        "/api/cases", json={"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data(so_thang_phuc_vu=value)}, headers=an
    )
    problem = assert_problem(response, 422, "invalid-data")
    assert [e["field"] for e in problem["errors"]] == ["so_thang_phuc_vu"]
    assert "so_thang_phuc_vu" in problem["errors"][0]["message"] and "số nguyên" in problem["errors"][0]["message"]
    assert api.snapshot() == before


def test_a_case_opened_for_someone_who_is_no_user_is_refused(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    desk = api.official("dai_doi")  # an official of the procedure in u1 may open cases for others
    api.user("binh", unit="u1")
    before = api.snapshot()
    body: dict[str, Any] = {"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data(), "applicant": "chua_co"}
    problem = assert_problem(api.client.post("/api/cases", json=body, headers=desk), 422, "invalid-data")
    assert [e["field"] for e in problem["errors"]] == ["applicant"] and "chua_co" in problem["errors"][0]["message"]
    assert api.snapshot() == before
    # whoever is created later under that id inherits nothing
    later = api.user("chua_co", unit="u1")
    assert api.client.get("/api/cases", headers=later).json()["items"] == []
    opened = api.client.post("/api/cases", json={**body, "applicant": "binh"}, headers=desk)
    assert opened.status_code == 201 and opened.json()["applicant"] == "binh"


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/api/cases", "GET, POST"), ("/api/procedures", "GET, POST"), ("/api/cases/1", "GET"), ("/api/audit/verify", "GET")],
)
def test_a_405_allows_every_method_of_its_path(api: Api, path: str, methods: str) -> None:
    for method in ("PUT", "DELETE", "OPTIONS", "PATCH"):
        response = api.client.request(method, path, headers=api.reformer())
        assert_problem(response, 405)
        assert response.headers["allow"] == methods


@pytest.mark.parametrize("code", ["X" * 101, "XSS-2 ", "ＸＳＳ-2", "-XSS", "a b", "XSS-2\u200b"])
def test_a_code_outside_the_rule_in_a_path_is_422(api: Api, code: str) -> None:
    problem = assert_problem(api.client.get(f"/api/procedures/{code}/1", headers=api.reformer()), 422, "invalid-request")
    assert problem["errors"][0]["location"] == "path.code"


@pytest.mark.parametrize("version", ["1000001", str(2**31), str(2**63), "0"])
def test_a_version_outside_its_bounds_in_a_path_is_422(api: Api, version: str) -> None:
    api.publish("che-do-xuat-ngu.v1")
    for path in (f"/api/procedures/{XUAT_NGU}/{version}", f"/api/procedures/{XUAT_NGU}/compare/1/{version}"):
        assert_problem(api.client.get(path, headers=api.reformer()), 422, "invalid-request")
    assert_problem(api.client.post(f"/api/procedures/{XUAT_NGU}/{version}/publish", headers=api.reformer()), 422)


def test_a_code_is_one_code_in_any_case_over_http(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    reformer = api.reformer()
    lower = XUAT_NGU.lower()
    found = api.client.get(f"/api/procedures/{lower}/1", headers=reformer)
    assert found.status_code == 200 and found.json()["code"] == XUAT_NGU
    before = api.snapshot()
    yaml = (DEFINITIONS / "che-do-xuat-ngu.v1.yaml").read_text(encoding="utf-8")
    second = yaml.replace(f"code: {XUAT_NGU}", f"code: {lower}").replace("version: 1", "version: 7")
    assert f"code: {lower}" in second
    response = api.client.post(
        "/api/procedures", content=second.encode(), headers={**reformer, "Content-Type": "application/yaml"}
    )
    assert XUAT_NGU in assert_problem(response, 409)["detail"]
    assert api.snapshot() == before
