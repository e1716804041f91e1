"""The pages in a real browser: Debian's Chromium driven by Playwright
against ``tinhgon serve --demo`` on SQLite, as a user would go through them.

Playwright cannot download its own browsers here, so the test launches
``/usr/bin/chromium`` (``scripts/setup`` installs it). Without it the tests
are skipped with the reason, except in CI (``$CI`` set), where they fail.
Each page visited is kept as a screenshot in ``$TINHGON_ARTIFACTS``, else
``tests/browser/artifacts/``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import DEFINITIONS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CODE = "1.001193"  # Đăng ký khai sinh: few steps, returns to the applicant at two of them
TOKEN_LINE = re.compile(r"^mã đăng nhập của (\S+)(?: \([^)]*\))?: (\S+)$")


def _need_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (scripts/setup installs Debian's chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing + "; CI must run the browser tests")
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _need_browser()
    where = tmp_path_factory.mktemp("serve")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINHGON_")}
    tinhgon = Path(sys.executable).with_name("tinhgon")
    process = subprocess.Popen(
        [str(tinhgon), "serve", "--demo", "--definitions", str(DEFINITIONS), "--port", str(port), "--log-level", "warning"],
        cwd=where,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    server = Server(f"http://127.0.0.1:{port}", {}, process)
    try:
        for line in process.stdout:
            server.output.append(line)
            match = TOKEN_LINE.match(line.strip())
            if match:
                server.tokens[match.group(1)] = match.group(2)
            if "đang phục vụ tại" in line:
                break
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(server.url + "/dang-nhap", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("tinhgon serve did not start:\n" + "".join(server.output)) from None
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("TINHGON_ARTIFACTS") or ROOT / "tests" / "browser" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class People:
    """One browser context (cookie jar) per person, signed in through the form."""

    def __init__(self, browser: object, server: Server, artifacts: Path) -> None:
        self.browser, self.server, self.artifacts = browser, server, artifacts
        self.pages: dict[str, object] = {}
        self.shots = 0

    def page(self, who: str) -> object:
        if who not in self.pages:
            context = self.browser.new_context(base_url=self.server.url, locale="vi-VN", viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
            page = context.new_page()
            page.goto("/dang-nhap")
            page.fill("#token", self.server.tokens[who])
            page.click("button[type=submit]")
            page.wait_for_url(self.server.url + "/")
            self.pages[who] = page
        return self.pages[who]

    def shot(self, page: object, name: str) -> Path:
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path

    def act(
        self, who: str, case_url: str, step: str, outcome: str, *, missing: tuple[str, ...] = (), comment: str = ""
    ) -> object:
        page = self.page(who)
        page.goto(case_url)  # type: ignore[attr-defined]
        form = page.locator(f"#act-{step}")  # type: ignore[attr-defined]
        assert form.count() == 1, f"{who} has no form for {step}"
        if comment:
            form.locator("textarea[name=comment]").fill(comment)
        for doc in missing:
            form.locator(f"input[name=missing][value={doc}]").check()
        form.locator(f"button[name=outcome][value={outcome}]").click()
        page.wait_for_load_state()  # type: ignore[attr-defined]
        return page


@pytest.fixture(scope="module")
def people(server: Server, artifacts: Path) -> Iterator[People]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield People(browser, server, artifacts)
        finally:
            browser.close()


def test_demo_prints_a_token_for_each_person(server: Server) -> None:
    for who in ("admin", "demo_reform", "demo_applicant", "demo_mot_cua", "demo_cong_chuc_tu_phap", "demo_chu_tich_xa"):
        assert who in server.tokens, "".join(server.output)


def test_catalog_procedure_and_compare_pages(people: People) -> None:
    page = people.page("demo_reform")
    assert page.locator("h1").inner_text() == "Danh mục thủ tục"  # type: ignore[attr-defined]
    assert page.locator("table.data:not(.targets) tbody tr").count() == 10  # type: ignore[attr-defined]
    people.shot(page, "danh-muc")
    page.click(f"a[href='/thu-tuc/{CODE}/so-sanh/1/2']")  # type: ignore[attr-defined]
    page.wait_for_url(f"**/thu-tuc/{CODE}/so-sanh/1/2")  # type: ignore[attr-defined]
    assert "Đăng ký khai sinh: phiên bản 1 → 2" in page.locator("h1").inner_text()  # type: ignore[attr-defined]
    assert page.locator(".diagram svg .node.removed").count() >= 1  # type: ignore[attr-defined]
    people.shot(page, "so-sanh")
    page.goto(f"/thu-tuc/{CODE}/1")  # type: ignore[attr-defined]
    assert page.locator(".finding").count() >= 3  # type: ignore[attr-defined]
    assert page.get_by_role("button", name=re.compile("Đơn giản hóa")).count() == 1  # type: ignore[attr-defined]
    people.shot(page, "thu-tuc")
    page.goto("/thu-tuc/tai-len")  # type: ignore[attr-defined]
    page.fill("#text", "format: tinhgon/1\ncode: X-1\nname: Thử\nversion: 1\nroles: []\nsteps: []\n")  # type: ignore[attr-defined]
    page.click("form.card button[type=submit]")  # type: ignore[attr-defined]
    assert page.locator("ol.problems li").count() >= 1  # type: ignore[attr-defined]
    first = page.locator("ol.problems li").first  # type: ignore[attr-defined]
    assert re.match(r"dòng 1 văn-bản-dán\.yaml:1: ", first.inner_text())
    first.locator("a").click()  # the error's link goes to its line in the numbered listing
    assert page.url.endswith("#dong-1")  # type: ignore[attr-defined]
    assert page.locator("ol.listing li").count() == 6  # type: ignore[attr-defined]
    people.shot(page, "tai-len-loi")


def test_a_case_from_the_applicant_through_every_official(people: People) -> None:
    dan = people.page("demo_applicant")
    dan.goto(f"/ho-so/moi/{CODE}")  # type: ignore[attr-defined]
    dan.click("form.fields button[type=submit]")  # type: ignore[attr-defined]
    assert dan.locator("#field-ho_ten_tre .field-error").inner_text() == "Bắt buộc nhập."  # type: ignore[attr-defined]
    people.shot(dan, "nop-ho-so-loi")
    dan.fill("#f_ho_ten_tre", "Nguyễn Thị Bé")  # type: ignore[attr-defined]
    dan.fill("#f_ngay_sinh", "2027-03-01")  # type: ignore[attr-defined]
    dan.check("input[name=f_cha_me_da_ket_hon]")  # type: ignore[attr-defined]
    dan.select_option("#f_quan_he_nguoi_di_khai", "me")  # type: ignore[attr-defined]
    dan.fill("#f_so_ban_sao_trich_luc", "2")  # type: ignore[attr-defined]
    people.shot(dan, "nop-ho-so")
    dan.click("form.fields button[type=submit]")  # type: ignore[attr-defined]
    dan.wait_for_url(re.compile(r".*/ho-so/\d+\?da=tao$"))  # type: ignore[attr-defined]
    case_url = dan.url.split("?")[0]  # type: ignore[attr-defined]
    assert dan.locator(".alert.ok").inner_text() == "Đã nộp hồ sơ."  # type: ignore[attr-defined]
    people.shot(dan, "ho-so-moi")
    people.act("demo_applicant", case_url, "nop_ho_so", "done")

    desk = people.page("demo_mot_cua")
    desk.goto("/hop-thu")  # type: ignore[attr-defined]
    assert desk.locator(f"a[href='{case_url.removeprefix(people.server.url)}']").count() == 1  # type: ignore[attr-defined]
    people.shot(desk, "hop-thu")
    page = people.act(
        "demo_mot_cua",
        case_url,
        "tiep_nhan",
        "huong_dan_bo_sung",
        missing=("giay_chung_sinh",),
        comment="Thiếu giấy chứng sinh bản chính",
    )
    assert page.locator(".alert.ok").inner_text() == "Đã ghi nhận quyết định."  # type: ignore[attr-defined]

    dan.goto(case_url)  # type: ignore[attr-defined]
    assert "Giấy chứng sinh (bản chính)" in dan.locator(".alert.info").inner_text()  # type: ignore[attr-defined]
    people.shot(dan, "tra-lai-nguoi-nop")
    people.act("demo_applicant", case_url, "nop_ho_so", "done")
    people.act("demo_mot_cua", case_url, "tiep_nhan", "tiep_nhan")

    page = people.act("demo_cong_chuc_tu_phap", case_url, "kiem_tra", "yeu_cau_bo_sung")
    message = page.locator(".alert.error").inner_text()  # type: ignore[attr-defined]
    assert "Không thể trả hồ sơ về người nộp lần thứ hai" in message and "hướng dẫn một lần" in message
    assert "Tiếp nhận, kiểm tra thành phần hồ sơ và viết giấy hẹn" in message
    people.shot(page, "huong-dan-mot-lan")
    page.click("label[for=zoom-ho-so]")  # type: ignore[attr-defined]
    page.locator(".diagram").screenshot(path=str(people.artifacts / "so-do-co-lon.png"))  # type: ignore[attr-defined]

    for who, step, outcome in [
        ("demo_cong_chuc_tu_phap", "kiem_tra", "hop_le"),
        ("demo_cong_chuc_tu_phap", "doi_chieu_csdl", "done"),
        ("demo_cong_chuc_tu_phap", "ghi_so", "done"),
        ("demo_chu_tich_xa", "ky", "ky"),
        ("demo_cong_chuc_tu_phap", "cap_ban_sao", "done"),
        ("demo_mot_cua", "tra_ket_qua", "done"),
    ]:
        page = people.act(who, case_url, step, outcome)
        assert page.locator(".alert.ok").count() == 1, page.locator(".alert").all_inner_texts()  # type: ignore[attr-defined]
        if step == "ky":
            people.shot(page, "chu-tich-ky")
    page = people.act("demo_applicant", case_url, "nhan_ket_qua", "done")
    assert page.locator(".lead .badge").inner_text() == "đã hoàn thành"  # type: ignore[attr-defined]
    assert page.locator("form.act").count() == 0  # type: ignore[attr-defined]
    people.shot(page, "hoan-thanh")
    page.goto("/ho-so")  # type: ignore[attr-defined]
    people.shot(page, "danh-sach-ho-so")
