"""What an operator reads: /healthz, /readyz, /metrics (and who may read
it), the action counters on both paths, JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api import metrics
from api.app import create_app
from api.logs import JsonFormatter, log_config
from api.services import Services
from api.settings import Settings
from engine.connection import connect
from tests.api.conftest import XUAT_NGU, Api

LOCAL = ("127.0.0.1", 40000)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def local_client(app: FastAPI) -> TestClient:
    return TestClient(app, client=LOCAL, raise_server_exceptions=False)


def test_healthz_and_readyz_answer_without_signing_in(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["revision"] == api.services.schema_head


def test_readyz_is_503_when_the_schema_is_behind(api: Api) -> None:
    with api.services.store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    response = api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "schema" and "tinhgon db upgrade" in response.json()["detail"]


def test_readyz_is_503_when_the_database_does_not_answer(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(engine: Any) -> str:
        raise DBAPIError("SELECT", None, OSError("connection refused"))

    monkeypatch.setattr("api.routes.health.current", unreachable)
    response = api.client.get("/readyz")
    assert response.status_code == 503 and response.json()["reason"] == "database"
    assert api.client.get("/healthz").status_code == 200  # the process still answers


def test_metrics_only_from_allowed_addresses(app: FastAPI, services: Services) -> None:
    with TestClient(app, client=("10.1.2.3", 5)) as far:
        assert far.get("/metrics").status_code == 404
    with local_client(app) as near:
        response = near.get("/metrics")
        assert response.status_code == 200 and "tinhgon_http_requests_total" in response.text
    settings = services.settings.model_copy(update={"metrics_allow": metrics.allowed_networks("10.0.0.0/8")})
    with TestClient(create_app(settings, services=services), client=("10.1.2.3", 5)) as far:
        assert far.get("/metrics").status_code == 200
    with pytest.raises(ValueError, match="'bogus' is neither"):
        Settings(metrics_allow="127.0.0.1,bogus")


def test_requests_are_counted_by_route_template(api: Api, world: dict[str, Any]) -> None:
    route = "/api/cases/{case_id}"
    before = sample("tinhgon_http_requests_total", method="GET", route=route, status="200")
    api.case(world["applicant"], world["case"]["id"])
    api.client.get("/api/cases/999999", headers=world["applicant"])
    assert sample("tinhgon_http_requests_total", method="GET", route=route, status="200") == before + 1
    assert sample("tinhgon_http_requests_total", method="GET", route=route, status="404") >= 1
    assert sample("tinhgon_http_request_duration_seconds_count", method="GET", route=route) >= 2
    text_ = local_client(api.client.app).get("/metrics").text  # type: ignore[arg-type]
    assert "/api/cases/999999" not in text_


def test_actions_are_counted_on_the_fast_path_and_the_endpoint(api: Api, world: dict[str, Any]) -> None:
    def count(result: str, reason: str = "") -> float:
        return sample("tinhgon_case_actions_total", action="act", result=result, reason=reason)

    case_id, officer = world["case"]["id"], world["officer"]
    accepted, replayed = count("accepted"), count("replayed")
    refused = {r: count("refused", r) for r in ("step-not-active", "unauthorized", "invalid-request", "forbidden")}
    # the endpoint's path (FastAPI reads "07" as 7; the fast path leaves it)
    key = {**officer, "Idempotency-Key": "k-1"}
    r = api.client.post(f"/api/cases/0{case_id}/actions", json={"step": "lap_danh_sach", "outcome": "done"}, headers=key)
    assert r.status_code == 200, r.text
    # the fast path: the same key replays, a step no longer active is refused
    r = api.client.post(f"/api/cases/{case_id}/actions", json={"step": "lap_danh_sach", "outcome": "done"}, headers=key)
    assert r.headers.get("idempotent-replayed") == "true"
    api.act(officer, case_id, "lap_danh_sach", "done", expect=409)
    api.act(world["colleague"], case_id, "nop_ban_khai", "done", expect=403)
    api.client.post(f"/api/cases/{case_id}/actions", json={"step": "x"})
    api.client.post(f"/api/cases/{case_id}/actions", json={"step": 5}, headers=officer)
    assert count("accepted") == accepted + 1 and count("replayed") == replayed + 1
    assert count("refused", "step-not-active") == refused["step-not-active"] + 1
    assert count("refused", "unauthorized") == refused["unauthorized"] + 1
    assert count("refused", "invalid-request") == refused["invalid-request"] + 1


def test_the_writer_queue_counts_the_action_being_written(services: Services) -> None:
    seen: list[float] = []

    def work(db: Any) -> None:
        seen.append(sample("tinhgon_sqlite_writer_queue"))

    asyncio.run(services.writing(work))
    assert seen == [1.0 if services.store.one_writer else 0.0]
    assert sample("tinhgon_sqlite_writer_queue") == 0.0


def test_analysis_time_and_sealer_lag(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    before = sample("tinhgon_analysis_seconds_count", operation="analysis")
    assert api.client.get(f"/api/procedures/{XUAT_NGU}/1/analysis", headers=api.reformer()).status_code == 200
    assert sample("tinhgon_analysis_seconds_count", operation="analysis") == before + 1
    metrics.set_sealer_lag(2.5)
    assert "tinhgon_audit_sealer_lag_seconds 2.5" in local_client(api.client.app).get("/metrics").text  # type: ignore[arg-type]
    metrics.set_sealer_lag(0)


def test_a_scrape_sums_every_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, metrics.MULTIPROC_ENV: str(folder)}
    worker = (
        "import os; from api import metrics as m; m.request_answered('GET', '/healthz', 200, 0.01);"
        " m.writer_joined(); print(os.getpid())"
    )
    pids = [
        int(subprocess.run([sys.executable, "-c", worker], env=env, check=True, capture_output=True, text=True).stdout)
        for _ in range(2)
    ]
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(folder))
    scraped = metrics.exposition().decode()
    assert 'tinhgon_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in scraped
    assert "tinhgon_sqlite_writer_queue 2.0" in scraped
    metrics.worker_gone(pids[0], str(folder))
    scraped = metrics.exposition().decode()
    assert "tinhgon_sqlite_writer_queue 1.0" in scraped  # a dead worker's queue is gone
    assert 'route="/healthz",status="200"} 2.0' in scraped  # its requests still count


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_access_lines_carry_the_route_never_the_token(app: FastAPI) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("tinhgon.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            client.get("/api/cases/42?cursor=x", headers={"Authorization": "Bearer tg_secret", "Cookie": "tinhgon_session=tg_c"})
    finally:
        access.removeHandler(handler)
        access.setLevel(logging.NOTSET)
    (line,) = _json_lines(stream)
    assert line["route"] == "/api/cases/{case_id}" and line["method"] == "GET" and line["status"] == 401
    assert line["level"] == "info" and line["logger"] == "tinhgon.access" and "time" in line and line["duration_ms"] >= 0
    assert "tg_secret" not in stream.getvalue() and "tg_c" not in stream.getvalue() and "42" not in line["message"]


def test_json_logs_keep_sql_parameters_out(database_url: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tinhgon.test")
    log.addHandler(handler)
    engine = connect(database_url)
    secret = "bí-mật-" + str(6 * 7)  # (the traceback quotes this file's source lines)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table WHERE x = :x"), {"x": secret})
    except DBAPIError:
        log.exception("lỗi\ndòng hai")
    finally:
        log.removeHandler(handler)
        engine.dispose()
    (line,) = _json_lines(stream)  # one line, the newline escaped
    assert line["message"] == "lỗi\ndòng hai" and "no_such_table" in line["error"]
    assert "bí-mật-42" not in stream.getvalue() and "b\\u00ed-m\\u1eadt" not in stream.getvalue()


def test_the_json_log_config_routes_every_logger_through_the_formatter() -> None:
    assert log_config("text", "info") is None
    config = log_config("json", "info")
    assert config is not None
    assert config["formatters"]["json"]["()"] == "api.logs.JsonFormatter"
    assert config["loggers"]["uvicorn.access"]["handlers"] == []  # replaced by tinhgon.access
    assert all(logger.get("handlers") in (["json"], []) for logger in config["loggers"].values())
