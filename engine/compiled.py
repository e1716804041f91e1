"""Procedure versions compiled into machines, once per process, by database id."""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any, Protocol

from procedures import load_text
from procedures.messages import t

from .direct import Ask, Direct, run_steps
from .errors import CorruptRecord, NotFound
from .journal import content_hash
from .machine import CompiledProcedure
from .rows import READ_PROCEDURE
from .store import UnitOfWork


class StoredProcedure(Protocol):
    """What compiling a stored version needs of its row."""

    @property
    def id(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def body(self) -> str: ...
    @property
    def content_hash(self) -> str: ...


class Compiled:
    """Compiled procedure versions, by database id: each is built once per
    process, on first use, and shared by every case and thread."""

    def __init__(self) -> None:
        self._by_id: dict[int, CompiledProcedure] = {}
        self._lock = threading.Lock()

    def by_id(self, procedure_id: int, uow: UnitOfWork) -> CompiledProcedure:
        """The compiled version with this id; the database is read only the
        first time (an action needs no procedure row once it is compiled)."""
        found = self._by_id.get(procedure_id)
        return found if found is not None else self.get(uow.procedure_by_id(procedure_id))

    def on(self, procedure_id: int, db: Direct) -> CompiledProcedure:
        """As :meth:`by_id`, inside a direct transaction.

        Raises:
            NotFound: no procedure has this id.
        """
        found = self._by_id.get(procedure_id)
        return found if found is not None else run_steps(self.asking(procedure_id), db)

    def ready(self, procedure_id: int) -> CompiledProcedure | None:
        """The compiled version with this id, if it is compiled already."""
        return self._by_id.get(procedure_id)

    def asking(self, procedure_id: int) -> Generator[Ask, Any, CompiledProcedure]:
        """:meth:`on` as statements asked one at a time (see
        :func:`~engine.direct.run_steps`): none once it is compiled.

        Raises:
            NotFound: no procedure has this id.
        """
        found = self._by_id.get(procedure_id)
        if found is not None:
            return found
        row = yield READ_PROCEDURE, {"b_id": procedure_id}
        if row is None:
            raise NotFound(t("no procedure with id {id}", id=procedure_id))
        return self.get(row)

    def get(self, row: StoredProcedure) -> CompiledProcedure:
        found = self._by_id.get(row.id)
        if found is not None:
            return found
        with self._lock:
            found = self._by_id.get(row.id)
            if found is None:
                if content_hash(row.body) != row.content_hash:
                    raise CorruptRecord(
                        t(
                            "procedure {code} version {version}: the stored body does not match its content hash",
                            code=row.code,
                            version=row.version,
                        )
                    )
                found = CompiledProcedure(load_text(row.body, source=f"{row.code}.v{row.version}"))
                self._by_id[row.id] = found
            return found
