"""Every validity rule of the format: the error, its line and its path."""

from __future__ import annotations

import pytest

from procedures import DefinitionError, load_bytes, load_text
from procedures.errors import ReadError
from procedures.loader import load_path
from procedures.messages import speaking
from tests.conftest import definition_text, shared_path

ROLES = """\
roles:
  - {id: dan, name: Người dân, kind: applicant}
  - {id: cb, name: Cán bộ, kind: office}
"""
DOCS = """\
documents:
  - {id: don, name: Đơn, from: applicant}
  - {id: kq, name: Kết quả, deliverable: true}
"""


def problems(body: str) -> list[tuple[int, str, str]]:
    with pytest.raises(DefinitionError) as info:
        load_text(definition_text(body), source="t.yaml")
    return [(p.line, p.path, p.message) for p in info.value.problems]


def only(body: str) -> tuple[int, str, str]:
    found = problems(body)
    assert len(found) == 1, found
    return found[0]


VALID = (
    ROLES
    + DOCS
    + """\
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: xet, name: Xét, role: cb, inputs: [don], outputs: [kq]}
"""
)


def test_a_valid_definition_loads() -> None:
    defn = load_text(definition_text(VALID))
    assert [s.id for s in defn.steps] == ["nop", "xet"]
    assert defn.step("xet").after == ("nop",)  # defaults to the previous step
    assert defn.step("nop").outcomes[0][0] == "done"
    assert defn.warnings == ()


def test_format_other_than_tinhgon_1_is_rejected_alone() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text("format: tinhgon/2\ncode: X\nwhatever: 1\n", source="t.yaml")
    (p,) = info.value.problems
    assert (p.line, p.path) == (1, "format")
    assert "tinhgon/1" in p.message


def test_unknown_key_is_reported_at_its_line_with_a_suggestion() -> None:
    line, path, message = only(VALID.replace("  - {id: xet,", "  - {id: xet, duraton: 1h,"))
    assert (line, path) == (13, "steps[1].duraton")
    assert "khóa lạ «duraton»" in message and "«duration»" in message


@pytest.mark.parametrize("written", ['"Nộp\\0"', '"Nộp\\x00"', '"Nộp\\u0000"'])
def test_a_nul_character_in_a_text_is_refused_at_its_line(written: str) -> None:
    """No database here keeps a NUL in text (PostgreSQL refuses it), so the
    reader refuses it before the definition is stored."""
    line, path, message = only(VALID.replace("name: Nộp,", f"name: {written},"))
    assert (line, path, message) == (12, "steps[0].name", "chuỗi không được chứa ký tự NUL")


def test_a_text_holding_a_lone_surrogate_is_refused_at_its_line() -> None:
    # Only a str made from bytes that were no UTF-8 holds one (a file is
    # read strictly as UTF-8, and YAML refuses the escape itself).
    with pytest.raises(DefinitionError) as info:
        load_text(definition_text(VALID.replace("name: Nộp,", "name: Nộp\udcff,")), source="t.yaml")
    [problem] = info.value.problems
    assert (problem.line, problem.message) == (
        12,
        "văn bản chứa U+DCFF, một nửa cặp thay thế (surrogate) đứng riêng, không phải là ký tự",
    )


@pytest.mark.parametrize(
    ("text", "line", "said"),
    [
        ("", 1, "không chứa văn bản YAML nào"),
        ("# chưa viết gì\n\n   \n", 1, "không chứa văn bản YAML nào"),
        ("# một dòng chú thích\n\nthu tuc\n", 3, "một giá trị đơn lẻ"),
        ("- a\n- b\n", 1, "một định nghĩa là một ánh xạ (mapping) YAML"),
    ],
)
def test_a_file_that_is_no_mapping_is_refused_at_the_line_where_it_starts(text: str, line: int, said: str) -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(text, source="t.yaml")
    [problem] = info.value.problems
    assert (problem.line, problem.path) == (line, "")
    assert said in problem.message and "format, code, name" in problem.message
    assert str(info.value).startswith(f"t.yaml:{line}: (document): ")


def test_unknown_top_level_key() -> None:
    line, path, _ = only("colour: red\n" + VALID)
    assert (line, path) == (5, "colour")


def test_missing_required_key_points_at_the_mapping() -> None:
    line, path, message = only(VALID.replace("{id: xet, name: Xét, ", "{id: xet, "))
    assert (line, path) == (13, "steps[1].name")
    assert "thiếu khóa bắt buộc «name»" in message


def test_missing_top_level_keys() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text("format: tinhgon/1\ncode: X\nname: Y\nversion: 1\n", source="t.yaml")
    assert {p.path for p in info.value.problems} == {"roles", "documents", "steps"}


def test_wrong_types_are_named() -> None:
    found = problems(VALID.replace("{id: nop, name: Nộp, role: dan,", "{id: nop, name: Nộp, role: dan, visit: yes, fee: 1.5,"))
    assert {(line, path) for line, path, _ in found} == {(12, "steps[0].visit"), (12, "steps[0].fee")}
    assert any("true hoặc false" in m for _, _, m in found)


def test_version_must_be_a_positive_whole_number() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(definition_text(VALID, head="format: tinhgon/1\ncode: X\nname: Y\nversion: 0\n"))
    assert [(p.line, p.path) for p in info.value.problems] == [(4, "version")]


def test_numeric_code_asks_for_quotes() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(definition_text(VALID, head="format: tinhgon/1\ncode: 1.001193\nname: Y\nversion: 1\n"))
    (p,) = info.value.problems
    assert p.path == "code" and "ngoặc kép" in p.message


def test_duplicate_ids_report_the_later_one() -> None:
    body = VALID + "  - {id: xet, name: Xét lại, role: cb}\n"
    line, path, message = only(body)
    assert (line, path) == (14, "steps[2].id")
    assert message == "mã «xet» bị trùng: bước 2 «Xét» (dòng 13) đã dùng mã này"


def test_same_id_in_different_kinds_is_fine() -> None:
    body = (
        ROLES
        + DOCS.replace("id: don,", "id: xet,")
        + """\
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [xet]}
  - {id: xet, name: Xét, role: cb, inputs: [xet], outputs: [kq]}
"""
    )
    load_text(definition_text(body))


def test_unknown_references() -> None:
    body = VALID.replace("role: cb, inputs: [don]", "role: boss, inputs: [don, ghost], after: [nowhere]")
    found = problems(body)
    assert {path for _, path, _ in found} == {"steps[1].role", "steps[1].inputs[1]", "steps[1].after[0]"}
    assert all(line == 13 for line, _, _ in found)


def test_bad_identifier() -> None:
    _, path, message = only(VALID.replace("{id: nop,", "{id: Nop-1,").replace("after", "after"))
    # the later step's default 'after' still names the broken step; only the id is reported
    assert path == "steps[0].id" and "«Nop-1» không phải là một mã" in message


def test_cycle_names_every_step_and_each_explicit_item() -> None:
    body = (
        ROLES
        + DOCS
        + """\
steps:
  - {id: a, name: A, role: dan, inputs: [don], after: [c]}
  - {id: b, name: B, role: cb}
  - {id: c, name: C, role: cb, outputs: [kq]}
"""
    )
    line, path, message = only(body)
    assert (line, path) == (12, "steps[0].after[0]")
    assert "a → b → c → a" in message or all(s in message for s in ("a", "b", "c"))


def test_self_loop_is_a_cycle() -> None:
    line, path, message = only(VALID.replace("inputs: [don], outputs", "after: [xet], inputs: [don], outputs"))
    assert (line, path) == (13, "steps[1].after[0]") and "chờ nhau thành vòng: bước 2 «Xét» → bước 2 «Xét»" in message


def test_ancestor_rules_wait_for_a_cycle_free_graph() -> None:
    body = (
        ROLES
        + DOCS
        + """\
steps:
  - {id: a, name: A, role: dan, inputs: [kq], after: [b]}
  - {id: b, name: B, role: cb, outputs: [kq], after: [a]}
"""
    )
    found = problems(body)
    assert all("chờ nhau thành vòng" in m for _, _, m in found), found
    assert len(found) == 2


def test_input_produced_later_is_unavailable() -> None:
    body = (
        ROLES
        + DOCS
        + """\
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don, kq]}
  - {id: xet, name: Xét, role: cb, inputs: [don], outputs: [kq]}
"""
    )
    line, path, message = only(body)
    assert (line, path) == (12, "steps[0].inputs[1]")
    assert message == (
        "giấy tờ đầu vào «Kết quả» do bước 2 «Xét» lập ra, nhưng bước đó không đứng trước bước 1 «Nộp»; "
        "thêm «xet» vào after của bước này (trực tiếp hoặc qua các bước khác)"
    )


def test_input_from_a_parallel_branch_is_unavailable() -> None:
    body = (
        ROLES
        + DOCS
        + """\
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don]}
  - {id: xet, name: Xét, role: cb, outputs: [kq], after: [nop]}
  - {id: tra, name: Trả, role: cb, inputs: [kq], after: [nop]}
"""
    )
    _, path, _ = only(body)
    assert path == "steps[2].inputs[0]"


def test_document_produced_twice_reports_the_later_producer() -> None:
    body = VALID + "  - {id: lai, name: Lại, role: cb, outputs: [kq]}\n"
    line, path, message = only(body)
    assert (line, path) == (14, "steps[2].outputs[0]") and "«Kết quả» đã do bước 2 «Xét» lập ra" in message


def test_applicant_document_cannot_be_produced() -> None:
    _, path, _ = only(VALID.replace("outputs: [kq]", "outputs: [kq, don]"))
    assert path == "steps[1].outputs[1]"


def test_document_nobody_produces() -> None:
    body = VALID.replace(
        "  - {id: kq, name: Kết quả, deliverable: true}\n",
        "  - {id: kq, name: Kết quả, deliverable: true}\n  - {id: ma, name: Ma}\n",
    )
    line, path, message = only(body)
    assert (line, path) == (11, "documents[2]") and "không bước nào lập ra nó" in message


def test_return_to_a_non_ancestor() -> None:
    body = (
        ROLES
        + DOCS
        + """\
steps:
  - id: nop
    name: Nộp
    role: dan
    inputs: [don]
    outcomes: {done: proceed, lui: {return: xet}}
  - {id: xet, name: Xét, role: cb, inputs: [don], outputs: [kq]}
"""
    )
    line, path, message = only(body)
    assert (line, path) == (16, "steps[0].outcomes.lui") and "trả lại bước 2 «Xét», nhưng bước đó không đứng trước" in message


def test_return_to_an_unknown_step() -> None:
    body = VALID.replace("outputs: [kq]}", "outputs: [kq], outcomes: {ok: proceed, lui: {return: ghost}}}")
    _, path, message = only(body)
    assert path == "steps[1].outcomes.lui" and "không có bước «ghost»" in message


def test_bad_outcome_effect() -> None:
    _, path, message = only(VALID.replace("outputs: [kq]}", "outputs: [kq], outcomes: {ok: proceed, x: explode}}"))
    assert path == "steps[1].outcomes.x" and "proceed, reject hoặc {return: BƯỚC}" in message


def test_step_without_proceed_names_the_steps_it_blocks() -> None:
    body = (
        ROLES
        + DOCS
        + """\
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don], outcomes: {huy: reject}}
  - {id: xet, name: Xét, role: cb, inputs: [don], outputs: [kq]}
  - {id: tra, name: Trả, role: cb, inputs: [kq]}
"""
    )
    line, path, message = only(body)
    assert (line, path) == (12, "steps[0].outcomes")
    assert message.startswith("bước 1 «Nộp» không có kết quả nào cho đi tiếp")
    assert "bước 2 «Xét», bước 3 «Trả»" in message


def test_step_without_proceed_is_reported_even_when_ids_do_not_resolve() -> None:
    body = VALID.replace(
        "{id: nop, name: Nộp, role: dan, inputs: [don]}",
        "{id: nop, name: Nộp, role: dan, inputs: [don, ghost], outcomes: {huy: reject}}",
    )
    assert {path for _, path, _ in problems(body)} == {"steps[0].inputs[1]", "steps[0].outcomes"}


def test_empty_outcomes() -> None:
    _, path, _ = only(VALID.replace("outputs: [kq]}", "outputs: [kq], outcomes: {}}"))
    assert path == "steps[1].outcomes"


def test_second_applicant_role() -> None:
    body = VALID.replace(
        "  - {id: cb, name: Cán bộ, kind: office}\n",
        "  - {id: cb, name: Cán bộ, kind: office}\n  - {id: dan2, name: Khác, kind: applicant}\n",
    )
    line, path, _ = only(body)
    assert (line, path) == (8, "roles[2].kind")


def test_no_applicant_role_is_allowed() -> None:
    body = """\
roles: [{id: cb, name: Cán bộ, kind: office}]
documents: [{id: kq, name: KQ, deliverable: true}]
steps: [{id: lam, name: Làm, role: cb, outputs: [kq]}]
"""
    assert load_text(definition_text(body)).applicant_role is None


@pytest.mark.parametrize("duration", ["3 days", "1h1d", "-1h", "", "h", "2"])
def test_bad_durations(duration: str) -> None:
    _, path, message = only(VALID.replace("{id: xet,", f"{{id: xet, duration: '{duration}',"))
    assert path == "steps[1].duration"
    assert "không phải là một khoảng thời gian" in message


def test_durations_parse() -> None:
    defn = load_text(definition_text(VALID.replace("{id: xet,", "{id: xet, duration: 1d4h30m, effort: 45m,")))
    step = defn.step("xet")
    assert (step.duration, step.effort) == (12.5, 0.75)


def test_condition_checked_against_fields() -> None:
    body = """\
fields:
  - {id: tuoi, type: integer}
  - {id: loai, type: enum, values: [a, b]}
""" + VALID.replace("{id: xet,", "{id: xet, when: {field: loai, equals: c},")
    line, path, message = only(body)
    assert (line, path) == (16, "steps[1].when.equals")
    assert "chuỗi «c»" in message and "một trong «a», «b»" in message


@pytest.mark.parametrize(
    ("when", "path"),
    [
        ("{field: khong_co, equals: 1}", "steps[1].when.field"),
        ("{field: tuoi, equals: '1'}", "steps[1].when.equals"),
        ("{field: tuoi, bigger: 1}", "steps[1].when.bigger"),
        ("{field: tuoi}", "steps[1].when"),
        ("{field: tuoi, gt: 1, lt: 5}", "steps[1].when"),
        ("{all: []}", "steps[1].when.all"),
        ("{any: [{field: tuoi, gt: 1}, {field: ten, gt: x}]}", "steps[1].when.any[1].gt"),
        ("{not: {field: tuoi, in: [1, x]}}", "steps[1].when.not.in"),
        ("{field: tuoi, exists: 1}", "steps[1].when.exists"),
        ("[1, 2]", "steps[1].when"),
    ],
)
def test_bad_conditions(when: str, path: str) -> None:
    body = "fields:\n  - {id: tuoi, type: integer}\n  - {id: ten, type: string}\n" + VALID.replace(
        "{id: xet,", f"{{id: xet, when: {when},"
    )
    found = problems(body)
    assert [p for _, p, _ in found] == [path], found


def test_enum_field_needs_values() -> None:
    _, path, _ = only("fields:\n  - {id: loai, type: enum}\n" + VALID)
    assert path == "fields[0]"


def test_registry_only_with_from() -> None:
    _, path, _ = only(VALID.replace("{id: kq, name: Kết quả,", "{id: kq, name: Kết quả, registry: population,"))
    assert path == "documents[1].registry"


def test_based_on_must_be_earlier() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(definition_text(VALID, head="format: tinhgon/1\ncode: X\nname: Y\nversion: 2\nbased_on: 2\n"))
    assert [p.path for p in info.value.problems] == ["based_on"]


def test_no_steps() -> None:
    found = problems(ROLES + DOCS + "steps: []\n")
    assert (11, "steps", "một thủ tục có ít nhất một bước") in found


def test_every_error_of_a_file_is_reported_at_once() -> None:
    body = (
        ROLES
        + DOCS
        + """\
steps:
  - {id: nop, name: Nộp, role: dan, inputs: [don], colour: red}
  - {id: xet, name: Xét, role: ghost, inputs: [don], outputs: [kq], duration: soon}
  - {id: xet, name: Lặp, role: cb}
"""
    )
    found = problems(body)
    assert {path for _, path, _ in found} == {"steps[0].colour", "steps[1].role", "steps[1].duration", "steps[2].id"}


def test_missing_deliverable_is_a_warning_not_an_error() -> None:
    defn = load_text(definition_text(VALID.replace(", deliverable: true", "")))
    assert [w.path for w in defn.warnings] == ["documents"]


# -- the text layer ------------------------------------------------------------
def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text("format: tinhgon/1\nsteps: [\n  {id: a\n", source="t.yaml")
    (p,) = info.value.problems
    assert p.line >= 2 and "lỗi cú pháp YAML" in p.message


def test_duplicate_yaml_key() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(definition_text(VALID).replace("name: Thủ tục thử\n", "name: Thủ tục thử\nname: Lại\n"))
    (p,) = info.value.problems
    assert (p.line, p.path) == (4, "name") and "khóa «name» bị viết hai lần" in p.message


def test_not_utf8() -> None:
    raw = definition_text(VALID).encode("utf-8").replace("Đơn".encode(), "Đơn".encode("utf-16-le"))
    with pytest.raises(DefinitionError) as info:
        load_bytes(raw, source="t.yaml")
    (p,) = info.value.problems
    assert p.line == 9 and "UTF-8" in p.message


def test_windows_1258_text_is_not_utf8() -> None:
    with pytest.raises(DefinitionError) as info:
        load_bytes("name: Tr\u1ea7n\n".encode("utf-8")[:-3] + b"\xe0\n")
    assert "UTF-8" in info.value.problems[0].message


def test_alias_bomb_is_refused_quickly() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    with pytest.raises(DefinitionError) as info:
        load_text(bomb)
    assert "nở thêm hơn 100.000 nút" in info.value.problems[0].message


def test_small_aliases_are_allowed() -> None:
    body = VALID.replace(
        "  - {id: nop, name: Nộp, role: dan, inputs: [don]}", "  - {id: nop, name: Nộp, role: dan, inputs: &giay [don]}"
    ).replace("{id: xet, name: Xét, role: cb, inputs: [don]", "{id: xet, name: Xét, role: cb, inputs: *giay")
    assert load_text(definition_text(body)).step("xet").inputs == ("don",)


def test_yaml_12_core_schema() -> None:
    body = VALID.replace("name: Kết quả", "name: no").replace("name: Đơn", "name: 2027-01-01")
    defn = load_text(definition_text(body))
    assert [d.name for d in defn.documents] == ["2027-01-01", "no"]


def test_a_second_document_is_refused() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(definition_text(VALID) + "---\nformat: tinhgon/1\n")
    assert "văn bản thứ hai" in info.value.problems[0].message


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text("- a\n- b\n")
    assert info.value.problems[0].line == 1


def test_comma_in_a_flow_name_is_read_as_one_text_with_a_warning() -> None:
    body = VALID.replace("{id: dan, name: Người dân,", "{id: dan, name: Cha, mẹ hoặc người giám hộ,")
    defn = load_text(definition_text(body))
    assert defn.role_by_id["dan"].name == "Cha, mẹ hoặc người giám hộ"
    assert [(w.line, w.path) for w in defn.warnings] == [(6, "roles[0].name")]


def test_bare_key_after_a_non_text_value_is_still_unknown() -> None:
    _, path, _ = only(VALID.replace("{id: nop, name: Nộp, role: dan,", "{id: nop, name: Nộp, fee: 5, stray, role: dan,"))
    assert path == "steps[0].stray"


def test_read_errors(tmp_path: object) -> None:
    with pytest.raises(ReadError):
        load_path("/nonexistent/x.yaml")
    with pytest.raises(ReadError):
        load_path(str(shared_path("procedures")))


def test_shared_fixtures_load() -> None:
    for path in sorted(shared_path("procedures").glob("*.yaml")):
        defn = load_path(path)
        assert defn.steps


def test_messages_are_vietnamese_unless_english_is_asked_for() -> None:
    body = VALID.replace("{id: xet, name: Xét, role: cb,", "{id: xet, name: Xét, role: ban_quanluc,") + (
        "  - {id: tra, name: Trả, role: cb, outputs: [kq]}\n"
    )
    assert [m for _, _, m in problems(body)] == [
        "không có vai trò «ban_quanluc»: hãy khai báo vai trò này ở roles",
        "giấy tờ «Kết quả» đã do bước 2 «Xét» lập ra; mỗi giấy tờ chỉ do một bước lập ra",
    ]
    with speaking("en"):
        assert [m for _, _, m in problems(body)] == [
            "unknown role «ban_quanluc»: declare it under roles",
            "document «Kết quả» is already produced by step 2 «Xét»; a document has one producer",
        ]
