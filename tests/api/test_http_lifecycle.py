"""Whole case lifecycles through the HTTP API, on SQLite and PostgreSQL:
parallel steps, a return to the applicant and the guide-once refusal, data
amendments, a reject, a withdraw; ETags, If-Match, Idempotency-Key, the
audit events, the inbox and keyset pagination (service.md section 3)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from tests.api.conftest import QUAN_SO, XUAT_NGU, Api, Headers, assert_problem, quan_so_data, xuat_ngu_data

EVENT_KEYS = {"seq", "at", "actor", "type", "step", "outcome", "comment", "hash", "prev_hash", "signature"}
CASE_KEYS = {"id", "procedure", "unit", "applicant", "status", "created_at", "due_at", "data", "version", "steps"}
STEP_KEYS = {"id", "name", "role", "status", "activated_at", "due_at", "completed_at", "outcome"}
INBOX_KEYS = {"case", "procedure", "step", "step_name", "activated_at", "due_at", "overdue"}


def statuses(case: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in case["steps"]}


def active(case: dict[str, Any]) -> set[str]:
    return {s["id"] for s in case["steps"] if s["status"] == "active"}


class Driver:
    """Acts on a case's steps as whoever holds each step's role."""

    def __init__(self, api: Api, case: dict[str, Any], applicant: Headers, applicant_role: str) -> None:
        self.api, self.case, self.applicant, self.applicant_role = api, case, applicant, applicant_role

    def headers_for(self, step: str) -> Headers:
        role = next(s["role"] for s in self.case["steps"] if s["id"] == step)
        return self.applicant if role == self.applicant_role else self.api.official(role, self.case["unit"])

    def act(self, step: str, outcome: str, **extra: Any) -> dict[str, Any]:
        assert step in active(self.case), (step, statuses(self.case))
        response = self.api.client.post(
            f"/api/cases/{self.case['id']}/actions",
            json={"step": step, "outcome": outcome, **extra},
            headers={**self.headers_for(step), "If-Match": f'"{self.case["version"]}"'},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert response.headers["etag"] == f'"{body["version"]}"'
        assert body["version"] == self.case["version"] + 1
        self.case = body
        return body

    def refused(self, step: str, outcome: str, status: int, kind: str, **extra: Any) -> dict[str, Any]:
        before = self.api.snapshot()
        response = self.api.client.post(
            f"/api/cases/{self.case['id']}/actions",
            json={"step": step, "outcome": outcome, **extra},
            headers=self.headers_for(step),
        )
        body = assert_problem(response, status, kind)
        assert self.api.snapshot() == before
        return body

    def run(self, *plan: tuple[str, str]) -> dict[str, Any]:
        for step, outcome in plan:
            self.act(step, outcome)
        return self.case


def check_events(api: Api, headers: Headers, case_id: int) -> list[dict[str, Any]]:
    events = api.events(headers, case_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "created"
    for e in events:
        assert set(e) >= EVENT_KEYS
        assert e["type"] in {"created", "action", "system", "data", "withdrawn"}
    for prev, e in pairwise(events):
        assert e["prev_hash"] == prev["hash"]
    return events


def test_xuat_ngu_lifecycle_with_parallel_steps_a_return_guide_once_and_a_data_amendment(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an", unit="u1")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    assert set(case) >= CASE_KEYS and all(set(s) >= STEP_KEYS for s in case["steps"])
    assert case["procedure"] == {"code": XUAT_NGU, "version": 1}
    assert (case["applicant"], case["unit"], case["status"], case["version"]) == ("an", "u1", "open", 1)
    assert case["created_at"].endswith("+07:00") and case["due_at"].endswith("+07:00")
    assert active(case) == {"nop_ban_khai"}
    got = api.client.get(f"/api/cases/{case['id']}", headers=an)
    assert got.headers["etag"] == '"1"' and got.json() == case

    d = Driver(api, case, an, "quan_nhan")
    d.run(("nop_ban_khai", "done"), ("lap_danh_sach", "done"), ("xet_tieu_doan", "dong_y"), ("kham_suc_khoe", "done"))

    # the one return to the applicant, with every missing paper listed
    returned = d.act("tham_dinh", "bo_sung_giay_to", missing=["cccd", "xac_nhan_cu_tru"], comment="Thiếu CCCD và xác nhận cư trú")
    assert active(returned) == {"nop_ban_khai"}
    assert returned["paused"] is True
    guided = returned["returned_to_applicant"]
    assert guided["step"] == "tham_dinh" and guided["target"] == "nop_ban_khai"
    assert guided["missing"] == ["cccd", "xac_nhan_cu_tru"]
    assert api.case(an, case["id"])["returned_to_applicant"]["missing"] == ["cccd", "xac_nhan_cu_tru"]

    # the applicant answers, amending the data
    answered = d.act("nop_ban_khai", "done", data={"noi_cu_tru": "Hà Nội", "so_thang_phuc_vu": 25})
    assert answered["data"]["noi_cu_tru"] == "Hà Nội" and answered["data"]["so_thang_phuc_vu"] == 25
    assert answered["paused"] is False
    d.run(("lap_danh_sach", "done"), ("xet_tieu_doan", "dong_y"), ("kham_suc_khoe", "done"))

    refusal = d.refused("tham_dinh", "bo_sung_giay_to", 409, "guide-once")
    assert refusal["step"] == "tham_dinh"
    assert refusal["type"].endswith("guide-once")

    d.run(("tham_dinh", "dat"), ("kiem_tra_lai", "done"))
    after_decision = d.act("ky_quyet_dinh", "done")
    assert active(after_decision) == {"tinh_tro_cap", "cap_the_hoc_nghe"}  # parallel branches
    d.run(("cap_the_hoc_nghe", "done"), ("tinh_tro_cap", "done"), ("duyet_tro_cap", "duyet"))
    after_payment = d.act("chi_tra", "done")
    assert active(after_payment) == {"lap_ho_so_chot_so", "cap_gioi_thieu"}
    d.run(("cap_gioi_thieu", "done"), ("ban_giao", "done"), ("lap_ho_so_chot_so", "done"))
    assert active(d.case) == {"chot_so_bhxh"}
    d.act("chot_so_bhxh", "da_chot")
    done = d.act("nhan_so_bhxh", "done")
    assert done["status"] == "completed"
    assert set(statuses(done).values()) == {"completed"}

    events = check_events(api, an, case["id"])
    data_events = [e for e in events if e["type"] == "data"]
    assert len(data_events) == 1 and data_events[0]["step"] == "nop_ban_khai" and data_events[0]["actor"] == "an"
    assert data_events[0]["data"]["changes"] == {"noi_cu_tru": [None, "Hà Nội"], "so_thang_phuc_vu": [24, 25]}
    actions = [(e["step"], e["outcome"]) for e in events if e["type"] == "action"]
    assert ("tham_dinh", "bo_sung_giay_to") in actions and actions[-1] == ("nhan_so_bhxh", "done")
    back = next(e for e in events if e["outcome"] == "bo_sung_giay_to")
    assert back["comment"] == "Thiếu CCCD và xác nhận cư trú" and back["signature"]  # a return is a decision, signed
    assert len(actions) == 21  # every accepted action, once

    # a completed case takes nothing more
    d.refused("nhan_so_bhxh", "done", 409, "case-closed")


def test_quan_so_lifecycle_with_parallel_applicant_and_office_steps(api: Api) -> None:
    api.publish("bao-cao-quan-so.v1")
    dai_doi = api.user("dai_doi_1", unit="e1", roles=["dai_doi"])
    case = api.start(dai_doi, QUAN_SO, quan_so_data(), unit="e1")
    d = Driver(api, case, dai_doi, "dai_doi")
    first = d.act("lap_bao_cao_dai_doi", "done")
    assert active(first) == {"nop_bang_an", "tong_hop_tieu_doan"}

    returned = d.act("tong_hop_tieu_doan", "tra_lai_dai_doi", missing=["so_quan_so"])
    assert active(returned) == {"lap_bao_cao_dai_doi"}
    assert statuses(returned)["nop_bang_an"] == "waiting"  # reset with the target's descendants
    assert returned["returned_to_applicant"]["missing"] == ["so_quan_so"]

    d.act("lap_bao_cao_dai_doi", "done")
    d.refused("tong_hop_tieu_doan", "tra_lai_dai_doi", 409, "guide-once")
    # an office-to-office return is no guide-once matter
    d.run(("tong_hop_tieu_doan", "xong"), ("kiem_tra_quan_luc", "sai_lech"))
    d.run(("tong_hop_tieu_doan", "xong"), ("kiem_tra_quan_luc", "dung"), ("kiem_tra_lai", "done"))
    assert active(d.case) == {"nop_bang_an"}  # the join waits for the applicant's branch
    joined = d.act("nop_bang_an", "done")
    assert active(joined) == {"doi_chieu_hau_can"}
    after = d.act("doi_chieu_hau_can", "khop")
    assert statuses(after)["lap_phu_luc"] == "skipped"  # no large change this month
    d.run(
        ("lap_bao_cao_trung_doan", "done"),
        ("duyet_tham_muu", "duyet"),
        ("ky_bao_cao", "done"),
        ("nhap_phan_mem", "done"),
        ("chuyen_bao_cao_mat", "done"),
        ("tong_hop_su_doan", "dat"),
    )
    done = d.act("luu_tru", "done")
    assert done["status"] == "completed"
    events = check_events(api, dai_doi, case["id"])
    assert [e["type"] for e in events].count("action") == 17


def test_reject_closes_the_case_and_cancels_what_is_left(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an")
    d = Driver(api, api.start(an, XUAT_NGU, xuat_ngu_data()), an, "quan_nhan")
    d.run(("nop_ban_khai", "done"), ("lap_danh_sach", "done"), ("xet_tieu_doan", "dong_y"), ("kham_suc_khoe", "done"))
    rejected = d.act("tham_dinh", "khong_du_dieu_kien", comment="Không đủ điều kiện")
    assert rejected["status"] == "rejected"
    assert statuses(rejected)["kiem_tra_lai"] == "cancelled" and statuses(rejected)["tham_dinh"] == "completed"
    assert not active(rejected)
    last = check_events(api, an, rejected["id"])[-1]
    assert (last["type"], last["outcome"], last["comment"]) == ("action", "khong_du_dieu_kien", "Không đủ điều kiện")
    assert last["signature"]
    withdraw = api.client.post(f"/api/cases/{rejected['id']}/withdraw", headers=an)
    assert_problem(withdraw, 409, "case-closed")


def test_withdraw_by_the_applicant(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an")
    d = Driver(api, api.start(an, XUAT_NGU, xuat_ngu_data()), an, "quan_nhan")
    d.run(("nop_ban_khai", "done"), ("lap_danh_sach", "done"))
    response = api.client.post(
        f"/api/cases/{d.case['id']}/withdraw", json={"comment": "Tôi ở lại phục vụ"}, headers={**an, "If-Match": '"3"'}
    )
    assert response.status_code == 200, response.text
    withdrawn = response.json()
    assert response.headers["etag"] == '"4"' and withdrawn["version"] == 4
    assert withdrawn["status"] == "withdrawn"
    assert statuses(withdrawn)["xet_tieu_doan"] == "cancelled" and statuses(withdrawn)["nop_ban_khai"] == "completed"
    last = check_events(api, an, d.case["id"])[-1]
    assert (last["type"], last["actor"], last["comment"]) == ("withdrawn", "an", "Tôi ở lại phục vụ")
    assert_problem(api.client.post(f"/api/cases/{d.case['id']}/withdraw", headers=an), 409, "case-closed")


def test_if_match_stale_is_412_and_changes_nothing(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    url = f"/api/cases/{case['id']}/actions"
    ok = api.client.post(url, json={"step": "nop_ban_khai", "outcome": "done"}, headers={**an, "If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    before = api.snapshot()
    officer = api.official("dai_doi")
    for stale in ('"1"', "1", '"x"', '"99"', 'W/"1"'):
        response = api.client.post(url, json={"step": "lap_danh_sach", "outcome": "done"}, headers={**officer, "If-Match": stale})
        body = assert_problem(response, 412, "stale")
        assert "steps" not in body
    withdraw = api.client.post(f"/api/cases/{case['id']}/withdraw", headers={**an, "If-Match": '"1"'})
    assert_problem(withdraw, 412, "stale")
    assert api.snapshot() == before
    weak = api.client.post(url, json={"step": "lap_danh_sach", "outcome": "done"}, headers={**officer, "If-Match": 'W/"2"'})
    assert weak.status_code == 200 and weak.headers["etag"] == '"3"'
    tieu_doan = api.official("tieu_doan")
    star = api.client.post(url, json={"step": "xet_tieu_doan", "outcome": "dong_y"}, headers={**tieu_doan, "If-Match": "*"})
    assert star.status_code == 200 and star.headers["etag"] == '"4"'


def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    url = f"/api/cases/{case['id']}/actions"
    body = {"step": "nop_ban_khai", "outcome": "done", "comment": "Nộp bản khai"}
    headers = {**an, "Idempotency-Key": "k-1"}
    first = api.client.post(url, json=body, headers=headers)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    after_first = api.snapshot()
    again = api.client.post(url, json=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"] == '"2"'
    assert again.headers["idempotent-replayed"] == "true"
    assert api.snapshot() == after_first  # applied once
    # replay comes before If-Match: a retry that names the version it saw still gets its answer
    replay = api.client.post(url, json=body, headers={**headers, "If-Match": '"1"'})
    assert replay.status_code == 200 and replay.json() == first.json()

    other = api.client.post(url, json={**body, "comment": "khác"}, headers=headers)
    assert_problem(other, 422, "idempotency-mismatch")
    assert api.snapshot() == after_first
    # the key is the caller's: another user's same key is a new request
    officer = api.official("dai_doi")
    mine = api.client.post(url, json={"step": "lap_danh_sach", "outcome": "done"}, headers={**officer, "Idempotency-Key": "k-1"})
    assert mine.status_code == 200 and mine.json()["version"] == 3
    # a refused request leaves its key free: the corrected retry goes through
    tieu_doan = api.official("tieu_doan")
    wrong = api.client.post(
        url,
        json={"step": "xet_tieu_doan", "outcome": "dong_y"},
        headers={**tieu_doan, "Idempotency-Key": "k-2", "If-Match": '"2"'},
    )
    assert_problem(wrong, 412)
    right = api.client.post(
        url,
        json={"step": "xet_tieu_doan", "outcome": "dong_y"},
        headers={**tieu_doan, "Idempotency-Key": "k-2", "If-Match": '"3"'},
    )
    assert right.status_code == 200, right.text
    # withdraw honours the key too
    w = f"/api/cases/{case['id']}/withdraw"
    one = api.client.post(w, json={"comment": "thôi"}, headers={**an, "Idempotency-Key": "w-1"})
    two = api.client.post(w, json={"comment": "thôi"}, headers={**an, "Idempotency-Key": "w-1"})
    assert one.status_code == two.status_code == 200 and one.json() == two.json()
    assert_problem(api.client.post(w, json={"comment": "khác"}, headers={**an, "Idempotency-Key": "w-1"}), 422)


def test_inbox_keys_and_order(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1", "bao-cao-quan-so.v1")
    # one official with roles in both procedures: their inbox merges both, earliest due first
    both = api.user("ca_hai", unit="u1", roles=["dai_doi", "tieu_doan"])
    ids = []
    for n in range(3):
        an = api.user(f"qn{n}")
        case = api.start(an, XUAT_NGU, xuat_ngu_data())
        api.act(an, case["id"], "nop_ban_khai", "done")  # lap_danh_sach (dai_doi, 16h) becomes active
        ids.append(case["id"])
        api.clock.advance(hours=1)
    report = api.start(api.user("dd", unit="u1", roles=["dai_doi"]), QUAN_SO, quan_so_data())
    api.act(api.user("dd"), report["id"], "lap_bao_cao_dai_doi", "done")  # tong_hop_tieu_doan (tieu_doan, 4h)
    response = api.client.get("/api/inbox", headers=both)
    assert response.status_code == 200
    page = response.json()
    assert page["next_cursor"] is None
    items = page["items"]
    for item in items:
        assert set(item) >= INBOX_KEYS
        assert set(item["procedure"]) >= {"code", "version", "name"}
        assert item["due_at"].endswith("+07:00") and item["overdue"] is False
    assert [(i["case"], i["step"]) for i in items] == [
        (report["id"], "tong_hop_tieu_doan"),
        *((c, "lap_danh_sach") for c in ids),
    ]
    assert items[0]["procedure"] == {"code": QUAN_SO, "version": 1, "name": items[0]["procedure"]["name"]}
    assert items[1]["step_name"] and items[1]["procedure"]["code"] == XUAT_NGU
    assert [i["due_at"] for i in items] == sorted(i["due_at"] for i in items)
    # the applicant's inbox holds their own applicant steps; nobody else's
    assert [i["case"] for i in api.client.get("/api/inbox", headers=api.user("qn0")).json()["items"]] == []
    api.clock.advance(days=30)
    late = api.client.get("/api/inbox", headers=both).json()["items"]
    assert all(i["overdue"] for i in late)
    overdue = api.client.get("/api/cases?overdue=true", headers=both).json()["items"]
    assert {c["id"] for c in overdue} == {*ids, report["id"]}


def walk(api: Api, url: str, headers: Headers, limit: int) -> list[list[Any]]:
    pages, cursor = [], None
    while True:
        query = f"{url}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = api.client.get(query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50


def test_keyset_pagination_of_cases_and_inbox(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an")
    officer = api.user("cb", unit="u1", roles=["dai_doi", "ban_quan_luc"])
    created = []
    for n in range(7):
        case = api.start(an, XUAT_NGU, xuat_ngu_data(so_thang_phuc_vu=20 + n))
        if n % 2 == 0:
            api.act(an, case["id"], "nop_ban_khai", "done")
        created.append(case["id"])
        if n % 3 == 0:
            api.clock.advance(minutes=30)  # some share a due time: the key breaks the tie
    other = api.start(api.user("ngoai", unit="u2"), XUAT_NGU, xuat_ngu_data(), unit="u2")

    everything = api.client.get("/api/cases?limit=200", headers=officer).json()
    assert everything["next_cursor"] is None
    assert [c["id"] for c in everything["items"]] == sorted(created, reverse=True)  # newest first, not u2's
    for limit in (1, 2, 3, 7):
        pages = walk(api, "/api/cases", officer, limit)
        flat = [c["id"] for page in pages for c in page]
        assert flat == sorted(created, reverse=True), limit
        assert all(pages[:-1]) and len(pages) == -(-7 // limit)
    assert [c["id"] for page in walk(api, "/api/cases", api.admin(), 2) for c in page] == sorted(
        [*created, other["id"]], reverse=True
    )

    open_ = api.client.get(f"/api/cases?status=open&procedure={XUAT_NGU}&limit=200", headers=officer).json()["items"]
    assert len(open_) == 7
    assert api.client.get("/api/cases?status=completed", headers=officer).json()["items"] == []

    inbox_all = api.client.get("/api/inbox?limit=200", headers=officer).json()["items"]
    assert len(inbox_all) == 4  # the cases whose first step is done wait on dai_doi
    for limit in (1, 2, 3):
        flat = [(i["case"], i["step"]) for page in walk(api, "/api/inbox", officer, limit) for i in page]
        assert flat == [(i["case"], i["step"]) for i in inbox_all], limit
        assert len(set(flat)) == len(flat)
    applicant_inbox = [i["case"] for page in walk(api, "/api/inbox", an, 2) for i in page]
    assert sorted(applicant_inbox) == sorted(c for n, c in enumerate(created) if n % 2 == 1)


def test_a_refusal_is_told_in_vietnamese_unless_english_is_asked_for(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an", unit="u1")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    api.act(an, case["id"], "nop_ban_khai", "done")
    actions = f"/api/cases/{case['id']}/actions"
    english = {**an, "Accept-Language": "en-GB,vi;q=0.8"}
    again = {"step": "nop_ban_khai", "outcome": "done"}
    vi = assert_problem(api.client.post(actions, json=again, headers=an), 409, "step-not-active")
    en = assert_problem(api.client.post(actions, json=again, headers=english), 409, "step-not-active")
    # the step by its name, for people; its id stays in "step", for machines
    assert vi["detail"] == "bước «Quân nhân nộp bản khai và giấy tờ cho đại đội» đã hoàn thành, không còn chờ xử lý"
    assert en["detail"] == "step «Quân nhân nộp bản khai và giấy tờ cho đại đội» is completed, not active"
    assert vi["step"] == en["step"] == "nop_ban_khai" and vi["title"] != en["title"]
    missing = {"step": "khong_co", "outcome": "done"}
    assert assert_problem(api.client.post(actions, json=missing, headers=an), 422)["detail"] == "thủ tục không có bước «khong_co»"
    en = assert_problem(api.client.post(actions, json=missing, headers=english), 422, "invalid-action")
    assert en["detail"] == "the procedure has no step «khong_co»"
    # the request's validation and the framework's own answers alike
    invalid = {"step": "", "outcome": "done"}
    vi = assert_problem(api.client.post(actions, json=invalid, headers=an), 422, "invalid-request")
    en = assert_problem(api.client.post(actions, json=invalid, headers=english), 422, "invalid-request")
    assert (vi["detail"], vi["errors"]) == (
        "yêu cầu không hợp lệ",
        [{"location": "body.step", "message": "Chuỗi phải có ít nhất 1 ký tự"}],
    )
    assert (en["detail"], en["errors"]) == (
        "the request is not valid",
        [{"location": "body.step", "message": "String should have at least 1 character"}],
    )
    assert api.client.get("/api/khong-co", headers=an).json()["detail"] == "Không có gì ở địa chỉ này"
    assert api.client.get("/api/khong-co", headers=english).json()["detail"] == "Not Found"
