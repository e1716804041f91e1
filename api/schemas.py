"""The JSON the API takes and gives (service.md section 3), as pydantic
models in families: ``...Create`` for what a client sends, ``...Public`` for
what it gets back."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import to_json

from engine.audit import EventRecord
from engine.calendar import local_time
from engine.fields import nul_text, unstorable
from engine.machine import COMMENT_LENGTH
from engine.views import CaseView, InboxItem

T = TypeVar("T")


def _local(value: dt.datetime | None) -> dt.datetime | None:
    return local_time(value) if value is not None else None


def no_nul(value: Any) -> None:
    """Raise ValueError when a text anywhere in ``value`` (keys too) is one
    no database here keeps (:func:`engine.fields.unstorable`: a NUL
    character, a lone surrogate)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if unstorable(item):
                raise ValueError(nul_text())
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class Strict(BaseModel):
    """What a client sends: no unknown keys, and no NUL or lone surrogate in any text."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        no_nul(data)
        return data


# -- procedures -------------------------------------------------------------------
class ProcedureSummary(BaseModel):
    code: str = Field(examples=["QP-CS-XN-02"])
    version: int = Field(examples=[1])
    name: str = Field(examples=["Giải quyết chế độ xuất ngũ"])
    status: Literal["draft", "published"]


class ProcedureStored(BaseModel):
    code: str
    version: int
    status: Literal["draft", "published"]


class ProcedureDetail(BaseModel):
    code: str
    version: int
    name: str
    status: Literal["draft", "published"]
    definition: dict[str, Any] = Field(description="the definition as JSON (the YAML's data)")
    metrics: dict[str, Any]


class SimplifyResult(BaseModel):
    code: str
    version: int = Field(description="the version the simplification was stored as (a draft)")
    before: dict[str, Any]
    after: dict[str, Any]
    applied: list[dict[str, Any]]
    advice: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


# -- cases ------------------------------------------------------------------------
class CaseCreate(Strict):
    procedure: str = Field(
        min_length=1, max_length=100, description="procedure code; the newest published version is used", examples=["QP-CS-XN-02"]
    )
    unit: str = Field(min_length=1, max_length=100, description="the unit that handles the case", examples=["d1"])
    data: dict[str, Any] = Field(default_factory=dict, description="case data, checked against the procedure's fields")
    applicant: str | None = Field(default=None, max_length=100, description="defaults to the caller")


class ActionCreate(Strict):
    step: str = Field(min_length=1, max_length=100, examples=["tham_dinh"])
    outcome: str = Field(min_length=1, max_length=200, examples=["dat"])
    comment: str | None = Field(default=None, max_length=COMMENT_LENGTH)
    missing: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="on a return to an applicant step: every document the applicant must supply",
    )
    data: dict[str, Any] | None = Field(default=None, description="on an applicant step: changes to the case data")


class WithdrawCreate(Strict):
    comment: str | None = Field(default=None, max_length=COMMENT_LENGTH)


class ProcedureRef(BaseModel):
    code: str
    version: int


class StepPublic(BaseModel):
    id: str
    name: str
    role: str
    status: Literal["waiting", "active", "completed", "skipped", "cancelled"]
    activated_at: dt.datetime | None
    due_at: dt.datetime | None
    completed_at: dt.datetime | None
    outcome: str | None
    overdue: bool


class GuidedPublic(BaseModel):
    step: str
    outcome: str
    target: str
    actor: str
    at: str
    missing: list[str]


class CasePublic(BaseModel):
    id: int
    procedure: ProcedureRef
    unit: str
    applicant: str
    status: Literal["open", "completed", "rejected", "withdrawn"]
    created_at: dt.datetime
    due_at: dt.datetime | None
    data: dict[str, Any]
    version: int
    paused: bool = Field(description="the case's clock stands still while the applicant answers a return")
    returned_to_applicant: GuidedPublic | None = Field(
        description="the one return to the applicant (guide once), with what is missing"
    )
    steps: list[StepPublic]

    @classmethod
    def of(cls, view: CaseView) -> CasePublic:
        return cls.model_validate(case_document(view))


def case_document(view: CaseView) -> dict[str, Any]:
    """A case as :class:`CasePublic` has it, in plain values, field by field
    in the model's order (a test holds the two together)."""
    return {
        "id": view.id,
        "procedure": {"code": view.code, "version": view.procedure_version},
        "unit": view.unit,
        "applicant": view.applicant,
        "status": view.status,
        "created_at": local_time(view.created_at),
        "due_at": _local(view.due_at),
        "data": dict(view.data),
        "version": view.version,
        "paused": view.paused,
        "returned_to_applicant": view.guided.as_dict() if view.guided else None,
        "steps": [
            {
                "id": s.id,
                "name": s.name,
                "role": s.role,
                "status": s.status,
                "activated_at": _local(s.activated_at),
                "due_at": _local(s.due_at),
                "completed_at": _local(s.completed_at),
                "outcome": s.outcome,
                "overdue": s.overdue,
            }
            for s in view.steps
        ],
    }


def case_json(view: CaseView) -> str:
    """The JSON of ``CasePublic.of(view)``, the very same text, written
    without building and checking the models first (a third of the cost;
    every case action's answer is written this way, in the transaction that
    stores it for a repeat of the request)."""
    return to_json(case_document(view)).decode()


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as cursor= for the next page; null on the last")


class EventPublic(BaseModel):
    seq: int
    at: str
    actor: str
    type: Literal["created", "action", "system", "data", "withdrawn"]
    step: str | None
    outcome: str | None
    comment: str | None
    data: dict[str, Any]
    decision: bool
    hash: str
    prev_hash: str
    signature: str | None
    key_id: str | None = None

    @classmethod
    def of(cls, e: EventRecord) -> EventPublic:
        return cls(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            type=e.type,  # type: ignore[arg-type]
            step=e.step,
            outcome=e.outcome,
            comment=e.comment,
            data=e.data,
            decision=e.decision,
            hash=e.hash,
            prev_hash=e.prev_hash,
            signature=e.signature,
            key_id=e.key_id,
        )


class InboxProcedure(BaseModel):
    code: str
    version: int
    name: str


class InboxItemPublic(BaseModel):
    case: int
    procedure: InboxProcedure
    step: str
    step_name: str
    activated_at: dt.datetime | None
    due_at: dt.datetime | None
    overdue: bool

    @classmethod
    def of(cls, item: InboxItem) -> InboxItemPublic:
        return cls(
            case=item.case_id,
            procedure=InboxProcedure(code=item.code, version=item.version, name=item.name),
            step=item.step,
            step_name=item.step_name,
            activated_at=_local(item.activated_at),
            due_at=_local(item.due_at),
            overdue=item.overdue,
        )


class AuditReport(BaseModel):
    ok: bool
    events: int
    cases: int
    journal: int = Field(description="journal entries (users, tokens, procedure versions, sign-ins, backups)")
    ledger: int = Field(description="places of the database-wide ledger")
    unsealed: int = Field(description="events and journal entries written since the sealer's last pass")
    problems: int = Field(description="how many things are wrong (0 when ok)")
    first_bad: dict[str, Any] | None = Field(
        description="{part, case, seq, reason, text} of the first bad item (part: event, case, journal, state, ledger or checkpoint), or null"
    )


class AuditKey(BaseModel):
    key_id: str
    public_pem: str
    current: bool = Field(description="the key that signs now")
    trusted: bool = Field(description="in the server's key file or its history: signatures by it verify")
