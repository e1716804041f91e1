"""Who may see and do what (service.md section 2), through every case
endpoint: another unit's user gets 404, a user who sees the case but lacks
the step's role 403, an anonymous caller or a bad token 401; each sees
nothing of the case and changes nothing. Procedure writes need ``reform``,
the audit check ``admin``; an admin reads every case and acts on none."""

from __future__ import annotations

from typing import Any

import pytest

from engine.users import revoke_tokens
from tests.api.conftest import XUAT_NGU, Api, Headers, assert_no_case_data, assert_problem, definition_body, xuat_ngu_data
from tests.api.test_http_abuse import YAML

ACTION = {"step": "lap_danh_sach", "outcome": "done"}


def requests(case_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every case endpoint, with a body that would be accepted from the right caller."""
    return [
        ("GET", f"/api/cases/{case_id}", None),
        ("GET", f"/api/cases/{case_id}/events", None),
        ("POST", f"/api/cases/{case_id}/actions", ACTION),
        ("POST", f"/api/cases/{case_id}/withdraw", {"comment": "rút"}),
    ]


def call(api: Api, method: str, url: str, body: dict[str, Any] | None, headers: Headers) -> Any:
    if method == "GET":
        return api.client.get(url, headers=headers)
    return api.client.post(url, json=body, headers=headers)


def refused_everywhere(api: Api, case_id: int, headers: Headers, status: int, kind: str) -> None:
    before = api.snapshot()
    for method, url, body in requests(case_id):
        problem = assert_problem(call(api, method, url, body, headers), status, kind)
        assert_no_case_data(problem)
        assert "xuất ngũ" not in str(problem) and "Nguyễn Văn An" not in str(problem)
    assert api.snapshot() == before


def test_another_units_user_gets_404_everywhere_as_if_the_case_did_not_exist(api: Api, world: dict[str, Any]) -> None:
    case_id = world["case"]["id"]
    refused_everywhere(api, case_id, world["stranger"], 404, "not-found")
    refused_everywhere(api, case_id, api.official("tieu_doan", unit="u2"), 404, "not-found")
    # a user of the same unit with none of the procedure's office roles, and one with an unrelated role
    refused_everywhere(api, case_id, api.user("hang_xom", unit="u1"), 404, "not-found")
    refused_everywhere(api, case_id, api.official("van_thu", unit="u1"), 404, "not-found")
    # and the 404 reads the same as for a case that does not exist
    missing = api.client.get("/api/cases/999999", headers=world["stranger"]).json()
    hidden = api.client.get(f"/api/cases/{case_id}", headers=world["stranger"]).json()
    assert set(missing) == set(hidden) and missing["type"] == hidden["type"] and missing["title"] == hidden["title"]
    # nor do lists show it
    for headers in (world["stranger"], api.user("hang_xom")):
        assert api.client.get("/api/cases", headers=headers).json()["items"] == []
        assert api.client.get("/api/inbox", headers=headers).json()["items"] == []


def test_a_user_who_sees_the_case_but_lacks_the_role_gets_403_on_actions(api: Api, world: dict[str, Any]) -> None:
    case_id, colleague = world["case"]["id"], world["colleague"]
    assert api.client.get(f"/api/cases/{case_id}", headers=colleague).status_code == 200
    assert api.client.get(f"/api/cases/{case_id}/events", headers=colleague).status_code == 200
    before = api.snapshot()
    for method, url, body in requests(case_id)[2:]:
        problem = assert_problem(call(api, method, url, body, colleague), 403, "forbidden")
        assert_no_case_data(problem)
    # the applicant may not act on an office step, an official not on the applicant's
    assert_problem(api.client.post(f"/api/cases/{case_id}/actions", json=ACTION, headers=world["applicant"]), 403, "forbidden")
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", headers=world["officer"]), 403, "forbidden")
    assert api.snapshot() == before
    assert [i["case"] for i in api.client.get("/api/inbox", headers=colleague).json()["items"]] == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer tg_not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-even-the-prefix"},
        {"Authorization": "Token abc"},
        {"Authorization": "Bearer tg_" + "x" * 5000},
    ],
    ids=["anonymous", "unknown", "empty", "no-prefix", "other-scheme", "huge"],
)
def test_anonymous_and_bad_tokens_get_401_everywhere(api: Api, world: dict[str, Any], headers: Headers) -> None:
    case_id = world["case"]["id"]
    refused_everywhere(api, case_id, headers, 401, "unauthorized")
    for url in ("/api/cases", "/api/inbox", "/api/procedures", f"/api/procedures/{XUAT_NGU}/1", "/api/audit/verify"):
        response = api.client.get(url, headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(
        api.client.post("/api/cases", json={"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data()}, headers=headers), 401
    )


def test_a_revoked_token_gets_401(api: Api, world: dict[str, Any]) -> None:
    case_id, officer = world["case"]["id"], world["officer"]
    with api.services.store.unit() as uow:
        revoke_tokens(uow, "cb_dai_doi_u1")
    refused_everywhere(api, case_id, officer, 401, "unauthorized")


def test_admin_reads_every_case_and_acts_on_none(api: Api, world: dict[str, Any]) -> None:
    case_id, admin = world["case"]["id"], api.admin()
    other = api.start(api.user("xa", unit="u9"), XUAT_NGU, xuat_ngu_data(), unit="u9")
    for cid in (case_id, other["id"]):
        assert api.client.get(f"/api/cases/{cid}", headers=admin).status_code == 200
        assert api.client.get(f"/api/cases/{cid}/events", headers=admin).status_code == 200
    assert {c["id"] for c in api.client.get("/api/cases", headers=admin).json()["items"]} == {case_id, other["id"]}
    before = api.snapshot()
    for method, url, body in requests(case_id)[2:]:
        assert_problem(call(api, method, url, body, admin), 403, "forbidden")
    nop = {"step": "nop_ban_khai", "outcome": "done"}
    assert_problem(api.client.post(f"/api/cases/{other['id']}/actions", json=nop, headers=admin), 403, "forbidden")
    assert api.client.get("/api/inbox", headers=admin).json()["items"] == []
    assert api.snapshot() == before
    # nor may an admin (without reform) change procedures
    assert_problem(api.client.post(f"/api/procedures/{XUAT_NGU}/1/simplify", headers=admin), 403, "forbidden")


def test_procedure_writes_need_reform(api: Api, world: dict[str, Any]) -> None:
    text = definition_body("che-do-xuat-ngu.v2").encode()
    before = api.snapshot()
    for headers in (world["officer"], world["applicant"], api.admin()):
        assert_problem(api.client.post("/api/procedures", content=text, headers={**headers, **YAML}), 403, "forbidden")
        assert_problem(api.client.post(f"/api/procedures/{XUAT_NGU}/1/simplify", headers=headers), 403, "forbidden")
        assert_problem(api.client.post(f"/api/procedures/{XUAT_NGU}/1/publish", headers=headers), 403, "forbidden")
        # reading is for any signed-in user
        assert api.client.get(f"/api/procedures/{XUAT_NGU}/1", headers=headers).status_code == 200
        assert api.client.get("/api/procedures", headers=headers).status_code == 200
    for method, url in (("POST", "/api/procedures"), ("POST", f"/api/procedures/{XUAT_NGU}/1/publish")):
        assert_problem(api.client.request(method, url, content=text, headers=YAML), 401, "unauthorized")
    assert api.snapshot() == before
    # the reform permission alone does it, and sees no case for it
    reform = api.reformer()
    assert api.client.post("/api/procedures", content=text, headers={**reform, **YAML}).status_code == 201
    assert api.client.post(f"/api/procedures/{XUAT_NGU}/2/publish", headers=reform).status_code == 200
    assert_problem(api.client.get(f"/api/cases/{world['case']['id']}", headers=reform), 404)


def test_opening_a_case_for_someone_else_needs_an_official_of_that_unit(api: Api, world: dict[str, Any]) -> None:
    body = {"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data(), "applicant": "someone"}
    api.user("someone")  # the applicant must be a user
    before = api.snapshot()
    for headers in (world["applicant"], world["stranger"], api.admin()):
        assert_problem(api.client.post("/api/cases", json=body, headers=headers), 403, "forbidden")
    assert api.snapshot() == before
    desk = api.client.post("/api/cases", json=body, headers=world["officer"])
    assert desk.status_code == 201 and desk.json()["applicant"] == "someone"


def test_a_problem_speaks_vietnamese_unless_the_first_accepted_language_is_english(api: Api) -> None:
    assert api.client.get("/api/cases/1").json()["title"] == "Chưa đăng nhập"
    english = api.client.get("/api/cases/1", headers={"Accept-Language": "en-GB, vi;q=0.5"})
    assert english.json()["title"] == "Not signed in"
    assert english.json()["type"].endswith("/unauthorized")  # what machines read stays
    later = api.client.get("/api/cases/1", headers={"Accept-Language": "vi, en;q=0.9"})
    assert later.json()["title"] == "Chưa đăng nhập"
