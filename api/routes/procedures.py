"""``/api/procedures``: the catalog, uploads, analysis, simplification,
publication, diagrams and comparisons (service.md section 3)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from engine.codes import CODE_FORM, VERSION_MAX, VERSION_MIN
from engine.db import ProcedureRow
from engine.errors import Conflict
from engine.store import DRAFT
from procedures.messages import t

from ..deps import ReformDep, ServicesDep, UserDep, declared_length
from ..problems import ApiProblem, documented
from ..reform_work import Simplified
from ..schemas import ProcedureDetail, ProcedureStored, ProcedureSummary, SimplifyResult

router = APIRouter(
    prefix="/api/procedures",
    tags=["procedures"],
    responses=documented(
        {
            401: "not signed in, or the token is unknown or revoked",
            404: "no such procedure or version",
            422: "the request is not valid",
        }
    ),
)
WRITE_RESPONSES = documented({403: "changing procedures needs the reform permission"})
UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii"})
"""Charsets a definition may be declared in: UTF-8, or ASCII, which is a part of it."""
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
SVG = "image/svg+xml"
Code = Annotated[
    str,
    Path(
        max_length=100,
        pattern=CODE_FORM,
        description="the procedure's code; codes that differ only in case are the same code",
        examples=["QP-CS-XN-02"],
    ),
]
Version = Annotated[int, Path(ge=VERSION_MIN, le=VERSION_MAX, examples=[1])]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise ApiProblem(413, t("the body is {size} bytes; the limit is {limit}", size=declared, limit=limit), kind="too-large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiProblem(413, t("the body passes the limit of {limit} bytes", limit=limit), kind="too-large")
        chunks.append(chunk)
    return b"".join(chunks)


def _row(services: Any, code: str, version: int) -> ProcedureRow:
    with services.store.unit(write=False) as uow:
        return uow.procedure(code, version)  # type: ignore[no-any-return]


# -- what the routes and the web pages both do ------------------------------------
def store_upload(services: Any, raw: bytes, *, actor: str, source: str = "upload") -> ProcedureRow:
    """Check an uploaded definition and store it as a draft (journalled as ``actor``'s).

    Raises:
        DefinitionError, ReadError: not a valid definition.
        LimitExceeded: beyond one of the service's limits (steps, time, memory).
        Conflict: this code and version exist already.
    """
    header = services.checked_upload(raw, source)
    text = raw.decode("utf-8-sig")
    with services.store.unit() as uow:
        return uow.add_procedure(header, text, now=_now(), status=DRAFT, actor=actor)  # type: ignore[no-any-return]


def store_simplified(services: Any, code: str, version: int, *, actor: str) -> Simplified:
    """Apply the automatic fixes to a stored version and store version + 1 as a draft.

    Raises:
        NotFound: no such version.
        Conflict: nothing to simplify, or version + 1 exists already.
        LimitExceeded: the work ran beyond the service's time or memory limit.
    """
    result: Simplified = services.simplified(_row(services, code, version))
    if result.after is None or result.text is None:
        raise Conflict(t("{code} version {version}: no automatic fix applies; nothing was stored", code=code, version=version))
    with services.store.unit() as uow:
        uow.add_procedure(result.after, result.text, now=_now(), status=DRAFT, actor=actor)
    return result


def publish_version(services: Any, code: str, version: int, *, actor: str) -> ProcedureRow:
    """Publish a stored version (new cases of ``code`` start on the newest published one).

    Raises:
        NotFound: no such version.
    """
    with services.store.unit() as uow:
        return uow.publish(code, version, now=_now(), actor=actor)  # type: ignore[no-any-return]


@router.get("", summary="The procedures and their versions")
def list_procedures(services: ServicesDep, user: UserDep) -> list[ProcedureSummary]:
    with services.store.unit(write=False) as uow:
        rows = uow.procedures()
    return [ProcedureSummary(code=r.code, version=r.version, name=r.name, status=r.status) for r in rows]  # type: ignore[arg-type]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a definition (YAML) as a draft",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/yaml": {"schema": {"type": "string"}, "example": "format: tinhgon/1\ncode: X-1\n..."}},
        }
    },
    responses={
        **WRITE_RESPONSES,
        **documented(
            {
                409: "this code and version exist already",
                413: "the body is over the upload limit",
                415: "not application/yaml, or declared in a charset other than UTF-8",
                422: "not a valid definition, malformed YAML, or one that expands beyond its limits: errors [{line, path, message}]",
            }
        ),
    },
)
async def upload(request: Request, services: ServicesDep, user: ReformDep) -> ProcedureStored:
    media, *parameters = (part.strip() for part in request.headers.get("content-type", "").split(";"))
    media = media.lower()
    if media not in YAML_TYPES:
        wrong = (
            t("send the definition as application/yaml, not {media}", media=media)
            if media
            else t("send the definition as application/yaml, not without a content type")
        )
        raise ApiProblem(415, wrong, kind="unsupported-media-type")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in UTF8_NAMES:
            wrong = (
                t("a definition is read as UTF-8; send it as charset=utf-8, not {charset}", charset=charset)
                if charset
                else t("a definition is read as UTF-8; send it as charset=utf-8, not an empty charset")
            )
            raise ApiProblem(415, wrong, kind="unsupported-media-type")
    raw = await read_limited(request, services.settings.max_upload_bytes)
    row = await run_in_threadpool(store_upload, services, raw, actor=user.id)  # reading it takes time: off the event loop
    return ProcedureStored(code=row.code, version=row.version, status="draft")


@router.get(
    "/{code}/{version}",
    summary="One version: its definition as JSON, status and metrics",
    response_model=ProcedureDetail,
    response_class=Response,
)
def get_procedure(code: Code, version: Version, services: ServicesDep, user: UserDep) -> Response:
    # made once per version and status, in a child process for a big definition
    return Response(services.detail_json(_row(services, code, version)), media_type="application/json")


@router.get("/{code}/{version}/analysis", summary="Metrics and findings (the analyze --json object)")
def get_analysis(code: Code, version: Version, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    return services.measured(_row(services, code, version)).analysis


@router.post(
    "/{code}/{version}/simplify",
    status_code=status.HTTP_201_CREATED,
    summary="Apply the automatic fixes and store version + 1 as a draft",
    responses={**WRITE_RESPONSES, **documented({409: "nothing to simplify, or version + 1 exists already"})},
)
def post_simplify(code: Code, version: Version, services: ServicesDep, user: ReformDep) -> SimplifyResult:
    result = store_simplified(services, code, version, actor=user.id)
    assert result.after is not None
    return SimplifyResult(code=result.after.code, version=result.after.version, **result.report)


@router.post(
    "/{code}/{version}/publish",
    summary="Publish: new cases of the code start on its newest published version",
    responses=WRITE_RESPONSES,
)
def post_publish(code: Code, version: Version, services: ServicesDep, user: ReformDep) -> ProcedureStored:
    row = publish_version(services, code, version, actor=user.id)
    return ProcedureStored(code=row.code, version=row.version, status=row.status)  # type: ignore[arg-type]


@router.get(
    "/{code}/{version}/diagram.svg",
    summary="The procedure drawn in swimlanes",
    response_class=Response,
    responses={200: {"content": {SVG: {}}}},
)
def get_diagram(code: Code, version: Version, services: ServicesDep, user: UserDep) -> Response:
    return Response(services.drawn(_row(services, code, version), inline=False), media_type=SVG)


@router.get("/{code}/compare/{a}/{b}", summary="Two versions compared (the compare --json object)")
def get_compare(code: Code, a: Version, b: Version, services: ServicesDep, user: UserDep) -> dict[str, Any]:
    return services.compared(_row(services, code, a), _row(services, code, b), inline=False).result


@router.get(
    "/{code}/compare/{a}/{b}/diagram.svg",
    summary="Both versions in one picture",
    response_class=Response,
    responses={200: {"content": {SVG: {}}}},
)
def get_compare_diagram(code: Code, a: Version, b: Version, services: ServicesDep, user: UserDep) -> Response:
    return Response(services.compared(_row(services, code, a), _row(services, code, b), inline=False).svg, media_type=SVG)
