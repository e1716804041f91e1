"""Pages of the procedures: the catalog, one version (metrics, findings,
diagram, versions), before and after, uploading a definition, and the
simplify and publish buttons of reform staff.

Changes go through the same helpers as the API routes
(:mod:`api.routes.procedures`), under the same ``reform`` permission.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from engine.db import ProcedureRow
from engine.errors import Conflict, NotFound
from engine.users import User
from procedures import Definition
from procedures.catalog import make_catalog
from procedures.compare_view import CHANGE_WORDS
from procedures.errors import DefinitionError, ReadError
from procedures.findings import Finding
from procedures.labels import METRIC_LABELS, RULE_LABELS, number
from procedures.metrics import METRIC_NAMES, change
from procedures.report import cut_text, scope_text, target_label, target_value_text, verdict_text
from procedures.targets import catalog_targets
from procedures.toward import toward_targets

from ..deps import ServicesDep
from ..offload import LimitExceeded
from ..reform_work import Measured
from ..routes.procedures import Code, Version, publish_version, store_simplified, store_upload
from ..services import Services
from .messages import FIX_WORDS, PROCEDURE_STATUS
from .render import PageRoute, page
from .session import CheckedForm, PageRefused, PageUser

router = APIRouter(route_class=PageRoute, include_in_schema=False)

FINDINGS_SHOWN = 50
"""Findings of one rule shown on a version's page; the rest are counted (the API's analysis lists them all)."""
PATH_SHOWN = 5
"""Findings shown toward each target not met on the catalog page (the report lists them all)."""
NEEDS_REFORM = "Việc này cần quyền cải cách thủ tục (reform)."
DONE = {
    "tai-len": "Đã lưu định nghĩa thành bản nháp.",
    "don-gian-hoa": "Đã tạo phiên bản đơn giản hóa (bản nháp). Xem lại rồi công bố.",
    "cong-bo": "Đã công bố: hồ sơ mới của thủ tục sẽ theo phiên bản mới nhất đã công bố.",
}


def _rows(services: Services) -> list[ProcedureRow]:
    with services.store.unit(write=False) as uow:
        return uow.procedures()


def _versions(services: Services, code: str) -> list[ProcedureRow]:
    with services.store.unit(write=False) as uow:
        rows = uow.versions(code)
    if not rows:
        raise NotFound(f"no procedure {code}")
    return rows


def _definition(services: Services, row: ProcedureRow) -> Definition:
    return services.definition(row)


def _pick(rows: Sequence[ProcedureRow], version: int) -> ProcedureRow:
    for r in rows:
        if r.version == version:
            return r
    raise NotFound(f"no version {version}")


def _reform(user: User) -> None:
    if "reform" not in user.permissions:
        raise PageRefused(403, NEEDS_REFORM)


@dataclass(frozen=True)
class CatalogEntry:
    code: str
    name: str
    oldest: int
    newest: int
    published: int | None
    cost: Mapping[str, Any]
    lead: Mapping[str, Any]


def _metric_rows(before: Mapping[str, Any], after: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    rows = []
    for key in METRIC_NAMES:
        c = change(before[key], after[key]) if after is not None else {"before": before[key]}
        rows.append({"key": key, "label": METRIC_LABELS[key], **c})
    return rows


@router.get("/", response_class=HTMLResponse)
def catalog(request: Request, services: ServicesDep, user: PageUser) -> Response:
    by_code: dict[str, list[ProcedureRow]] = {}
    rows_of: dict[tuple[str, int], ProcedureRow] = {}
    for row in _rows(services):
        by_code.setdefault(row.code.casefold(), []).append(row)
        rows_of[row.code, row.version] = row

    def kept(defn: Definition) -> Measured:
        return services.measured(rows_of[defn.code, defn.version])

    # one catalog, each version measured once per worker (the metrics and
    # findings it keeps), for the table and the targets alike
    plan = make_catalog(
        [_definition(services, r) for rows in by_code.values() for r in rows],
        services.catalog,
        measure=lambda d: kept(d).metrics,
    )
    entries = []
    for entry in plan.entries:
        published = [r.version for r in by_code[entry.code.casefold()] if r.status == "published"]
        before, after = entry.before, entry.after
        entries.append(
            CatalogEntry(
                entry.code,
                entry.newest.name,
                entry.oldest.version,
                entry.newest.version,
                max(published) if published else None,
                change(before["compliance_cost"], after["compliance_cost"]),
                change(before["lead_time_days"], after["lead_time_days"]),
            )
        )
    checks = catalog_targets(plan)
    targets = [
        {
            "name": c["name"],
            "aim": f"giảm {number(c['required_cut_percent'])}% {target_label(c['metric']).lower()}",
            "scope": scope_text(c),
            "before": target_value_text(c["metric"], c["before"]),
            "after": target_value_text(c["metric"], c["after"]),
            "cut": cut_text(c),
            "verdict": verdict_text(c),
            "met": c["met"],
        }
        for c in checks
    ]
    paths = [
        {
            "title": f"{p['name']}: {target_label(p['metric']).lower()}",
            "shortfall": target_value_text(p["metric"], p["shortfall"]) if p["shortfall"] else None,
            "findings": [
                (f["code"], RULE_LABELS.get(f["rule"], f["rule"]), f["message"], target_value_text(p["metric"], f["saving"]))
                for f in p["findings"][:PATH_SHOWN]
            ],
        }
        for p in toward_targets(plan, checks, find=lambda d: kept(d).findings)
    ]
    prices = services.catalog.prices if services.catalog is not None else None
    return page(
        request,
        "catalog.html",
        entries=entries,
        targets=targets,
        paths=paths,
        title=services.catalog.name if services.catalog is not None else None,
        prices=prices,
        exceptions=plan.exceptions(),
    )


def _procedure_page(
    request: Request, services: Services, code: str, version: int, *, error: str | None = None, status_code: int = 200
) -> Response:
    rows = _versions(services, code)
    row = _pick(rows, version)
    measured = services.measured(row)
    groups: dict[str, list[Finding]] = {}
    for f in measured.findings:
        groups.setdefault(f.rule, []).append(f)
    rules = [*RULE_LABELS, *(r for r in groups if r not in RULE_LABELS)]
    ordered = [
        (rule, RULE_LABELS.get(rule, rule), groups[rule][:FINDINGS_SHOWN], len(groups[rule])) for rule in rules if rule in groups
    ]
    notice = DONE.get(request.query_params.get("da", ""))
    published = [r.version for r in rows if r.status == "published"]
    return page(
        request,
        "procedure.html",
        status_code,
        defn=measured.header,
        row=row,
        rows=rows,
        metrics=_metric_rows(measured.metrics),
        findings=ordered,
        shown=FINDINGS_SHOWN,
        fix_words=FIX_WORDS,
        statuses=PROCEDURE_STATUS,
        svg=services.drawn(row),
        error=error,
        notice=notice,
        newest_published=max(published) if published else None,
        oldest=rows[0].version,
    )


@router.get("/thu-tuc/{code}/{version}", response_class=HTMLResponse)
def procedure_page(request: Request, code: Code, version: Version, services: ServicesDep, user: PageUser) -> Response:
    return _procedure_page(request, services, code, version)


@router.get("/thu-tuc/{code}/so-sanh/{a}/{b}", response_class=HTMLResponse)
def compare_page(request: Request, code: Code, a: Version, b: Version, services: ServicesDep, user: PageUser) -> Response:
    rows = _versions(services, code)
    view = services.compared(_pick(rows, a), _pick(rows, b))
    applied = services.simplified(_pick(rows, a)).applied
    result = view.result
    return page(
        request,
        "compare.html",
        before=view.before,
        after=view.after,
        metrics=_metric_rows(result["before"], result["after"]),
        svg=view.svg,
        removed=view.removed,
        added=view.added,
        changed=[(name, ", ".join(CHANGE_WORDS.get(k, k) for k in fields)) for name, fields in view.changed],
        fixes=[(RULE_LABELS.get(rule, rule), message) for rule, message in applied],
        time_limit=view.time_limit,
    )


@router.get("/thu-tuc/tai-len", response_class=HTMLResponse)
def upload_form(request: Request, user: PageUser) -> Response:
    _reform(user)
    return page(request, "upload.html", problems=[], text="", error=None, lines=[], source=PASTED)


PASTED = "văn-bản-dán.yaml"
"""the name errors give pasted text (a file keeps its own)"""


@dataclass(frozen=True)
class Shown:
    """A problem of an upload as the page lists it: linked to its line when it has one."""

    line: int
    text: str


def _listing(text: str) -> list[str]:
    """The text's lines, for the numbered listing the errors link to."""
    return text.splitlines() or [""]


def _upload_page(
    request: Request, status_code: int, *, text: str, error: str, problems: Sequence[Shown] = (), source: str = PASTED
) -> Response:
    return page(
        request,
        "upload.html",
        status_code,
        problems=problems,
        text=text,
        error=error,
        lines=_listing(text) if problems else [],
        source=source,
    )


@router.post("/thu-tuc/tai-len", response_class=HTMLResponse)
def upload(request: Request, services: ServicesDep, user: PageUser, form: CheckedForm) -> Response:
    """Store an uploaded definition, or show every problem by its line.

    People paste and save text in either Unicode form; the page reads it
    composed (NFC), so that «ệ» is one letter wherever it is compared,
    drawn or stored (the API stores a body exactly as sent)."""
    _reform(user)
    limit = services.settings.max_upload_bytes
    file, text = form.get("file"), form.get("text")
    text = unicodedata.normalize("NFC", text) if isinstance(text, str) else ""
    source = PASTED
    raw = b""
    if isinstance(file, UploadFile) and file.filename:
        raw = file.file.read(limit + 1)
        source = file.filename
    if len(raw) > limit or len(text.encode("utf-8")) > limit:
        return _upload_page(request, 413, text="", error=f"Định nghĩa quá lớn: giới hạn {number(limit)} byte.")
    if raw:
        try:
            text = unicodedata.normalize("NFC", raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            return _upload_page(request, 422, text="", error=f"Không đọc được tệp {source}: tệp phải được lưu ở dạng UTF-8.")
    if not text.strip():
        return _upload_page(request, 422, text=text, error="Hãy chọn một tệp YAML hoặc dán định nghĩa vào ô.")
    try:
        row = store_upload(services, text.encode("utf-8"), source=source, actor=user.id)
    except DefinitionError as exc:
        problems = [Shown(p.line, p.render(source)) for p in exc.problems]
        error = f"Định nghĩa chưa hợp lệ: {len(problems)} lỗi. Sửa hết rồi tải lên lại."
        return _upload_page(request, 422, text=text, error=error, problems=problems, source=source)
    except ReadError as exc:
        return _upload_page(request, 422, text=text, error="Không đọc được tệp.", problems=[Shown(0, f"{source}: {exc.message}")])
    except Conflict:
        error = "Đã có thủ tục cùng mã và phiên bản này. Tăng số phiên bản (version) rồi tải lên lại."
        return _upload_page(request, 409, text=text, error=error)
    except LimitExceeded as exc:
        return _upload_page(request, 422, text="", error=f"Vượt giới hạn của dịch vụ: {exc.message}.")
    return RedirectResponse(f"/thu-tuc/{row.code}/{row.version}?da=tai-len", status_code=303)


@router.post("/thu-tuc/{code}/{version}/don-gian-hoa", response_class=HTMLResponse)
def simplify_version(
    request: Request, code: Code, version: Version, services: ServicesDep, user: PageUser, form: CheckedForm
) -> Response:
    _reform(user)
    try:
        result = store_simplified(services, code, version, actor=user.id)
    except Conflict:
        _pick(_versions(services, code), version)  # an unknown version is a 404, not this message
        error = (
            f"Không tạo được phiên bản {version + 1}: không có sửa tự động nào áp dụng được cho phiên bản {version}, "
            f"hoặc phiên bản {version + 1} đã có."
        )
        return _procedure_page(request, services, code, version, error=error, status_code=409)
    assert result.after is not None  # stored: it has a new version
    return RedirectResponse(f"/thu-tuc/{code}/{result.after.version}?da=don-gian-hoa", status_code=303)


@router.post("/thu-tuc/{code}/{version}/cong-bo", response_class=HTMLResponse)
def publish(request: Request, code: Code, version: Version, services: ServicesDep, user: PageUser, form: CheckedForm) -> Response:
    _reform(user)
    publish_version(services, code, version, actor=user.id)
    return RedirectResponse(f"/thu-tuc/{code}/{version}?da=cong-bo", status_code=303)
