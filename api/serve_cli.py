"""``tinhgon user ...`` and ``tinhgon serve`` (service.md sections 2 and 4).

``serve`` does once, in the parent process, what must happen once: migrate
the database, load and publish the definitions, create the first admin (and
the demo users); then it starts uvicorn with N workers, each of which opens
the database and the signing key for itself (:func:`api.app.app_from_environment`),
and each listening on a socket of its own (:func:`api.supervisor.worker_sockets`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from engine.connection import shown_url
from engine.errors import Conflict, DatabaseUnavailable
from engine.keys import KeyFileError, Signer
from engine.publishing import publish_or_amend
from engine.settings import DATABASE_ENV, KEY_ENV, database_url, key_path
from engine.store import Store, UnitOfWork
from engine.users import add_user, issue_token, revoke_tokens
from procedures import Definition, load_path
from procedures.catalog import definition_files
from procedures.catalog_file import catalog_path, read_catalog_file
from procedures.errors import DefinitionError, ReadError
from procedures.messages import t

from .admin_cli import database_option, key_option, open_store, reached_store
from .logs import FORMAT_ENV
from .metrics import ALLOW_ENV, LOOPBACK
from .settings import (
    AUDIT_ENV,
    DEFAULT_CHECKPOINTS,
    WEB_ENV,
    BadSetting,
    audit_settings,
    limit_settings,
    log_format_option,
    networks_option,
    port_option,
    setting_option,
    web_settings,
    workers_option,
)

CALENDAR_ENV = "TINHGON_CALENDAR"
DEMO_UNIT = "demo"
DEMO_APPLICANT = "demo_applicant"


# -- users --------------------------------------------------------------------------
def cmd_user_add(args: argparse.Namespace) -> int:
    with open_store(args, signing=True) as store, store.unit() as uow:
        user = add_user(uow, args.id, name=args.name, unit=args.unit, roles=args.role, permissions=args.permission)
        token = issue_token(uow, user.id)
    roles = ", ".join(user.roles) or t("no roles")
    perms = ", ".join(user.permissions) or t("no permissions")
    print(
        t(
            "user {id} ({name}), unit {unit}: {roles}; {permissions}",
            id=user.id,
            name=user.name,
            unit=user.unit,
            roles=roles,
            permissions=perms,
        )
    )
    print(token)
    return 0


def cmd_user_token(args: argparse.Namespace) -> int:
    with open_store(args, signing=True) as store, store.unit() as uow:
        token = issue_token(uow, args.id)
    print(t("new token for {id}:", id=args.id))
    print(token)
    return 0


def cmd_user_revoke(args: argparse.Namespace) -> int:
    with open_store(args, signing=True) as store, store.unit() as uow:
        n = revoke_tokens(uow, args.id)
    print(t("{id}: {count} token(s) revoked; web sessions ended", id=args.id, count=n))
    return 0


# -- serve ----------------------------------------------------------------------------
class StartError(Exception):
    """``serve`` cannot start: a definition is invalid or clashes with what is stored."""


def load_definitions(store: Store, folder: Path, amended: list[str] | None = None) -> list[Definition]:
    """Publish every definition of ``folder``; a changed file must carry a
    new version, unless it changes only what no running case depends on
    (names, labels, volumes, prices, ...): then it amends the stored body,
    and its file is added to ``amended``.

    Raises:
        StartError: a file is invalid, or its body differs from the one
            stored under the same code and version in what cases depend on.
    """
    loaded: list[Definition] = []
    problems: list[str] = []
    if catalog_path(folder).is_file():  # the pages cost every procedure under its price list
        try:
            read_catalog_file(catalog_path(folder))
        except (DefinitionError, ReadError) as exc:
            problems.append(str(exc))
    for f in definition_files([str(folder)]):
        try:
            defn = load_path(f)
            done = publish_or_amend(store, Path(f).read_text(encoding="utf-8-sig"), source=f)
        except (DefinitionError, ReadError) as exc:
            problems.append(str(exc))
            continue
        except Conflict as exc:
            problems.append(exc.message)
            continue
        if done.status == "amended" and amended is not None:
            amended.append(f"{f}: {defn.code} v{defn.version}")
        loaded.append(defn)
    if problems:
        raise StartError("\n".join(problems))
    return loaded


def _demo_token(uow: UnitOfWork, user_id: str, **attrs: Any) -> str:
    """A fresh token for a demo user, made when missing; the tokens (and
    web sessions) of an earlier start are revoked: each start prints the
    only tokens that work."""
    if uow.find_user(user_id) is None:
        add_user(uow, user_id, **attrs)
    else:
        revoke_tokens(uow, user_id)
    return issue_token(uow, user_id)


def first_users(store: Store, definitions: list[Definition], *, demo: bool) -> list[tuple[str, str]]:
    """``(label, token)`` to print: the admin's on first start, and with
    ``demo`` one user per office role of the loaded procedures plus an
    applicant, each with a fresh token (their earlier ones revoked)."""
    out: list[tuple[str, str]] = []
    with store.unit() as uow:
        if uow.user_count() == 0:
            add_user(uow, "admin", name="Quản trị hệ thống", unit="hq", permissions=["admin"])
            out.append(("admin", issue_token(uow, "admin")))
        if demo:
            roles: dict[str, str] = {}
            for defn in definitions:
                for role in defn.roles:
                    if role.kind == "office":
                        roles.setdefault(role.id, role.name)
            reform = _demo_token(uow, "demo_reform", name="Cán bộ cải cách (demo)", unit=DEMO_UNIT, permissions=["reform"])
            out.append(("demo_reform (reform)", reform))
            out.append((DEMO_APPLICANT, _demo_token(uow, DEMO_APPLICANT, name="Người nộp hồ sơ (demo)", unit=DEMO_UNIT)))
            for role_id, name in sorted(roles.items()):
                user_id = f"demo_{role_id}"
                token = _demo_token(uow, user_id, name=f"{name} (demo)", unit=DEMO_UNIT, roles=[role_id])
                out.append((f"{user_id} ({role_id})", token))
    return out


def cmd_serve(args: argparse.Namespace) -> int:
    from .supervisor import refuse_taken, run, worker_sockets  # here: the other commands start without uvicorn

    url = database_url(args.database_url)
    key = key_path(args.key_file)
    folder = Path(args.definitions) if args.definitions else (Path("definitions") if Path("definitions").is_dir() else None)
    if args.calendar:
        from engine.calendar import CalendarError, load_calendar

        try:
            load_calendar(args.calendar)  # refuse a bad file before any worker starts
        except CalendarError as exc:
            print(t("tinhgon serve: cannot start:\n{errors}", errors=str(exc)), file=sys.stderr)
            return 2
    try:
        web = web_settings(os.environ)
        audit = audit_settings(os.environ)
        limit_settings(os.environ)  # the workers read them there: refused here when one is wrong
    except BadSetting as exc:
        print(t("tinhgon serve: cannot start: {error}", error=str(exc)), file=sys.stderr)
        return 2
    if args.secure_cookies:
        web["secure_cookies"] = "1"
    if args.session_idle is not None:
        web["session_idle_minutes"] = args.session_idle
    if args.session_hours is not None:
        web["session_hours"] = args.session_hours
    if args.seal_seconds is not None:
        audit["seal_seconds"] = args.seal_seconds
    if args.checkpoint_minutes is not None:
        audit["checkpoint_minutes"] = args.checkpoint_minutes
    if args.checkpoint_dir is not None:
        audit["checkpoint_dir"] = args.checkpoint_dir
    audit["checkpoint_dir"] = str(Path(audit.get("checkpoint_dir") or DEFAULT_CHECKPOINTS).resolve())
    # The address first: a start that cannot listen stops before it creates
    # the first users, whose tokens it would otherwise never print.
    sockets = None
    try:
        if args.workers > 1:
            sockets = worker_sockets(args.host, args.port, args.workers)
        else:  # uvicorn binds the address itself, once the database is ready
            refuse_taken(args.host, args.port)
    except OSError as exc:
        print(
            t("tinhgon serve: cannot listen on {host}:{port}: {error}", host=args.host, port=args.port, error=str(exc)),
            file=sys.stderr,
        )
        return 2

    def refused(line: str) -> int:
        print(line, file=sys.stderr)
        for sock in sockets or ():
            sock.close()
        return 2

    try:
        store = reached_store(url, migrate=True)
    except DatabaseUnavailable as exc:
        return refused(f"tinhgon serve: {exc}")
    try:
        # Read (or created) here, once: a key file that is not one stops the
        # start before the first users are made and their tokens printed.
        store.signer = Signer.load_or_create(key)  # it signs the journal of what the start writes
        amended: list[str] = []
        definitions = load_definitions(store, folder, amended) if folder else []
    except (KeyFileError, StartError) as exc:
        store.dispose()
        if isinstance(exc, StartError):  # a definition's errors, one a line
            return refused(t("tinhgon serve: cannot start:\n{errors}", errors=str(exc)))
        return refused(t("tinhgon serve: cannot start: {error}", error=str(exc)))
    tokens = first_users(store, definitions, demo=args.demo)
    store.dispose()
    where = f"http://{args.host}:{args.port}/"
    shown = str(folder) if folder else t("(none)")
    print(
        t(
            "tinhgon: {count} definitions published from {folder}; database {database}",
            count=len(definitions),
            folder=shown,
            database=shown_url(url),
        )
    )
    for what in amended:
        print(t("tinhgon: amended {what}: only names, labels, figures or prices differ; the earlier text is kept", what=what))
    for label, token in tokens:
        print(t("{label} token: {token}", label=label, token=token))
    print(
        t(
            "tinhgon: serving on {address} with {workers} worker(s); sign in at {address}dang-nhap",
            address=where,
            workers=args.workers,
        ),
        flush=True,
    )
    os.environ[DATABASE_ENV] = url
    os.environ[KEY_ENV] = str(key.resolve())
    if args.calendar:
        os.environ[CALENDAR_ENV] = str(Path(args.calendar).resolve())
    for name, field in WEB_ENV.items():  # the workers read the web's settings there
        if field in web:
            os.environ[name] = web[field]
    for name, field in AUDIT_ENV.items():  # and the sealer's
        if field in audit:
            os.environ[name] = audit[field]
    os.environ[ALLOW_ENV] = args.metrics_allow
    run(
        "api.app:app_from_environment",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        log_format=args.log_format,
        sockets=sockets,
    )
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``user`` and ``serve``."""
    user = sub.add_parser("user", help=t("users, their roles and units, and bearer tokens"))
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar=t("ACTION"))
    p = user_sub.add_parser("add", help=t("create a user and print a bearer token on the last line"))
    p.add_argument("id")
    p.add_argument("--name", required=True)
    p.add_argument("--unit", required=True)
    p.add_argument("--role", action="append", default=[], metavar="R", help=t("a role id as definitions use it (repeatable)"))
    p.add_argument(
        "--permission",
        action="append",
        default=[],
        choices=["reform", "admin"],
        metavar="P",
        help=t("reform or admin (repeatable)"),
    )
    database_option(p)
    key_option(p)
    p.set_defaults(handler=cmd_user_add)
    p = user_sub.add_parser("token", help=t("issue another bearer token for a user"))
    p.add_argument("id")
    database_option(p)
    key_option(p)
    p.set_defaults(handler=cmd_user_token)
    p = user_sub.add_parser("revoke", help=t("invalidate every token of a user"))
    p.add_argument("id")
    database_option(p)
    key_option(p)
    p.set_defaults(handler=cmd_user_revoke)

    p = sub.add_parser("serve", help=t("run the HTTP service and web pages (migrates, publishes definitions/)"))
    database_option(p)
    p.add_argument(
        "--definitions", metavar="DIR", help=t("definitions to load and publish at start (default: definitions/ when it exists)")
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_option, default=8000)
    p.add_argument(
        "--workers",
        type=workers_option,
        default=1,
        metavar="N",
        help=t("uvicorn worker processes sharing one database (1 to 64)"),
    )
    p.add_argument("--calendar", metavar="FILE", help=t("the operator's calendar file (days off, make-up days, hours)"))
    p.add_argument(
        "--key-file", metavar="FILE", help=t("the signing key (default: $TINHGON_SIGNING_KEY, else tinhgon-signing.key)")
    )
    p.add_argument(
        "--demo", action="store_true", help=t("also create a demo user per role of the loaded procedures, and print their tokens")
    )
    p.add_argument(
        "--secure-cookies",
        action="store_true",
        help=t(
            "mark the web's cookies Secure, sent over HTTPS only: for a service behind HTTPS (also $TINHGON_SECURE_COOKIES=1)"
        ),
    )
    p.add_argument(
        "--session-idle",
        type=setting_option("session_idle_minutes"),
        metavar="MINUTES",
        help=t("a web session unused this long ends (default 30; also $TINHGON_SESSION_IDLE_MINUTES)"),
    )
    p.add_argument(
        "--session-hours",
        type=setting_option("session_hours"),
        metavar="HOURS",
        help=t("a web session ends this long after sign-in (default 8; also $TINHGON_SESSION_HOURS)"),
    )
    p.add_argument(
        "--seal-seconds",
        type=setting_option("seal_seconds"),
        metavar="SECONDS",
        help=t("how often the audit sealer seals new events and changes into the ledger (default 5; also $TINHGON_SEAL_SECONDS)"),
    )
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help=t(
            "where signed checkpoints of the ledger are written: keep it away from the database"
            " (default tinhgon-checkpoints here; also $TINHGON_CHECKPOINT_DIR)"
        ),
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=setting_option("checkpoint_minutes"),
        metavar="MINUTES",
        help=t("how often a checkpoint is written when the ledger has grown (default 60; also $TINHGON_CHECKPOINT_MINUTES)"),
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument(
        "--log-format",
        type=log_format_option,
        metavar="{text,json}",
        default=os.environ.get(FORMAT_ENV) or "text",
        help=t(
            "text (uvicorn's) or json: one object a line, access lines with method, route, status, duration (default: ${env}, else text)",
            env=FORMAT_ENV,
        ),
    )
    p.add_argument(
        "--metrics-allow",
        type=networks_option,
        default=os.environ.get(ALLOW_ENV) or LOOPBACK,
        metavar="ADDRESSES",
        help=t(
            "addresses and networks that may read /metrics, e.g. 127.0.0.1,10.0.0.0/8 (default: ${env}, else loopback only)",
            env=ALLOW_ENV,
        ),
    )
    p.set_defaults(handler=cmd_serve)
