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
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
FORMAT = "tinhgon/1"
MAX_MONEY = 10**15
"""The largest amount of money, and the largest annual volume, a definition may write"""
MAX_VERSION = 1_000_000

Identifier = Annotated[str, Field(pattern=ID_PATTERN, description="lowercase letters, digits and _, starting with a letter")]
Duration = Annotated[
    str,
    Field(
        pattern=durations.PATTERN,
        description='working time, e.g. "15d", "4h", "30m", "1d4h"; 1d = 8 working hours',
    ),
]
Code = Annotated[str, Field(pattern=CODE_PATTERN, description="1-100 of A-Z a-z 0-9 . _ -, starting with a letter or digit")]
Money = Annotated[int, Field(ge=0, le=MAX_MONEY, description="VND")]
Price = Annotated[float, Field(ge=0, le=MAX_MONEY, description="VND")]
Amount = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]

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
            {
                "type": "object",
                "required": ["effect"],
                "additionalProperties": False,
                "properties": {"effect": {"enum": ["proceed", "reject"]}, "label": {"type": "string", "minLength": 1}},
            },
            {
                "type": "object",
                "required": ["return"],
                "additionalProperties": False,
                "properties": {
                    "return": {"type": "string", "pattern": ID_PATTERN},
                    "label": {"type": "string", "minLength": 1},
                },
            },
        ]
    },
}
_VALUES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "the allowed strings of an enum field, each plain or as {value, label}",
    "items": {
        "oneOf": [
            {"type": "string"},
            {
                "type": "object",
                "required": ["value", "label"],
                "additionalProperties": False,
                "properties": {"value": {"type": "string"}, "label": {"type": "string", "minLength": 1}},
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


class CopiesSpec(Spec):
    originals: Count = 0
    copies: Count = 0
    certified: Count = 0


class DocumentSpec(Spec):
    id: Identifier
    name: str
    from_: Literal["applicant", "registry"] | None = Field(default=None, alias="from")
    registry: str | None = None
    prep_hours: Amount = 0.0
    prep_cost: Price = 0.0
    deliverable: bool = False
    copies: CopiesSpec | None = None
    present_only: bool = False


class FieldSpec(Spec):
    id: Identifier
    name: str | None = None
    type: FieldType
    # Plain strings or {value, label}: checked by the loader, which gives
    # better messages than a union of models.
    values: Any = None
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
    share: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None, description="only with when: the expected fraction of cases in which the step runs"
    )
    outcomes: Any = None


class FeeSpec(Spec):
    name: str
    amount: Money


class CostModelSpec(Spec):
    hourly_cost: Price = 40000
    visit_cost: Price = 50000
    visit_hours: Amount = 2
    office_hourly_cost: Price = 50000
    reason: str | None = None


class RegistrySpec(Spec):
    id: Identifier
    name: str


class DefinitionSpec(Spec):
    """One version of one administrative procedure."""

    format: Literal["tinhgon/1"]
    code: Code
    name: str
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)]
    based_on: Annotated[int, Field(ge=1, le=MAX_VERSION)] | None = None
    in_force_from: Annotated[str, Field(description="YYYY-MM-DD, the day this version takes effect")] | None = None
    abolished: str | None = None
    merged_into: str | None = None
    registries: list[RegistrySpec] = []
    business: bool = False
    sector: str | None = None
    agency: str | None = None
    scope: Literal["public", "internal"] = "public"
    channels: list[Channel] = ["in_person"]
    time_limit: Duration | None = None
    annual_volume: Annotated[int, Field(ge=0, le=MAX_MONEY)] = 0
    legal_basis: list[str] = []
    fees: list[FeeSpec] = []
    cost_model: CostModelSpec = CostModelSpec()
    fields: list[FieldSpec] = []
    # Required unless the version is abolished: the loader says so.
    roles: list[RoleSpec] | None = None
    documents: list[DocumentSpec] | None = None
    steps: list[StepSpec] | None = None


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
    defs["FieldSpec"]["properties"]["values"] = _VALUES_SCHEMA
    # roles, documents and steps are required unless the version abolishes the procedure
    schema["if"] = {"not": {"required": ["abolished"]}}
    schema["then"] = {"required": ["roles", "documents", "steps"]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tinhgon/1 procedure definition"
    return schema
