"""``/api/cases`` and ``/api/inbox``: starting cases, acting on them,
withdrawing them, reading them and their audit trail (service.md section 3).

Case actions honour ``If-Match: "N"`` (412 when the case moved on) and
``Idempotency-Key`` (the same key and body replay the first answer; another
body is 422; while the first is still running, 409).

The busiest routes (start, read, act, withdraw, the inbox) answer plain
requests on a fast path of their own (:func:`api.deps.fast_path`); anything
else, errors included, goes through the FastAPI endpoint beside it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from engine.changes import Change as EngineChange
from engine.changes import Prepared
from engine.direct import Direct
from engine.errors import Forbidden
from engine.idempotency import Idempotency
from engine.machine import Actor
from engine.rows import CURSOR_FORM
from engine.store import AsyncStatements
from engine.views import CaseView, StoredResponse
from procedures.messages import t

from ..deps import (
    NOT_PLAIN,
    ActorDep,
    FastPath,
    ServicesDep,
    SignedInRoute,
    bearer_token,
    counted,
    fast_path,
    invalid_token,
    plain_json,
    signed_in_user,
)
from ..problems import documented
from ..schemas import ActionCreate, CaseCreate, CasePublic, EventPublic, InboxItemPublic, Page, WithdrawCreate, case_json
from ..services import Services

router = APIRouter(
    prefix="/api",
    tags=["cases"],
    route_class=SignedInRoute,
    responses=documented({401: "not signed in, or the token is unknown or revoked", 422: "the request is not valid"}),
)

ETAG = {"ETag": {"description": 'the case\'s version, as `"N"`', "schema": {"type": "string"}}}
CASE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": ETAG},
    **documented({404: "no such case, or not one the caller may see"}),
}
ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            **ETAG,
            "Idempotent-Replayed": {
                "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
                "schema": {"type": "string", "enum": ["true"]},
            },
        }
    },
    **documented(
        {
            404: "no such case, or not one the caller may see",
            403: "the caller lacks the step's role",
            409: "the case's state refuses it (closed, step not active, guide once), or the first request with this Idempotency-Key is still running",
            412: "If-Match names an older version of the case",
            422: "the request is not valid, no such step or outcome, invalid data, or an Idempotency-Key reused with another body",
        }
    ),
}
MAX_ID = 2**31 - 1
"""ids are 32-bit integers in the database: a larger one names no case"""
CaseId = Annotated[int, Path(ge=1, le=MAX_ID, description="the case's id")]
TEXT = r"^[^\x00-\x1f]+$"
"""no control characters (PostgreSQL stores no NUL)"""
_PLAIN_ID = re.compile(r"[1-9][0-9]{0,9}")
"""a case id as the fast paths take it (FastAPI also reads 07, +7 and the like)"""
_PLAIN_KEY = re.compile(TEXT[1:-1])
KEY_LENGTH = 200
"""the longest Idempotency-Key (the endpoints' header and the fast paths alike)"""
PAGE_LIMIT = 200
"""the largest page of a list (the endpoints' ``limit`` and the inbox's fast path alike)"""
IfMatch = Annotated[
    str | None, Header(description='the case version the action is meant for, as `"N"` (its ETag)', examples=['"3"'])
]
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=KEY_LENGTH,
        pattern=TEXT,
        description="a key of the client's choice; a retry with the same key and body gets the first answer",
    ),
]
Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT, description="page size")]


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match(value: str | None) -> int | None:
    """``"N"`` (or ``W/"N"``) as N; ``*`` and no header as None. Anything
    else matches no version (0): the service answers 412 after it has
    checked that the caller sees the case."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else 0


def _json(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A model as the response body, written by pydantic in one step.
    Returning the model itself would have FastAPI validate it again, in a
    thread-pool hop of its own for these plain-function endpoints, and a dict
    in a JSONResponse would be walked again by json.dumps; the route's
    ``response_model`` still documents it."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json", headers=headers)


def _case_response(view: CaseView, status_code: int = 200) -> Response:
    return Response(
        case_json(view), status_code=status_code, media_type="application/json", headers={"ETag": _etag(view.version)}
    )


class _Rendered:
    """The case an action answered with: written once, for the idempotency
    record and the response alike."""

    def __init__(self) -> None:
        self.body: str | None = None

    def __call__(self, view: CaseView) -> tuple[int, str]:
        self.body = case_json(view)
        return 200, self.body


def _stored(result: CaseView | StoredResponse, rendered: _Rendered) -> Response:
    if isinstance(result, StoredResponse):
        version = result.body.get("version")
        headers = {"ETag": _etag(version)} if isinstance(version, int) else {}
        return JSONResponse(result.body, status_code=result.status_code, headers={**headers, "Idempotent-Replayed": "true"})
    if rendered.body is None:
        return _case_response(result)
    return Response(rendered.body, media_type="application/json", headers={"ETag": _etag(result.version)})


def _idempotency(key: str | None, route: str, body: Any, rendered: _Rendered) -> Idempotency | None:
    if key is None:
        return None
    digest = hashlib.sha256(json.dumps([route, body], sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return Idempotency(key, digest, rendered)


def _start(services: Services, actor: Actor, body: CaseCreate, db: Direct) -> CaseView:
    applicant = body.applicant or actor.id
    if applicant != actor.id and not services.cases.may_start_for(actor, body.procedure, body.unit, db=db):
        raise Forbidden(t("only an official of the procedure in that unit may open a case for someone else"))
    return services.cases.start(actor, code=body.procedure, unit=body.unit, data=body.data, applicant=applicant, db=db)


async def _fast_start(request: Request) -> Response | None:
    """Starting a case on the fast path (see :func:`~api.deps.fast_path`):
    a plain JSON body; the token check and the start go to the writer as an
    action does, in one transaction."""
    body = await plain_json(request, CaseCreate)
    if body is NOT_PLAIN or body is None:
        return None
    services: Services = request.app.state.services
    bearer_token(request)

    def signed_in_start(db: Direct) -> CaseView:
        return _start(services, signed_in_user(request, services, db).actor, body, db)

    return _case_response(await services.writing(signed_in_start), status.HTTP_201_CREATED)


@router.post(
    "/cases",
    status_code=status.HTTP_201_CREATED,
    summary="Start a case on the newest published version",
    response_model=CasePublic,
    responses={
        201: {"headers": ETAG},
        **documented(
            {
                403: "only an official of the procedure in that unit may open a case for someone else",
                422: "the request is not valid, data that breaks the procedure's fields (errors [{field, message}]), or no published version",
            }
        ),
    },
)
@fast_path(_fast_start)
def start_case(body: CaseCreate, services: ServicesDep, actor: ActorDep) -> Response:
    with services.store.direct() as db:
        view = _start(services, actor, body, db)
    return _case_response(view, status.HTTP_201_CREATED)


@router.get("/cases", summary="The cases the caller sees, newest first", response_model=Page[CasePublic])
def list_cases(
    services: ServicesDep,
    actor: ActorDep,
    status_: Annotated[Literal["open", "completed", "rejected", "withdrawn"] | None, Query(alias="status")] = None,
    procedure: Annotated[str | None, Query(max_length=100, pattern=TEXT)] = None,
    overdue: bool | None = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,10}$", description="next_cursor of the previous page")] = None,
) -> Response:
    with services.store.unit(write=False) as uow:
        views, next_cursor = services.cases.list_cases(
            actor,
            status=status_,
            code=procedure,
            overdue=overdue,
            limit=limit,
            cursor=min(int(cursor), MAX_ID) if cursor else None,
            uow=uow,
        )
    return _json(Page[CasePublic](items=[CasePublic.of(v) for v in views], next_cursor=str(next_cursor) if next_cursor else None))


def _plain_case_id(request: Request) -> int | None:
    """The path's case id when it is a plain number in range (anything else is the endpoint's to answer)."""
    raw = request.path_params.get("case_id", "")
    return int(raw) if _PLAIN_ID.fullmatch(raw) and int(raw) <= MAX_ID else None


async def _fast_case(request: Request) -> Response | None:
    """Reading a case, on the fast path (see :func:`~api.deps.fast_path`):
    officials open cases all day; the token and the read go in one hop,
    on one connection (each statement alone: :meth:`~engine.store.Store.reading`)."""
    case_id = _plain_case_id(request)
    if case_id is None:
        return None
    services: Services = request.app.state.services
    bearer_token(request)

    def signed_in_read() -> Response:
        with services.store.reading() as db:
            return _case_response(services.cases.get(signed_in_user(request, services, db).actor, case_id, db=db))

    return await run_in_threadpool(signed_in_read)


@router.get("/cases/{case_id}", summary="One case, with its steps", responses=CASE_RESPONSES, response_model=CasePublic)
@fast_path(_fast_case)
def get_case(case_id: CaseId, services: ServicesDep, actor: ActorDep) -> Response:
    with services.store.reading() as db:
        return _case_response(services.cases.get(actor, case_id, db=db))


@dataclass(frozen=True, slots=True)
class Change:
    """A case change read from its request: :attr:`run` by a signed-in actor
    in ``db``, a writing transaction, or :attr:`prepare` d ahead of its transaction and
    committed in it (:meth:`CaseService.commit`); then answered by
    :meth:`respond`, outside the transaction (on SQLite all of a worker's
    changes wait for one writer)."""

    run: Callable[[Services, Actor, Direct], CaseView | StoredResponse]
    prepare: Callable[[Services, Actor, Direct], Prepared]
    signed_in: Callable[[Services, AsyncStatements, str], Awaitable[CaseView | StoredResponse]]
    """PostgreSQL: run on the event loop by the bearer of a token, checked with the case's own reads"""
    rendered: _Rendered

    def respond(self, result: CaseView | StoredResponse) -> Response:
        return _stored(result, self.rendered)


def _act(case_id: int, body: ActionCreate, if_match: str | None, idempotency_key: str | None) -> Change:
    rendered = _Rendered()
    idempotency = _idempotency(idempotency_key, f"actions/{case_id}", body.model_dump(mode="json"), rendered)
    version = _if_match(if_match)

    doing: dict[str, Any] = {
        "step": body.step,
        "outcome": body.outcome,
        "comment": body.comment,
        "missing": body.missing,
        "data": body.data,
    }

    def run(services: Services, actor: Actor, db: Direct) -> CaseView | StoredResponse:
        return services.cases.act(actor, case_id, if_match=version, idempotency=idempotency, db=db, **doing)

    def prepare(services: Services, actor: Actor, db: Direct) -> Prepared:
        change = services.cases.acting(actor, **doing)
        return services.cases.prepare(actor, case_id, change, if_match=version, idempotency=idempotency, db=db)

    async def signed_in(services: Services, statements: AsyncStatements, token: str) -> CaseView | StoredResponse:
        def change(actor: Actor) -> EngineChange:
            return services.cases.acting(actor, **doing)

        return await _change_signed_in(services, statements, token, case_id, change, version, idempotency)

    return Change(run, prepare, signed_in, rendered)


def _withdraw(case_id: int, body: WithdrawCreate | None, if_match: str | None, idempotency_key: str | None) -> Change:
    comment = body.comment if body else None
    rendered = _Rendered()
    idempotency = _idempotency(idempotency_key, f"withdraw/{case_id}", {"comment": comment}, rendered)
    version = _if_match(if_match)

    def run(services: Services, actor: Actor, db: Direct) -> CaseView | StoredResponse:
        return services.cases.withdraw(actor, case_id, comment=comment, if_match=version, idempotency=idempotency, db=db)

    def prepare(services: Services, actor: Actor, db: Direct) -> Prepared:
        change = services.cases.withdrawing(actor, comment=comment)
        return services.cases.prepare(actor, case_id, change, if_match=version, idempotency=idempotency, db=db)

    async def signed_in(services: Services, statements: AsyncStatements, token: str) -> CaseView | StoredResponse:
        def change(actor: Actor) -> EngineChange:
            return services.cases.withdrawing(actor, comment=comment)

        return await _change_signed_in(services, statements, token, case_id, change, version, idempotency)

    return Change(run, prepare, signed_in, rendered)


async def _change_signed_in(
    services: Services,
    statements: AsyncStatements,
    token: str,
    case_id: int,
    change: Callable[[Actor], EngineChange],
    version: int | None,
    idempotency: Idempotency | None,
) -> CaseView | StoredResponse:
    """A plain action's or withdrawal's change on the event loop; what is to
    be made again in a transaction runs in the worker's transaction threads."""
    done = await services.cases.change_signed_in_async(
        statements, token, case_id, change, if_match=version, idempotency=idempotency
    )
    if done is None:
        raise invalid_token()
    if done.result is not None:
        return done.result
    actor, again = done.user.actor, done.again

    def in_transaction(db: Direct) -> CaseView | StoredResponse:
        return services.cases.change(actor, case_id, again, if_match=version, idempotency=idempotency, db=db)

    return await services.writing(in_transaction)


def _fast_change(model: type[ActionCreate] | type[WithdrawCreate], optional: bool, change: Callable[..., Change]) -> FastPath:
    """The fast path of a case change (see :func:`~api.deps.fast_path`):
    a plain case id, ``Idempotency-Key`` and JSON body are read here, and
    the token check and the change follow in the order of service.md
    (token, then the case's own checks): on PostgreSQL read in one
    statement and written in another, on the event loop; on SQLite worked
    out by the writer in a reading transaction just before the writing
    one. Anything else goes through the endpoint."""

    async def handle(request: Request) -> Response | None:
        case_id = _plain_case_id(request)
        key = request.headers.get("idempotency-key")
        if case_id is None or (key is not None and (len(key) > KEY_LENGTH or not _PLAIN_KEY.fullmatch(key))):
            return None
        body = await plain_json(request, model, optional=optional)
        if body is NOT_PLAIN:
            return None
        services: Services = request.app.state.services
        token = bearer_token(request)  # a request without one has no business with the database

        # The request's digest is taken here, not in the writer, which all
        # of a worker's actions wait for.
        read = change(case_id, body, request.headers.get("if-match"), key)
        if services.store.one_writer:
            # SQLite: the token check and the change are worked out by the
            # writer before it takes the write lock, which every worker's
            # changes wait for; under the lock it claims the key and writes
            # (the case read afresh if it moved on meanwhile).
            def signed_in_ahead(db: Direct) -> Prepared:
                return read.prepare(services, signed_in_user(request, services, db).actor, db)

            return read.respond(await services.writing(services.cases.commit, signed_in_ahead))

        statements: AsyncStatements = request.app.state.statements
        if not statements.on_this_loop():
            # An ASGI host may run the lifespan on one loop and requests on
            # another: the sign-in and the change in one transaction, as
            # the endpoint makes them.
            def signed_in_change(db: Direct) -> CaseView | StoredResponse:
                return read.run(services, signed_in_user(request, services, db).actor, db)

            return read.respond(await services.writing(signed_in_change))
        # PostgreSQL: the token, the case and the key read in one statement,
        # the change written in another, both awaited on the event loop
        # (CaseService.change_signed_in_async).
        return read.respond(await read.signed_in(services, statements, token))

    return handle


@router.post(
    "/cases/{case_id}/actions", summary="Take an outcome on an active step", responses=ACTION_RESPONSES, response_model=CasePublic
)
@counted("act")
@fast_path(_fast_change(ActionCreate, False, _act))
def act(
    case_id: CaseId,
    body: ActionCreate,
    services: ServicesDep,
    actor: ActorDep,
    if_match: IfMatch = None,
    idempotency_key: IdemKey = None,
) -> Response:
    change = _act(case_id, body, if_match, idempotency_key)
    with services.store.direct() as db:
        result = change.run(services, actor, db)
    return change.respond(result)


@router.post(
    "/cases/{case_id}/withdraw", summary="The applicant withdraws the case", responses=ACTION_RESPONSES, response_model=CasePublic
)
@counted("withdraw")
@fast_path(_fast_change(WithdrawCreate, True, _withdraw))
def withdraw(
    case_id: CaseId,
    services: ServicesDep,
    actor: ActorDep,
    body: WithdrawCreate | None = None,
    if_match: IfMatch = None,
    idempotency_key: IdemKey = None,
) -> Response:
    change = _withdraw(case_id, body, if_match, idempotency_key)
    with services.store.direct() as db:
        result = change.run(services, actor, db)
    return change.respond(result)


@router.get(
    "/cases/{case_id}/events",
    summary="The case's audit events, oldest first",
    responses=documented({404: "no such case, or not one the caller may see"}),
)
def events(case_id: CaseId, services: ServicesDep, actor: ActorDep) -> list[EventPublic]:
    with services.store.direct(write=False) as db:
        return [EventPublic.of(e) for e in services.cases.events(actor, case_id, db=db)]


def _inbox_page(services: Services, actor: Actor, limit: int, cursor: str | None, db: Direct) -> Response:
    # the cursor is of its form (both paths check it), and every text of that form is a cursor
    items, next_cursor = services.cases.inbox(actor, limit=limit, cursor=cursor, db=db)
    return _json(Page[InboxItemPublic](items=[InboxItemPublic.of(i) for i in items], next_cursor=next_cursor))


_PLAIN_LIMIT = re.compile(r"[1-9][0-9]{0,2}")
_PLAIN_CURSOR = re.compile(CURSOR_FORM)


async def _fast_inbox(request: Request) -> Response | None:
    """The inbox's fast path (see :func:`~api.deps.fast_path`): officials
    open it all day. Plain query parameters (``limit`` a number up to :data:`PAGE_LIMIT`,
    ``cursor`` of its documented form, each at most once) are read here, and
    the token check and the query run in one thread-pool call, on one
    connection (each statement alone: :meth:`~engine.store.Store.reading`)."""
    params = request.query_params
    if len(params.keys()) != len(params.multi_items()):
        return None
    raw_limit, cursor = params.get("limit", "50"), params.get("cursor")
    if (
        not _PLAIN_LIMIT.fullmatch(raw_limit)
        or int(raw_limit) > PAGE_LIMIT
        or (cursor is not None and not _PLAIN_CURSOR.fullmatch(cursor))
    ):
        return None
    services: Services = request.app.state.services
    bearer_token(request)

    def signed_in_inbox() -> Response:
        with services.store.reading() as db:
            return _inbox_page(services, signed_in_user(request, services, db).actor, int(raw_limit), cursor, db)

    return await run_in_threadpool(signed_in_inbox)


@router.get("/inbox", summary="The caller's actionable steps, earliest due first", response_model=Page[InboxItemPublic])
@fast_path(_fast_inbox)
def inbox(
    services: ServicesDep,
    actor: ActorDep,
    limit: Limit = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=CURSOR_FORM,
            description="next_cursor of the previous page: `DUE.CASE.POSITION`, the last item's due time"
            " (microseconds since 1970, UTC), case id and step position; any value of this form is a place"
            " in the list to go on after",
        ),
    ] = None,
) -> Response:
    with services.store.reading() as db:
        return _inbox_page(services, actor, limit, cursor, db)
