"""``tinhgon user ...`` and what ``tinhgon serve`` does before it starts the workers."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import app_from_environment
from api.cli import main
from api.serve_cli import StartError, first_users, load_definitions
from api.settings import (
    AUDIT_ENV,
    CHECKPOINT_DIR_ENV,
    CHECKPOINT_MINUTES_ENV,
    LIMIT_ENV,
    SEAL_SECONDS_ENV,
    SECURE_COOKIES_ENV,
    SESSION_HOURS_ENV,
    SESSION_IDLE_ENV,
    WEB_ENV,
    BadSetting,
    Settings,
    checked,
    web_settings,
)
from api.supervisor import worker_sockets
from engine.cases import utcnow
from engine.db import ProcedureRow
from engine.schema import upgrade
from engine.sessions import open_session, session_user
from engine.settings import DATABASE_ENV, KEY_ENV
from engine.store import Store, content_hash
from engine.users import authenticate
from procedures import load_path
from procedures.messages import ENVIRONMENT, speaking
from tests.api.conftest import csrf_of
from tests.conftest import DEFINITIONS


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_user_add_prints_a_token_alone_on_the_last_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    code = main(
        [
            "user",
            "add",
            "lan",
            "--name",
            "Nguyễn Thị Lan",
            "--unit",
            "d1",
            "--role",
            "ban_chinh_sach",
            "--permission",
            "reform",
            "--database-url",
            url,
        ]
    )
    assert code == 0
    token = last_line(capsys.readouterr().out)
    user = authenticate(Store(url), token)
    assert user is not None and (user.id, user.unit, user.roles, user.permissions) == (
        "lan",
        "d1",
        ("ban_chinh_sach",),
        ("reform",),
    )


def test_user_token_and_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    main(["user", "add", "lan", "--name", "Lan", "--unit", "d1", "--database-url", url])
    first = last_line(capsys.readouterr().out)
    assert main(["user", "token", "lan", "--database-url", url]) == 0
    second = last_line(capsys.readouterr().out)
    store = Store(url)
    assert first != second and authenticate(store, first) is not None and authenticate(store, second) is not None
    assert main(["user", "revoke", "lan", "--database-url", url]) == 0
    assert "lan: đã thu hồi 2 mã đăng nhập" in capsys.readouterr().out
    assert authenticate(store, first) is None and authenticate(store, second) is None


def test_user_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    main(["user", "add", "lan", "--name", "Lan", "--unit", "d1", "--database-url", url])
    capsys.readouterr()
    assert main(["user", "add", "lan", "--name", "Lan", "--unit", "d1", "--database-url", url]) == 1
    assert "người dùng «lan» đã có" in capsys.readouterr().err
    assert main(["user", "token", "nobody", "--database-url", url]) == 1
    assert "không có người dùng «nobody»" in capsys.readouterr().err
    assert main(["user", "add", "x y", "--name", "X", "--unit", "d1", "--database-url", url]) == 1
    assert "mã người dùng 'x y'" in capsys.readouterr().err


def test_the_user_and_serve_commands_speak_english_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    url = f"sqlite:///{tmp_path / 'u.db'}"
    assert main(["user", "add", "lan", "--name", "Lan", "--unit", "d1", "--role", "ban_chinh_sach", "--database-url", url]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "người dùng lan (Lan), đơn vị d1: ban_chinh_sach; không có quyền"
    assert main(["--lang", "en", "user", "add", "an", "--name", "An", "--unit", "d1", "--database-url", url]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "user an (An), unit d1: no roles; no permissions"
    monkeypatch.setenv(ENVIRONMENT, "en")
    assert main(["user", "token", "an", "--database-url", url]) == 0
    assert capsys.readouterr().out.startswith("new token for an:\n")
    assert main(["--lang", "vi", "user", "token", "an", "--database-url", url]) == 0
    assert capsys.readouterr().out.startswith("mã đăng nhập mới của an:\n")
    for lang, said in [("vi", "cổng TCP phải từ 0 đến 65535, không phải 70000"), ("en", "a TCP port is 0 to 65535, not 70000")]:
        with pytest.raises(SystemExit):
            main(["--lang", lang, "serve", "--port", "70000"])
        assert said in capsys.readouterr().err
    for lang, said in [
        ("vi", "số tiến trình uvicorn dùng chung một cơ sở dữ liệu (từ 1 đến 64)"),
        ("en", "text (uvicorn's) or json: one object a line, access lines with method, route, status, duration"
         " (default: $TINHGON_LOG_FORMAT, else text)"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit):
            main(["--lang", lang, "serve", "--help"])
        assert said in " ".join(capsys.readouterr().out.split())


def test_a_bad_setting_says_why_in_vietnamese_unless_english_is_asked_for() -> None:
    with pytest.raises(BadSetting, match=r"^phải lớn hơn 0$"):
        checked("session_hours", "0")
    with pytest.raises(BadSetting, match=r"^phải từ 1024 trở lên$"):
        checked("max_upload_bytes", "10")
    with speaking("en"):
        with pytest.raises(BadSetting, match=r"^must be greater than 0$"):
            checked("session_hours", "0")
        with pytest.raises(BadSetting, match=r"^must be at most 720$"):
            checked("session_hours", "1000")
        with pytest.raises(BadSetting, match=r"^must be 1 or 0 \(or true or false"):
            checked("secure_cookies", "maybe")


def test_serve_publishes_the_definitions_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(store.engine)
    loaded = load_definitions(store, DEFINITIONS)
    assert len(loaded) == len(list(DEFINITIONS.glob("*.v*.yaml")))
    again = load_definitions(store, DEFINITIONS)  # a restart: same bodies, nothing new
    assert len(again) == len(loaded)
    with store.unit(write=False) as uow:
        assert len(uow.procedures()) == len(loaded)
        assert {p.status for p in uow.procedures()} == {"published"}


def test_serve_refuses_a_changed_body_under_an_existing_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    source = DEFINITIONS / "dang-ky-khai-sinh.v1.yaml"
    (folder / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    upgrade(store.engine)
    load_definitions(store, folder)
    # A comment, a name and a volume are amendments: the start says so.
    text = source.read_text(encoding="utf-8")
    amended_text = text.replace("annual_volume: ", "annual_volume: 1", 1) + "\n# sửa\n"
    (folder / source.name).write_text(amended_text, encoding="utf-8")
    amended: list[str] = []
    load_definitions(store, folder, amended)
    assert amended == [f"{folder / source.name}: {load_path(source).code} v1"]
    # A step's duration changes how cases run: a new version is needed.
    (folder / source.name).write_text(amended_text.replace("duration:", "duration: 1d #", 1), encoding="utf-8")
    with pytest.raises(StartError, match="đặt số phiên bản mới"):
        load_definitions(store, folder)
    code = main(["serve", "--definitions", str(folder), "--database-url", url, "--key-file", str(tmp_path / "k.key")])
    assert code == 2
    assert "không thể khởi động" in capsys.readouterr().err


def test_serve_refuses_an_invalid_definition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "bad.yaml").write_text("format: tinhgon/1\ncode: X\n", encoding="utf-8")
    code = main(["serve", "--definitions", str(folder), "--database-url", f"sqlite:///{tmp_path / 's.db'}"])
    assert code == 2
    assert "bad.yaml:1" in capsys.readouterr().err


def test_serve_refuses_a_bad_calendar_before_touching_the_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calendar = tmp_path / "lich.yaml"
    calendar.write_text("days_off: [2027-02-30]\n", encoding="utf-8")
    code = main(["serve", "--calendar", str(calendar), "--database-url", f"sqlite:///{tmp_path / 's.db'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "tinhgon serve: không thể khởi động:\n" in err and "lich.yaml:1: days_off[0]" in err
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("bad", ["not a key", None])
def test_serve_refuses_a_signing_key_it_cannot_read_before_touching_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str | None
) -> None:
    # Before, each worker found out in its own start-up, with a traceback,
    # after the first users had been created and their tokens printed; now
    # the start stops before it publishes or creates anything.
    key = tmp_path / "signing.key"
    if bad is None:
        key.mkdir()  # a folder where the key should be
    else:
        key.write_text(bad, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["serve", "--key-file", str(key), "--database-url", url, "--definitions", str(DEFINITIONS)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinhgon serve: không thể khởi động: {key}") and "Traceback" not in err
    store = Store(url)
    with store.unit(write=False) as uow:
        assert uow.user_count() == 0 and uow.procedures() == []
    store.dispose()


def test_first_start_creates_the_admin_and_demo_users_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(store.engine)
    defs = load_definitions(store, DEFINITIONS)
    tokens = dict(first_users(store, defs, demo=True))
    assert "admin" in tokens and "demo_applicant" in tokens and "demo_reform (reform)" in tokens
    office_roles = {r.id for d in defs for r in d.roles if r.kind == "office"}
    assert {label.split()[0] for label in tokens} >= {f"demo_{r}" for r in office_roles}
    admin = authenticate(store, tokens["admin"])
    assert admin is not None and admin.permissions == ("admin",)
    demo = authenticate(store, tokens["demo_applicant"])
    assert demo is not None and demo.unit == "demo"
    again = dict(first_users(store, defs, demo=True))
    assert "admin" not in again  # printed once, on first start
    assert again["demo_applicant"] != tokens["demo_applicant"]  # demo users get fresh tokens each start


def test_worker_sockets_share_one_port_each_with_reuseport() -> None:
    sockets = worker_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in sockets}
        assert len(sockets) == 3 and len(ports) == 1 and ports != {0}
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in sockets)
        assert all(s.get_inheritable() for s in sockets)
        # each listens: a connection to the port is accepted by one of them
        with socket.create_connection(("127.0.0.1", ports.pop()), timeout=5):
            pass
    finally:
        for s in sockets:
            s.close()


def test_worker_sockets_refuse_a_port_already_listened_on() -> None:
    """By anything: a plain listener, or another serve's reuseport sockets,
    which SO_REUSEPORT alone would let share the port."""
    with socket.create_server(("127.0.0.1", 0)) as plain, pytest.raises(OSError):
        worker_sockets("127.0.0.1", plain.getsockname()[1], 2)
    first = worker_sockets("127.0.0.1", 0, 2)
    try:
        with pytest.raises(OSError):
            worker_sockets("127.0.0.1", first[0].getsockname()[1], 2)
    finally:
        for s in first:
            s.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_port_in_use_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str) -> None:
    """Status 2 and one clear line, whatever the worker count (one worker's
    uvicorn would otherwise log its own error and exit with 3), before the
    database is touched: a first start that created the admin and then
    could not listen would never have printed its token."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code = main(
            ["serve", "--database-url", url, "--port", str(port), "--workers", workers, "--key-file", str(tmp_path / "k")]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert f"không thể lắng nghe tại 127.0.0.1:{port}" in err and "in use" in err
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(
    ("name", "unit", "told"),
    [
        ("Lan\x00", "d1", "không được chứa ký tự NUL"),
        ("Lan", "d\x001", "không được chứa ký tự NUL"),
        ("Lan", "d" * 101, "đơn vị dài 101 ký tự; tối đa 100 ký tự"),
        ("Lan\udcff", "d1", "hoặc mã surrogate đứng lẻ"),  # an argument that was no UTF-8 (Python's surrogateescape)
        ("  ", "d1", "không được để trống"),
    ],
)
def test_user_add_refuses_what_no_database_would_keep_alike(
    database_url: str, name: str, unit: str, told: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # PostgreSQL refuses a NUL in text and a unit over its column's length
    # with an error of its own (SQLite keeps both): each gets the user's
    # problem in one line, on both, and no user is added.
    assert main(["user", "add", "lan", "--name", name, "--unit", unit, "--database-url", database_url]) == 1
    err = capsys.readouterr().err
    assert told in err and "Traceback" not in err
    assert main(["user", "token", "lan", "--database-url", database_url]) == 1
    assert "không có người dùng «lan»" in capsys.readouterr().err
    assert main(["user", "add", "lan", "--name", "Lan", "--unit", "d" * 100, "--database-url", database_url]) == 0


def test_demo_at_a_restart_revokes_the_earlier_demo_tokens_and_sessions(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(store.engine)
    defs = load_definitions(store, DEFINITIONS)
    first = dict(first_users(store, defs, demo=True))
    lifetime = Settings().session_lifetime
    now = dt.datetime.now(dt.UTC)
    session = open_session(store, "demo_applicant", now, lifetime)
    second = dict(first_users(store, defs, demo=True))
    for label, token in first.items():
        if label != "admin":  # the admin's token is never revoked by a start
            assert authenticate(store, token) is None, label
            assert authenticate(store, second[label]) is not None, label
    assert authenticate(store, first["admin"]) is not None
    assert session_user(store, session, now, lifetime) is None
    store.dispose()


def _restored(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """The variables ``names`` are put back as they are now after the test
    (``serve`` sets them for its workers), set or not."""
    for name in names:
        was = os.environ.get(name)
        monkeypatch.setenv(name, was or "")
        if was is None:
            monkeypatch.delenv(name)


def _served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *options: str) -> dict[str, str]:
    """What ``serve`` leaves its workers in the environment (uvicorn itself is not started)."""
    _restored(monkeypatch, DATABASE_ENV, KEY_ENV, *WEB_ENV, *AUDIT_ENV)
    given: dict[str, str] = {}
    monkeypatch.setattr("api.supervisor.run", lambda *_args, **_kwargs: given.update(os.environ))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    url, key, empty = f"sqlite:///{tmp_path / 's.db'}", str(tmp_path / "k"), tmp_path / "none"
    empty.mkdir(exist_ok=True)
    args = ["serve", "--database-url", url, "--key-file", key, "--definitions", str(empty), "--port", port, "--demo"]
    if "--checkpoint-dir" not in options:
        args += ["--checkpoint-dir", str(tmp_path / "checkpoints")]
    assert main([*args, *options]) == 0
    return given


def _cookie_of_a_worker(given: dict[str, str], token: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    with TestClient(app_from_environment(), base_url="https://testserver", follow_redirects=False) as browser:
        page = browser.get("/dang-nhap")
        answer = browser.post("/dang-nhap", data={"csrf": csrf_of(page.text), "token": token})
        assert answer.status_code == 303, answer.text
        return answer.headers["set-cookie"].lower()


@pytest.mark.parametrize(("option", "env", "secure"), [("--secure-cookies", None, True), (None, "1", True), (None, None, False)])
def test_serve_marks_the_cookies_secure_with_the_option_or_the_variable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str | None,
    env: str | None,
    secure: bool,
) -> None:
    _restored(monkeypatch, *WEB_ENV)
    monkeypatch.delenv(SECURE_COOKIES_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(SECURE_COOKIES_ENV, env)
    given = _served(tmp_path, monkeypatch, *([option] if option else []))
    token = next(
        line.split(": ", 1)[1]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("mã đăng nhập của demo_applicant:")
    )
    cookie = _cookie_of_a_worker(given, token, monkeypatch)
    assert cookie.startswith("tinhgon_session=") and token.lower() not in cookie
    assert ("; secure" in cookie) is secure


def test_serve_hands_the_session_times_to_the_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = _served(tmp_path, monkeypatch, "--session-idle", "15", "--session-hours", "2")
    assert given[SESSION_IDLE_ENV] == "15" and given[SESSION_HOURS_ENV] == "2"
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    lifetime = Settings.model_validate(web_settings(os.environ)).session_lifetime
    assert lifetime.idle == dt.timedelta(minutes=15) and lifetime.absolute == dt.timedelta(hours=2)


def test_serve_hands_the_sealers_settings_to_the_workers_and_they_seal_and_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / "elsewhere"
    given = _served(tmp_path, monkeypatch, "--seal-seconds", "0.05", "--checkpoint-dir", str(kept), "--checkpoint-minutes", "1")
    assert given[SEAL_SECONDS_ENV] == "0.05" and given[CHECKPOINT_MINUTES_ENV] == "1"
    assert given[CHECKPOINT_DIR_ENV] == str(kept.resolve())
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    with TestClient(app_from_environment()) as client:
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 30
        while not list(kept.glob("checkpoint-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
    (written,) = kept.glob("checkpoint-*.json")
    assert json.loads(written.read_text())["length"] > 0  # the demo users, their tokens, sealed


def test_the_workers_read_the_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TINHGON_MAX_STEPS", "30000")
    monkeypatch.setenv("TINHGON_HEAVY_SECONDS", "300")
    monkeypatch.setenv(DATABASE_ENV, f"sqlite:///{tmp_path / 'l.db'}")
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "k"))
    with TestClient(app_from_environment()) as client:
        settings = client.app.state.services.settings  # type: ignore[attr-defined]
        assert (settings.max_steps, settings.heavy_seconds) == (30000, 300.0)
        assert client.app.state.services.offload.seconds == 300.0  # type: ignore[attr-defined]


def test_serve_writes_checkpoints_beside_the_working_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CHECKPOINT_DIR_ENV, raising=False)
    given = _served(tmp_path, monkeypatch, "--checkpoint-dir", "")
    assert given[CHECKPOINT_DIR_ENV] == str((tmp_path / "tinhgon-checkpoints").resolve())


@pytest.mark.parametrize(
    ("args", "env", "told"),
    [
        ([], {SEAL_SECONDS_ENV: "0"}, "TINHGON_SEAL_SECONDS='0'"),
        ([], {"TINHGON_MAX_STEPS": "0"}, "TINHGON_MAX_STEPS='0'"),
        ([], {"TINHGON_HEAVY_SECONDS": "never"}, "TINHGON_HEAVY_SECONDS='never': phải là một số"),
        (["--checkpoint-minutes", "-1"], {}, "argument --checkpoint-minutes: «-1»: phải lớn hơn 0"),
        ([], {SECURE_COOKIES_ENV: "maybe"}, "TINHGON_SECURE_COOKIES='maybe'"),
        ([], {SESSION_IDLE_ENV: "-5"}, "TINHGON_SESSION_IDLE_MINUTES='-5'"),
        (["--session-hours", "0"], {}, "argument --session-hours: «0»: phải lớn hơn 0"),
        (["--session-idle", "nan"], {}, "argument --session-idle: «nan»"),
    ],
)
def test_serve_refuses_bad_session_settings_before_touching_the_database(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    told: str,
) -> None:
    _restored(monkeypatch, *WEB_ENV, *AUDIT_ENV, *LIMIT_ENV)
    for name in [*WEB_ENV, *AUDIT_ENV, *LIMIT_ENV]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = f"sqlite:///{tmp_path / 's.db'}"
    with contextlib.suppress(SystemExit):
        assert main(["serve", "--database-url", url, *args]) == 2
    err = capsys.readouterr().err
    assert told in err and "Traceback" not in err
    assert not (tmp_path / "s.db").exists()


def test_a_body_stored_under_earlier_rules_is_amended_by_its_corrected_file(tmp_path: Path) -> None:
    """A database from before the registry rule holds a body that cites an
    undeclared registry; its file, now declaring it and labelling its
    outcomes, amends it instead of stopping the start."""
    old = (
        "format: tinhgon/1\ncode: CU-1\nname: Thủ tục cũ\nversion: 1\n"
        "roles: [{id: dv, name: Đơn vị, kind: applicant}, {id: cb, name: Cán bộ, kind: office}]\n"
        "documents: [{id: a, name: A, from: registry, registry: dat_dai}, {id: kq, name: KQ, deliverable: true}]\n"
        "steps:\n  - {id: s1, name: Nộp, role: dv}\n  - {id: s2, name: Xét, role: cb, inputs: [a], outputs: [kq], outcomes: {dat: proceed}}\n"
    )
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(store.engine)
    with store.unit() as uow:
        uow.session.add(
            ProcedureRow(code="CU-1", code_key="cu-1", version=1, name="Thủ tục cũ", status="published", body=old,
                         content_hash=content_hash(old), created_at=utcnow(), published_at=utcnow())
        )  # fmt: skip
    folder = tmp_path / "defs"
    folder.mkdir()
    new = old.replace("roles:", "registries: [{id: dat_dai, name: Cơ sở dữ liệu đất đai}]\nroles:").replace(
        "{dat: proceed}", "{dat: {effect: proceed, label: Đạt}}"
    )
    (folder / "cu-1.v1.yaml").write_text(new, encoding="utf-8")
    amended: list[str] = []
    assert len(load_definitions(store, folder, amended)) == 1 and len(amended) == 1
    with store.unit(write=False) as uow:
        assert uow.procedure("CU-1", 1).body == new
