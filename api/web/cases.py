"""Pages of the cases: the inbox, the user's cases, starting a case from
the procedure's fields, and the case page with its diagram, the outcomes
the user may take, the applicant's withdrawal and the audit timeline.

Everything goes through :class:`engine.cases.CaseService` with the user as
the actor, so the pages see and may do exactly what the API allows: a case
the user may not see is a 404 page, a step without the role a 403.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine import errors as E
from engine.calendar import local_time
from engine.machine import Actor, CompiledProcedure
from engine.users import User
from procedures.diagram import diagram
from procedures.model import Definition, Effect

from ..deps import ServicesDep
from ..routes.cases import MAX_ID, CaseId
from ..routes.procedures import Code
from ..services import Services
from ..svg import render_svg
from .forms import choice_text, field_errors, form_fields, parse_form
from .messages import CASE_STATUS, EVENT_TYPES, REFUSALS, STEP_STATUS, effect_text, outcome_text, outcome_words, refusal_text
from .render import PageRoute, page
from .session import CheckedForm, PageUser

router = APIRouter(route_class=PageRoute, include_in_schema=False)
DONE = {
    "tao": "Đã nộp hồ sơ.",
    "xu-ly": "Đã ghi nhận quyết định.",
    "rut": "Đã rút hồ sơ.",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _machine(services: Services, code: str, version: int) -> CompiledProcedure:
    with services.store.unit(write=False) as uow:
        return services.compiled.get(uow.procedure(code, version))


def _names(services: Services, ids: Iterable[str]) -> dict[str, str]:
    """User names by id, for the people a page mentions."""
    out = {}
    with services.store.unit(write=False) as uow:
        for user_id in set(ids):
            row = uow.find_user(user_id)
            if row is not None:
                out[user_id] = row.name
    return out


def _to_applicant(defn: Definition, effect: Effect) -> bool:
    """Whether the outcome returns the case to an applicant step (where ``missing`` is listed)."""
    return effect.kind == "return" and effect.target is not None and defn.role_kind(defn.step(effect.target)) == "applicant"


DATA_REFUSED = "Thông tin hồ sơ chưa hợp lệ: hãy sửa các trường được đánh dấu rồi gửi lại; chưa có gì được lưu."


def _changes(current: Mapping[str, Any], parsed: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the form changes: a box left unticked or an input left
    empty on a field the case never had is no change."""
    return {k: v for k, v in parsed.items() if v != current.get(k) and not (current.get(k) is None and v in (None, False))}


def due_class(due_at: dt.datetime | None, overdue: bool, now: dt.datetime) -> str:
    """``qua-han`` (red) past due, ``den-han`` (amber) due later today, else empty."""
    if due_at is None:
        return ""
    if overdue or due_at < now:
        return "qua-han"
    return "den-han" if local_time(due_at).date() == local_time(now).date() else ""


# -- lists ------------------------------------------------------------------------------
@router.get("/hop-thu", response_class=HTMLResponse)
def inbox(request: Request, services: ServicesDep, user: PageUser, sau: str | None = None) -> Response:
    with services.store.reading() as db:
        try:
            items, next_cursor = services.cases.inbox(user.actor, limit=50, cursor=sau, db=db)
        except ValueError:
            items, next_cursor = services.cases.inbox(user.actor, limit=50, db=db)
    now = _now()
    rows = [(item, due_class(item.due_at, item.overdue, now)) for item in items]
    return page(request, "inbox.html", rows=rows, next_cursor=next_cursor)


@router.get("/ho-so", response_class=HTMLResponse)
def case_list(
    request: Request, services: ServicesDep, user: PageUser, sau: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
) -> Response:
    names: dict[str, str] = {}
    with services.store.unit(write=False) as uow:
        views, next_cursor = services.cases.list_cases(user.actor, limit=50, cursor=sau, uow=uow)
        for view in views:
            if view.code not in names:
                names[view.code] = uow.procedure(view.code, view.procedure_version).name
    now = _now()
    rows = [(v, names[v.code], due_class(v.due_at, False, now) if v.open else "") for v in views]
    return page(request, "cases.html", rows=rows, next_cursor=next_cursor, statuses=CASE_STATUS)


# -- starting -----------------------------------------------------------------------------
def _start_page(
    request: Request,
    services: Services,
    user: User,
    code: str,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    unit: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with services.store.unit(write=False) as uow:
        row = uow.newest_published(code)
    defn = services.compiled.get(row).definition
    return page(
        request,
        "start.html",
        status_code,
        defn=defn,
        fields=form_fields(defn, values, errors),
        unit=user.unit if unit is None else unit,
        unit_error=(errors or {}).get("(unit)"),
        error=error,
    )


@router.get("/ho-so/moi/{code}", response_class=HTMLResponse)
def start_form(request: Request, code: Code, services: ServicesDep, user: PageUser) -> Response:
    return _start_page(request, services, user, code)


@router.post("/ho-so/moi/{code}", response_class=HTMLResponse)
def start(request: Request, code: Code, services: ServicesDep, user: PageUser, form: CheckedForm) -> Response:
    with services.store.unit(write=False) as uow:
        row = uow.newest_published(code)
    defn = services.compiled.get(row).definition
    data, errors = parse_form(defn, form)
    raw_unit = form.get("unit")
    unit = raw_unit.strip() if isinstance(raw_unit, str) else ""
    if not unit:
        errors["(unit)"] = "Hãy ghi đơn vị tiếp nhận hồ sơ."
    if not errors:
        try:
            with services.store.direct() as db:
                view = services.cases.start(user.actor, code=code, unit=unit, data=data, db=db)
        except E.InvalidData as exc:
            errors = field_errors(defn, exc.problems)
        else:
            return RedirectResponse(f"/ho-so/{view.id}?da=tao", status_code=303)
    shown = {k: v for k, v in data.items() if v is not None}
    for key in errors:
        raw = form.get("f_" + key)
        if isinstance(raw, str):
            shown[key] = raw
    return _start_page(
        request, services, user, code, values=shown, errors=errors, unit=unit, error=REFUSALS["invalid-data"], status_code=422
    )


# -- one case -------------------------------------------------------------------------------
def _case_page(
    request: Request,
    services: Services,
    actor: Actor,
    case_id: int,
    *,
    error: str | None = None,
    status_code: int = 200,
    comment: str = "",
    amended: Mapping[str, Any] | None = None,
    field_problems: Mapping[str, str] | None = None,
) -> Response:
    with services.store.direct(write=False) as db:  # the case and its events as of one moment
        view = services.cases.get(actor, case_id, db=db)
        events = services.cases.events(actor, case_id, db=db)
    machine = _machine(services, view.code, view.procedure_version)
    defn = machine.definition
    names = _names(services, [view.applicant, *(e.actor for e in events), *([view.guided.actor] if view.guided else [])])
    now = _now()
    statuses = {s.id: "overdue" if s.overdue else s.status for s in view.steps}
    acting = []
    for step_id in machine.actionable(view.state(), actor):
        step = defn.step(step_id)
        outcomes = [
            {
                "name": name,
                "text": outcome_words(step, name),
                "effect": effect_text(effect, defn),
                "kind": effect.kind,
                "to_applicant": _to_applicant(defn, effect),
            }
            for name, effect in step.outcomes
        ]
        applicant_step = machine.role_kind[defn.index[step_id]] == "applicant"
        acting.append(
            {
                "step": step,
                "outcomes": outcomes,
                "returns_to_applicant": any(o["to_applicant"] for o in outcomes),
                # the applicant may correct the case data while answering their step
                "fields": form_fields(defn, {**view.data, **(amended or {})}, field_problems) if applicant_step else [],
                "open_fields": bool(field_problems) or (view.guided is not None and view.guided.target == step_id),
            }
        )
    applicant_docs = [d for d in defn.documents if d.source == "applicant"]
    guided_missing = (
        [defn.document_by_id[d].name if d in defn.document_by_id else d for d in view.guided.missing] if view.guided else []
    )
    timeline = []
    for e in events:
        step_name = defn.step(e.step).name if e.step and e.step in defn.index else e.step
        missing = e.data.get("missing") or []
        timeline.append(
            {
                "event": e,
                "type": EVENT_TYPES.get(e.type, e.type),
                "who": names.get(e.actor, "Hệ thống" if e.actor == "system" else e.actor),
                "step": step_name,
                "outcome": (
                    outcome_words(defn.step(e.step), e.outcome)
                    if e.outcome and e.step is not None and e.step in defn.index
                    else outcome_text(e.outcome)
                    if e.outcome
                    else None
                ),
                "missing": [defn.document_by_id[d].name if d in defn.document_by_id else d for d in missing],
                "changes": e.data.get("changes") or {},
            }
        )
    return page(
        request,
        "case.html",
        status_code,
        view=view,
        defn=defn,
        svg=render_svg(diagram(defn, statuses=statuses)),
        steps=[(s, defn.step(s.id), due_class(s.due_at, s.overdue, now) if s.status == "active" else "") for s in view.steps],
        step_status=STEP_STATUS,
        case_status=CASE_STATUS,
        acting=acting,
        applicant_docs=applicant_docs,
        guided_missing=guided_missing,
        names=names,
        timeline=timeline,
        error=error,
        notice=DONE.get(request.query_params.get("da", "")) if error is None else None,
        comment=comment,
        is_applicant=view.applicant == actor.id,
        fields={f.id: f for f in defn.fields},
        choice_text=choice_text,
        outcome_words=outcome_words,
        due_class=due_class(view.due_at, False, now) if view.open else "",
    )


@router.get("/ho-so/{case_id}", response_class=HTMLResponse)
def case_page(request: Request, case_id: CaseId, services: ServicesDep, user: PageUser) -> Response:
    return _case_page(request, services, user.actor, case_id)


_FORM_VERSION = re.compile(r"[0-9]{1,11}")


def _version(form: Any) -> int | None:
    """The case version the page was drawn at (its forms send it), for
    ``if_match``: None when the form sends none; 0, which no case ever has,
    for anything but ASCII digits, so that a forged value is refused as a
    stale page instead of skipping the check."""
    raw = form.get("version")
    if raw is None:
        return None
    return int(raw) if isinstance(raw, str) and _FORM_VERSION.fullmatch(raw) else 0


def _refused(request: Request, services: Services, actor: Actor, case_id: int, exc: E.EngineError, comment: str = "") -> Response:
    with services.store.reading() as db:
        view = services.cases.get(actor, case_id, db=db)
    defn = _machine(services, view.code, view.procedure_version).definition
    names = _names(services, [exc.earlier.actor] if isinstance(exc, E.GuideOnce) else [])
    status_code = 403 if isinstance(exc, E.Forbidden) else 422 if isinstance(exc, E.InvalidAction) else 409
    message = refusal_text(exc, defn, names, view.status)
    return _case_page(request, services, actor, case_id, error=message, status_code=status_code, comment=comment)


def _data_refused(
    request: Request,
    services: Services,
    actor: Actor,
    case_id: int,
    comment: str,
    amended: Mapping[str, Any],
    problems: Mapping[str, str],
) -> Response:
    """The case page again, the data form open with what was typed and each problem by its field."""
    return _case_page(
        request,
        services,
        actor,
        case_id,
        error=DATA_REFUSED,
        status_code=422,
        comment=comment,
        amended=amended,
        field_problems=problems,
    )


@router.post("/ho-so/{case_id}/xu-ly", response_class=HTMLResponse)
def act(request: Request, case_id: CaseId, services: ServicesDep, user: PageUser, form: CheckedForm) -> Response:
    step, outcome, comment = form.get("step"), form.get("outcome"), form.get("comment")
    comment = comment.strip() if isinstance(comment, str) else ""
    if not isinstance(step, str) or not isinstance(outcome, str):
        return _refused(request, services, user.actor, case_id, E.InvalidAction("no step or outcome"), comment)
    with services.store.reading() as db:
        view = services.cases.get(user.actor, case_id, db=db)  # 404 before anything else
    machine = _machine(services, view.code, view.procedure_version)
    effect = machine.definition.step(step).outcome(outcome) if step in machine.definition.index else None
    to_applicant = effect is not None and _to_applicant(machine.definition, effect)
    missing = [m for m in form.getlist("missing") if isinstance(m, str)] if to_applicant else []
    data: dict[str, Any] | None = None
    if form.get("amend") is not None and step in machine.definition.index:
        parsed, unreadable = parse_form(machine.definition, form)
        if unreadable:
            return _data_refused(request, services, user.actor, case_id, comment, parsed, unreadable)
        data = _changes(view.data, parsed) or None
    try:
        with services.store.direct() as db:
            services.cases.act(
                user.actor,
                case_id,
                step=step,
                outcome=outcome,
                comment=comment or None,
                missing=missing,
                data=data,
                if_match=_version(form),
                db=db,
            )
    except E.InvalidData as exc:
        problems = field_errors(machine.definition, exc.problems)
        return _data_refused(request, services, user.actor, case_id, comment, data or {}, problems)
    except (E.Conflict, E.Forbidden, E.InvalidAction) as exc:
        return _refused(request, services, user.actor, case_id, exc, comment)
    return RedirectResponse(f"/ho-so/{case_id}?da=xu-ly", status_code=303)


@router.post("/ho-so/{case_id}/rut", response_class=HTMLResponse)
def withdraw(request: Request, case_id: CaseId, services: ServicesDep, user: PageUser, form: CheckedForm) -> Response:
    comment = form.get("comment")
    comment = comment.strip() if isinstance(comment, str) else ""
    try:
        with services.store.direct() as db:
            services.cases.withdraw(user.actor, case_id, comment=comment or None, if_match=_version(form), db=db)
    except (E.Conflict, E.Forbidden, E.InvalidAction) as exc:
        return _refused(request, services, user.actor, case_id, exc, comment)
    return RedirectResponse(f"/ho-so/{case_id}?da=rut", status_code=303)
