"""The command line: outputs, JSON shapes and exit statuses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api.cli import main
from procedures import load_path
from tests.conftest import DEFINITIONS, ROOT, definition_text, shared_path

XUAT_NGU = str(shared_path("procedures", "xuat-ngu.v1.yaml"))
KHAI_SINH = str(shared_path("procedures", "khai-sinh.v1.yaml"))
ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tinhgon_command() -> list[str]:
    exe = shutil.which("tinhgon", path=str(Path(sys.executable).parent)) or shutil.which("tinhgon")
    return [exe] if exe else [sys.executable, "-c", "from api.cli import run; run()"]


def test_check_fixtures_tool_passes() -> None:
    tool = shared_path("tools", "check-fixtures")
    command = " ".join(tinhgon_command())
    proc = subprocess.run([sys.executable, str(tool), command], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 difference(s)" in proc.stdout


def test_validate_ok_and_warning_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "validate", XUAT_NGU, KHAI_SINH)
    assert code == 0 and err == ""
    assert "QK-CS-01 v1" in out and "1.001193 v1" in out
    text = (DEFINITIONS / "ban-giao-trang-bi.v1.yaml").read_text(encoding="utf-8")
    unquoted = tmp_path / "ban-giao.yaml"
    unquoted.write_text(
        text.replace('"Cơ sở dữ liệu quản lý vũ khí, trang bị kỹ thuật"', "Cơ sở dữ liệu quản lý vũ khí, trang bị kỹ thuật"),
        "utf-8",
    )
    code, out, err = run(capsys, "validate", str(unquoted))
    assert code == 0
    assert "cảnh báo: đọc thành một chuỗi «Cơ sở dữ liệu quản lý vũ khí, trang bị kỹ thuật»" in err


def test_validate_reports_every_error_with_file_line_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        definition_text("""\
roles: [{id: cb, name: Cán bộ, kind: office}]
documents: [{id: kq, name: KQ, deliverable: true}]
steps:
  - {id: a, name: A, role: cb, outputs: [kq], colour: red}
  - {id: b, name: B, role: ghost}
"""),
        encoding="utf-8",
    )
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    parsed = [ERROR_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["line"], m["path"]) for m in parsed if m] == [("8", "steps[0].colour"), ("9", "steps[1].role")]
    assert all(m["file"] == str(bad) for m in parsed if m)


def test_validate_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("format: tinhgon/1\n", encoding="utf-8")
    shutil.copy(KHAI_SINH, tmp_path / "ok.yaml")
    code, out, _ = run(capsys, "validate", str(tmp_path), "--json")
    assert code == 2
    results = json.loads(out)
    assert [r["valid"] for r in results] == [False, True]
    assert {e["path"] for e in results[0]["errors"]} >= {"code", "steps"}


def test_unreadable_file_is_status_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "analyze", str(tmp_path / "missing.yaml"))
    assert code == 2 and err.startswith(str(tmp_path / "missing.yaml") + ": ")


def test_empty_folder_is_status_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path))
    assert code == 2 and "thư mục không có tệp định nghĩa *.yaml nào" in err
    code, _, err = run(capsys, "--lang", "en", "validate", str(tmp_path))
    assert code == 2 and "no *.yaml definitions in this folder" in err


def test_the_command_line_speaks_english_only_when_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    monkeypatch.setenv("LC_ALL", "en_US.UTF-8")
    _, out, _ = run(capsys, "validate", KHAI_SINH)
    assert "hợp lệ — " in out
    _, english, _ = run(capsys, "--lang", "en", "validate", KHAI_SINH)
    assert "valid — " in english and "hợp lệ" not in english
    monkeypatch.setenv("TINHGON_LANG", "en")
    _, english_too, _ = run(capsys, "validate", KHAI_SINH)
    assert english_too == english
    _, vietnamese, _ = run(capsys, "--lang=vi", "validate", KHAI_SINH)
    assert vietnamese == out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "usage: tinhgon" in capsys.readouterr().out
    monkeypatch.delenv("TINHGON_LANG")
    with pytest.raises(SystemExit):
        main(["--help"])
    helped = capsys.readouterr().out
    assert "cách dùng: tinhgon" in helped and "kiểm tra định nghĩa" in helped
    code, _, err = run(capsys, "--lang", "fr", "validate", KHAI_SINH)
    assert code == 2 and "«fr»" in err


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00garbage", b"a: [1, 2\n", b"- just\n- a list\n", b"format: tinhgon/1\nx: &a [*a]\n", b""],
)
def test_bad_input_never_tracebacks(capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "x.yaml"
    f.write_bytes(content)
    for command in ("validate", "analyze"):
        code, _, err = run(capsys, command, str(f))
        assert code == 2
        assert "Traceback" not in err
        assert ERROR_LINE.match(err.strip().splitlines()[0]), err


def test_analyze_json_matches_the_spec_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "analyze", XUAT_NGU, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["procedure"] == {"code": "QK-CS-01", "version": 1}
    assert set(result["findings"][0]) == {"rule", "fix", "steps", "documents", "message"}


def test_analyze_folder_json_is_an_array(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "analyze", str(shared_path("procedures")), "--json")
    assert code == 0
    assert [r["procedure"]["code"] for r in json.loads(out)] == ["1.001193", "QK-CS-01"]


def test_analyze_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "analyze", XUAT_NGU)
    assert code == 0
    assert "compliance_cost" in out and "514.000" in out
    assert "needless-order" in out and "(7)" in out
    assert "350.000" in out  # what simplification would bring


def test_analyze_folder_prints_a_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "analyze", str(DEFINITIONS))
    assert code == 0
    codes = {load_path(p).code for p in DEFINITIONS.glob("*.v*.yaml")}
    for c in codes:
        assert c in out
    assert "→" in out


def test_simplify_writes_a_valid_next_version(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "v2.yaml"
    code, out, _ = run(capsys, "simplify", XUAT_NGU, "-o", str(out_file), "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report) == {"before", "after", "applied", "advice", "skipped", "time_limit"}
    v2 = load_path(out_file)
    assert (v2.version, v2.based_on) == (2, 1)
    assert report["after"]["compliance_cost"] == 350000


def test_simplify_with_nothing_to_do_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first = tmp_path / "v2.yaml"
    run(capsys, "simplify", KHAI_SINH, "-o", str(first))
    second = tmp_path / "v3.yaml"
    code, out, _ = run(capsys, "simplify", str(first), "-o", str(second), "--json")
    assert code == 0 and not second.exists()
    assert json.loads(out)["applied"] == []


def test_simplify_invalid_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: tinhgon/1\ncode: X\n", encoding="utf-8")
    code, _, err = run(capsys, "simplify", str(bad), "-o", str(tmp_path / "out.yaml"))
    assert code == 2 and ERROR_LINE.match(err.splitlines()[0])
    assert not (tmp_path / "out.yaml").exists()


def test_compare_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    v2 = tmp_path / "v2.yaml"
    run(capsys, "simplify", XUAT_NGU, "-o", str(v2))
    code, out, _ = run(capsys, "compare", XUAT_NGU, str(v2), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["steps"]["removed"] == ["kiem_tra_lai"]
    assert result["steps"]["added"] == []
    changed = {c["id"]: c["fields"] for c in result["steps"]["changed"]}
    assert changed["nop_don"] == ["inputs"]
    assert "after" in changed["xet_tieu_doan"]
    assert ["kham_suc_khoe", "xet_tieu_doan"] in result["edges"]["removed"]
    assert ["lap_danh_sach", "xet_tieu_doan"] in result["edges"]["added"]
    assert result["before"]["steps"] == 15 and result["after"]["steps"] == 14


def test_compare_human(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    v2 = tmp_path / "v2.yaml"
    run(capsys, "simplify", KHAI_SINH, "-o", str(v2))
    code, out, _ = run(capsys, "compare", KHAI_SINH, str(v2))
    assert code == 0 and "kiem_tra_lai" in out and "%" in out


def test_compare_warns_when_the_files_are_two_procedures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "compare", XUAT_NGU, KHAI_SINH, "--json")
    assert code == 0 and json.loads(out)["before"]["steps"] == 15
    assert "cảnh báo:" in err and "hai thủ tục khác nhau" in err
    _, _, same = run(
        capsys, "compare", str(DEFINITIONS / "che-do-xuat-ngu.v1.yaml"), str(DEFINITIONS / "che-do-xuat-ngu.v2.yaml")
    )
    assert same == ""


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    # `tinhgon analyze DIR --json | head -c 1`: no "Broken pipe" report. The
    # output (over 100 KB) is more than a pipe holds, so the write fails.
    command = [*tinhgon_command(), "analyze", str(DEFINITIONS), "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(1) == b"["
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1
    assert err == "", err


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0 and schema["$schema"].startswith("https://json-schema.org/")
    assert "steps" in schema["then"]["required"] and schema["if"] == {"not": {"required": ["abolished"]}}
    step = schema["$defs"]["StepSpec"]
    assert step["additionalProperties"] is False
    assert step["properties"]["when"]["$ref"] == "#/$defs/Condition"


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [*tinhgon_command(), "validate", XUAT_NGU],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr


def test_usage_error_is_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["analyze"])
    assert info.value.code == 2


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (bash scripts/setup)")
def test_diagram_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "x.svg"
    code, _, _ = run(capsys, "diagram", XUAT_NGU, "-o", str(out_file), "--documents")
    assert code == 0 and out_file.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    code, _, err = run(capsys, "diagram", XUAT_NGU, "-o", str(tmp_path / "x.gif"))
    assert code == 1 and ".svg, .png, .pdf or .dot" in err


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (bash scripts/setup)")
def test_compare_writes_a_picture_and_a_page(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    v2 = tmp_path / "v2.yaml"
    run(capsys, "simplify", KHAI_SINH, "-o", str(v2))
    for name in ("c.svg", "c.html"):
        code, _, _ = run(capsys, "compare", KHAI_SINH, str(v2), "-o", str(tmp_path / name))
        assert code == 0
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "<svg" in page and "kiem_tra_lai" in page and "Đăng ký khai sinh" in page


MONEY_ROWS = ("compliance_cost", "annual_burden", "processing_cost", "annual_processing_cost")


def test_compare_human_writes_money_to_the_whole_dong(capsys: pytest.CaptureFixture[str]) -> None:
    # dang-ky-khai-sinh's processing cost has a fraction of a đồng (an
    # official's hours at a monthly salary): the JSON keeps it, the table rounds it.
    v1, v2 = (str(DEFINITIONS / f"dang-ky-khai-sinh.v{n}.yaml") for n in (1, 2))
    _, raw, _ = run(capsys, "compare", v1, v2, "--json")
    exact = json.loads(raw)["before"]["processing_cost"]
    assert exact != round(exact), "the fixture no longer tests rounding"
    code, out, _ = run(capsys, "compare", v1, v2)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in MONEY_ROWS}
    assert set(rows) == set(MONEY_ROWS)
    for key, line in rows.items():
        figures = re.findall(r"-?[\d.]+(?:,\d+)?(?=\s|$)", line.split(")", 1)[1])[:3]
        assert len(figures) == 3 and all("," not in f for f in figures), (key, line)
    assert f"{round(exact):,}".replace(",", ".") in rows["processing_cost"]


def test_the_folder_dot_is_a_folder_for_every_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(DEFINITIONS)
    for command in (["validate", "."], ["analyze", "."], ["report", "."], ["analyze", ".", "--json"]):
        code, out, err = run(capsys, *command)
        assert code == 0, (command, err)
        assert "*.yaml" not in err and out
