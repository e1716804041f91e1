"""Engine test helpers: a clock moved by hand, actors, and a service on
each database (the ``store`` fixture of tests/conftest.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.calendar import TIME_ZONE, WorkingCalendar
from engine.cases import CaseService
from engine.keys import Signer
from engine.machine import Actor
from engine.store import Store
from tests.transacting import Transacting

CALENDAR = WorkingCalendar()


def local(*args: int) -> dt.datetime:
    """A local (Asia/Ho_Chi_Minh) instant."""
    return dt.datetime(*args, tzinfo=TIME_ZONE)  # type: ignore[misc]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def office(role: str, unit: str = "u1", *more: str) -> Actor:
    return Actor(f"cb_{role}", unit, frozenset({role, *more}))


def applicant(user: str = "dan", unit: str = "u1") -> Actor:
    return Actor(user, unit)


@pytest.fixture
def clock() -> Clock:
    return Clock(local(2027, 3, 1, 8, 0))  # a Monday


@pytest.fixture
def service(store: Store, signer: Signer, clock: Clock) -> CaseService:
    return Transacting(store, signer=signer, calendar=CALENDAR, clock=clock)
