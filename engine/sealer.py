"""The service's sealer: a thread that seals the ledger every few seconds
and writes a signed checkpoint file at a longer interval.

Writers never wait for it (:mod:`engine.ledger`): it catches up in batches
of its own transactions. With several workers each runs one; the seals
themselves go one at a time (PostgreSQL's advisory lock, SQLite's write
lock), so the others find nothing pending. A checkpoint file is named after
the ledger's length (``checkpoint-000000001234.json``), written to a
temporary name and renamed into place, so two workers writing the same one
leave one whole file. The folder is the operator's: kept away from the
database (another disk, a mount of another machine), or copied out, since a
checkpoint that sits beside the database can be deleted with it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from .keys import Signer
from .ledger import checkpoint, head
from .store import Store
from .verify import seal_all

SEAL_SECONDS: Final = 5.0
"""how often, by default, the service seals what was written since the last seal"""
CHECKPOINT_MINUTES: Final = 60.0
"""how often, by default, the service writes a checkpoint file"""

log = logging.getLogger("tinhgon.audit")


def write_checkpoint(store: Store, signer: Signer, folder: Path, *, now: dt.datetime | None = None) -> Path:
    """Write a checkpoint of the ledger as it stands to ``folder`` (mode
    0600, the folder 0700 when made); returns the file."""
    with store.unit(write=False) as uow:
        statement = checkpoint(uow.connection, signer, now=now)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = folder / f"checkpoint-{statement['length']:012d}.json"
    temporary = folder / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(statement, out, ensure_ascii=False, indent=1)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    return target


class Sealer:
    """Seals every ``seal_seconds`` and writes a checkpoint to ``folder``
    every ``checkpoint_minutes`` (none when ``folder`` is None).

    ``lag`` is told, after each pass, how many seconds have gone since the
    sealer last left nothing pending (0 when it just did): the metric
    ``tinhgon_audit_sealer_lag_seconds``.
    """

    def __init__(
        self,
        store: Store,
        signer: Signer,
        *,
        seal_seconds: float = SEAL_SECONDS,
        folder: Path | None = None,
        checkpoint_minutes: float = CHECKPOINT_MINUTES,
        lag: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.store, self.signer = store, signer
        self.seal_seconds, self.folder, self.checkpoint_seconds = seal_seconds, folder, checkpoint_minutes * 60
        self._lag = lag
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._caught_up = time.monotonic()
        self._checkpointed: float | None = None
        self._written: int | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tinhgon-sealer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the pass under way, and seal once more (what the last requests wrote)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self.run_once()

    def run_once(self) -> int:
        """One pass: seal until nothing is pending, then a checkpoint when one is due.
        Returns the places appended. A failure is logged, never raised: the
        next pass tries again."""
        appended = 0
        try:
            appended = seal_all(self.store, self.signer)
            self._caught_up = time.monotonic()
            if self.folder is not None and self._due():
                self._checkpoint()
        except Exception:
            log.exception("audit: the sealer's pass failed; it will try again")
        self._lag(time.monotonic() - self._caught_up)
        return appended

    def _due(self) -> bool:
        return self._checkpointed is None or time.monotonic() - self._checkpointed >= self.checkpoint_seconds

    def _checkpoint(self) -> None:
        assert self.folder is not None
        self._checkpointed = time.monotonic()
        with self.store.unit(write=False) as uow:
            length, _ = head(uow.connection)
        if length == self._written:
            return  # nothing new since the last file
        write_checkpoint(self.store, self.signer, self.folder)
        self._written = length

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.seal_seconds)
