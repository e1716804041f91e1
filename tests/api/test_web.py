"""The web pages through the ASGI app: signing in, every page, CSRF,
escaping, and a case's whole life through the forms."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from api.app import create_app
from api.deps import SESSION_COOKIE
from api.services import Services
from api.settings import Settings
from api.web.session import csrf_token
from engine.machine import COMMENT_LENGTH, Actor
from engine.publishing import publish_definition
from engine.users import add_user, authenticate, issue_token, revoke_tokens
from procedures import load_text
from procedures.analysis import analysis
from procedures.catalog_file import read_catalog_file
from tests.api.conftest import csrf_of as _csrf
from tests.conftest import DEFINITIONS, definition_text
from tests.transacting import Transacting

CODE = "1.001193"  # Đăng ký khai sinh: a return to the applicant at two steps
UNIT = "demo"
USERS = {
    "dan": {"name": "Nguyễn Văn Dân", "unit": UNIT},
    "reform": {"name": "Cán bộ cải cách", "unit": UNIT, "permissions": ["reform"]},
    "mot_cua": {"name": "Công chức một cửa", "unit": UNIT, "roles": ["mot_cua"]},
    "tu_phap": {"name": "Công chức tư pháp", "unit": UNIT, "roles": ["cong_chuc_tu_phap"]},
    "chu_tich": {"name": "Chủ tịch xã", "unit": UNIT, "roles": ["chu_tich_xa"]},
    "xa_khac": {"name": "Tư pháp xã khác", "unit": "xa-khac", "roles": ["cong_chuc_tu_phap"]},
}
XSS = "<script>alert(1)</script>"
SMALL = definition_text(
    f"""\
    fields:
      - {{id: ho_ten, name: Họ tên, type: string, required: true}}
    roles:
      - {{id: dan, name: Người dân, kind: applicant}}
      - {{id: can_bo, name: Cán bộ, kind: office}}
    documents:
      - {{id: don, name: Đơn đề nghị, from: applicant}}
      - {{id: cccd, name: Căn cước, from: applicant, registry: population}}
      - {{id: ket_qua, name: Kết quả, deliverable: true}}
    steps:
      - {{id: nop, name: "{XSS}", role: dan, kind: submit, duration: 1h, inputs: [don, cccd]}}
      - id: xu_ly
        name: Xử lý
        role: can_bo
        kind: approve
        duration: 1d
        inputs: [don, cccd]
        outputs: [ket_qua]
    """,
    head="format: tinhgon/1\ncode: T-XSS\nname: Thủ tục thử <b>in đậm</b>\nversion: 1\n",
)


@dataclass
class Site:
    app: TestClient
    services: Services
    tokens: dict[str, str]

    @property
    def cases(self) -> Transacting:
        """The site's case service, each call in a transaction of its own."""
        return Transacting.of(self.services.cases)

    def client(self, user: str | None = None) -> TestClient:
        """A browser of its own, signed in as ``user`` through the form."""
        client = TestClient(self.app.app, follow_redirects=False)
        if user is not None:
            page = client.get("/dang-nhap")
            answer = client.post("/dang-nhap", data={"csrf": _csrf(page.text), "token": self.tokens[user], "next": "/"})
            assert answer.status_code == 303, answer.text
        return client


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'web.db'}", key_file=tmp_path / "key")
    services = Services.start(settings)
    for f in sorted(DEFINITIONS.glob("dang-ky-khai-sinh.v*.yaml")):
        publish_definition(services.store, f.read_text(encoding="utf-8"), source=str(f))
    tokens = {}
    with services.store.unit() as uow:
        for user_id, attrs in USERS.items():
            add_user(uow, user_id, **attrs)  # type: ignore[arg-type]
            tokens[user_id] = issue_token(uow, user_id)
    app = TestClient(create_app(settings, services=services))
    yield Site(app, services, tokens)
    services.close()


def _case_id(location: str) -> int:
    match = re.fullmatch(r"/ho-so/(\d+)\?da=tao", location)
    assert match, location
    return int(match.group(1))


# -- signing in -------------------------------------------------------------------------
def test_sign_in_sets_an_httponly_samesite_cookie_and_out_again(site: Site) -> None:
    browser = site.client()
    assert browser.get("/").status_code == 303
    assert browser.get("/hop-thu").headers["location"] == "/dang-nhap?next=/hop-thu"
    page = browser.get("/dang-nhap?next=/hop-thu")
    assert page.status_code == 200 and "Mã đăng nhập" in page.text
    answer = browser.post("/dang-nhap", data={"csrf": _csrf(page.text), "token": site.tokens["dan"], "next": "/hop-thu"})
    assert answer.status_code == 303 and answer.headers["location"] == "/hop-thu"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    inbox = browser.get("/hop-thu")
    assert inbox.status_code == 200 and "Nguyễn Văn Dân" in inbox.text
    assert "script-src 'none'" in inbox.headers["content-security-policy"]
    out = browser.post("/dang-xuat", data={"csrf": _csrf(inbox.text, "/dang-xuat")})
    assert out.status_code == 303
    assert browser.get("/hop-thu").status_code == 303


def test_secure_cookie_when_the_settings_say_so(site: Site) -> None:
    settings = site.services.settings.model_copy(update={"secure_cookies": True})
    services = Services(settings, *(getattr(site.services, f) for f in ("store", "signer", "calendar", "cases", "compiled")))
    browser = TestClient(create_app(settings, services=services), base_url="https://testserver", follow_redirects=False)
    page = browser.get("/dang-nhap")
    answer = browser.post("/dang-nhap", data={"csrf": _csrf(page.text), "token": site.tokens["dan"]})
    assert "secure" in answer.headers["set-cookie"].lower()


def test_sign_in_refuses_a_wrong_token_and_a_missing_csrf(site: Site) -> None:
    browser = site.client()
    page = browser.get("/dang-nhap")
    wrong = browser.post("/dang-nhap", data={"csrf": _csrf(page.text), "token": "tg_not-a-token"})
    assert wrong.status_code == 401 and "Mã đăng nhập không đúng" in wrong.text
    assert "set-cookie" not in wrong.headers or "tinhgon_session" not in wrong.headers["set-cookie"]
    forged = site.client().post("/dang-nhap", data={"token": site.tokens["dan"]})
    assert forged.status_code == 403 and "mã chống giả mạo" in forged.text
    assert "tinhgon_session" not in forged.headers.get("set-cookie", "")


def test_next_is_kept_on_this_site(site: Site) -> None:
    browser = site.client()
    page = browser.get("/dang-nhap")
    answer = browser.post("/dang-nhap", data={"csrf": _csrf(page.text), "token": site.tokens["dan"], "next": "//evil.example/"})
    assert answer.headers["location"] == "/"


def test_a_revoked_token_ends_the_session(site: Site) -> None:
    browser = site.client("dan")
    assert browser.get("/ho-so").status_code == 200
    with site.services.store.unit() as uow:
        revoke_tokens(uow, "dan")
    assert browser.get("/ho-so").status_code == 303


# -- pages -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/", ["Danh mục thủ tục", "Đăng ký khai sinh", "Chi phí tuân thủ", "v1 → v2", "%"]),
        (f"/thu-tuc/{CODE}/1", ["Chỉ số", "Phát hiện", "Dữ liệu nhà nước đã có", "Sơ đồ quy trình", "<svg", "đã công bố"]),
        (f"/thu-tuc/{CODE}/so-sanh/1/2", ["Chỉ số trước và sau", "Bỏ hoặc gộp", "Các sửa tự động", 'class="node step removed']),
        ("/hop-thu", ["Hộp thư", "Không có việc nào"]),
        ("/ho-so", ["Hồ sơ", "Chưa có hồ sơ nào"]),
        (f"/ho-so/moi/{CODE}", ["Nộp hồ sơ: Đăng ký khai sinh", 'type="date"', 'type="checkbox"', "<select", "Họ tên trẻ"]),
        ("/thu-tuc/tai-len", ["Tải định nghĩa thủ tục lên", 'type="file"', "<textarea"]),
    ],
)
def test_pages_render_in_vietnamese(site: Site, url: str, words: list[str]) -> None:
    page = site.client("reform").get(url)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="vi">' in page.text
    for word in words:
        assert word in page.text, word
    assert "http://" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )


def test_the_stylesheet_is_served_by_the_app(site: Site) -> None:
    css = site.app.get("/static/tinhgon.css")
    assert css.status_code == 200 and "qua-han" in css.text


def test_the_pages_are_not_in_the_api_schema(site: Site) -> None:
    paths = site.app.get("/openapi.json").json()["paths"]
    assert all(p.startswith("/api/") for p in paths)


def test_unknown_things_are_404_pages(site: Site) -> None:
    browser = site.client("dan")
    for url in ("/thu-tuc/NOPE/1", f"/thu-tuc/{CODE}/9", "/ho-so/999", "/ho-so/abc", "/ho-so/moi/NOPE"):
        page = browser.get(url)
        assert page.status_code in (404, 422), url
        assert "Không" in page.text


def test_upload_needs_the_reform_permission(site: Site) -> None:
    browser = site.client("dan")
    assert browser.get("/thu-tuc/tai-len").status_code == 403
    page = browser.get("/")
    refused = browser.post("/thu-tuc/tai-len", data={"csrf": "x", "text": SMALL})
    assert refused.status_code == 403
    assert "Tải định nghĩa lên" not in page.text


# -- CSRF ----------------------------------------------------------------------------------
def test_posts_without_the_right_csrf_token_change_nothing(site: Site) -> None:
    browser = site.client("reform")
    page = browser.get("/thu-tuc/tai-len")
    stored = browser.post("/thu-tuc/tai-len", data={"csrf": _csrf(page.text, "/thu-tuc/tai-len"), "text": SMALL})
    assert stored.status_code == 303 and stored.headers["location"] == "/thu-tuc/T-XSS/1?da=tai-len"
    proc = browser.get("/thu-tuc/T-XSS/1")
    publish = "/thu-tuc/T-XSS/1/cong-bo"
    for data in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": _csrf(proc.text, "/thu-tuc/T-XSS/1/don-gian-hoa")}):
        refused = browser.post(publish, data=data)
        assert refused.status_code == 403, data
        assert "mã chống giả mạo" in refused.text and "không có gì bị thay đổi" in refused.text
    other = site.client("dan").get("/")  # another session's token is no good either
    assert browser.post(publish, data={"csrf": _csrf(other.text, "/dang-xuat")}).status_code == 403
    with site.services.store.unit(write=False) as uow:
        assert uow.procedure("T-XSS", 1).status == "draft"
    assert browser.post(publish, data={"csrf": _csrf(proc.text, publish)}).status_code == 303
    with site.services.store.unit(write=False) as uow:
        assert uow.procedure("T-XSS", 1).status == "published"


def test_a_case_action_without_csrf_is_refused(site: Site) -> None:
    case = _start(site, "dan")
    browser = site.client("dan")
    refused = browser.post(f"/ho-so/{case}/xu-ly", data={"step": "nop_ho_so", "outcome": "done"})
    assert refused.status_code == 403
    refused = browser.post(f"/ho-so/{case}/rut", data={"csrf": "nope"})
    assert refused.status_code == 403
    view = site.cases.get(_actor(site, "dan"), case)
    assert view.version == 1 and view.status == "open"


# -- escaping ------------------------------------------------------------------------------
def test_a_script_in_a_definition_is_shown_as_text(site: Site) -> None:
    browser = site.client("reform")
    page = browser.get("/thu-tuc/tai-len")
    assert browser.post("/thu-tuc/tai-len", data={"csrf": _csrf(page.text, "/thu-tuc/tai-len"), "text": SMALL}).status_code == 303
    publish = "/thu-tuc/T-XSS/1/cong-bo"
    proc = browser.get("/thu-tuc/T-XSS/1")
    browser.post(publish, data={"csrf": _csrf(proc.text, publish)})
    for url in ("/", "/thu-tuc/T-XSS/1", "/ho-so/moi/T-XSS"):
        text = browser.get(url).text
        assert "<script" not in text and "<b>in đậm" not in text, url
        assert "&lt;b&gt;in đậm" in text, url
    shown = browser.get("/thu-tuc/T-XSS/1").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown  # in the diagram's text
    case = _start(site, "dan", code="T-XSS", data={"f_ho_ten": XSS})
    text = site.client("dan").get(f"/ho-so/{case}").text
    assert "<script" not in text and text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2


def test_upload_shows_every_error_by_line(site: Site) -> None:
    browser = site.client("reform")
    page = browser.get("/thu-tuc/tai-len")
    bad = SMALL.replace("role: can_bo", "role: nobody").replace("duration: 1d", "duration: 3 days")
    answer = browser.post("/thu-tuc/tai-len", data={"csrf": _csrf(page.text, "/thu-tuc/tai-len"), "text": bad})
    assert answer.status_code == 422
    assert "Định nghĩa chưa hợp lệ: 2 lỗi" in answer.text
    errors = re.findall(r'<li><a href="#dong-(\d+)">dòng \1</a> <code>(văn-bản-dán\.yaml:(\d+): [^<]*)</code></li>', answer.text)
    assert len(errors) == 2, answer.text
    for line, text, again in errors:
        assert line == again and re.match(r"văn-bản-dán\.yaml:\d+: steps\[1\]\.(role|duration): ", text), text
        # the line the error links to is in the numbered listing, marked
        assert f'<li id="dong-{line}" class="bad"><code>' in answer.text
        written = bad.splitlines()[int(line) - 1]
        assert ("nobody" in written) or ("3 days" in written), written
    assert answer.text.count('<li id="dong-') == len(bad.splitlines())
    files = {"file": ("thu-tuc.yaml", bad.encode(), "application/yaml")}
    answer = browser.post("/thu-tuc/tai-len", data={"csrf": _csrf(page.text, "/thu-tuc/tai-len")}, files=files)
    assert answer.status_code == 422 and "thu-tuc.yaml:" in answer.text and "thu-tuc.yaml, theo từng dòng" in answer.text
    decomposed = unicodedata.normalize("NFD", SMALL)
    assert decomposed != SMALL
    again = browser.post("/thu-tuc/tai-len", data={"csrf": _csrf(page.text, "/thu-tuc/tai-len"), "text": decomposed})
    assert again.status_code == 303
    stored = site.services.store  # the page stores the text composed (NFC), as people mean it
    with stored.unit(write=False) as uow:
        assert uow.procedure("T-XSS", 1).body == SMALL
    clash = browser.post("/thu-tuc/tai-len", data={"csrf": _csrf(page.text, "/thu-tuc/tai-len"), "text": SMALL})
    assert clash.status_code == 409 and "Đã có thủ tục cùng mã và phiên bản" in clash.text


def test_simplify_and_publish_buttons(site: Site) -> None:
    browser = site.client("reform")
    page = browser.get("/thu-tuc/tai-len")
    browser.post("/thu-tuc/tai-len", data={"csrf": _csrf(page.text, "/thu-tuc/tai-len"), "text": SMALL})
    proc = browser.get("/thu-tuc/T-XSS/1")
    simplify = "/thu-tuc/T-XSS/1/don-gian-hoa"
    made = browser.post(simplify, data={"csrf": _csrf(proc.text, simplify)})
    assert made.status_code == 303 and made.headers["location"] == "/thu-tuc/T-XSS/2?da=don-gian-hoa"
    v2 = browser.get(made.headers["location"])
    assert "Đã tạo phiên bản đơn giản hóa" in v2.text and "bản nháp" in v2.text
    again = browser.post(simplify, data={"csrf": _csrf(proc.text, simplify)})
    assert again.status_code == 409 and "Không tạo được phiên bản 2" in again.text
    publish = "/thu-tuc/T-XSS/2/cong-bo"
    done = browser.post(publish, data={"csrf": _csrf(v2.text, publish)})
    assert done.status_code == 303
    assert "Đã công bố" in browser.get(done.headers["location"]).text
    catalog = browser.get("/").text
    assert "v1 → v2" in catalog and "/thu-tuc/T-XSS/so-sanh/1/2" in catalog
    dan = site.client("dan")
    assert dan.post(simplify, data={"csrf": _csrf(dan.get("/").text, "/dang-xuat")}).status_code == 403


# -- a case through the forms ----------------------------------------------------------------
def _actor(site: Site, user: str) -> Actor:
    found = authenticate(site.services.store, site.tokens[user])
    assert found is not None
    return found.actor


GOOD = {
    "f_ho_ten_tre": "Nguyễn Thị Bé",
    "f_ngay_sinh": "2027-03-01",
    "f_cha_me_da_ket_hon": "1",
    "f_quan_he_nguoi_di_khai": "me",
    "f_so_ban_sao_trich_luc": "2",
    "unit": UNIT,
}


def _start(site: Site, user: str, *, code: str = CODE, data: dict[str, str] | None = None) -> int:
    browser = site.client(user)
    action = f"/ho-so/moi/{code}"
    form = browser.get(action)
    answer = browser.post(action, data={"csrf": _csrf(form.text, action), **(data or GOOD), "unit": UNIT})
    assert answer.status_code == 303, answer.text
    return _case_id(answer.headers["location"])


def _act(site: Site, user: str, case: int, step: str, outcome: str, **extra: object) -> str:
    browser = site.client(user)
    page = browser.get(f"/ho-so/{case}")
    assert page.status_code == 200
    assert f'id="act-{step}"' in page.text, f"{user} has no form for {step}"
    action = f"/ho-so/{case}/xu-ly"
    version = re.search(rf'id="act-{step}">.*?name="version" value="(\d+)"', page.text, re.S)
    assert version
    data = {"csrf": _csrf(page.text, action), "step": step, "outcome": outcome, "version": version.group(1), **extra}
    answer = browser.post(action, data=data)
    if answer.status_code == 303:
        return browser.get(answer.headers["location"]).text
    return f"{answer.status_code}\n{answer.text}"


def test_start_form_shows_each_error_next_to_its_field(site: Site) -> None:
    browser = site.client("dan")
    action = f"/ho-so/moi/{CODE}"
    form = browser.get(action)
    bad = {"csrf": _csrf(form.text, action), "f_ho_ten_tre": "", "f_ngay_sinh": "2027-02-30", "f_so_ban_sao_trich_luc": "hai"}
    answer = browser.post(action, data={**bad, "unit": UNIT})
    assert answer.status_code == 422
    text = answer.text
    assert "xem lỗi ở từng trường" in text
    assert re.search(r'id="field-so_ban_sao_trich_luc">.*?Phải là một số nguyên', text, re.S)
    assert 'value="hai"' in text  # what was typed is kept
    answer = browser.post(action, data={**bad, "f_so_ban_sao_trich_luc": "2", "unit": UNIT})
    text = answer.text
    for field, message in [
        ("ho_ten_tre", "Bắt buộc nhập."),
        ("ngay_sinh", "phải là một ngày hợp lệ"),
        ("quan_he_nguoi_di_khai", "Bắt buộc nhập."),
    ]:
        assert re.search(rf'id="field-{field}">(?:(?!id="field-).)*?{re.escape(message)}', text, re.S), field
    assert site.cases.list_cases(_actor(site, "dan"))[0] == []


def test_a_case_through_its_life_with_the_guide_once_refusal(site: Site) -> None:
    case = _start(site, "dan")
    page = site.client("dan").get(f"/ho-so/{case}?da=tao")
    assert "Đã nộp hồ sơ." in page.text and "đang giải quyết" in page.text and "<svg" in page.text
    assert 'class="node step kind-submit status-active' in page.text  # the diagram coloured by status
    assert "Rút hồ sơ" in page.text
    text = _act(site, "dan", case, "nop_ho_so", "done")
    assert "Đã ghi nhận quyết định." in text
    inbox = site.client("mot_cua").get("/hop-thu").text
    assert f'href="/ho-so/{case}"' in inbox and "Tiếp nhận, kiểm tra thành phần hồ sơ" in inbox
    # the one-stop desk returns it, listing what is missing
    text = _act(
        site, "mot_cua", case, "tiep_nhan", "huong_dan_bo_sung", comment="Thiếu giấy chứng sinh", missing="giay_chung_sinh"
    )
    assert "Đã ghi nhận quyết định." in text
    mine = site.client("dan").get(f"/ho-so/{case}").text
    assert "Cần bổ sung" in mine and "Giấy chứng sinh (bản chính)" in mine and "Thiếu giấy chứng sinh" in mine
    _act(site, "dan", case, "nop_ho_so", "done")
    _act(site, "mot_cua", case, "tiep_nhan", "tiep_nhan")
    # a second return to the applicant is refused, naming the first
    refused = _act(site, "tu_phap", case, "kiem_tra", "yeu_cau_bo_sung")
    status, _, body = refused.partition("\n")
    assert status == "409"
    assert "Không thể trả hồ sơ về người nộp lần thứ hai" in body
    assert "“Tiếp nhận, kiểm tra thành phần hồ sơ và viết giấy hẹn”" in body and "Công chức một cửa" in body
    assert "hướng dẫn một lần" in body
    # nobody else may act on it; another unit does not even see it
    page = site.client("chu_tich").get(f"/ho-so/{case}")
    assert page.status_code == 200 and 'id="act-' not in page.text
    forged = _forged_action(site, "chu_tich", case, "kiem_tra", "hop_le")
    assert forged.status_code == 403 and "Bạn không có quyền xử lý bước “Công chức tư pháp - hộ tịch kiểm tra" in forged.text
    assert site.client("xa_khac").get(f"/ho-so/{case}").status_code == 404
    assert _forged_action(site, "xa_khac", case, "kiem_tra", "hop_le").status_code == 404
    # on to the end
    _act(site, "tu_phap", case, "kiem_tra", "hop_le")
    _act(site, "tu_phap", case, "doi_chieu_csdl", "done")
    _act(site, "tu_phap", case, "ghi_so", "done")
    _act(site, "chu_tich", case, "ky", "ky")
    _act(site, "tu_phap", case, "cap_ban_sao", "done")
    _act(site, "mot_cua", case, "tra_ket_qua", "done")
    text = _act(site, "dan", case, "nhan_ket_qua", "done")
    assert "đã hoàn thành" in text and 'id="act-' not in text and "Rút hồ sơ" not in text
    for words in (
        "Tạo hồ sơ",
        "Hệ thống tự thực hiện",
        "Lấy số định danh",
        "Hướng dẫn bổ sung hồ sơ",  # the outcome by its label
        "Yêu cầu bổ sung: Giấy chứng sinh",
    ):
        assert words in text, words
    stale = _forged_action(site, "dan", case, "nhan_ket_qua", "done")
    assert stale.status_code == 409 and "Hồ sơ đã hoàn thành, không nhận thêm thao tác nào." in stale.text
    listed = site.client("dan").get("/ho-so").text
    assert f'href="/ho-so/{case}"' in listed and "đã hoàn thành" in listed


def _forged_action(site: Site, user: str, case: int, step: str, outcome: str) -> Response:
    """A well-formed post (right CSRF) for a step the page did not offer."""
    browser = site.client(user)
    page = browser.get("/")
    token = csrf_token(browser.cookies[SESSION_COOKIE], f"/ho-so/{case}/xu-ly")
    assert page.status_code == 200
    return browser.post(f"/ho-so/{case}/xu-ly", data={"csrf": token, "step": step, "outcome": outcome})


def test_a_stale_page_is_refused_and_the_applicant_withdraws(site: Site) -> None:
    case = _start(site, "dan")
    browser = site.client("dan")
    page = browser.get(f"/ho-so/{case}").text
    _act(site, "dan", case, "nop_ho_so", "done")
    stale = browser.post(
        f"/ho-so/{case}/rut", data={"csrf": _csrf(page, f"/ho-so/{case}/rut"), "version": "1", "comment": "Nộp nhầm"}
    )
    assert stale.status_code == 409 and "Hồ sơ vừa được cập nhật" in stale.text
    page = browser.get(f"/ho-so/{case}").text
    assert site.client("mot_cua").post(f"/ho-so/{case}/rut", data={"csrf": "x"}).status_code == 403
    done = browser.post(f"/ho-so/{case}/rut", data={"csrf": _csrf(page, f"/ho-so/{case}/rut"), "comment": "Nộp nhầm"})
    assert done.status_code == 303
    text = browser.get(done.headers["location"]).text
    assert "Đã rút hồ sơ." in text and "đã rút" in text and "“Nộp nhầm”" in text


@pytest.mark.parametrize("version", ["²", "1.0", " 1", "9" * 30, ""])
@pytest.mark.parametrize("form", ["xu-ly", "rut"])
def test_a_forged_page_version_is_refused_as_stale(site: Site, form: str, version: str) -> None:
    # Only ASCII digits are a version; anything else a form sends is a page
    # no case was ever at (refused like a stale one), not a reason to skip
    # the check, nor a server error.
    case = _start(site, "dan")
    browser = site.client("dan")
    page = browser.get(f"/ho-so/{case}").text
    action = f"/ho-so/{case}/{form}"
    sent = {"csrf": _csrf(page, action), "version": version, "step": "nop_ho_so", "outcome": "done", "comment": ""}
    before = site.cases.get(_actor(site, "dan"), case)
    refused = browser.post(action, data=sent)
    assert refused.status_code == 409 and "Hồ sơ vừa được cập nhật" in refused.text
    assert site.cases.get(_actor(site, "dan"), case) == before


def test_the_applicant_corrects_the_case_data_while_answering_a_return(site: Site) -> None:
    case = _start(site, "dan")
    _act(site, "dan", case, "nop_ho_so", "done")
    _act(site, "mot_cua", case, "tiep_nhan", "huong_dan_bo_sung", missing="giay_chung_sinh")
    page = site.client("dan").get(f"/ho-so/{case}").text
    assert "Sửa, bổ sung thông tin hồ sơ" in page and '<details class="amend" open>' in page  # open on the return
    assert 'value="Nguyễn Thị Bé"' in page
    # an unreadable number is shown next to its field, and nothing is stored
    fields = {k: v for k, v in GOOD.items() if k != "unit"}
    before = site.cases.get(_actor(site, "dan"), case)
    refused = _act(site, "dan", case, "nop_ho_so", "done", amend="1", **{**fields, "f_so_ban_sao_trich_luc": "hai"})
    assert refused.startswith("422") and "Thông tin hồ sơ chưa hợp lệ" in refused
    assert site.cases.get(_actor(site, "dan"), case) == before
    # a correction goes with the answer, and the audit records it
    text = _act(site, "dan", case, "nop_ho_so", "done", amend="1", **{**fields, "f_ho_ten_tre": "Nguyễn Thị Bé Na"})
    assert "Đã ghi nhận quyết định." in text
    after = site.cases.get(_actor(site, "dan"), case)
    assert after.data["ho_ten_tre"] == "Nguyễn Thị Bé Na" and after.data["so_ban_sao_trich_luc"] == 2
    events = site.cases.events(_actor(site, "dan"), case)
    assert [e.data["changes"] for e in events if e.type == "data"] == [{"ho_ten_tre": ["Nguyễn Thị Bé", "Nguyễn Thị Bé Na"]}]
    # officials get no data form on their steps
    assert "Sửa, bổ sung thông tin hồ sơ" not in site.client("mot_cua").get(f"/ho-so/{case}").text


def test_a_wrong_address_is_a_page_for_browsers_and_a_problem_for_the_api(site: Site) -> None:
    browser = site.client("dan")
    answer = browser.get("/khong-co-trang-nay", headers={"Accept": "text/html"})
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert "Không có trang này" in answer.text
    api = browser.get("/api/khong-co", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
    assert browser.get("/khong-co-trang-nay").headers["content-type"] == "application/problem+json"  # no browser, no page


def test_a_nul_character_in_a_form_is_refused_by_its_field_or_the_comment(site: Site) -> None:
    """Which PostgreSQL cannot store: the engine refuses it on every
    database, and the pages say so in Vietnamese (the withdraw page had let
    the engine's refusal through as a 500)."""
    browser = site.client("dan")
    action = f"/ho-so/moi/{CODE}"
    form = browser.get(action)
    answer = browser.post(action, data={**GOOD, "csrf": _csrf(form.text, action), "f_ho_ten_tre": "Bé\x00"})
    assert answer.status_code == 422
    assert re.search(r'id="field-ho_ten_tre">.*?Không được chứa ký tự NUL', answer.text, re.S)
    assert site.cases.list_cases(_actor(site, "dan"))[0] == []
    case = _start(site, "dan")
    text = _act(site, "dan", case, "nop_ho_so", "done", comment="a\x00b")
    assert text.startswith("422") and "Ý kiến không được chứa ký tự NUL" in text
    page = browser.get(f"/ho-so/{case}").text
    refused = browser.post(f"/ho-so/{case}/rut", data={"csrf": _csrf(page, f"/ho-so/{case}/rut"), "comment": "\x00"})
    assert refused.status_code == 422 and "Ý kiến không được chứa ký tự NUL" in refused.text
    assert site.cases.get(_actor(site, "dan"), case).version == 1


def test_a_comment_over_the_limit_is_refused_on_the_pages_as_by_the_api(site: Site) -> None:
    case = _start(site, "dan")
    page = site.client("dan").get(f"/ho-so/{case}").text
    assert f'maxlength="{COMMENT_LENGTH}"' in page  # the browser stops there already
    text = _act(site, "dan", case, "nop_ho_so", "done", comment="x" * (COMMENT_LENGTH + 1))
    assert text.startswith("422") and "Ý kiến dài 4.001 ký tự; tối đa 4.000 ký tự" in text
    assert site.cases.get(_actor(site, "dan"), case).version == 1
    _act(site, "dan", case, "nop_ho_so", "done", comment="x" * COMMENT_LENGTH)
    assert site.cases.get(_actor(site, "dan"), case).version == 2


def test_a_form_over_the_limit_is_a_413_page_declared_or_not(site: Site) -> None:
    browser = site.client("dan")
    action = f"/ho-so/moi/{CODE}"
    token = _csrf(browser.get(action).text, action)
    limit = site.services.settings.max_body_bytes
    body = urlencode({**GOOD, "csrf": token, "f_ho_ten_tre": "B" * limit}).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for sent in (body, chunks()):
        answer = browser.post(action, content=sent, headers=form)
        assert answer.status_code == 413 and "Nội dung gửi lên quá lớn" in answer.text
        assert answer.headers["content-type"].startswith("text/html")
    assert site.cases.list_cases(_actor(site, "dan"))[0] == []


def test_money_is_written_to_the_whole_dong_on_the_pages(site: Site) -> None:
    # 1.001193's processing cost has a fraction of a đồng (the metrics keep it)
    with site.services.store.unit() as uow:
        rows = sorted((r for r in uow.procedures() if r.code == CODE), key=lambda r: r.version)
    exact = analysis(load_text(rows[0].body, "<stored>"))["metrics"]["processing_cost"]
    assert exact != round(exact), "the definition no longer tests rounding"
    whole, fraction = f"{round(exact):,}".replace(",", "."), f"{exact:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    for url in (f"/thu-tuc/{CODE}/1", f"/thu-tuc/{CODE}/so-sanh/1/2"):
        page = site.client("reform").get(url).text
        assert whole in page and fraction not in page, url


def test_the_catalog_page_measures_the_served_catalog_against_the_programmes(site: Site) -> None:
    catalog = read_catalog_file(DEFINITIONS / "catalog.yaml")
    parts = (getattr(site.services, f) for f in ("store", "signer", "calendar", "cases", "compiled"))
    services = Services(site.services.settings, *parts, catalog)
    browser = TestClient(create_app(site.services.settings, services=services), follow_redirects=False)
    answer = browser.post("/dang-nhap", data={"csrf": _csrf(browser.get("/dang-nhap").text), "token": site.tokens["reform"]})
    assert answer.status_code == 303
    page = browser.get("/").text
    assert catalog.name is not None and html.escape(catalog.name) in page
    assert "Quyết định 1085/QĐ-TTg" in page and "giảm 20% số thủ tục" in page
    assert "43.200 đ/giờ" in page
    assert "Hướng tới:" in page  # the path to each target the catalog misses
    # the procedure's costs on its page follow the one price list
    unpriced = site.client("reform").get("/thu-tuc/1.001193/1").text
    priced_page = browser.get("/thu-tuc/1.001193/1").text
    assert unpriced != priced_page


LABELLED = definition_text(
    """\
    fields:
      - {id: loai, name: Loại, type: enum, required: true, values: [{value: ha_si_quan, label: Hạ sĩ quan}, binh_si]}
    roles:
      - {id: dan, name: Người dân, kind: applicant}
      - {id: mot_cua, name: Một cửa, kind: office}
    documents:
      - {id: ket_qua, name: Kết quả, deliverable: true}
    steps:
      - {id: nop, name: Nộp, role: dan, kind: submit}
      - id: xet
        name: Xét
        role: mot_cua
        outputs: [ket_qua]
        outcomes:
          dong_y: {effect: proceed, label: Đồng ý cấp}
          tra_lai: {return: nop, label: Yêu cầu bổ sung giấy tờ}
          khong_dat: reject
    """,
    head="format: tinhgon/1\ncode: T-NHAN\nname: Thủ tục có nhãn\nversion: 1\n",
)


def test_pages_show_the_labels_of_outcomes_and_values_never_their_ids(site: Site) -> None:
    publish_definition(site.services.store, LABELLED)
    form = site.client("dan").get("/ho-so/moi/T-NHAN").text
    assert ">Hạ sĩ quan</option>" in form and ">binh si</option>" in form and ">ha_si_quan<" not in form
    case = _start(site, "dan", code="T-NHAN", data={"f_loai": "ha_si_quan"})
    _act(site, "dan", case, "nop", "done")
    page = site.client("mot_cua").get(f"/ho-so/{case}").text
    assert "Đồng ý cấp" in page and "Yêu cầu bổ sung giấy tờ" in page and "khong dat" in page
    assert "dong y" not in page and "tra lai" not in page
    assert "Hạ sĩ quan" in page  # the case's data, in words
    done = _act(site, "mot_cua", case, "xet", "dong_y")
    assert "Đồng ý cấp" in done  # the steps table and the timeline name the decision by its label
