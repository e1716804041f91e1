"""``tinhgon db upgrade`` and ``tinhgon audit verify``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from api.cli import main
from engine.connection import shown_url
from engine.keys import Signer
from engine.publishing import publish_definition
from engine.schema import current, head
from engine.store import Store
from tests.conftest import POSTGRES
from tests.engine.conftest import CALENDAR, applicant, office
from tests.engine.test_cases import CODE, body
from tests.transacting import Transacting


def test_db_upgrade_creates_the_schema_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert "đã nâng cấp từ trống lên phiên bản" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert "đã ở phiên bản" in capsys.readouterr().out
    assert current(Store(url).engine) == head()


def test_db_upgrade_reads_the_database_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TINHGON_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["db", "upgrade"]) == 0
    assert (tmp_path / "env.db").exists()


@pytest.fixture
def audited_db(database_url: str, tmp_path: Path) -> tuple[str, Path, int]:
    key = tmp_path / "keys" / "signing.key"
    store = Store(database_url)
    store.signer = Signer.load_or_create(key)  # the journal of the publication is signed, as serve signs it
    main(["db", "upgrade", "--database-url", database_url])
    publish_definition(store, body())
    service = Transacting(store, signer=store.signer, calendar=CALENDAR)
    dan = applicant("dan")
    case = service.start(dan, code=CODE, unit="u1", data={"kind": "a"})
    service.act(dan, case.id, step="nop", outcome="done")
    service.act(office("cb"), case.id, step="kiem_tra", outcome="tu_choi", comment="Không đủ điều kiện")
    store.dispose()
    return database_url, key, case.id


def test_audit_verify_passes_on_an_untouched_database(
    audited_db: tuple[str, Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, key, _ = audited_db
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(key)]) == 0
    assert "hợp lệ: 3 sự kiện của 1 hồ sơ, 1 mục nhật ký" in capsys.readouterr().out
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(key), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["cases"], out["events"], out["journal"], out["first_bad"]) == (True, 1, 3, 1, None)


def test_audit_verify_reports_the_first_bad_event_and_fails(
    audited_db: tuple[str, Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, key, case_id = audited_db
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE events SET comment = 'Đủ điều kiện' WHERE case_id = :c AND seq = 3"), {"c": case_id})
    store.dispose()
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(key)]) == 1
    assert f"hồ sơ {case_id}, sự kiện 3: mã băm không khớp" in capsys.readouterr().out
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(key), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["first_bad"]["seq"] == 3


def test_audit_verify_with_the_public_key_alone(audited_db: tuple[str, Path, int], tmp_path: Path) -> None:
    url, key, _ = audited_db
    pem = tmp_path / "public.pem"
    pem.write_text(Signer.load(key).public_pem())
    assert main(["audit", "verify", "--database-url", url, "--public-key", str(pem)]) == 0
    other = tmp_path / "other.pem"
    other.write_text(Signer.generate().public_pem())
    assert main(["audit", "verify", "--database-url", url, "--public-key", str(other)]) == 1


def test_audit_verify_without_the_key_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(tmp_path / "nope.key")]) == 1
    assert "nope.key" in capsys.readouterr().err


NO_DATABASE = POSTGRES.rsplit("/", 1)[0].replace("postgres@", "postgres:sekret@", 1) + "/tinhgon_no_such_database"


@pytest.mark.parametrize(
    ("url", "told"),
    [
        ("mysql://root@127.0.0.1/test", "SQLite or PostgreSQL through psycopg, not 'mysql'"),
        ("postgresql+asyncpg://db/x", "not 'postgresql+asyncpg'"),
        ("not a url", "cannot be read as a URL"),
        ("sqlite:////nonexistent-folder/x.db", "cannot open the database sqlite:////nonexistent-folder/x.db: unable to open"),
        (NO_DATABASE, "cannot open the database postgresql+psycopg://postgres:***@"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [["db", "upgrade"], ["user", "add", "lan", "--name", "Lan", "--unit", "d1"], ["audit", "verify"], ["serve"]],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_database_that_cannot_be_used_is_one_line_and_status_2(
    url: str, told: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every command that needs the database says which one and why, without
    # a traceback, and never shows a password that was in its URL.
    extra = ["--key-file", str(tmp_path / "k")] if command[0] in ("serve", "audit") else []
    assert main([*command, "--database-url", url, *extra]) == 2
    err = capsys.readouterr().err
    assert told in err and "Traceback" not in err and "sekret" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "k").exists()


def test_shown_urls_hide_the_password() -> None:
    assert shown_url("postgresql+psycopg://lan:mat-khau@db:5432/tinhgon") == "postgresql+psycopg://lan:***@db:5432/tinhgon"
    assert shown_url("sqlite:///tinhgon.db") == "sqlite:///tinhgon.db"
    assert shown_url("::") == "(not a URL)"


@pytest.mark.parametrize(("option", "value"), [("--workers", "0"), ("--workers", "many"), ("--port", "65536"), ("--port", "-1")])
def test_serve_refuses_a_worker_count_or_port_out_of_range(option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", option, value])
    assert exited.value.code == 2
    assert f"argument {option}:" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["db", "upgrade"], ["user", "add", "lan", "--name", "Lan", "--unit", "d1"], ["serve"]])
def test_a_database_at_a_revision_this_tinhgon_does_not_know_is_left_alone(
    database_url: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A newer tinhgon's database (or another program's): one line, status 2,
    # and its schema untouched, instead of Alembic's traceback.
    assert main(["db", "upgrade", "--database-url", database_url]) == 0
    store = Store(database_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    capsys.readouterr()
    extra = ["--key-file", str(tmp_path / "k")] if command[0] == "serve" else []
    assert main([*command, "--database-url", database_url, *extra]) == 2
    err = capsys.readouterr().err
    assert "phiên bản lược đồ «ffffffffffff», phiên bản mà bản tinhgon này không biết" in err and "Traceback" not in err
    assert current(store.engine) == "ffffffffffff"
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() == 0
    store.dispose()


def test_a_file_that_is_not_a_database_is_refused_and_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is a text file, not SQLite " * 40)
    assert main(["db", "upgrade", "--database-url", f"sqlite:///{path}"]) == 2
    assert "file is not a database" in capsys.readouterr().err
    assert path.read_bytes() == b"this is a text file, not SQLite " * 40
