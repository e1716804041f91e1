"""``tinhgon report``: what it writes and prints, and its exit statuses."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from api.cli import main
from tests.conftest import DEFINITIONS, definition_text

ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def small_catalog(folder: Path) -> Path:
    for name in ("dang-ky-khai-sinh.v1.yaml", "dang-ky-khai-sinh.v2.yaml"):
        shutil.copy(DEFINITIONS / name, folder / name)
    return folder


def test_html_is_written(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "report.html"
    code, out, err = run(capsys, "report", str(small_catalog(tmp_path)), "-o", str(out_file))
    assert code == 0, err
    assert out == "" and f"{out_file}: báo cáo 1 thủ tục" in err
    page = out_file.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="vi">' in page
    assert "Đăng ký khai sinh" in page


def test_json_goes_to_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "report", str(small_catalog(tmp_path)), "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) >= {"procedures", "totals", "targets", "time_aggregation"}
    assert [p["code"] for p in data["procedures"]] == ["1.001193"]
    assert {(t["programme"], t["metric"]) for t in data["targets"]} == {
        ("qd-1085-2022", "count"),
        ("qd-1085-2022", "annual_compliance_cost"),
        ("nq-66-2025", "time_limit_days"),
        ("nq-66-2025", "annual_compliance_cost"),
        ("nq-66-2026", "time_limit_days"),
        ("nq-66-2026", "annual_compliance_cost"),
    }
    for t in data["targets"]:
        assert set(t) == {
            "programme",
            "name",
            "scope",
            "metric",
            "baseline",
            "required_cut_percent",
            "procedures",
            "before",
            "after",
            "cut_percent",
            "met",
            "shortfall",
            "missing",
        }


def test_html_and_json_at_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "out" / "r.html"
    out_file.parent.mkdir()
    code, out, _ = run(capsys, "report", str(small_catalog(tmp_path)), "-o", str(out_file), "--json")
    assert code == 0 and out_file.exists()
    assert json.loads(out)["counts"]["all"] == 1


def test_markdown_to_stdout_or_to_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = small_catalog(tmp_path)
    code, out, _ = run(capsys, "report", str(folder), "--md")
    assert code == 0 and out.startswith("# Báo cáo") and "| Chỉ số |" in out
    md_file = tmp_path / "report.md"
    code, _, _ = run(capsys, "report", str(folder), "-o", str(md_file))
    assert code == 0 and md_file.read_text(encoding="utf-8") == out


def test_without_options_prints_the_target_check(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", str(DEFINITIONS))
    assert code == 0
    assert "Quyết định 1085/QĐ-TTg" in out and "Nghị quyết 66/NQ-CP" in out
    assert re.search(r"(Chưa đạt|Đạt)", out)


def test_invalid_definition_is_status_2_with_file_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = small_catalog(tmp_path)
    bad = folder / "bad.yaml"
    bad.write_text(
        definition_text("""\
roles: [{id: cb, name: Cán bộ, kind: office}]
documents: [{id: kq, name: KQ, deliverable: true}]
steps:
  - {id: a, name: A, role: cb, outputs: [kq]}
  - {id: b, name: B, role: ghost}
"""),
        encoding="utf-8",
    )
    out_file = tmp_path / "report.html"
    code, out, err = run(capsys, "report", str(folder), "-o", str(out_file), "--json")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    parsed = [ERROR_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["file"], m["line"], m["path"]) for m in parsed if m] == [(str(bad), "9", "steps[1].role")]
    assert not out_file.exists()  # no plan whose totals leave a procedure out


def test_empty_folder_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "report", str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert code == 2 and out == ""
    assert f"{tmp_path}: thư mục không có tệp định nghĩa *.yaml nào" in err
    assert not (tmp_path / "r.html").exists()


def test_missing_folder_is_status_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "report", str(tmp_path / "nowhere"))
    assert code == 2 and err.startswith(str(tmp_path / "nowhere") + ": ")


def test_unknown_output_kind_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "report", str(small_catalog(tmp_path)), "-o", str(tmp_path / "r.pdf"))
    assert code == 2 and "OUT.html hoặc OUT.md" in err
    assert not (tmp_path / "r.pdf").exists()


def test_json_and_markdown_are_exclusive(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(small_catalog(tmp_path)), "--json", "--md"])
    assert exc.value.code == 2
    capsys.readouterr()
