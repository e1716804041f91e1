"""The service's sealer (:mod:`engine.sealer`) and the database file's mode."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from engine.cases import CaseService
from engine.keys import Keyring, Signer
from engine.ledger import read_checkpoint
from engine.sealer import Sealer, write_checkpoint
from engine.store import Store
from engine.verify import verify_database
from tests.engine.test_cases import CODE, DAN, published  # noqa: F401 (a fixture)


@pytest.mark.usefixtures("published")
def test_a_pass_seals_everything_and_writes_one_checkpoint(store: Store, service: CaseService, tmp_path: Path) -> None:
    lags: list[float] = []
    folder = tmp_path / "kept" / "checkpoints"
    sealer = Sealer(store, service.signer, folder=folder, checkpoint_minutes=0.0001, lag=lags.append)
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    service.act(DAN, case.id, step="nop", outcome="done")
    assert sealer.run_once() == 1 + 1 + 2  # the rules, the publication, two events
    assert lags == [lags[0]] and lags[0] < 1
    (written,) = folder.iterdir()
    assert written.name == "checkpoint-000000000004.json"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    keys = Keyring([service.signer.verifier()])
    statement = read_checkpoint(written.read_text(), keys, str(written))
    assert statement["length"] == 4
    assert sealer.run_once() == 0 and list(folder.iterdir()) == [written], "no new file while the ledger has not grown"
    report = verify_database(store, keys, checkpoint=written.read_text())
    assert report.ok and report.unsealed == 0, report.first_bad


@pytest.mark.usefixtures("published")
def test_the_thread_seals_on_its_own_and_once_more_when_stopped(store: Store, service: CaseService) -> None:
    sealer = Sealer(store, service.signer, seal_seconds=0.01)
    sealer.start()
    case = service.start(DAN, code=CODE, unit="u1", data={"kind": "a"})
    sealer.stop()  # the last pass runs after the thread ends: nothing written before stop is left unsealed
    report = verify_database(store, Keyring([service.signer.verifier()]))
    assert report.ok and report.unsealed == 0 and report.events == 1, (case.id, report)


def test_a_failing_pass_is_logged_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = Store(f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}")
    lags: list[float] = []
    try:
        assert Sealer(broken, Signer.generate(), lag=lags.append).run_once() == 0
    finally:
        broken.dispose()
    assert len(lags) == 1 and "the sealer's pass failed; it will try again" in caplog.text


@pytest.mark.usefixtures("published")
def test_write_checkpoint_names_the_file_after_the_length(store: Store, service: CaseService, tmp_path: Path) -> None:
    first = write_checkpoint(store, service.signer, tmp_path)
    assert first.name == "checkpoint-000000000000.json" and json.loads(first.read_text())["length"] == 0


def test_a_new_sqlite_database_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = Store(f"sqlite:///{path}")
    with store.engine.connect():
        pass
    store.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = tmp_path / "kept.db"
    kept.touch(mode=0o640)
    kept.chmod(0o640)
    Store(f"sqlite:///{kept}").dispose()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640, "an existing file keeps the mode its operator gave it"
