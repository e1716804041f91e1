"""Web sessions on both databases: the cookie holds a random session id
(never the token), stored as its hash alone; sign-out, the idle and the
absolute end, and revoking the user's tokens end it; the last-seen instant
is written once a minute at most."""

from __future__ import annotations

import hashlib

import pytest
from httpx2 import Response
from sqlalchemy import select

from api.cli import main
from api.deps import SESSION_COOKIE
from engine.db import JournalRow, WebSessionRow
from engine.sessions import TOUCH_SECONDS
from engine.verify import seal_all, verify_database
from tests.api.conftest import Api, Headers, csrf_of


def sign_in(api: Api, headers: Headers) -> Response:
    page = api.client.get("/dang-nhap")
    token = headers["Authorization"].removeprefix("Bearer ")
    return api.client.post(
        "/dang-nhap", data={"csrf": csrf_of(page.text), "token": token, "next": "/hop-thu"}, follow_redirects=False
    )


def signed_in(api: Api) -> bool:
    """Whether the client's session opens a page; else it is sent to sign in (never a 500)."""
    page = api.client.get("/hop-thu", follow_redirects=False)
    if page.status_code == 200:
        return True
    assert page.status_code == 303 and page.headers["location"] == "/dang-nhap?next=/hop-thu", (page.status_code, page.text)
    return False


def stored_sessions(api: Api) -> list[WebSessionRow]:
    with api.services.store.unit(write=False) as uow:
        return list(uow.session.scalars(select(WebSessionRow)))


def test_the_cookie_holds_a_session_id_never_the_token_and_only_its_hash_is_stored(api: Api) -> None:
    dan = api.user("dan")
    token = dan["Authorization"].removeprefix("Bearer ")
    answer = sign_in(api, dan)
    assert answer.status_code == 303 and answer.headers["location"] == "/hop-thu"
    set_cookie = answer.headers["set-cookie"]
    session_id = api.client.cookies[SESSION_COOKIE]
    assert token not in set_cookie and token not in session_id and len(session_id) >= 43
    assert "httponly" in set_cookie.lower() and "samesite=lax" in set_cookie.lower()
    assert f"max-age={8 * 3600}" in set_cookie.lower()  # the browser forgets it at the session's absolute end
    (row,) = stored_sessions(api)
    assert row.id_hash == hashlib.sha256(session_id.encode()).hexdigest() and row.user_id == "dan"
    assert session_id not in {row.id_hash, row.user_id}
    assert signed_in(api)
    # another sign-in gets another id, and ends the session the browser had
    assert sign_in(api, dan).status_code == 303
    assert api.client.cookies[SESSION_COOKIE] != session_id and len(stored_sessions(api)) == 1


def test_signing_out_ends_the_session_and_the_old_cookie_no_longer_works(api: Api) -> None:
    sign_in(api, api.user("dan"))
    session_id = api.client.cookies[SESSION_COOKIE]
    inbox = api.client.get("/hop-thu")
    out = api.client.post("/dang-xuat", data={"csrf": csrf_of(inbox.text, "/dang-xuat")}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/dang-nhap"
    assert stored_sessions(api) == []
    api.client.cookies.set(SESSION_COOKIE, session_id)  # the cookie kept, sent again
    assert not signed_in(api)


def test_a_form_token_of_another_session_is_refused(api: Api) -> None:
    sign_in(api, api.user("dan"))
    old = api.client.get("/hop-thu")
    sign_in(api, api.user("dan"))  # a new session: the forms of the old one's pages are stale
    stale = api.client.post("/dang-xuat", data={"csrf": csrf_of(old.text, "/dang-xuat")}, follow_redirects=False)
    assert stale.status_code == 403 and "mã chống giả mạo" in stale.text
    assert signed_in(api)


def test_a_session_unseen_for_the_idle_time_ends(api: Api) -> None:
    sign_in(api, api.user("dan"))
    api.clock.advance(minutes=29)
    assert signed_in(api)  # seen: the idle time counts from here
    api.clock.advance(minutes=29)
    assert signed_in(api)
    api.clock.advance(minutes=30, seconds=1)
    assert not signed_in(api)
    assert sign_in(api, api.user("dan")).status_code == 303 and signed_in(api)


def test_a_busy_session_ends_at_its_absolute_end(api: Api) -> None:
    sign_in(api, api.user("dan"))
    for _ in range(16):  # 7 h 44 min, never idle for long
        api.clock.advance(minutes=29)
        assert signed_in(api)
    api.clock.advance(minutes=17)  # 8 h 01 min after sign-in
    assert not signed_in(api)


def test_the_last_seen_instant_is_written_once_a_minute_at_most(api: Api) -> None:
    sign_in(api, api.user("dan"))
    sent: list[str] = []
    api.services.store.trace = lambda sql, _parameters: sent.append(sql.split()[0])
    try:
        for _ in range(3):
            api.clock.advance(seconds=TOUCH_SECONDS / 4)
            assert signed_in(api)
        assert "UPDATE" not in sent, sent
        api.clock.advance(seconds=TOUCH_SECONDS / 4 + 1)
        sent.clear()
        assert signed_in(api)
        assert sent.count("UPDATE") == 1, sent
        sent.clear()
        assert signed_in(api)
        assert "UPDATE" not in sent, sent
    finally:
        api.services.store.trace = None
    (row,) = stored_sessions(api)
    assert row.last_seen_at == api.clock()


def test_revoking_the_users_tokens_ends_their_sessions(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    sign_in(api, api.user("dan"))
    other = api.user("lan")
    assert signed_in(api)
    assert main(["user", "revoke", "dan", "--database-url", api.services.settings.database_url]) == 0
    assert "các phiên làm việc trên web đã kết thúc" in capsys.readouterr().out
    assert not signed_in(api)
    assert stored_sessions(api) == []
    assert api.client.get("/api/inbox", headers=other).status_code == 200  # others keep theirs


@pytest.mark.parametrize("value", ["x" * 5000, "tg_" + "a" * 43, "\u0111\u00e3 h\u1ebft", "", 'a;b=\\"c'])
def test_a_cookie_that_is_no_session_is_a_sign_in_page(api: Api, value: str) -> None:
    api.user("dan")
    cookie = f"{SESSION_COOKIE}={value}".encode()  # as a browser may send it, UTF-8 and all
    page = api.client.get("/hop-thu", headers={"Cookie": cookie}, follow_redirects=False)  # type: ignore[dict-item]
    assert page.status_code == 303 and page.headers["location"] == "/dang-nhap?next=/hop-thu"


def test_a_bearer_token_in_the_cookie_signs_nobody_in(api: Api) -> None:
    # the cookie of before held the token itself: such a cookie is no session
    dan = api.user("dan")
    api.client.cookies.set(SESSION_COOKIE, dan["Authorization"].removeprefix("Bearer "))
    assert not signed_in(api)


def test_every_sign_in_is_journalled_signed_and_sealed(api: Api) -> None:
    dan = api.user("dan")
    assert sign_in(api, dan).status_code == 303
    assert sign_in(api, dan).status_code == 303
    with api.services.store.unit(write=False) as uow:
        entries = list(uow.session.scalars(select(JournalRow).where(JournalRow.kind == "signin")))
    assert [(e.subject, e.actor, e.data, e.key_id) for e in entries] == [
        ("dan", "dan", {"via": "web"}, api.services.signer.key_id)
    ] * 2
    assert all(e.signature for e in entries)
    assert api.client.cookies[SESSION_COOKIE] not in str([e.data for e in entries])
    seal_all(api.services.store, api.services.signer)
    assert api.services.keys is not None
    report = verify_database(api.services.store, api.services.keys)
    assert report.ok and report.unsealed == 0, report.first_bad
    # a sign-in wiped from the journal is a hole in the ledger
    with api.services.store.unit() as uow:
        uow.session.execute(JournalRow.__table__.delete().where(JournalRow.id == entries[0].id))
    report = verify_database(api.services.store, api.services.keys)
    assert not report.ok and report.first_bad is not None and "không còn" in report.first_bad.render()
