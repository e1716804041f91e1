"""Commands that work on the database: ``db upgrade``, ``db backup`` and
``audit verify | checkpoint | keys | rotate-key``.

Every one takes ``--database-url`` (else ``$TINHGON_DATABASE_URL``, else
``tinhgon.db`` in the working directory) and brings the schema up to date
first. Those that write what the audit keeps (users, tokens, backups,
seals) sign it with the server's key (``--key-file``, else
``$TINHGON_SIGNING_KEY``, else ``tinhgon-signing.key``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.backup import BackupRefused, backup, exists_already, sqlite_file
from engine.connection import reach
from engine.keys import Keyring, Signer, Verifier, keyring, read_history, rotate
from engine.schema import current, upgrade
from engine.settings import database_url, key_path
from engine.store import Store
from engine.verify import AuditReport, KnownKey, known_keys, mark_backup, seal, seal_all, sealed_checkpoint, verify_database
from procedures.messages import t


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
def open_store(args: argparse.Namespace, *, signing: bool = False) -> Iterator[Store]:
    """The database named on the command line, migrated to the newest
    schema; its connections closed at the end, whatever the command met.
    ``signing``: the server's key is loaded (created when there is none
    yet, as ``serve`` would) and signs the journal entries the command writes."""
    store = reached_store(database_url(args.database_url), migrate=True)
    try:
        # The database first: a command that cannot reach it makes no key.
        store.signer = Signer.load_or_create(key_path(args.key_file)) if signing else None
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
        print(t("database {database}: already at revision {revision}", database=shown, revision=after))
    elif before is None:
        print(t("database {database}: upgraded from empty to {revision}", database=shown, revision=after))
    else:
        print(t("database {database}: upgraded from {before} to {revision}", database=shown, before=before, revision=after))
    for line in problems:
        print(t("warning: {problem}", problem=line))
    key = key_path(args.key_file)
    if key.is_file():  # a database from before the ledger is adopted by its first seal, signed
        signer = Signer.load(key)
        store = reached_store(database_url(args.database_url))
        try:
            sealed = seal_all(store, signer)
        finally:
            store.dispose()
        if sealed:
            print(t("audit: {count} new entries sealed into the ledger with key {key}", count=sealed, key=signer.key_id))
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    url = database_url(args.database_url)
    target = Path(args.file)
    try:
        sqlite_file(url)  # PostgreSQL: pg_dump's work, said before anything is opened
        if target.exists() and not args.force:
            raise BackupRefused(exists_already(target))
        # The copy is at schema head, with its backups table, and the ledger
        # holds the backup's mark, sealed, for checkpoints to list.
        with open_store(args, signing=True) as store:
            assert store.signer is not None
            mark_backup(store, store.signer, str(target.resolve()))
        made = backup(url, target, force=args.force)
    except BackupRefused as exc:
        print(f"tinhgon db backup: {exc}", file=sys.stderr)
        return 2
    print(
        t(
            "backup: {source} copied to {file} ({size} bytes, schema {revision}, taken {taken})",
            source=made.source,
            file=made.path,
            size=made.size,
            revision=made.revision,
            taken=made.taken_at.isoformat(),
        )
    )
    return 0


def _trusted(args: argparse.Namespace) -> Keyring:
    """The keys verification trusts: ``--public-key`` files, else the key
    file's and those of its history (earlier keys, see :func:`engine.keys.rotate`)."""
    if args.public_key:
        return Keyring(Verifier.load(path) for path in args.public_key)
    return keyring(key_path(args.key_file))


def _report_json(report: AuditReport) -> dict[str, Any]:
    bad = report.first_bad
    result = report.checkpoint
    return {
        "ok": report.ok,
        "cases": report.cases,
        "events": report.events,
        "journal": report.journal,
        "ledger": report.places,
        "unsealed": report.unsealed,
        "first_bad": None if bad is None else bad.as_dict(),
        "problems": len(report.bad),
        "checkpoint": None
        if result is None
        else {"ok": result.ok, "message": result.message, "restored_from": result.restored_from},
    }


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        keys = _trusted(args)  # a key file that cannot be read: the command's error, naming it
        try:
            statement = Path(args.checkpoint).read_text(encoding="utf-8") if args.checkpoint else None
        except (OSError, UnicodeDecodeError) as exc:
            print(
                t("tinhgon audit verify: cannot read the checkpoint {file}: {error}", file=args.checkpoint, error=str(exc)),
                file=sys.stderr,
            )
            return 2
        report = verify_database(store, keys, checkpoint=statement, checkpoint_source=args.checkpoint)
    bad = report.first_bad
    if args.json:
        print(json.dumps(_report_json(report), ensure_ascii=False, indent=1))
        return 0 if report.ok else 1
    counts = t(
        "{events} events of {cases} cases, {journal} journal entries, {places} ledger places ({unsealed} not sealed)",
        events=report.events,
        cases=report.cases,
        journal=report.journal,
        places=report.places,
        unsealed=report.unsealed,
    )
    if bad is None:
        print(t("audit: ok: {counts}; every hash chain, signature and record matches", counts=counts))
        if report.checkpoint is not None:
            print(t("audit: checkpoint: {message}", message=report.checkpoint.message))
    else:
        print(t("audit: FAILED at {finding}", finding=bad.render()))
        print(t("audit: {problems} problems; read {counts}", problems=len(report.bad), counts=counts))
    return 0 if report.ok else 1


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    with open_store(args, signing=True) as store:
        assert store.signer is not None
        statement = sealed_checkpoint(store, store.signer)  # everything written so far
    text = json.dumps(statement, ensure_ascii=False, indent=1) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(
            t(
                "checkpoint: {length} ledger places, head {head}… written to {file}",
                length=statement["length"],
                head=statement["head"][:16],
                file=args.output,
            )
        )
    else:
        sys.stdout.write(text)
    return 0


def _key_state(key: KnownKey) -> str:
    if key.current:
        return t("current key")
    return t("earlier key, trusted") if key.trusted else t("NOT trusted")


def cmd_audit_keys(args: argparse.Namespace) -> int:
    trusted = keyring(key_path(args.key_file))
    with open_store(args) as store:
        known = known_keys(store, trusted)
    rows = [{"key_id": k.key_id, "state": _key_state(k), "public_pem": k.public_pem, "trusted": k.trusted} for k in known]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for row in rows:
            print(f"{row['key_id']}  {row['state']}")
    return 0


def cmd_audit_rotate_key(args: argparse.Namespace) -> int:
    path = key_path(args.key_file)
    with open_store(args, signing=True) as store:
        assert store.signer is not None
        seal_all(store, store.signer)  # what the old key's time wrote is sealed by it, and the key listed
    old, new = rotate(path)
    with open_store(args, signing=True) as store:
        assert store.signer is not None and store.signer.key_id == new.key_id
        seal(store, new)  # the new key is listed, and seals what is pending
    earlier = len(read_history(path))
    print(
        t(
            "rotate-key: new key {new} in {file}; the old key {old} still checks the old signatures",
            new=new.key_id,
            file=path,
            old=old.key_id,
        )
    )
    print(
        t(
            "rotate-key: {count} earlier keys in {history} (keep this file with the key file)",
            count=earlier,
            history=f"{path.name}.history.pem",
        )
    )
    return 0


def cmd_audit_mark_backup(args: argparse.Namespace) -> int:
    with open_store(args, signing=True) as store:
        assert store.signer is not None
        length, last = mark_backup(store, store.signer, args.name)
    print(
        t(
            "mark-backup: {name} recorded at ledger place {position} (head {head}…); run pg_dump right after",
            name=args.name,
            position=length,
            head=last[:16],
        )
    )
    return 0


def key_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key-file",
        metavar="FILE",
        help=t("the server's signing key (default: $TINHGON_SIGNING_KEY, else tinhgon-signing.key)"),
    )


def database_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database-url",
        metavar="URL",
        help=t("sqlite:///FILE or postgresql+psycopg://USER@HOST/DB (default: $TINHGON_DATABASE_URL, else tinhgon.db here)"),
    )


def add_parsers(sub: Any) -> None:
    """Register ``db`` and ``audit`` on the main parser's subcommands (their
    help in the language of the moment: call it once the language is set)."""
    db = sub.add_parser("db", help=t("the database schema (Alembic migrations)"))
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar=t("ACTION"))
    p = db_sub.add_parser(
        "upgrade", help=t("create or upgrade the schema to the newest revision; with the key file there, seal what is pending")
    )
    database_option(p)
    key_option(p)
    p.set_defaults(handler=cmd_db_upgrade)
    p = db_sub.add_parser(
        "backup", help=t("copy a SQLite database to FILE (0600) while the service runs; PostgreSQL: pg_dump -Fc")
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--force", action="store_true", help=t("replace FILE when it exists"))
    database_option(p)
    key_option(p)
    p.set_defaults(handler=cmd_db_backup)

    audit = sub.add_parser("audit", help=t("the tamper-evident audit trail"))
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar=t("ACTION"))
    p = audit_sub.add_parser(
        "verify",
        help=t("re-check every case's chain, signatures and replay, the journal and the ledger (exit 1 on the first bad item)"),
    )
    database_option(p)
    key_option(p)
    p.add_argument(
        "--public-key", metavar="PEM", action="append", help=t("trust this public key instead of the key file's (repeatable)")
    )
    p.add_argument(
        "--checkpoint", metavar="FILE", help=t("also prove the ledger extends this checkpoint (audit checkpoint's JSON)")
    )
    p.add_argument(
        "--json",
        action="store_true",
        help=t("as JSON: {keys}", keys="{ok, cases, events, journal, ledger, unsealed, first_bad, checkpoint}"),
    )
    p.set_defaults(handler=cmd_audit_verify)
    p = audit_sub.add_parser("checkpoint", help=t("seal what is pending and print a signed statement of the ledger (JSON)"))
    database_option(p)
    key_option(p)
    p.add_argument("-o", "--output", metavar="FILE", help=t("write it to FILE instead (keep it away from the database)"))
    p.set_defaults(handler=cmd_audit_checkpoint)
    p = audit_sub.add_parser("keys", help=t("the public keys trusted (key file and its history) and those the database lists"))
    database_option(p)
    key_option(p)
    p.add_argument("--json", action="store_true", help=t("as JSON: {keys}", keys="[{key_id, state, public_pem, trusted}]"))
    p.set_defaults(handler=cmd_audit_keys)
    p = audit_sub.add_parser("rotate-key", help=t("set a new signing key; the old public key is kept in FILE.history.pem"))
    database_option(p)
    key_option(p)
    p.set_defaults(handler=cmd_audit_rotate_key)
    p = audit_sub.add_parser(
        "mark-backup",
        help=t("PostgreSQL: record (and seal) that a pg_dump is about to be taken, so a restore is recognised"),
    )
    p.add_argument("name", metavar="NAME", help=t("the dump's file name, as you will keep it"))
    database_option(p)
    key_option(p)
    p.set_defaults(handler=cmd_audit_mark_backup)
