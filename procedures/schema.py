"""The shape of a ``tinhgon/1`` file, as pydantic models.

These models check keys and types only (unknown keys, wrong types, missing
required keys, value ranges); what needs the whole definition (ids that
resolve, the ``after`` graph, conditions against fields) is checked in
:mod:`procedures.loader`. They also give :func:`json_schema`, which editors
use for completion and checking as you type.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import durations

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
FORMAT = "tinhgon/1"

Identifier = Annotated[str, Field(pattern=ID_PATTERN, description="lowercase letters, digits and _, starting with a letter")]
Duration = Annotated[
    str,
    Field(
        pattern=durations.PATTERN,
        description='working time, e.g. "15d", "4h", "30m", "1d4h"; 1d = 8 working hours',
    ),
]
Money = Annotated[int, Field(ge=0, description="VND")]
Amount = Annotated[float, Field(ge=0)]

RoleKind = Literal["applicant", "office", "system"]
StepKind = Literal[
    "submit",
    "receive",
    "review",
    "verify",
    "approve",
    "sign",
    "pay",
    "notify",
    "issue",
    "archive",
    "transfer",
    "task",
]
FieldType = Literal["string", "integer", "number", "boolean", "date", "enum"]
Channel = Literal["in_person", "online", "post"]

_CONDITION_DEF: dict[str, Any] = {
    "description": "a declarative condition on the case data",
    "oneOf": [
        {
            "type": "object",
            "required": ["field"],
            "properties": {
                "field": {"type": "string", "pattern": ID_PATTERN},
                **{op: {} for op in ("equals", "not_equals", "gt", "gte", "lt", "lte")},
                "in": {"type": "array"},
                "not_in": {"type": "array"},
                "exists": {"type": "boolean"},
            },
            "minProperties": 2,
            "maxProperties": 2,
            "additionalProperties": False,
        },
        {
            "type": "object",
            "required": ["all"],
            "additionalProperties": False,
            "properties": {"all": {"type": "array", "items": {"$ref": "#/$defs/Condition"}}},
        },
        {
            "type": "object",
            "required": ["any"],
            "additionalProperties": False,
            "properties": {"any": {"type": "array", "items": {"$ref": "#/$defs/Condition"}}},
        },
        {
            "type": "object",
            "required": ["not"],
            "additionalProperties": False,
            "properties": {"not": {"$ref": "#/$defs/Condition"}},
        },
    ],
}
_OUTCOMES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "decision name -> effect",
    "additionalProperties": {
        "oneOf": [
            {"enum": ["proceed", "reject"]},
            {
                "type": "object",
                "required": ["return"],
                "additionalProperties": False,
                "properties": {"return": {"type": "string", "pattern": ID_PATTERN}},
            },
        ]
    },
}


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class RoleSpec(Spec):
    id: Identifier
    name: str
    kind: RoleKind
    unit: str | None = None


class DocumentSpec(Spec):
    id: Identifier
    name: str
    from_: Literal["applicant", "registry"] | None = Field(default=None, alias="from")
    registry: str | None = None
    prep_hours: Amount = 0.0
    prep_cost: Amount = 0.0
    deliverable: bool = False


class FieldSpec(Spec):
    id: Identifier
    name: str | None = None
    type: FieldType
    values: list[str] | None = None
    required: bool = False


class StepSpec(Spec):
    id: Identifier
    name: str
    role: Identifier
    kind: StepKind = "task"
    duration: Duration = "0h"
    effort: Duration | None = None
    visit: bool = False
    fee: Money = 0
    inputs: list[Identifier] = []
    outputs: list[Identifier] = []
    after: list[Identifier] | None = Field(
        default=None, description="steps that must be finished first; default: the previous step"
    )
    # Conditions and outcomes are checked against the rest of the definition
    # by the loader, which gives better messages than a union of models.
    when: Any = None
    outcomes: Any = None


class FeeSpec(Spec):
    name: str
    amount: Money


class CostModelSpec(Spec):
    hourly_cost: Amount = 40000
    visit_cost: Amount = 50000
    visit_hours: Amount = 2
    office_hourly_cost: Amount = 50000


class DefinitionSpec(Spec):
    """One version of one administrative procedure."""

    format: Literal["tinhgon/1"]
    code: str
    name: str
    version: Annotated[int, Field(ge=1)]
    based_on: Annotated[int, Field(ge=1)] | None = None
    sector: str | None = None
    agency: str | None = None
    scope: Literal["public", "internal"] = "public"
    channels: list[Channel] = ["in_person"]
    time_limit: Duration | None = None
    annual_volume: Annotated[int, Field(ge=0)] = 0
    legal_basis: list[str] = []
    fees: list[FeeSpec] = []
    cost_model: CostModelSpec = CostModelSpec()
    fields: list[FieldSpec] = []
    roles: list[RoleSpec]
    documents: list[DocumentSpec]
    steps: list[StepSpec]


ITEM_MODELS: dict[str, type[Spec]] = {
    "roles": RoleSpec,
    "documents": DocumentSpec,
    "fields": FieldSpec,
    "steps": StepSpec,
}
"""The top-level lists whose items are checked one by one, so that one broken
item does not hide the errors of the others."""


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of the format, for editors."""
    schema = DefinitionSpec.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    defs["Condition"] = _CONDITION_DEF
    step = defs["StepSpec"]["properties"]
    step["when"] = {"$ref": "#/$defs/Condition", "description": "the step runs only when this holds"}
    step["outcomes"] = _OUTCOMES_SCHEMA
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tinhgon/1 procedure definition"
    return schema
