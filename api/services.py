"""What a running service holds: built once at start-up (the app's
lifespan) and shared by every request of a worker."""

from __future__ import annotations

from dataclasses import dataclass

from engine.audit import Signer
from engine.calendar import WorkingCalendar, load_calendar
from engine.cases import CaseService, Compiled
from engine.schema import upgrade
from engine.store import Store

from .settings import Settings


@dataclass
class Services:
    settings: Settings
    store: Store
    signer: Signer
    calendar: WorkingCalendar
    cases: CaseService
    compiled: Compiled

    @classmethod
    def start(cls, settings: Settings) -> Services:
        """Open the database (migrating it), the signing key and the calendar."""
        store = Store(settings.database_url)
        upgrade(store.engine)
        signer = Signer.load_or_create(settings.key_file)
        calendar = load_calendar(settings.calendar_file) if settings.calendar_file else WorkingCalendar()
        compiled = Compiled()
        cases = CaseService(
            store, signer=signer, calendar=calendar, compiled=compiled, idempotency_lease=settings.idempotency_lease_seconds
        )
        return cls(settings, store, signer, calendar, cases, compiled)

    def close(self) -> None:
        self.store.dispose()
