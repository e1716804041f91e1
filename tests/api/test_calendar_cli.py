"""``tinhgon calendar due``: output, time zones, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["calendar", "due", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_due_over_tet_2027(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "2027-02-03T15:00", "1d") == (0, "2027-02-11T15:00:00+07:00\n", "")


@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        ("2027-03-05T16:00", "2h", "2027-03-08T09:00:00+07:00"),  # naive: local time
        ("2027-03-05T16:00:00+07:00", "2h", "2027-03-08T09:00:00+07:00"),
        ("2027-03-05T09:00:00Z", "2h", "2027-03-08T09:00:00+07:00"),  # 16:00 in Hà Nội
        ("2027-03-05T10:00:00+09:00", "30m", "2027-03-05T08:30:00+07:00"),  # 08:00 in Hà Nội
        ("2027-03-01T11:00", "2h", "2027-03-01T14:00:00+07:00"),
        ("2027-03-01T08:00", "4h", "2027-03-01T12:00:00+07:00"),
        ("2027-03-01", "1d", "2027-03-01T17:00:00+07:00"),
        ("2027-04-29T16:00", "2h", "2027-05-04T09:00:00+07:00"),
        ("2027-01-04T08:00", "60d", "2027-04-02T17:00:00+07:00"),
        ("2027-03-01T08:00", "0h", "2027-03-01T08:00:00+07:00"),
    ],
)
def test_due(capsys: pytest.CaptureFixture[str], start: str, duration: str, due: str) -> None:
    assert run(capsys, start, duration) == (0, due + "\n", "")


def test_due_with_an_operator_calendar(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cal = tmp_path / "lich.yaml"
    cal.write_text("days_off: [2027-03-08]\nworking_days: [2027-02-08]\n", encoding="utf-8")
    assert run(capsys, "2027-03-05T16:00", "2h", "--calendar", str(cal)) == (0, "2027-03-09T09:00:00+07:00\n", "")
    assert run(capsys, "2027-02-03T17:00", "1h", "--calendar", str(cal)) == (0, "2027-02-08T09:00:00+07:00\n", "")


def test_due_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "2027-02-03T08:00:00Z", "1d", "--json")
    assert code == 0
    assert json.loads(out) == {
        "start": "2027-02-03T15:00:00+07:00",
        "duration": "1d",
        "hours": 8.0,
        "due": "2027-02-11T15:00:00+07:00",
    }


@pytest.mark.parametrize(
    ("start", "duration", "message"),
    [
        ("tomorrow", "1d", "«tomorrow» không phải là thời điểm theo ISO 8601"),
        ("2027-02-30T08:00", "1d", "«2027-02-30T08:00» không phải là thời điểm theo ISO 8601"),
        ("2027-02-03T15:00", "3 days", "«3 days» không phải là một khoảng thời gian"),
        ("2027-02-03T15:00", "", "«» không phải là một khoảng thời gian"),
        ("9999-12-31T08:00", "2d", "vượt quá phạm vi ngày tháng"),
    ],
)
def test_bad_start_or_duration(capsys: pytest.CaptureFixture[str], start: str, duration: str, message: str) -> None:
    code, out, err = run(capsys, start, duration)
    assert (code, out) == (2, "")
    assert message in err


def test_bad_calendar_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cal = tmp_path / "lich.yaml"
    cal.write_text(
        "days_off:\n  - 2027-03-08\n  - 2027-13-01\nhours: [['08:00', '12:00'], ['13:00', '17:60']]\n", encoding="utf-8"
    )
    code, out, err = run(capsys, "2027-03-05T16:00", "2h", "--calendar", str(cal))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{cal}:3: days_off[1]: '2027-13-01' không phải một ngày có thật trong lịch",
        f"{cal}:4: hours[1][1]: '17:60' không phải giờ trong ngày viết dạng HH:MM, ví dụ \"08:00\"",
    ]


def test_missing_calendar_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "2027-03-05T16:00", "2h", "--calendar", str(tmp_path / "missing.yaml"))
    assert (code, out) == (2, "")
    assert err == f"{tmp_path / 'missing.yaml'}: không có tệp này\n"
