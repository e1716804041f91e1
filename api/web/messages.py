"""Vietnamese words for what the engine says: case and step statuses,
audit events, outcomes, and every refusal by its ``kind``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from engine import errors as E
from engine.calendar import local_time
from procedures.diagram import STATUS_LABELS
from procedures.labels import number
from procedures.model import Definition, Effect, Step

CASE_STATUS = {
    "open": "đang giải quyết",
    "completed": "đã hoàn thành",
    "rejected": "bị từ chối",
    "withdrawn": "đã rút",
}
STEP_STATUS = {**STATUS_LABELS, "active": "đang chờ xử lý"}
PROCEDURE_STATUS = {"draft": "bản nháp", "published": "đã công bố"}
EVENT_TYPES = {
    "created": "Tạo hồ sơ",
    "action": "Xử lý",
    "system": "Hệ thống tự thực hiện",
    "data": "Sửa thông tin hồ sơ",
    "withdrawn": "Rút hồ sơ",
}
OUTCOME_WORDS = {"done": "Hoàn thành"}
FIX_WORDS = {"auto": "tinhgon tự sửa được", "advice": "cần người rà soát quyết định"}

REFUSALS = {
    "not-found": "Không tìm thấy: không có mục này, hoặc bạn không có quyền xem.",
    "forbidden": "Bạn không có quyền thực hiện việc này.",
    "invalid-action": "Thao tác không hợp lệ: thủ tục không có bước hoặc quyết định này.",
    "case-closed": "Hồ sơ đã đóng, không nhận thêm thao tác nào.",
    "step-not-active": "Bước này không còn chờ xử lý (có thể người khác vừa xử lý). Trang đã được tải lại.",
    "stale": "Hồ sơ vừa được cập nhật sau khi bạn mở trang. Hãy xem lại trạng thái mới rồi thao tác lại.",
    "invalid-data": "Thông tin hồ sơ chưa hợp lệ; xem lỗi ở từng trường.",
    "not-published": "Thủ tục này chưa có phiên bản nào được công bố nên chưa thể nộp hồ sơ.",
    "conflict": "Không thực hiện được vì không phù hợp với trạng thái hiện tại.",
    "idempotency-mismatch": "Yêu cầu trùng mã với một yêu cầu khác.",
    "idempotency-in-flight": "Yêu cầu trước đang được xử lý; hãy chờ giây lát.",
}


def outcome_text(name: str) -> str:
    """An outcome's name for a button: ``huong_dan_bo_sung`` -> ``huong dan bo sung``."""
    return OUTCOME_WORDS.get(name, name.replace("_", " "))


def outcome_words(step: Step, name: str) -> str:
    """What a decision's button and the case's steps say: the outcome's label
    when the definition gives one, else its name in words."""
    label = dict(step.outcome_labels).get(name)
    return label if label is not None else outcome_text(name)


def effect_text(effect: Effect, defn: Definition) -> str:
    if effect.kind == "reject":
        return "từ chối hồ sơ"
    if effect.kind == "return" and effect.target is not None:
        return f"trả lại bước “{defn.step(effect.target).name}”"
    return "chuyển bước tiếp theo"


def moment_text(value: str | dt.datetime) -> str:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return local_time(moment).strftime("%H:%M ngày %d/%m/%Y")


def guide_once_text(earlier: E.GuidedReturn, defn: Definition, names: Mapping[str, str]) -> str:
    """The guide-once refusal, naming the earlier return."""
    returned_by = names.get(earlier.actor, earlier.actor)
    step = defn.step(earlier.step).name if earlier.step in defn.index else earlier.step
    target = defn.step(earlier.target).name if earlier.target in defn.index else earlier.target
    missing = ""
    if earlier.missing:
        docs = ", ".join(defn.document_by_id[d].name if d in defn.document_by_id else d for d in earlier.missing)
        missing = f" Lần đó đã yêu cầu bổ sung: {docs}."
    return (
        "Không thể trả hồ sơ về người nộp lần thứ hai. "
        f"Hồ sơ đã được trả về bước “{target}” một lần: ở bước “{step}”, quyết định “{outcome_text(earlier.outcome)}”, "
        f"do {returned_by} thực hiện lúc {moment_text(earlier.at)}.{missing} "
        "Theo nguyên tắc hướng dẫn một lần, mọi giấy tờ, thông tin còn thiếu phải được nêu đầy đủ trong lần trả đó; "
        "hãy xử lý tiếp hoặc từ chối hồ sơ."
    )


def refusal_text(
    exc: E.EngineError, defn: Definition | None = None, names: Mapping[str, str] | None = None, case_status: str | None = None
) -> str:
    """What to tell the user when the engine refuses (by the error's ``kind``)."""
    names = names or {}
    if isinstance(exc, E.UnstorableText):
        return "Ý kiến không được chứa ký tự NUL (mã 0)."
    if isinstance(exc, E.CommentTooLong):
        return f"Ý kiến dài {number(exc.length)} ký tự; tối đa {number(exc.limit)} ký tự. Hãy rút gọn rồi gửi lại."
    if isinstance(exc, E.GuideOnce) and defn is not None:
        return guide_once_text(exc.earlier, defn, names)
    if isinstance(exc, E.CaseClosed) and case_status in CASE_STATUS:
        return f"Hồ sơ {CASE_STATUS[case_status]}, không nhận thêm thao tác nào."
    if isinstance(exc, E.Forbidden) and defn is not None and exc.step is not None and exc.step in defn.index:
        step = defn.step(exc.step)
        role = next((r for r in defn.roles if r.id == step.role), None)
        if role is not None and role.kind == "applicant":
            return f"Bước “{step.name}” do chính người nộp hồ sơ thực hiện; bạn không thể thực hiện thay."
        who = role.name if role else step.role
        return f"Bạn không có quyền xử lý bước “{step.name}”: bước này cần vai trò “{who}” trong đơn vị của hồ sơ."
    if isinstance(exc, E.StepNotActive) and defn is not None and exc.step is not None and exc.step in defn.index:
        return f"Bước “{defn.step(exc.step).name}” không còn chờ xử lý (có thể người khác vừa xử lý). Hãy xem trạng thái mới."
    if isinstance(exc, E.Conflict) and exc.kind == "conflict":
        return REFUSALS["conflict"]
    return REFUSALS.get(exc.kind, REFUSALS["conflict"])
