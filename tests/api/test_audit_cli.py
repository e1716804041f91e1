"""``tinhgon audit checkpoint | keys | rotate-key | mark-backup``, and a
database from before the ledger adopted by its first seal."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from api.cli import main
from engine.keys import Signer, history_path
from engine.publishing import publish_definition
from engine.store import Store
from tests.engine.conftest import CALENDAR, applicant, office
from tests.engine.test_cases import CODE, body
from tests.transacting import Transacting

pytestmark = pytest.mark.usefixtures("english")  # the findings are checked in their English wording

DAN = applicant("dan")


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> tuple[str, Path, int]:
    """A database with one decided case and one user, its key in a file."""
    key = tmp_path / "keys" / "signing.key"
    assert main(["db", "upgrade", "--database-url", database_url, "--key-file", str(key)]) == 0  # no key yet: no seal
    store = Store(database_url)
    store.signer = Signer.load_or_create(key)
    publish_definition(store, body())
    service = Transacting(store, signer=store.signer, calendar=CALENDAR)
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, case.id, step="nop", outcome="done")
    service.act(office("cb"), case.id, step="kiem_tra", outcome="tu_choi", comment="Không đủ điều kiện")
    store.dispose()
    assert (
        main(["user", "add", "lan", "--name", "Lan", "--unit", "u1", "--database-url", database_url, "--key-file", str(key)]) == 0
    )
    return database_url, key, case.id


def verify_json(url: str, key: Path, *extra: str) -> dict[str, object]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["audit", "verify", "--database-url", url, "--key-file", str(key), "--json", *extra])
    report: dict[str, object] = json.loads(out.getvalue())
    assert (code == 0) == report["ok"]
    return report


def test_checkpoint_seals_and_prints_a_signed_statement(
    served: tuple[str, Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, key, _ = served
    before = verify_json(url, key)
    assert before["ok"] and before["unsealed"] == 6 and before["ledger"] == 0  # 3 events, publication, user, token
    capsys.readouterr()
    assert main(["audit", "checkpoint", "--database-url", url, "--key-file", str(key)]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert statement["format"] == "tinhgon-checkpoint/1" and statement["length"] == 7  # the rules' place, then the six
    assert statement["key_id"] == Signer.load(key).key_id and statement["signature"]
    after = verify_json(url, key)
    assert after["unsealed"] == 0 and after["ledger"] == 7
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(statement))
    assert verify_json(url, key, "--checkpoint", str(kept))["ok"]
    kept.write_text(json.dumps({**statement, "head": "0" * 64}))
    report = verify_json(url, key, "--checkpoint", str(kept))
    assert not report["ok"] and report["first_bad"]["part"] == "checkpoint"  # type: ignore[index]
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(key), "--checkpoint", str(tmp_path / "none")]) == 2
    assert "cannot read the checkpoint" in capsys.readouterr().err


def test_checkpoint_to_a_file(served: tuple[str, Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, key, _ = served
    target = tmp_path / "out.json"
    assert main(["audit", "checkpoint", "--database-url", url, "--key-file", str(key), "-o", str(target)]) == 0
    assert "7 ledger places" in capsys.readouterr().out
    assert json.loads(target.read_text())["length"] == 7


def test_rotate_key_keeps_old_signatures_verifying_and_lists_the_keys(
    served: tuple[str, Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, key, _ = served
    old = Signer.load(key)
    assert main(["audit", "rotate-key", "--database-url", url, "--key-file", str(key)]) == 0
    new = Signer.load(key)
    assert new.key_id != old.key_id
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert old.key_id in history_path(key).read_text() or old.public_pem() in history_path(key).read_text()
    store = Store(url)
    store.signer = new
    Transacting(store, signer=new, calendar=CALENDAR).start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    store.dispose()
    assert verify_json(url, key)["ok"], "old events verify through the history, new ones through the key file"
    capsys.readouterr()
    assert main(["audit", "keys", "--database-url", url, "--key-file", str(key), "--json"]) == 0
    keys = json.loads(capsys.readouterr().out)
    assert [(k["key_id"], k["trusted"]) for k in keys] == [(new.key_id, True), (old.key_id, True)]
    assert keys[0]["state"] == "current key"
    # without the history the old key is no longer trusted, and verification says which key
    history_path(key).unlink()
    report = verify_json(url, key)
    assert not report["ok"] and old.key_id in str(report["first_bad"])
    assert main(["audit", "keys", "--database-url", url, "--key-file", str(key)]) == 0
    assert f"{old.key_id}  NOT trusted" in capsys.readouterr().out


def test_a_database_from_before_the_ledger_is_adopted_by_its_first_seal(
    served: tuple[str, Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, key, case_id = served
    # Age the database to what 0005 wrote: decisions alone signed, keys
    # unnamed, no journal, no ledger, every event before the switch.
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM journal"))
        conn.execute(text("DELETE FROM audit_keys"))
        conn.execute(text("UPDATE events SET key_id = NULL"))
        conn.execute(text("UPDATE events SET signature = NULL WHERE decision = :f"), {"f": False})
        conn.execute(text("UPDATE audit_rules SET legacy_events = (SELECT MAX(id) FROM events)"))
    store.dispose()
    report = verify_json(url, key)
    assert not report["ok"] and report["first_bad"]["part"] == "ledger"  # type: ignore[index]
    assert str(report["first_bad"]["reason"]).startswith("nothing is sealed yet")  # type: ignore[index]
    capsys.readouterr()
    assert main(["db", "upgrade", "--database-url", url, "--key-file", str(key)]) == 0  # the key is there: it seals
    assert "sealed into the ledger" in capsys.readouterr().out
    report = verify_json(url, key)
    assert report["ok"], report["first_bad"]
    assert report["journal"] == 3  # the baseline: one entry for the procedure version, the user, the token
    # the first rules still hold for the old events: a decision's signature stripped is caught
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE events SET signature = NULL WHERE case_id = :c AND seq = 3"), {"c": case_id})
    store.dispose()
    report = verify_json(url, key)
    assert not report["ok"] and "missing signature on a decision event" in str(report["first_bad"])


def test_the_user_commands_journal_what_they_change(served: tuple[str, Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    url, key, _ = served
    assert main(["user", "token", "lan", "--database-url", url, "--key-file", str(key)]) == 0
    assert main(["user", "revoke", "lan", "--database-url", url, "--key-file", str(key)]) == 0
    report = verify_json(url, key)
    assert report["ok"] and report["journal"] == 1 + 2 + 1 + 2  # publication, user and token, a token, two revocations
    # a revoked token brought back by hand is caught
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE tokens SET revoked_at = NULL"))
    store.dispose()
    report = verify_json(url, key)
    assert not report["ok"] and "revoked differ" in str(report["first_bad"])


def test_mark_backup_is_listed_by_later_checkpoints(served: tuple[str, Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    url, key, _ = served
    assert main(["audit", "mark-backup", "dump-2026-12-07.pgdump", "--database-url", url, "--key-file", str(key)]) == 0
    assert "dump-2026-12-07.pgdump" in capsys.readouterr().out
    assert main(["audit", "checkpoint", "--database-url", url, "--key-file", str(key)]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert len(statement["backups"]) == 1 and statement["backups"][0]["position"] <= statement["length"]


def test_audit_verify_names_the_first_bad_item_in_vietnamese_unless_english_is_asked(
    served: tuple[str, Path, int], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key, case_id = served
    store = Store(url)
    with store.unit() as uow:
        uow.session.execute(
            text("UPDATE case_steps SET actor = 'someone' WHERE case_id = :c AND step_id = 'kiem_tra'"), {"c": case_id}
        )
    store.dispose()
    monkeypatch.delenv("TINHGON_LANG")
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(key)]) == 1
    out = capsys.readouterr().out
    assert f"KHÔNG HỢP LỆ tại hồ sơ {case_id}: bước 2 «Kiểm tra»: trường actor khác với kết quả" in out, out
    assert main(["--lang", "en", "audit", "verify", "--database-url", url, "--key-file", str(key)]) == 1
    assert f"case {case_id}: step 2 «Kiểm tra»: its actor differs from what the events lead to" in capsys.readouterr().out
    monkeypatch.setenv("TINHGON_LANG", "en")
    assert main(["audit", "verify", "--database-url", url, "--key-file", str(key)]) == 1
    out = capsys.readouterr().out
    assert f"audit: FAILED at case {case_id}: step 2 «Kiểm tra»: its actor differs from what the events lead to" in out, out


def test_the_audit_commands_help_in_the_language_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TINHGON_LANG")
    with pytest.raises(SystemExit):
        main(["audit", "verify", "--help"])
    assert "tin cậy khóa công khai này thay cho khóa của tệp khóa" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--lang", "en", "audit", "verify", "--help"])
    assert "trust this public key instead of the key file's" in capsys.readouterr().out
