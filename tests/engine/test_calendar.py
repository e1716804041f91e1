"""The working calendar: holidays, working hours, the operator's file."""

from __future__ import annotations

import doctest
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine.calendar
from engine.calendar import TIME_ZONE, CalendarError, WorkingCalendar, load_calendar, parse_calendar
from procedures.errors import ReadError, TinhgonError
from procedures.messages import speaking

CAL = WorkingCalendar()
ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TIME_ZONE)


# Weekdays of 2027 that Vietnam does not work, as holidays 0.109 gives them
# (Labour Code 2019 art. 112 and its observed-day rules): Tết runs Thursday
# 4 February (29 Tết, instead of Saturday the 6th) to Wednesday 10 February
# (mùng 5, instead of Sunday the 7th); 1 May falls on a Saturday and is
# observed on Monday 3 May; 2 September gets 3 September; 24 November is
# Vietnam Cultural Day from 2026.
WEEKDAYS_OFF_2027 = {
    date(2027, 1, 1),
    date(2027, 2, 4),
    date(2027, 2, 5),
    date(2027, 2, 8),
    date(2027, 2, 9),
    date(2027, 2, 10),
    date(2027, 4, 16),
    date(2027, 4, 30),
    date(2027, 5, 3),
    date(2027, 9, 2),
    date(2027, 9, 3),
    date(2027, 11, 24),
}


def test_public_holidays_2027_are_the_package_s() -> None:
    day = date(2027, 1, 1)
    while day.year == 2027:
        expected = day.weekday() < 5 and day not in WEEKDAYS_OFF_2027
        assert CAL.is_working_day(day) is expected, day
        day += timedelta(days=1)


def test_tet_2027() -> None:
    # Wednesday 3 February is the last working day before Tết, Thursday the
    # 11th the first after it.
    assert CAL.add(at(2027, 2, 3, 15), 8) == at(2027, 2, 11, 15)
    assert CAL.add(at(2027, 2, 3, 17), 1) == at(2027, 2, 11, 9)
    assert CAL.add(at(2027, 2, 6, 10), 1) == at(2027, 2, 11, 9)
    assert CAL.add(at(2027, 2, 1, 8), 5 * 8) == at(2027, 2, 12, 17)
    assert CAL.working_hours_between(at(2027, 2, 3, 15), at(2027, 2, 11, 15)) == 8.0
    assert CAL.working_hours_between(at(2027, 2, 4, 8), at(2027, 2, 10, 17)) == 0.0


def test_reunification_and_labour_day_2027_with_observed_monday() -> None:
    assert not CAL.is_working_day(date(2027, 4, 30))
    assert not CAL.is_working_day(date(2027, 5, 3))
    assert CAL.is_working_day(date(2027, 5, 4))
    assert CAL.add(at(2027, 4, 29, 16), 2) == at(2027, 5, 4, 9)
    assert CAL.working_hours_between(at(2027, 4, 29, 16), at(2027, 5, 4, 9)) == 2.0


def test_package_make_up_saturday_is_worked() -> None:
    # 2026: Monday 31 August off for the National Day, Saturday 22 August worked instead.
    assert CAL.is_working_day(date(2026, 8, 22))
    assert not CAL.is_working_day(date(2026, 8, 31))
    assert CAL.add(at(2026, 8, 21, 16), 2) == at(2026, 8, 22, 9)
    assert not WorkingCalendar(days_off=frozenset({date(2026, 8, 22)})).is_working_day(date(2026, 8, 22))


def test_lunch_hours_do_not_count() -> None:
    assert CAL.add(at(2027, 3, 1, 11), 2) == at(2027, 3, 1, 14)
    assert CAL.working_hours_between(at(2027, 3, 1, 11), at(2027, 3, 1, 14)) == 2.0
    assert CAL.working_hours_between(at(2027, 3, 1, 12), at(2027, 3, 1, 13)) == 0.0


def test_weekends_do_not_count() -> None:
    assert CAL.add(at(2027, 3, 5, 16), 2) == at(2027, 3, 8, 9)
    assert CAL.working_hours_between(at(2027, 3, 5, 16), at(2027, 3, 8, 9)) == 2.0
    assert CAL.working_hours_between(at(2027, 3, 6, 9), at(2027, 3, 7, 16)) == 0.0


def test_a_result_at_the_end_of_a_period_stays_there() -> None:
    assert CAL.add(at(2027, 3, 1, 8), 4) == at(2027, 3, 1, 12)
    assert CAL.add(at(2027, 3, 1, 8), 8) == at(2027, 3, 1, 17)
    assert CAL.add(at(2027, 3, 5, 8), 8) == at(2027, 3, 5, 17)  # a Friday: not Monday 08:00
    assert CAL.add(at(2027, 3, 1, 8), 16) == at(2027, 3, 2, 17)
    assert CAL.add(at(2027, 2, 1, 8), 24) == at(2027, 2, 3, 17)  # the eve of Tết


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (at(2027, 3, 1, 7), 1, at(2027, 3, 1, 9)),
        (at(2027, 3, 1, 0), 0.5, at(2027, 3, 1, 8, 30)),
        (at(2027, 3, 1, 12, 30), 1, at(2027, 3, 1, 14)),
        (at(2027, 3, 1, 12), 1, at(2027, 3, 1, 14)),
        (at(2027, 3, 1, 17), 1, at(2027, 3, 2, 9)),
        (at(2027, 3, 1, 18), 4, at(2027, 3, 2, 12)),
        (at(2027, 3, 6, 10), 1, at(2027, 3, 8, 9)),
    ],
)
def test_a_start_outside_working_hours_counts_from_the_next_working_minute(start: datetime, hours: float, due: datetime) -> None:
    assert CAL.add(start, hours) == due


def test_adding_nothing_gives_the_start() -> None:
    saturday = at(2027, 3, 6, 10)
    assert CAL.add(saturday, 0) == saturday
    assert CAL.add(at(2027, 3, 1, 12), 0) == at(2027, 3, 1, 12)


def test_naive_is_local_and_aware_is_converted() -> None:
    assert CAL.add(datetime(2027, 3, 1, 11), 2) == at(2027, 3, 1, 14)
    due = CAL.add(datetime(2027, 3, 1, 1, 0, tzinfo=UTC), 1)  # 08:00 in Hà Nội
    assert due == at(2027, 3, 1, 9)
    assert due.tzinfo is TIME_ZONE
    assert due.isoformat() == "2027-03-01T09:00:00+07:00"
    # Friday 21:00 in Hà Nội is already Saturday local time.
    assert not CAL.is_working_day(datetime(2027, 3, 5, 20, 0, tzinfo=UTC))
    paris = timezone(timedelta(hours=1))
    assert CAL.working_hours_between(datetime(2027, 3, 1, 2, tzinfo=paris), at(2027, 3, 1, 10)) == 2.0


def test_operator_days_off_and_working_days() -> None:
    monday, saturday = date(2027, 3, 8), date(2027, 3, 6)
    off = WorkingCalendar(days_off=frozenset({monday}))
    assert off.add(at(2027, 3, 5, 16), 2) == at(2027, 3, 9, 9)
    assert off.working_hours_between(at(2027, 3, 5, 16), at(2027, 3, 9, 9)) == 2.0
    make_up = WorkingCalendar(working_days=frozenset({saturday}))
    assert make_up.add(at(2027, 3, 5, 16), 2) == at(2027, 3, 6, 9)
    tet_worked = WorkingCalendar(working_days=frozenset({date(2027, 2, 8)}))
    assert tet_worked.add(at(2027, 2, 3, 17), 1) == at(2027, 2, 8, 9)
    both = WorkingCalendar(days_off=frozenset({monday, saturday}), working_days=frozenset({monday, saturday}))
    assert both.is_working_day(monday) and both.is_working_day(saturday)


def test_one_day_is_eight_hours_whatever_the_hours() -> None:
    short = WorkingCalendar(hours=(("08:00", "11:00"),))
    assert short.add(at(2027, 3, 1, 8), 8) == at(2027, 3, 3, 10)
    assert short.working_hours_between(at(2027, 3, 1, 8), at(2027, 3, 3, 10)) == 8.0
    shifted = WorkingCalendar(hours=(("07:30", "11:30"), ("13:30", "17:30")))
    assert shifted.add(at(2027, 3, 1, 7, 30), 8) == at(2027, 3, 1, 17, 30)
    assert shifted.add(at(2027, 3, 1, 12), 1) == at(2027, 3, 1, 14, 30)


def test_bad_arguments() -> None:
    for hours in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="một số giờ hữu hạn"):
            CAL.add(at(2027, 3, 1, 8), hours)
    with pytest.raises(ValueError, match="kéo quá năm 9999"):
        CAL.add(at(2027, 3, 1, 8), 1e300)
    with pytest.raises(ValueError, match=r"hours\[1\]: .*bắt đầu trước khi khoảng phía trên kết thúc"):
        WorkingCalendar(hours=(("08:00", "12:00"), ("11:00", "17:00")))
    with pytest.raises(ValueError, match="cần ít nhất một khoảng giờ làm việc"):
        WorkingCalendar(hours=())


def reference_add(cal: WorkingCalendar, start: datetime, minutes: int) -> datetime:
    """Minute by minute: slow, but plainly right."""
    t = start.astimezone(TIME_ZONE).replace(second=0, microsecond=0)
    assert t == start
    periods = [(int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:])) for a, b in cal.hours]
    while minutes:
        of_day = t.hour * 60 + t.minute
        if cal.is_working_day(t.date()) and any(a <= of_day < b for a, b in periods):
            minutes -= 1
        t += timedelta(minutes=1)
    return t


@pytest.mark.parametrize(
    ("start", "days"),
    [(at(2027, 1, 4, 8), 60), (at(2027, 1, 29, 15, 20), 60), (at(2026, 12, 20, 9), 30), (at(2027, 4, 10, 0), 45)],
)
def test_large_durations_match_a_minute_by_minute_walk(start: datetime, days: int) -> None:
    due = CAL.add(start, days * 8)
    assert due == reference_add(CAL, start, days * 8 * 60)
    assert CAL.working_hours_between(start, due) == days * 8


def test_large_durations_are_quick() -> None:
    import time

    fresh = WorkingCalendar()
    begun = time.perf_counter()
    for i in range(2000):
        fresh.add(at(2027, 1, 4, 8) + timedelta(hours=i), 60 * 8)
    # Two thousand 60-day deadlines take milliseconds; a walk by the minute
    # would take minutes. The bound is loose because machines are shared.
    assert time.perf_counter() - begun < 5


starts = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=TIME_ZONE)
)
durations = st.integers(min_value=0, max_value=90 * 8 * 60).map(lambda m: m / 60)


@given(starts, durations)
def test_adding_then_measuring_gives_the_duration_back(start: datetime, hours: float) -> None:
    due = CAL.add(start, hours)
    assert due >= start
    assert CAL.working_hours_between(start, due) == pytest.approx(hours, abs=1e-9)


@given(starts, durations, durations)
def test_more_hours_never_come_due_earlier(start: datetime, h1: float, h2: float) -> None:
    low, high = sorted((h1, h2))
    assert CAL.add(start, low) <= CAL.add(start, high)


@given(starts, starts, durations)
def test_a_later_start_never_comes_due_earlier(s1: datetime, s2: datetime, hours: float) -> None:
    early, late = sorted((s1, s2))
    assert CAL.add(early, hours) <= CAL.add(late, hours)
    assert CAL.working_hours_between(early, late) >= 0
    assert CAL.working_hours_between(late, early) == 0


@given(starts, st.integers(min_value=1, max_value=3 * 8 * 60))
def test_small_durations_match_a_minute_by_minute_walk(start: datetime, minutes: int) -> None:
    assert CAL.add(start, minutes / 60) == reference_add(CAL, start, minutes)


# -- the calendar file ---------------------------------------------------------
def test_calendar_file(tmp_path: Path) -> None:
    path = tmp_path / "lich.yaml"
    path.write_text(
        """\
# Lịch làm việc của Sở
days_off: [2027-03-08, "2027-03-09"]
working_days:
  - 2027-03-06   # làm bù
  - 2027-03-09   # in both lists: worked
hours: [["07:30", "11:30"], ["13:30", "17:30"]]
""",
        encoding="utf-8",
    )
    cal = load_calendar(path)
    assert not cal.is_working_day(date(2027, 3, 8))
    assert cal.is_working_day(date(2027, 3, 9))
    assert cal.is_working_day(date(2027, 3, 6))
    assert cal.hours == (("07:30", "11:30"), ("13:30", "17:30"))
    assert cal.add(at(2027, 3, 5, 17), 1) == at(2027, 3, 6, 8)  # 17:00-17:30 on Friday, then Saturday 07:30
    assert parse_calendar("").hours == WorkingCalendar().hours
    assert parse_calendar("days_off: []\n").days_off == frozenset()


def problems_of(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(CalendarError) as info:
        parse_calendar(text, "lich.yaml")
    assert isinstance(info.value, TinhgonError)
    lines = str(info.value).splitlines()
    for line in lines:
        assert ERROR_LINE.match(line), line
        assert line.startswith("lich.yaml:")
    return [(p.line, p.path, p.message) for p in info.value.problems]


def test_bad_calendar_files_name_the_line_and_key() -> None:
    found = problems_of(
        """\
days_off:
  - 2027-03-08
  - 2027-02-30
  - 8/3/2027
working_days: 2027-03-06
hours: [["08:00", "12:00"], ["12:30", "25:00"], ["11:00", "13:00"], [17]]
holidays: []
"""
    )
    assert [(line, path) for line, path, _ in found] == [
        (3, "days_off[1]"),
        (4, "days_off[2]"),
        (5, "working_days"),
        (6, "hours[1][1]"),
        (6, "hours[2]"),
        (6, "hours[3]"),
        (7, "holidays"),
    ]
    messages = " | ".join(m for _, _, m in found)
    assert "'2027-02-30' không phải một ngày có thật trong lịch" in messages
    assert "'8/3/2027' không phải ngày viết dạng YYYY-MM-DD" in messages
    assert "'25:00' không phải giờ trong ngày" in messages
    assert "khóa không xác định «holidays»" in messages


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("days_off: [2027-03-08\n", 2, "YAML syntax error"),
        ("- 2027-03-08\n", 1, "a calendar file is a mapping"),
        ("days_off: []\ndays_off: []\n", 2, "duplicate key"),
        ("hours: []\n", 1, "at least one working period"),
        ('hours: [["13:00", "12:00"]]\n', 1, "must end after it starts"),
        ("hours: 8\n", 1, "must be a list of working periods"),
    ],
)
def test_more_bad_calendar_files(text: str, line: int, fragment: str) -> None:
    with speaking("en"):
        found = problems_of(text)
    assert found[0][0] == line
    assert fragment in found[0][2]


def test_unreadable_calendar_files(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="không có tệp này"):
        load_calendar(tmp_path / "missing.yaml")
    with pytest.raises(ReadError, match="là một thư mục"):
        load_calendar(tmp_path)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"days_off: []\n# L\xe0m b\xf9\n")
    with pytest.raises(CalendarError, match=r"latin\.yaml:2: \(document\): tệp không phải văn bản UTF-8"):
        load_calendar(latin)


def test_the_module_examples_run() -> None:
    result = doctest.testmod(engine.calendar)
    assert result.attempted > 0
    assert result.failed == 0
