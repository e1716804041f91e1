"""The security headers are on every response: pages, JSON, problems, SVG,
static files, a 404 and a 500."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.headers import SECURITY_HEADERS
from tests.api.conftest import XUAT_NGU, Api


def _secured(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (name, headers)
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'none'" in headers["content-security-policy"]


def test_every_kind_of_response_carries_the_headers(api: Api, app: FastAPI) -> None:
    api.publish("che-do-xuat-ngu.v1")
    user = api.user("doc_gia")
    answers = [
        api.client.get("/api/procedures", headers=user),
        api.client.get(f"/api/procedures/{XUAT_NGU}/1/diagram.svg", headers=user),
        api.client.get("/api/procedures", headers={"Authorization": "Bearer sai"}),  # 401 problem
        api.client.get("/khong-co-trang-nay"),
        api.client.get("/static/tinhgon.css"),
        api.client.get("/dang-nhap"),
        api.client.get("/openapi.json"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 404, 200, 200, 200]
    assert answers[1].headers["content-type"].startswith("image/svg+xml")
    for answer in answers:
        _secured(answer)

    def boom() -> None:
        raise RuntimeError("lỗi thử")

    app.add_api_route("/api/thu-loi", boom)
    app.middleware_stack = None  # built again with the new route
    failed = TestClient(app, raise_server_exceptions=False).get("/api/thu-loi")
    assert failed.status_code == 500
    _secured(failed)
