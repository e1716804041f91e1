"""Commands that work on the database: ``db upgrade``, ``db backup`` and ``audit verify``.

Every one takes ``--database-url`` (else ``$TINHGON_DATABASE_URL``, else
``tinhgon.db`` in the working directory) and brings the schema up to date
first.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.audit import Signer, Verifier
from engine.backup import BackupRefused, backup, sqlite_file
from engine.cases import CaseService
from engine.db import reach
from engine.schema import current, upgrade
from engine.settings import database_url, key_path
from engine.store import Store


def reached_store(url: str, *, migrate: bool = False) -> Store:
    """The database at ``url``, once it answers (else
    :class:`engine.errors.DatabaseUnavailable`, with the reason), migrated to
    the newest schema when ``migrate``; its connections closed if that fails."""
    store = Store(url)
    try:
        reach(store.engine)
        if migrate:
            upgrade(store.engine)
    except BaseException:
        store.dispose()
        raise
    return store


@contextmanager
def open_store(args: argparse.Namespace) -> Iterator[Store]:
    """The database named on the command line, migrated to the newest
    schema; its connections closed at the end, whatever the command met."""
    store = reached_store(database_url(args.database_url), migrate=True)
    try:
        yield store
    finally:
        store.dispose()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    store = reached_store(database_url(args.database_url))
    try:
        before = current(store.engine)
        after = upgrade(store.engine)
        with store.unit(write=False) as uow:
            problems = uow.code_problems()
    finally:
        store.dispose()
    shown = store.engine.url.render_as_string(hide_password=True)
    if before == after:
        print(f"database {shown}: already at revision {after}")
    else:
        print(f"database {shown}: upgraded from {before or 'empty'} to {after}")
    for line in problems:
        print(f"cảnh báo: {line}")
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    url = database_url(args.database_url)
    target = Path(args.file)
    try:
        sqlite_file(url)  # PostgreSQL: pg_dump's work, said before anything is opened
        if target.exists() and not args.force:
            raise BackupRefused(f"{target} exists already; give --force to replace it")
        reached_store(url, migrate=True).dispose()  # the copy is at schema head, with its backups table
        made = backup(url, target, force=args.force)
    except BackupRefused as exc:
        print(f"tinhgon db backup: {exc}", file=sys.stderr)
        return 2
    print(
        f"backup: {made.source} copied to {made.path} ({made.size} bytes, schema {made.revision}, taken {made.taken_at.isoformat()})"
    )
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        verifier = Verifier.load(args.public_key) if args.public_key else Signer.load(key_path(args.key_file)).verifier()
        report = CaseService(store, signer=Signer.generate()).verify_audit(verifier)
    bad = report.first_bad
    if args.json:
        out: dict[str, Any] = {
            "ok": report.ok,
            "cases": report.cases,
            "events": report.events,
            "first_bad": None if bad is None else {"case": bad.case_id, "seq": bad.seq, "reason": bad.reason},
        }
        print(json.dumps(out, ensure_ascii=False, indent=1))
    elif bad is None:
        print(
            f"audit: {_count(report.events, 'event')} in {_count(report.cases, 'case')} verified; every chain and signature holds"
        )
    else:
        print(f"audit: FAILED at {bad.render()} ({len(report.bad)} case(s) broken, {report.events} events read)")
    return 0 if report.ok else 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def database_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="sqlite:///FILE or postgresql+psycopg://USER@HOST/DB (default: $TINHGON_DATABASE_URL, else tinhgon.db here)",
    )


def add_parsers(sub: Any) -> None:
    """Register ``db`` and ``audit`` on the main parser's subcommands."""
    db = sub.add_parser("db", help="the database schema (Alembic migrations)")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = db_sub.add_parser("upgrade", help="create or upgrade the schema to the newest revision")
    database_option(p)
    p.set_defaults(handler=cmd_db_upgrade)
    p = db_sub.add_parser("backup", help="copy a SQLite database to FILE (0600) while the service runs; PostgreSQL: pg_dump -Fc")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--force", action="store_true", help="replace FILE when it exists")
    database_option(p)
    p.set_defaults(handler=cmd_db_backup)

    audit = sub.add_parser("audit", help="the tamper-evident audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = audit_sub.add_parser(
        "verify", help="re-check every case's hash chain and decision signatures (exit 1 on the first bad event)"
    )
    database_option(p)
    p.add_argument(
        "--key-file", metavar="FILE", help="the server's signing key (default: $TINHGON_SIGNING_KEY, else tinhgon-signing.key)"
    )
    p.add_argument("--public-key", metavar="PEM", help="verify with this public key instead of the key file")
    p.add_argument("--json", action="store_true", help="{ok, cases, events, first_bad}")
    p.set_defaults(handler=cmd_audit_verify)
