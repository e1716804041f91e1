"""The ``errors`` of an invalid request, ``[{location, message}]``, each
message in the request's language.

FastAPI hands pydantic's errors over in English. Those a client of this
API meets (a missing or unknown key, a text too long or of the wrong form,
a number out of bounds, a value of the wrong type) are said anew by their
``type``, with the English of pydantic as their message id; any other keeps
pydantic's own message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from procedures.messages import t


def request_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """``[{location, message}]`` of FastAPI's validation ``errors``."""
    return [{"location": ".".join(str(p) for p in e.get("loc", ())), "message": message(e)} for e in errors]


def message(error: Mapping[str, Any]) -> str:
    """One validation error's message, by its ``type``."""
    kind = error.get("type")
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    return _bounded(kind, ctx) or _typed(kind, ctx) or str(error.get("msg", ""))


def _bounded(kind: object, ctx: Mapping[str, Any]) -> str | None:
    """A value outside its bounds or its form."""
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return t("String should have at least 1 character")
        return t("String should have at least {min_length} characters", min_length=ctx.get("min_length"))
    if kind == "string_too_long":
        if ctx.get("max_length") == 1:
            return t("String should have at most 1 character")
        return t("String should have at most {max_length} characters", max_length=ctx.get("max_length"))
    if kind == "string_pattern_mismatch":
        return t("String should match pattern '{pattern}'", pattern=ctx.get("pattern"))
    if kind == "too_long" and ctx.get("field_type") == "List":
        return t(
            "List should have at most {max_length} items after validation, not {actual_length}",
            max_length=ctx.get("max_length"),
            actual_length=ctx.get("actual_length"),
        )
    if kind == "greater_than_equal":
        return t("Input should be greater than or equal to {ge}", ge=ctx.get("ge"))
    if kind == "less_than_equal":
        return t("Input should be less than or equal to {le}", le=ctx.get("le"))
    if kind == "greater_than":
        return t("Input should be greater than {gt}", gt=ctx.get("gt"))
    if kind == "less_than":
        return t("Input should be less than {lt}", lt=ctx.get("lt"))
    if kind in ("literal_error", "enum"):
        return t("Input should be {expected}", expected=ctx.get("expected"))
    return None


def _typed(kind: object, ctx: Mapping[str, Any]) -> str | None:
    """A value missing, unknown, unreadable or of the wrong type."""
    if kind == "missing":
        return t("Field required")
    if kind == "extra_forbidden":
        return t("Extra inputs are not permitted")
    if kind == "json_invalid":
        return t("Invalid JSON: {error}", error=ctx.get("error"))
    if kind == "value_error":
        return t("Value error, {error}", error=ctx.get("error"))
    if kind == "string_type":
        return t("Input should be a valid string")
    if kind == "string_unicode":
        return t("Input should be a valid string, unable to parse raw data as a unicode string")
    if kind == "int_type":
        return t("Input should be a valid integer")
    if kind == "int_parsing":
        return t("Input should be a valid integer, unable to parse string as an integer")
    if kind == "int_from_float":
        return t("Input should be a valid integer, got a number with a fractional part")
    if kind == "int_parsing_size":
        return t("Unable to parse input string as an integer, exceeded maximum size")
    if kind == "float_type":
        return t("Input should be a valid number")
    if kind == "float_parsing":
        return t("Input should be a valid number, unable to parse string as a number")
    if kind == "bool_type":
        return t("Input should be a valid boolean")
    if kind == "bool_parsing":
        return t("Input should be a valid boolean, unable to interpret input")
    if kind == "list_type":
        return t("Input should be a valid list")
    if kind == "dict_type":
        return t("Input should be a valid dictionary")
    if kind == "model_attributes_type":
        return t("Input should be a valid dictionary or object to extract fields from")
    return None
