"""The working calendar: when a stretch of working time falls due.

Deadlines count working time only (``procedure-format.md`` section 6): Monday
to Friday, 08:00-12:00 and 13:00-17:00 in Asia/Ho_Chi_Minh, less Vietnam's
public holidays as the ``holidays`` package knows them (observed and
substituted days included, its make-up Saturdays worked), then the
operator's calendar file, which wins over both.

A :class:`WorkingCalendar` is built once and asked many times (every step
activation asks it), so each year's working days are worked out once, on
first use, and whole days are skipped by counting, never walked minute by
minute.

>>> cal = WorkingCalendar()
>>> cal.add(datetime(2027, 2, 3, 15, 0), 8).isoformat()  # over Tết 2027
'2027-02-11T15:00:00+07:00'
>>> cal.working_hours_between(datetime(2027, 2, 3, 15, 0), datetime(2027, 2, 11, 15, 0))
8.0
"""

from __future__ import annotations

import functools
import math
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import MAXYEAR, MINYEAR, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from procedures.errors import Problem, ReadError, TinhgonError
from procedures.messages import t
from procedures.yamlio import Map, Seq, YamlProblems, format_path, line_of, load_yaml
from procedures.yamlio import Path as YamlPath

TIME_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
"""Where every deadline is reckoned; naive instants are read as local time here."""

DEFAULT_HOURS: tuple[tuple[str, str], ...] = (("08:00", "12:00"), ("13:00", "17:00"))

_US_PER_MINUTE = 60_000_000
_US_PER_HOUR = 60 * _US_PER_MINUTE
_US_PER_DAY = 24 * _US_PER_HOUR
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_FILE_KEYS = ("days_off", "working_days", "hours")

# A period of work within a day, in microseconds since midnight: integers, so
# that adding and measuring working time round-trip exactly.
_Period = tuple[int, int]
# Where in a list a value was wrong (relative to the list's key), and why.
_Complaint = tuple[YamlPath, str]


class CalendarError(TinhgonError):
    """An operator's calendar file was rejected; ``problems`` lists every
    reason, each with its line and key, like a definition's errors."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line, p.path))
        super().__init__("\n".join(p.render(source) for p in self.problems))


@dataclass(frozen=True, slots=True, eq=False)
class WorkingCalendar:
    """Working time in Asia/Ho_Chi_Minh, with the operator's overrides.

    ``days_off`` are extra days off; ``working_days`` are worked whatever the
    weekday or holiday, and win over ``days_off``; ``hours`` are the working
    periods of a day as ``("HH:MM", "HH:MM")`` pairs in order. Durations stay
    in hours (``1d`` is 8 hours whatever the periods add up to).

    Raises ``ValueError`` when ``hours`` is empty, out of order, overlapping
    or not written ``HH:MM``.
    """

    days_off: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()
    hours: tuple[tuple[str, str], ...] = DEFAULT_HOURS
    _periods: tuple[_Period, ...] = field(init=False, repr=False)
    _day_us: int = field(init=False, repr=False)
    # Sorted ordinals of each year's working days, filled on first use; the
    # calendar's answers never change, only how much of them is known.
    _years: dict[int, tuple[int, ...]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        periods, complaints = _parse_periods(self.hours)
        if complaints:
            where, message = complaints[0]
            raise ValueError(f"hours{_index_text(where)}: {message}")
        object.__setattr__(self, "days_off", frozenset(self.days_off))
        object.__setattr__(self, "working_days", frozenset(self.working_days))
        object.__setattr__(self, "hours", tuple((a, b) for a, b in self.hours))
        object.__setattr__(self, "_periods", periods)
        object.__setattr__(self, "_day_us", sum(end - start for start, end in periods))

    # -- days ------------------------------------------------------------------
    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` has working hours (a datetime counts by its local date).

        >>> WorkingCalendar().is_working_day(date(2027, 5, 3))  # 1 May observed
        False
        """
        if isinstance(day, datetime):
            day = _local(day).date()
        if day in self.working_days:
            return True
        if day in self.days_off:
            return False
        public_off, make_up = _public_days(day.year)
        if day in make_up:
            return True
        return day.weekday() < 5 and day not in public_off

    def _ordinals(self, year: int) -> tuple[int, ...]:
        days = self._years.get(year)
        if days is None:
            if not MINYEAR <= year <= MAXYEAR:
                raise ValueError(t("working time reaches year {year}, beyond what dates can express", year=year))
            first = date(year, 1, 1).toordinal()
            last = date(year, 12, 31).toordinal()
            days = tuple(n for n in range(first, last + 1) if self.is_working_day(date.fromordinal(n)))
            self._years[year] = days
        return days

    def _nth_working_day_after(self, ordinal: int, n: int) -> int:
        year = date.fromordinal(ordinal).year
        days = self._ordinals(year)
        i = bisect_right(days, ordinal)
        while n > len(days) - i:
            n -= len(days) - i
            year += 1
            days, i = self._ordinals(year), 0
        return days[i + n - 1]

    def _working_days_strictly_between(self, lo: int, hi: int) -> int:
        count = 0
        for year in range(date.fromordinal(lo).year, date.fromordinal(hi).year + 1):
            days = self._ordinals(year)
            count += bisect_left(days, hi) - bisect_right(days, lo)
        return count

    # -- time ------------------------------------------------------------------
    def add(self, start: datetime, hours: float) -> datetime:
        """The instant ``hours`` of working time after ``start``.

        Time outside working hours does not count, so a start outside them
        counts from the next working minute; a result exactly at the end of a
        period stays there (4 hours from 08:00 is 12:00, not 13:00). Zero
        hours give ``start`` itself, in local time. The result is aware, in
        Asia/Ho_Chi_Minh; a naive ``start`` is local time.

        >>> WorkingCalendar().add(datetime(2027, 3, 5, 16, 0), 2).isoformat()  # Friday
        '2027-03-08T09:00:00+07:00'

        Raises ``ValueError`` for negative, infinite or NaN ``hours``.
        """
        if not math.isfinite(hours) or hours < 0:
            raise ValueError(t("working time to add must be a finite number of hours, 0 or more, not {hours}", hours=repr(hours)))
        if hours > MAXYEAR * 366 * 24:
            raise ValueError(_beyond(hours))
        local = _local(start)
        remaining = round(hours * _US_PER_HOUR)
        if remaining == 0:
            return local_time(start)
        day = local.date()
        if self.is_working_day(day):
            at, remaining = self._spend(_since_midnight(local), remaining)
            if not remaining:
                return _instant(day.toordinal(), at)
        # What is left fills some whole working days, then part (or all) of
        # one more; only that last one needs walking period by period.
        whole = (remaining - 1) // self._day_us
        if whole > (MAXYEAR - day.year + 1) * 366:
            raise ValueError(_beyond(hours))
        last = self._nth_working_day_after(day.toordinal(), whole + 1)
        at, _ = self._spend(0, remaining - whole * self._day_us)
        return _instant(last, at)

    def _spend(self, at: int, remaining: int) -> tuple[int, int]:
        """Walk one working day from ``at``: where ``remaining`` runs out, and
        what is left over when the day's periods are not enough."""
        for begin, end in self._periods:
            if at >= end:
                continue
            begin = max(begin, at)
            if remaining <= end - begin:
                return begin + remaining, 0
            remaining -= end - begin
            at = end
        return at, remaining

    def _worked(self, frm: int, to: int) -> int:
        return sum(max(0, min(end, to) - max(begin, frm)) for begin, end in self._periods)

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Working hours from ``a`` to ``b``; 0 when ``b`` is not after ``a``.

        The engine stops a case's clock with this: the time its applicant
        held a returned step moves the case's due time later by as much.

        >>> WorkingCalendar().working_hours_between(datetime(2027, 3, 5, 16, 0), datetime(2027, 3, 8, 9, 0))
        2.0
        """
        la, lb = _local(a), _local(b)
        if lb <= la:
            return 0.0
        da, db = la.date(), lb.date()
        ta, tb = _since_midnight(la), _since_midnight(lb)
        if da == db:
            worked = self._worked(ta, tb) if self.is_working_day(da) else 0
        else:
            worked = (self._worked(ta, _US_PER_DAY) if self.is_working_day(da) else 0) + (
                self._worked(0, tb) if self.is_working_day(db) else 0
            )
            worked += self._working_days_strictly_between(da.toordinal(), db.toordinal()) * self._day_us
        return worked / _US_PER_HOUR


def _beyond(hours: float) -> str:
    return t("{hours} working hours reach beyond year {year}", hours=repr(hours), year=MAXYEAR)


# -- the calendar file ---------------------------------------------------------
def load_calendar(path: str | os.PathLike[str]) -> WorkingCalendar:
    """Read an operator's calendar file (see :func:`parse_calendar`).

    Raises :class:`~procedures.errors.ReadError` when the file cannot be read
    and :class:`CalendarError` when it is not a valid calendar.
    """
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except IsADirectoryError:
        raise ReadError(source, t("is a directory, not a calendar file")) from None
    except FileNotFoundError:
        raise ReadError(source, t("no such file")) from None
    except OSError as exc:
        raise ReadError(source, t("cannot be read: {error}", error=exc.strerror or str(exc))) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        not_utf8 = t("the file is not UTF-8 text: byte 0x{byte}", byte=f"{raw[exc.start]:02X}")
        raise CalendarError(source, [Problem(line, "", not_utf8)]) from None
    return parse_calendar(text, source)


def parse_calendar(text: str, source: str = "<calendar>") -> WorkingCalendar:
    """A calendar from the YAML of an operator's calendar file.

    >>> cal = parse_calendar('''
    ... days_off: [2027-03-08]
    ... working_days: [2027-03-13]   # a make-up Saturday
    ... hours: [["07:30", "11:30"], ["13:30", "17:30"]]
    ... ''')
    >>> cal.is_working_day(date(2027, 3, 8)), cal.is_working_day(date(2027, 3, 13))
    (False, True)

    An empty file changes nothing. Raises :class:`CalendarError` listing every
    problem (YAML syntax, unknown keys, dates not written ``YYYY-MM-DD`` or
    not on the calendar, periods not ``HH:MM``, out of order or overlapping),
    each with its line and key.
    """
    try:
        root = load_yaml(text)
    except YamlProblems as exc:
        raise CalendarError(source, exc.problems) from None
    if root is None:
        return WorkingCalendar()
    if not isinstance(root, Map):
        line = root.line if isinstance(root, Seq) else 1
        shape = t("a calendar file is a mapping with the keys days_off, working_days and hours")
        raise CalendarError(source, [Problem(line, "", shape)])
    problems = [
        Problem(root.key_lines[key], key, t("unknown key «{key}»; a calendar file has days_off, working_days and hours", key=key))
        for key in root
        if key not in _FILE_KEYS
    ]

    def complain(key: str, complaints: list[_Complaint]) -> None:
        for where, message in complaints:
            path = (key, *where)
            problems.append(Problem(line_of(root, path), format_path(path), message))

    days: dict[str, frozenset[date]] = {}
    for key in ("days_off", "working_days"):
        value = root.get(key)
        if value is None:
            days[key] = frozenset()
        elif not isinstance(value, Seq):
            days[key] = frozenset()
            complain(key, [((), t("must be a list of dates written YYYY-MM-DD, e.g. [2027-02-11, 2027-02-12]"))])
        else:
            days[key], complaints = _parse_dates(value)
            complain(key, complaints)
    hours: Any = root.get("hours", DEFAULT_HOURS)
    if isinstance(root.get("hours"), Seq):
        _, complaints = _parse_periods(hours)
        complain("hours", complaints)
    elif "hours" in root:
        complain("hours", [((), t('must be a list of working periods, e.g. [["08:00", "12:00"], ["13:00", "17:00"]]'))])
    if problems:
        raise CalendarError(source, problems)
    return WorkingCalendar(days_off=days["days_off"], working_days=days["working_days"], hours=tuple(tuple(p) for p in hours))


def _parse_dates(items: Iterable[object]) -> tuple[frozenset[date], list[_Complaint]]:
    found: set[date] = set()
    complaints: list[_Complaint] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not _DATE.fullmatch(item):
            complaints.append(((i,), t("{value} is not a date written YYYY-MM-DD, e.g. 2027-02-11", value=repr(item))))
            continue
        try:
            found.add(date.fromisoformat(item))
        except ValueError:
            complaints.append(((i,), t("{value} is not a day of the calendar", value=repr(item))))
    return frozenset(found), complaints


def _parse_periods(pairs: Sequence[object]) -> tuple[tuple[_Period, ...], list[_Complaint]]:
    periods: list[_Period] = []
    complaints: list[_Complaint] = []
    if not pairs:
        return (), [((), t('needs at least one working period, e.g. ["08:00", "12:00"]'))]
    previous_end = 0
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            complaints.append(
                ((i,), t('{value} is not a working period: write a start and an end, e.g. ["08:00", "12:00"]', value=repr(pair)))
            )
            continue
        clocks: list[int] = []
        for j, text in enumerate(pair):
            try:
                clocks.append(_clock(text))
            except ValueError as exc:
                complaints.append(((i, j), str(exc)))
        if len(clocks) != 2:
            continue
        begin, end = clocks
        if begin >= end:
            complaints.append(((i,), t("the period {start}-{end} must end after it starts", start=pair[0], end=pair[1])))
        elif begin < previous_end:
            overlap = t(
                "the period {start}-{end} starts before the one above it ends; list periods in order, without overlaps",
                start=pair[0],
                end=pair[1],
            )
            complaints.append(((i,), overlap))
        else:
            periods.append((begin, end))
            previous_end = end
    return tuple(periods), complaints


def _clock(text: object) -> int:
    """Microseconds since midnight of ``"HH:MM"`` (``"24:00"`` is midnight at the end)."""
    match = _CLOCK.fullmatch(text) if isinstance(text, str) else None
    if match is not None:
        hour, minute = int(match.group(1)), int(match.group(2))
        if (hour < 24 and minute < 60) or (hour, minute) == (24, 0):
            return (hour * 60 + minute) * _US_PER_MINUTE
    raise ValueError(t('{value} is not a time of day written HH:MM, e.g. "08:00"', value=repr(text)))


def _index_text(where: YamlPath) -> str:
    return "".join(f"[{i}]" if isinstance(i, int) else f".{i}" for i in where)


# -- instants ------------------------------------------------------------------
def local_time(moment: datetime) -> datetime:
    """``moment`` as an aware instant in Asia/Ho_Chi_Minh; a naive one is taken as local time.

    >>> from datetime import UTC
    >>> local_time(datetime(2027, 2, 3, 8, 0, tzinfo=UTC)).isoformat()
    '2027-02-03T15:00:00+07:00'
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=TIME_ZONE)
    return moment.astimezone(TIME_ZONE)  # one conversion: every time a case is shown, each of its instants


def _local(moment: datetime) -> datetime:
    """``moment`` as naive wall-clock time in Asia/Ho_Chi_Minh.

    Vietnam has kept one offset since 1975, so wall-clock arithmetic on the
    naive value is exact for any date a case will see."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=None)
    return moment.astimezone(TIME_ZONE).replace(tzinfo=None)


def _since_midnight(local: datetime) -> int:
    return ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond


def _instant(ordinal: int, since_midnight: int) -> datetime:
    day = date.fromordinal(ordinal)
    return datetime(day.year, day.month, day.day, tzinfo=TIME_ZONE) + timedelta(microseconds=since_midnight)


@functools.cache
def _public_days(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """Vietnam's public days off in ``year`` and its make-up working weekend days."""
    # A swap is decreed with the holiday it serves, which may fall in the next
    # year (Saturday 27 December 2014 was worked for 2 January 2015), so the
    # neighbouring years are read too.
    years = range(max(year - 1, MINYEAR), min(year + 1, MAXYEAR) + 1)
    table = holidays.country_holidays("VN", years=years)
    off = frozenset(d for d in table if d.year == year)
    make_up = frozenset(d for d in table.weekend_workdays if d.year == year)
    return off, make_up
