"""The case actions' fast path (api.deps.fast_path): plain requests are
answered by the route itself, everything else by FastAPI's endpoint, and
either way the answer is the same."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import httpx2
import pytest
from pydantic import ValidationError

from api import app as app_module
from api.services import Services
from api.settings import Settings
from engine.cases import CaseService
from engine.direct import Direct

from .conftest import XUAT_NGU, Api, assert_problem, xuat_ngu_data

STEP = {"step": "lap_danh_sach", "outcome": "done"}


@pytest.fixture
def framework_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the requests FastAPI's own handler solved dependencies for."""
    calls: list[str] = []
    solve = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    yield calls


def _case_at_second_step(api: Api) -> tuple[int, dict[str, str]]:
    an = api.user("an", unit="u1")
    case = api.start(an, XUAT_NGU, xuat_ngu_data())
    api.act(an, case["id"], "nop_ban_khai", "done")
    return case["id"], an


def test_a_plain_action_and_withdrawal_skip_the_framework(api: Api, framework_calls: list[str]) -> None:
    api.publish("che-do-xuat-ngu.v1")
    case_id, an = _case_at_second_step(api)
    officer = api.official("dai_doi")
    framework_calls.clear()
    response = api.client.post(
        f"/api/cases/{case_id}/actions", json=STEP, headers={**officer, "If-Match": '"2"', "Idempotency-Key": "k1"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"3"'
    assert response.json()["version"] == 3
    replay = api.client.post(
        f"/api/cases/{case_id}/actions", json=STEP, headers={**officer, "If-Match": '"2"', "Idempotency-Key": "k1"}
    )
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == response.json()
    withdrawn = api.client.post(f"/api/cases/{case_id}/withdraw", headers=an)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    assert framework_calls == []


@pytest.mark.parametrize(
    ("path_id", "headers", "body"),
    [
        ("0{id}", {}, None),  # FastAPI reads 02 as 2
        ("{id}", {"Content-Type": "application/merge+json"}, None),  # a JSON subtype FastAPI accepts
        ("{id}", {"Content-Type": "Application/JSON; charset=utf-8"}, None),  # plain, whatever the case of its letters
    ],
)
def test_unusual_but_valid_actions_are_answered_alike(
    api: Api, framework_calls: list[str], path_id: str, headers: dict[str, str], body: bytes | None
) -> None:
    api.publish("che-do-xuat-ngu.v1")
    officer = api.official("dai_doi")
    plain_id, _ = _case_at_second_step(api)
    unusual_id, _ = _case_at_second_step(api)
    plain = api.client.post(f"/api/cases/{plain_id}/actions", json=STEP, headers=officer).json()
    framework_calls.clear()
    response = api.client.post(
        f"/api/cases/{path_id.format(id=unusual_id)}/actions",
        content=b'{"step": "lap_danh_sach", "outcome": "done"}',
        headers={"Content-Type": "application/json", **officer, **headers},
    )
    assert response.status_code == 200, response.text
    unusual = response.json()
    assert unusual["id"] == unusual_id
    assert {k: v for k, v in unusual.items() if k != "id"} == {k: v for k, v in plain.items() if k != "id"}
    expect_framework = headers.get("Content-Type", "").startswith("application/merge") or path_id.startswith("0")
    assert framework_calls == ([f"/api/cases/{path_id.format(id=unusual_id)}/actions"] if expect_framework else [])


def test_what_the_fast_path_leaves_gets_the_frameworks_answers(api: Api) -> None:
    api.publish("che-do-xuat-ngu.v1")
    case_id, _ = _case_at_second_step(api)
    officer = api.official("dai_doi")
    before = api.snapshot()
    url = f"/api/cases/{case_id}/actions"
    # the token is checked before the body, on the framework's path too
    assert_problem(api.client.post(url, content=b"{", headers={"Content-Type": "application/json"}), 401)
    problem = assert_problem(api.client.post(url, content=b"{", headers={"Content-Type": "application/json", **officer}), 422)
    assert problem["errors"][0]["location"].startswith("body")
    problem = assert_problem(api.client.post(url, json={**STEP, "extra": 1}, headers=officer), 422)
    assert [e["location"] for e in problem["errors"]] == ["body.extra"]
    assert_problem(api.client.post(url, content=b'{"step": "lap_danh_sach", "outcome": "done"}', headers=officer), 415)
    assert_problem(api.client.post(url, json=STEP, headers={**officer, "Idempotency-Key": "x" * 201}), 422)
    assert_problem(api.client.post(f"/api/cases/{2**31}/actions", json=STEP, headers=officer), 422)
    assert_problem(api.client.post(f"/api/cases/{case_id}/withdraw", json={"comment": 5}, headers=officer), 422)
    assert api.snapshot() == before


def test_sqlite_writes_run_in_one_thread_postgresql_in_a_few(services: Services) -> None:
    barrier = threading.Barrier(services.settings.write_threads, timeout=10)

    def name(_db: object) -> str:
        if services.store.dialect == "postgresql":
            barrier.wait()  # as many at once as there are threads for them
        return threading.current_thread().name

    async def threads() -> tuple[set[str], str]:
        names = await asyncio.gather(*(services.writing(name) for _ in range(20)))
        return set(names), threading.current_thread().name

    names, loop_thread = asyncio.run(threads())
    assert loop_thread not in names
    if services.store.dialect == "sqlite":
        assert len(names) == 1 and next(iter(names)).startswith("tinhgon-writes")
    else:
        assert len(names) == services.settings.write_threads == 4
        assert all(n.startswith("tinhgon-actions") for n in names)

    def fails(_db: object) -> None:
        raise LookupError("from the writer")

    with pytest.raises(LookupError, match="from the writer"):
        asyncio.run(services.writing(fails))


@pytest.mark.parametrize("loop", ["the app's loop", "another loop"])
def test_concurrent_actions_and_repeats_are_each_applied_once(api: Api, loop: str) -> None:
    """Many actions at once on one worker (on SQLite they queue for the one
    writer and share transactions): every case moves once, each repeat of a
    key replays the first answer (or, on PostgreSQL, may find it in flight),
    a refused action changes nothing, and the audit holds.

    Sent from the loop the app's lifespan runs on, as uvicorn runs
    requests (PostgreSQL's plain actions then run on that loop's
    connections), and from another loop (they then run in threads)."""
    api.publish("che-do-xuat-ngu.v1")
    an = api.user("an", unit="u1")
    cases = [api.start(an, XUAT_NGU, xuat_ngu_data())["id"] for _ in range(12)]
    transport = httpx2.ASGITransport(app=api.client.app)

    async def send_all() -> list[tuple[int, httpx2.Response]]:
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:

            async def action(case_id: int, outcome: str, key: str) -> tuple[int, httpx2.Response]:
                body = {"step": "nop_ban_khai", "outcome": outcome}
                headers = {**an, "Idempotency-Key": key}
                return case_id, await client.post(f"/api/cases/{case_id}/actions", json=body, headers=headers)

            sends = [action(c, "done", f"k{c}") for c in cases for _ in range(2)]
            sends += [action(c, "no-such-outcome", f"bad{c}") for c in cases[::3]]
            return await asyncio.gather(*sends)

    portal = api.client.portal
    assert portal is not None
    answers = portal.call(send_all) if loop == "the app's loop" else asyncio.run(send_all())
    by_key: dict[str, list[httpx2.Response]] = {}
    for case_id, response in answers:
        body = json.loads(response.request.content)
        by_key.setdefault(f"{body['outcome']}-{case_id}", []).append(response)
    for case_id in cases:
        applied = [r for r in by_key[f"done-{case_id}"] if r.status_code == 200 and "Idempotent-Replayed" not in r.headers]
        assert len(applied) == 1, [r.text for r in by_key[f"done-{case_id}"]]
        first = applied[0]
        (second,) = (r for r in by_key[f"done-{case_id}"] if r is not first)
        if second.status_code == 409:
            assert api.services.store.dialect == "postgresql", second.text
        else:
            assert second.status_code == 200 and second.headers["Idempotent-Replayed"] == "true"
            assert second.json() == first.json()
        assert first.json()["version"] == 2
        assert api.case(an, case_id)["version"] == 2
    for case_id in cases[::3]:
        (refused,) = by_key[f"no-such-outcome-{case_id}"]
        assert_problem(refused, 422)
    report = api.services.cases.verify_audit()
    assert report.ok, report


def test_the_workers_read_their_write_threads_and_lease_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Settings] = []
    monkeypatch.setattr(app_module, "create_app", lambda settings: built.append(settings))
    monkeypatch.setenv("TINHGON_WRITE_THREADS", "6")
    monkeypatch.setenv("TINHGON_IDEMPOTENCY_LEASE", "2.5")
    app_module.app_from_environment()
    assert (built[0].write_threads, built[0].idempotency_lease_seconds) == (6, 2.5)
    monkeypatch.setenv("TINHGON_WRITE_THREADS", "0")
    with pytest.raises(ValidationError, match="write_threads"):
        app_module.app_from_environment()


def test_the_inbox_plain_or_not_answers_alike(api: Api, framework_calls: list[str]) -> None:
    api.publish("che-do-xuat-ngu.v1")
    for _ in range(3):
        _case_at_second_step(api)
    officer = api.official("dai_doi")
    framework_calls.clear()
    plain = api.client.get("/api/inbox?limit=2", headers=officer)
    assert plain.status_code == 200, plain.text
    assert len(plain.json()["items"]) == 2 and plain.json()["next_cursor"]
    following = api.client.get("/api/inbox", params={"cursor": plain.json()["next_cursor"]}, headers=officer)
    assert following.status_code == 200 and len(following.json()["items"]) == 1
    assert framework_calls == []
    assert api.client.get("/api/inbox?limit=002", headers=officer).json() == plain.json()  # FastAPI reads 002 as 2
    assert api.client.get("/api/inbox?limit=9&limit=2", headers=officer).json() == plain.json()  # the last one counts
    assert len(framework_calls) == 2
    assert_problem(api.client.get("/api/inbox?cursor=nonsense", headers=officer), 422, "invalid-request")
    assert_problem(api.client.get("/api/inbox?limit=201", headers=officer), 422)
    assert_problem(api.client.get("/api/inbox?limit=2"), 401)


def test_reading_a_case_plain_or_not_answers_alike(api: Api, framework_calls: list[str]) -> None:
    api.publish("che-do-xuat-ngu.v1")
    case_id, an = _case_at_second_step(api)
    framework_calls.clear()
    plain = api.client.get(f"/api/cases/{case_id}", headers=an)
    assert plain.status_code == 200 and plain.headers["ETag"] == '"2"'
    assert_problem(api.client.get(f"/api/cases/{case_id}", headers=api.official("dai_doi", unit="u2")), 404)
    assert_problem(api.client.get(f"/api/cases/{case_id + 100}", headers=an), 404)
    assert framework_calls == []
    unusual = api.client.get(f"/api/cases/0{case_id}", headers=an)  # FastAPI reads it as the same id
    assert unusual.json() == plain.json() and unusual.headers["ETag"] == '"2"'
    assert framework_calls == [f"/api/cases/0{case_id}"]
    assert_problem(api.client.get(f"/api/cases/{2**31}", headers=an), 422)
    assert_problem(api.client.get(f"/api/cases/{case_id}"), 401)


def test_starting_a_case_plain_or_not_answers_alike(api: Api, framework_calls: list[str]) -> None:
    api.publish("che-do-xuat-ngu.v1")
    an, stranger = api.user("an", unit="u1"), api.user("binh", unit="u1")
    body = {"procedure": XUAT_NGU, "unit": "u1", "data": xuat_ngu_data()}
    framework_calls.clear()
    plain = api.client.post("/api/cases", json=body, headers=an)
    assert plain.status_code == 201 and plain.headers["ETag"] == '"1"', plain.text
    assert_problem(api.client.post("/api/cases", json={**body, "applicant": "an"}, headers=stranger), 403)
    assert_problem(api.client.post("/api/cases", json={**body, "procedure": "KHONG-CO"}, headers=an), 422)
    assert framework_calls == []
    unusual = api.client.post("/api/cases", content=json.dumps(body), headers={**an, "Content-Type": "application/merge+json"})
    assert unusual.status_code == 201 and unusual.json()["id"] == plain.json()["id"] + 1
    assert {k: v for k, v in unusual.json().items() if k not in ("id", "created_at")} == {
        k: v for k, v in plain.json().items() if k not in ("id", "created_at")
    }
    assert framework_calls == ["/api/cases"]
    assert_problem(api.client.post("/api/cases", json=body), 401)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: the one writer thread (above)
def test_what_a_plain_action_does_again_in_a_transaction_runs_in_the_action_threads(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL: an Idempotency-Key used before for another request is not
    # plain; the action is done again in a transaction, in one of the
    # worker's write_threads (not the loop's default threads), and refused there.
    api.publish("che-do-xuat-ngu.v1")
    user = api.user("an", unit="u1")
    case = api.start(user, XUAT_NGU, xuat_ngu_data())
    ran_in: list[str] = []
    change = CaseService.change

    def recording(self: CaseService, *args: Any, **kwargs: Any) -> Any:
        ran_in.append(threading.current_thread().name)
        return change(self, *args, **kwargs)

    monkeypatch.setattr(CaseService, "change", recording)
    key = {**user, "Idempotency-Key": "k-1"}
    api.act(key, case["id"], "nop_ban_khai", "done")
    assert ran_in == []  # plain: on the loop
    api.act(key, case["id"], "nop_ban_khai", "done", comment="another request", expect=422)
    assert ran_in and all(name.startswith("tinhgon-actions") for name in ran_in)


def test_the_inbox_and_a_case_read_check_the_token_and_read_on_one_connection(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # The token's check and the read are each one statement, in one checkout
    # of a connection: on PostgreSQL in autocommit (a round trip each, no
    # BEGIN and COMMIT), on SQLite in one reading transaction.
    api.publish("che-do-xuat-ngu.v1")
    case_id, an = _case_at_second_step(api)
    officer = api.official("dai_doi")
    opened: list[bool] = []
    init = Direct.__init__

    def recording(self: Direct, dbapi_connection: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(bool(getattr(dbapi_connection, "autocommit", False)))
        init(self, dbapi_connection, *args, **kwargs)

    monkeypatch.setattr(Direct, "__init__", recording)
    sent = []
    api.services.store.trace = lambda sql, _parameters: sent.append(sql.split()[0])
    try:
        postgresql = api.services.store.dialect == "postgresql"
        reads = (("/api/inbox?limit=5", officer, 2), (f"/api/cases/{case_id}", an, 2 if postgresql else 3))  # SQLite: case, steps
        for path, headers, statements in reads:
            opened.clear()
            sent.clear()
            assert api.client.get(path, headers=headers).status_code == 200
            assert len(sent) == statements and opened == [postgresql], (path, sent, opened)
        # A page checks its session (joined to its user) in a read of its own,
        # then reads the inbox in another: each one statement, in autocommit
        # on PostgreSQL.
        api.browse_as(officer)
        opened.clear()
        sent.clear()
        page = api.client.get("/hop-thu")
        assert page.status_code == 200 and f"/ho-so/{case_id}" in page.text
        assert len(sent) == 2 and opened == [postgresql, postgresql], (sent, opened)
    finally:
        api.services.store.trace = None
        api.client.cookies.clear()
