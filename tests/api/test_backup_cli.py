"""``tinhgon db backup FILE``: SQLite's online backup, consistent while
cases are written, restorable, recognised as a backup; PostgreSQL is
pg_dump's work."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api.cli import main
from engine.db import BackupRow, CaseRow, EventRow
from engine.keys import Signer
from engine.publishing import publish_definition
from engine.schema import current, head
from engine.store import Store
from tests.engine.conftest import CALENDAR, applicant, office
from tests.engine.test_cases import CODE, body
from tests.transacting import Transacting

pytestmark = pytest.mark.usefixtures("english")  # the findings are checked in their English wording


def _write_cases(url: str, key: Path, stop: threading.Event, started: threading.Event, errors: list[BaseException]) -> None:
    """Start cases and act on them, one after another, until ``stop``."""
    store = Store(url)
    try:
        service = Transacting(store, signer=Signer.load(key), calendar=CALENDAR)
        dan = applicant("dan")
        n = 0
        while not stop.is_set():
            case = service.start(dan, code=CODE, unit="u1", data={"kind": "a"})
            service.act(dan, case.id, step="nop", outcome="done")
            if n % 2:
                service.act(office("cb"), case.id, step="kiem_tra", outcome="tu_choi", comment=f"Lần {n}")
            n += 1
            if n == 5:
                started.set()
    except BaseException as exc:
        errors.append(exc)
        started.set()
    finally:
        store.dispose()


def _count(store: Store, what: type[CaseRow] | type[EventRow] | type[BackupRow]) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(what)).scalar_one())


def test_a_backup_taken_while_cases_are_written_restores_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'tinhgon.db'}"
    key = tmp_path / "signing.key"
    Signer.load_or_create(key)
    assert main(["db", "upgrade", "--database-url", url]) == 0
    source = Store(url)
    source.signer = Signer.load(key)
    publish_definition(source, body())
    stop, started, errors = threading.Event(), threading.Event(), []
    writer = threading.Thread(target=_write_cases, args=(url, key, stop, started, errors))
    writer.start()
    try:
        assert started.wait(60)
        copy = tmp_path / "backups" / "tinhgon-backup.db"
        copy.parent.mkdir()
        assert main(["db", "backup", str(copy), "--database-url", url, "--key-file", str(key)]) == 0
        with sqlite3.connect(copy) as raw:
            in_copy = raw.execute("SELECT count(*) FROM cases").fetchone()[0]
        deadline = time.monotonic() + 60
        while _count(source, CaseRow) <= in_copy and time.monotonic() < deadline:  # the load goes on after the copy
            time.sleep(0.01)
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    out = capsys.readouterr().out
    assert f"copied to {copy}" in out and f"schema {head()}" in out

    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not Path(f"{copy}-wal").exists() and not Path(f"{copy}-journal").exists()
    assert list(copy.parent.iterdir()) == [copy]  # no partial file left beside it
    with sqlite3.connect(copy) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    # Restore: the copy put in place of a database, as README's Operating says.
    restored = tmp_path / "restored.db"
    shutil.copyfile(copy, restored)
    restored_url = f"sqlite:///{restored}"
    backup_store = Store(restored_url)
    try:
        assert current(backup_store.engine) == head()
        cases = _count(backup_store, CaseRow)
        assert 5 <= cases < _count(source, CaseRow), "the copy was taken mid-load"
        with backup_store.engine.connect() as conn:
            recorded = conn.execute(select(BackupRow.source, BackupRow.taken_at)).all()
            # every case's events are all there, chain length and all
            short = conn.execute(
                select(CaseRow.id)
                .outerjoin(EventRow, EventRow.case_id == CaseRow.id)
                .group_by(CaseRow.id, CaseRow.event_count)
                .having(func.count(EventRow.id) != CaseRow.event_count)
            ).all()
        assert short == []
        assert len(recorded) == 1 and recorded[0][0] == f"sqlite:///{(tmp_path / 'tinhgon.db').resolve()}"
        report = Transacting(backup_store, signer=Signer.generate()).verify_audit(Signer.load(key).verifier())
        assert report.ok and report.cases == cases
    finally:
        backup_store.dispose()
        source.dispose()
    assert _count(Store(url), BackupRow) == 0  # the live database records no backup
    assert main(["audit", "verify", "--database-url", restored_url, "--key-file", str(key)]) == 0
    assert f"of {cases} cases" in capsys.readouterr().out
    # A checkpoint of the live database, taken after the load went on, lists
    # the backup: the restored copy is recognised as a restore, not as a
    # ledger whose tail was cut.
    kept = tmp_path / "elsewhere" / "checkpoint.json"
    kept.parent.mkdir()
    assert main(["audit", "checkpoint", "--database-url", url, "--key-file", str(key), "-o", str(kept)]) == 0
    statement = json.loads(kept.read_text(encoding="utf-8"))
    assert len(statement["backups"]) == 1
    capsys.readouterr()
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(key), "--checkpoint", str(kept)]) == 0
    assert main(["audit", "verify", "--database-url", restored_url, "--key-file", str(key), "--checkpoint", str(kept)]) == 0
    out = capsys.readouterr().out
    assert "restored from the backup at ledger place" in out
    assert (
        main(["audit", "verify", "--database-url", restored_url, "--key-file", str(key), "--checkpoint", str(kept), "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["checkpoint"]["restored_from"] == statement["backups"][0]["position"]


def test_backup_refuses_to_overwrite_unless_forced(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "backup.db"
    target.write_bytes(b"kept")
    status = main(["db", "backup", str(target), "--database-url", database_url])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    if database_url.startswith("postgresql"):
        assert "pg_dump -Fc" in err and "pg_restore" in err
        assert main(["db", "backup", str(target), "--force", "--database-url", database_url]) == 2
        assert target.read_bytes() == b"kept"
        return
    assert "exists already" in err and "--force" in err
    assert target.read_bytes() == b"kept"
    target.chmod(0o644)
    assert main(["db", "backup", str(target), "--force", "--database-url", database_url]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with sqlite3.connect(target) as raw:
        assert raw.execute("SELECT count(*) FROM backups").fetchone() == (1,)


def test_backup_of_a_database_that_is_not_there_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "backup.db"
    assert main(["db", "backup", str(target), "--database-url", f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}"]) == 2
    assert "cannot open the database" in capsys.readouterr().err
    assert not target.exists()
