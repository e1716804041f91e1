"""``/api/procedures`` and ``/api/audit`` through the HTTP API: the catalog,
uploads, analysis, simplification and publication (new cases take the new
version, running ones keep theirs), diagrams, comparisons, the audit check."""

from __future__ import annotations

from xml.etree import ElementTree

from sqlalchemy import update

from engine.db import EventRow
from engine.publishing import publish_definition
from procedures import load_text
from procedures.analysis import analysis
from procedures.compare import compare
from tests.api.conftest import XUAT_NGU, Api, assert_problem, definition_body, xuat_ngu_data

YAML = {"Content-Type": "application/yaml"}


def svg_ids(text: str) -> set[str]:
    root = ElementTree.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return {e.attrib["id"] for e in root.iter() if "id" in e.attrib}


def upload(api: Api, name: str) -> dict[str, object]:
    response = api.client.post("/api/procedures", content=definition_body(name).encode(), headers={**api.reformer(), **YAML})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_list_upload_get_and_analysis(api: Api) -> None:
    api.publish("bao-cao-quan-so.v1")
    reader = api.user("doc_gia")
    assert upload(api, "che-do-xuat-ngu.v1") == {"code": XUAT_NGU, "version": 1, "status": "draft"}
    listed = api.client.get("/api/procedures", headers=reader).json()
    assert [(p["code"], p["version"], p["status"]) for p in listed] == [
        ("QP-CS-XN-02", 1, "draft"),
        ("QP-NB-QS-01", 1, "published"),
    ]
    assert all(p["name"] for p in listed)

    detail = api.client.get(f"/api/procedures/{XUAT_NGU}/1", headers=reader)
    assert detail.status_code == 200
    body = detail.json()
    assert body["status"] == "draft"
    assert body["definition"]["code"] == XUAT_NGU and isinstance(body["definition"]["steps"], list)
    assert body["definition"]["steps"][0]["id"] == "nop_ban_khai"
    defn = load_text(definition_body("che-do-xuat-ngu.v1"))
    assert body["metrics"]["steps"] == len(defn.steps) and "compliance_cost" in body["metrics"]

    got = api.client.get(f"/api/procedures/{XUAT_NGU}/1/analysis", headers=reader)
    assert got.status_code == 200
    assert got.json() == analysis(defn)
    # a draft takes no case
    start = api.client.post("/api/cases", json={"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data()}, headers=reader)
    assert_problem(start, 422, "not-published")


def test_simplify_then_publish_moves_new_cases_and_leaves_running_ones(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    reform = api.reformer()
    an = api.user("an")
    running = api.start(an, XUAT_NGU, xuat_ngu_data())
    assert running["procedure"]["version"] == 1

    response = api.client.post(f"/api/procedures/{XUAT_NGU}/1/simplify", headers=reform)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["version"] == 2 and result["code"] == XUAT_NGU
    assert set(result) >= {"before", "after", "applied", "advice", "skipped"} and result["applied"]
    assert result["after"]["lead_time_days"] < result["before"]["lead_time_days"]
    assert api.client.get(f"/api/procedures/{XUAT_NGU}/2", headers=an).json()["status"] == "draft"
    # a second simplify of v1 would store v2 again
    assert_problem(api.client.post(f"/api/procedures/{XUAT_NGU}/1/simplify", headers=reform), 409)

    assert api.start(an, XUAT_NGU, xuat_ngu_data())["procedure"]["version"] == 1  # the draft is not used
    published = api.client.post(f"/api/procedures/{XUAT_NGU}/2/publish", headers=reform)
    assert published.status_code == 200 and published.json() == {"code": XUAT_NGU, "version": 2, "status": "published"}
    again = api.client.post(f"/api/procedures/{XUAT_NGU}/2/publish", headers=reform)
    assert again.status_code == 200 and again.json()["status"] == "published"

    fresh = api.start(an, XUAT_NGU, xuat_ngu_data())
    assert fresh["procedure"] == {"code": XUAT_NGU, "version": 2}
    v2 = api.client.get(f"/api/procedures/{XUAT_NGU}/2", headers=an).json()["definition"]
    assert [s["id"] for s in fresh["steps"]] == [s["id"] for s in v2["steps"]]
    old = api.case(an, running["id"])
    assert old["procedure"]["version"] == 1 and len(old["steps"]) == 16
    # the running case goes on on its own version
    moved = api.act(an, running["id"], "nop_ban_khai", "done")
    assert {s["id"] for s in moved["steps"] if s["status"] == "active"} == {"lap_danh_sach"}


def test_diagrams_and_compare(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1", "che-do-xuat-ngu.v2")
    user = api.user("doc_gia")
    svg = api.client.get(f"/api/procedures/{XUAT_NGU}/1/diagram.svg", headers=user)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    ids = svg_ids(svg.text)
    assert {f"step-{s.id}" for s in load_text(definition_body("che-do-xuat-ngu.v1")).steps} <= ids
    width = float(ElementTree.fromstring(svg.text).attrib["width"].removesuffix("pt"))
    assert width < 10_000  # drawn where tinhgon laid it out (neato -n2), not laid out again

    compared = api.client.get(f"/api/procedures/{XUAT_NGU}/compare/1/2", headers=user)
    assert compared.status_code == 200
    body = compared.json()
    v1, v2 = load_text(definition_body("che-do-xuat-ngu.v1")), load_text(definition_body("che-do-xuat-ngu.v2"))
    assert body == compare(v1, v2)
    assert set(body["steps"]) >= {"added", "removed", "changed"} and "kiem_tra_lai" in body["steps"]["removed"]
    assert all(set(c) >= {"id", "fields"} for c in body["steps"]["changed"])
    assert all(isinstance(e, list) and len(e) == 2 for e in body["edges"]["added"] + body["edges"]["removed"])

    both = api.client.get(f"/api/procedures/{XUAT_NGU}/compare/1/2/diagram.svg", headers=user)
    assert both.status_code == 200 and both.headers["content-type"].startswith("image/svg+xml")
    assert "step-kiem_tra_lai" in svg_ids(both.text) and "removed" in both.text
    for url in (
        f"/api/procedures/{XUAT_NGU}/9/diagram.svg",
        f"/api/procedures/{XUAT_NGU}/compare/1/9",
        f"/api/procedures/{XUAT_NGU}/compare/9/1/diagram.svg",
        "/api/procedures/NO-SUCH/1",
    ):
        assert_problem(api.client.get(url, headers=user), 404, "not-found")


def test_audit_verify_for_admins_and_the_public_key_for_anyone(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    api.act(an, case["id"], "nop_ban_khai", "done")
    assert_problem(api.client.get("/api/audit/verify", headers=an), 403, "forbidden")
    assert_problem(api.client.get("/api/audit/verify", headers=api.reformer()), 403, "forbidden")
    assert_problem(api.client.get("/api/audit/verify"), 401, "unauthorized")
    report = api.client.get("/api/audit/verify", headers=api.admin())
    assert report.status_code == 200
    got = report.json()
    assert (got["ok"], got["events"], got["cases"], got["first_bad"], got["problems"]) == (True, 2, 1, None, 0)
    assert got["journal"] >= 3 and got["unsealed"] == got["events"] + got["journal"] and got["ledger"] == 0  # nothing sealed

    assert_problem(api.client.post("/api/audit/checkpoint", headers=an), 403, "forbidden")
    statement = api.client.post("/api/audit/checkpoint", headers=api.admin()).json()
    assert statement["length"] == got["unsealed"] + 1 and statement["key_id"] == api.services.signer.key_id  # and the rules
    sealed = api.client.get("/api/audit/verify", headers=api.admin()).json()
    assert sealed["ok"] and sealed["ledger"] == statement["length"]
    keys = api.client.get("/api/audit/keys").json()
    assert keys == [
        {"key_id": api.services.signer.key_id, "public_pem": api.services.signer.public_pem(), "current": True, "trusted": True}
    ]

    key = api.client.get("/api/audit/public-key")
    assert key.status_code == 200 and key.text.startswith("-----BEGIN PUBLIC KEY-----")
    assert key.text == api.services.signer.public_pem()

    with api.services.store.unit() as uow:
        uow.session.execute(update(EventRow).where(EventRow.seq == 2).values(comment="sửa lén"))
    bad = api.client.get("/api/audit/verify", headers=api.admin()).json()
    assert bad["ok"] is False and bad["first_bad"]["case"] == case["id"] and bad["first_bad"]["seq"] == 2


def test_an_abolished_procedure_takes_no_new_case_and_names_what_replaced_it(api: Api) -> None:
    api.publish("bao-cao-quan-so.v1")
    code = load_text(definition_body("bao-cao-quan-so.v1")).code
    abolished = f"format: tinhgon/1\ncode: {code}\nname: Bãi bỏ\nversion: 7\nabolished: Hợp nhất theo quyết định thử\nmerged_into: QP-NB-QS-99\n"
    publish_definition(api.services.store, abolished, source="bai-bo.yaml")
    start = api.client.post("/api/cases", json={"procedure": code, "unit": "u1", "data": {}}, headers=api.user("doc_gia"))
    body = assert_problem(start, 422, "abolished")
    assert body["merged_into"] == "QP-NB-QS-99" and "QP-NB-QS-99" in body["detail"]
