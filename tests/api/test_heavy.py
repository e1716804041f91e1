"""Big definitions: worked on in a child process under limits, kept per
version, and shown folded (issue 17, item 2)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from api import reform_work
from api.offload import OFFLOAD_BYTES, LimitExceeded, Offload
from api.reform_work import checked_upload, measured
from api.routes.procedures import store_upload
from tests.api.conftest import Api, assert_problem
from tests.conftest import definition_text

YAML = {"Content-Type": "application/yaml"}


def review_chain(n: int, code: str = "DAI-1") -> str:
    """``n`` reviews of one document by one role, one after another: each later one repeats the one before."""
    steps = "".join(
        f"  - {{id: x{i}, name: Xét lần {i}, role: cb, kind: review, duration: 1h, inputs: [don]"
        + (", outputs: [kq]}\n" if i == n - 1 else "}\n")
        for i in range(n)
    )
    return (
        "format: tinhgon/1\n"
        f"code: {code}\nname: Thủ tục dài\nversion: 1\n"
        "roles:\n  - {id: dv, name: Người đề nghị, kind: applicant}\n  - {id: cb, name: Cán bộ, kind: office}\n"
        "documents:\n  - {id: don, name: Đơn, from: applicant}\n  - {id: kq, name: Kết quả, deliverable: true}\n"
        "steps:\n  - {id: nop, name: Nộp, role: dv, inputs: [don]}\n" + steps
    )


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _pid() -> int:
    return os.getpid()


def _eat_memory() -> int:
    return len(bytearray(64 * 1024**3))


def test_small_work_stays_in_the_thread_and_big_work_goes_to_a_child() -> None:
    offload = Offload(seconds=30)
    assert offload.run(10, _pid) == os.getpid()
    assert offload.run(OFFLOAD_BYTES + 1, _pid) != os.getpid()


def test_a_child_that_runs_out_of_time_is_stopped_and_the_limit_named() -> None:
    Offload(seconds=30).run(OFFLOAD_BYTES + 1, _pid)  # the fork server up, and this module loaded in it
    offload = Offload(seconds=0.5)
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as refused:
        offload.run(OFFLOAD_BYTES + 1, _sleep, 30)
    assert time.monotonic() - started < 10
    assert refused.value.limit == "seconds" and refused.value.allowed == 0.5
    assert "giới hạn thời gian" in str(refused.value) and "0.5 giây" in str(refused.value)
    assert Offload(seconds=30).run(OFFLOAD_BYTES + 1, _sleep, 0) == 0, "the next job runs"


def test_a_child_that_runs_out_of_memory_is_refused_with_the_limit() -> None:
    with pytest.raises(LimitExceeded) as refused:
        Offload(seconds=30).run(OFFLOAD_BYTES + 1, _eat_memory)
    assert refused.value.limit == "memory" and "bộ nhớ" in str(refused.value)


def test_an_error_in_the_child_is_raised_in_the_parent() -> None:
    from procedures.errors import DefinitionError

    bad = "format: tinhgon/1\ncode: X\n" + "# " + "x" * OFFLOAD_BYTES + "\n"
    with pytest.raises(DefinitionError) as refused:
        Offload(seconds=30).run(len(bad), checked_upload, bad.encode(), "bad.yaml")
    assert refused.value.problems and "bad.yaml" in str(refused.value)


def test_a_big_definition_is_measured_in_a_child_as_it_is_here() -> None:
    text = review_chain(800)
    assert len(text) > OFFLOAD_BYTES
    here = measured(text, "dai.v1", None)
    there = Offload(seconds=60).run(len(text), measured, text, "dai.v1", None)
    assert there == here and len(here.analysis["findings"]) >= 699


def test_the_step_limit_is_refused_with_its_numbers() -> None:
    with pytest.raises(LimitExceeded) as refused:
        checked_upload(review_chain(30).encode(), "dai.yaml", max_steps=20)
    assert (refused.value.limit, refused.value.allowed, refused.value.found) == ("steps", 20, 31)
    assert "31 bước, quá giới hạn 20 bước" in str(refused.value)


def test_an_upload_beyond_the_step_limit_is_a_problem_naming_the_limit(api: Api) -> None:
    api.services.settings = api.services.settings.model_copy(update={"max_steps": 20})
    answer = api.client.post("/api/procedures", content=review_chain(30).encode(), headers={**YAML, **api.reformer()})
    body = assert_problem(answer, 422, "limit-exceeded")
    assert (body["limit"], body["allowed"], body["found"]) == ("steps", 20, 31)
    page = api.client.get("/api/procedures", headers=api.reformer()).json()
    assert page == [] or all(p["code"] != "DAI-1" for p in page)


def test_the_limits_admit_20000_steps() -> None:
    from api.settings import Settings

    settings = Settings()
    assert settings.max_steps >= 20_000
    assert settings.max_upload_bytes >= len(review_chain(20_000).encode())


def test_a_versions_findings_are_worked_out_once_and_shown_folded(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = reform_work.measured

    def counted(*args: Any) -> Any:
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(reform_work, "measured", counted)
    reformer = api.reformer()
    stored = api.client.post("/api/procedures", content=review_chain(120).encode(), headers={**YAML, **reformer})
    assert stored.status_code == 201, stored.text
    api.browse_as(reformer)
    first = api.client.get("/thu-tuc/DAI-1/1")
    again = api.client.get("/thu-tuc/DAI-1/1")
    analysis = api.client.get("/api/procedures/DAI-1/1/analysis", headers=reformer).json()
    assert first.status_code == again.status_code == 200
    assert api.client.get("/").status_code == 200 and api.client.get("/").status_code == 200
    assert calls == ["DAI-1.v1"], "measured once, for the pages, the catalog and the API alike"
    reviews = [f for f in analysis["findings"] if f["rule"] == "repeated-review"]
    assert len(reviews) == 119
    shown = first.text.count("<li>")
    assert shown < 120, shown
    assert "… và 69 phát hiện khác cùng loại" in first.text
    assert "/api/procedures/DAI-1/1/analysis" in first.text


def test_simplifying_a_big_definition_stores_the_new_version(api: Api) -> None:
    reformer = api.reformer()
    text = review_chain(800)  # beyond the tests' upload limit: stored as an upload would be
    assert store_upload(api.services, text.encode(), actor="reformer").version == 1
    answer = api.client.post("/api/procedures/DAI-1/1/simplify", headers=reformer)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["version"] == 2 and body["after"]["steps"] < body["before"]["steps"]
    stored = api.client.get("/api/procedures/DAI-1/2", headers=reformer).json()
    assert stored["status"] == "draft" and stored["metrics"] == body["after"]


def test_definition_text_is_still_small_enough_to_stay_in_the_thread() -> None:
    assert len(definition_text("")) < OFFLOAD_BYTES


def test_a_big_versions_detail_is_made_in_a_child_and_follows_its_status(api: Api) -> None:
    reformer = api.reformer()
    text = review_chain(800)
    assert store_upload(api.services, text.encode(), actor="reformer").version == 1
    draft = api.client.get("/api/procedures/DAI-1/1", headers=reformer)
    assert draft.status_code == 200 and draft.headers["content-type"] == "application/json"
    body = draft.json()
    assert (body["status"], len(body["definition"]["steps"]), body["metrics"]["steps"]) == ("draft", 801, 801)
    assert api.client.post("/api/procedures/DAI-1/1/publish", headers=reformer).status_code == 200
    assert api.client.get("/api/procedures/DAI-1/1", headers=reformer).json()["status"] == "published"
