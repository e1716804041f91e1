"""Verifying the whole record: every case's chain and replay, the journal
against the tables it vouches for, the ledger over both, and a checkpoint.

What each part proves, and what none of them can, is written in the README
(section "What the audit proves"). In short: without the signing key, no
event, journal entry or sealed place can be altered, and nothing sealed can
be removed, without :func:`verify_database` naming the first bad item; a cut
tail of the ledger is caught against a checkpoint kept elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from procedures import load_text
from procedures.errors import TinhgonError
from procedures.messages import t

from . import journal, ledger
from .audit import GENESIS, EventRecord, is_decision, verify_chain
from .calendar import WorkingCalendar
from .db import AuditKeyRow, CaseRow, CaseStepRow, EventRow, ProcedureRow
from .keys import Keyring, Signer
from .machine import CompiledProcedure
from .replay import replay
from .rows import record_of
from .store import Store


def never_sealed() -> str:
    return t(
        "nothing is sealed yet: a database from before the ledger is adopted by its first seal"
        " (run tinhgon audit checkpoint with the key, or start the service); until then what it held is unvouched for"
    )


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong. ``part`` is ``event`` (a case's chain), ``case``
    (the stored case against its events), ``journal``, ``state`` (a table
    against the journal), ``ledger`` or ``checkpoint``."""

    part: str
    reason: str
    case_id: int | None = None
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """``{part, case, seq, reason, text}``, as ``audit verify --json`` and the API give it."""
        return {"part": self.part, "case": self.case_id, "seq": self.seq, "reason": self.reason, "text": self.render()}

    def render(self) -> str:
        if self.case_id is not None:
            if self.seq:
                return t("case {case}, event {seq}: {reason}", case=self.case_id, seq=self.seq, reason=self.reason)
            return t("case {case}: {reason}", case=self.case_id, reason=self.reason)
        if self.part == "journal":
            return t("journal: {reason}", reason=self.reason)
        if self.part == "state":
            return t("state: {reason}", reason=self.reason)
        if self.part == "ledger":
            return t("ledger: {reason}", reason=self.reason)
        if self.part == "checkpoint":
            return t("checkpoint: {reason}", reason=self.reason)
        return f"{self.part}: {self.reason}"


@dataclass(frozen=True, slots=True)
class AuditReport:
    cases: int
    events: int
    journal: int
    places: int
    unsealed: int
    bad: tuple[Finding, ...]
    checkpoint: ledger.CheckpointResult | None = None

    @property
    def ok(self) -> bool:
        return not self.bad

    @property
    def first_bad(self) -> Finding | None:
        return self.bad[0] if self.bad else None


def _decision_of(compiled: CompiledProcedure) -> Any:
    defn = compiled.definition

    def decision(record: EventRecord) -> bool | None:
        if record.type != "action":
            return False
        index = defn.index.get(record.step or "")
        if index is None:
            return None
        step = defn.steps[index]
        effect = step.outcome(record.outcome or "")
        if effect is None:
            return None
        return is_decision(step.kind, effect.kind)

    return decision


def _cases(
    connection: Connection, keys: Keyring, calendar: WorkingCalendar, legacy: int, findings: list[Finding]
) -> tuple[int, int, dict[int, str]]:
    """Check every case; returns (cases, events, event id -> hash)."""
    compiled: dict[int, CompiledProcedure | str] = {}
    for row in connection.execute(select(ProcedureRow.id, ProcedureRow.body, ProcedureRow.code, ProcedureRow.version)):
        try:
            compiled[row.id] = CompiledProcedure(load_text(row.body, source=f"{row.code} v{row.version}"))
        except TinhgonError as error:
            compiled[row.id] = t(
                "its procedure {code} version {version} no longer loads ({error})",
                code=row.code,
                version=row.version,
                error=str(error),
            )
    events: dict[int, list[tuple[int, EventRecord]]] = defaultdict(list)
    hashes: dict[int, str] = {}
    for e in connection.execute(select(EventRow.__table__).order_by(EventRow.case_id, EventRow.seq, EventRow.id)):
        events[e.case_id].append((e.id, record_of(e)))
        hashes[e.id] = e.hash
    steps: dict[int, list[Any]] = defaultdict(list)
    for s in connection.execute(select(CaseStepRow.__table__).order_by(CaseStepRow.case_id, CaseStepRow.position)):
        steps[s.case_id].append(s)
    cases = 0
    for case in connection.execute(select(CaseRow.__table__).order_by(CaseRow.id)):
        cases += 1
        chain = events.pop(case.id, [])
        records = [r for _, r in chain]
        machine = compiled.get(case.procedure_id)
        if not isinstance(machine, CompiledProcedure):
            findings.append(Finding("case", machine or t("its procedure version is missing"), case.id))
            continue
        bad = verify_chain(
            records,
            keys,
            (case.event_count, case.head_hash),
            case_id=case.id,
            legacy=sum(1 for event_id, _ in chain if event_id <= legacy),
            decision_of=_decision_of(machine),
        )
        if bad is not None:
            findings.append(Finding("event", bad.reason, bad.case_id, bad.seq))
            continue
        mismatch = replay(machine, records, case, steps.get(case.id, []), calendar)
        if mismatch is not None:
            findings.append(Finding("case", mismatch.reason, case.id, mismatch.seq or None))
    for case_id in sorted(events):
        findings.append(Finding("event", t("events of a case that does not exist (its case row deleted?)"), case_id))
    return cases, len(hashes), hashes


def _ledger(
    connection: Connection,
    keys: Keyring,
    event_hashes: dict[int, str],
    journal_hashes: dict[int, str],
    legacy: int,
    findings: list[Finding],
) -> tuple[int, int]:
    """Check the ledger's chain and what it seals; returns (places, entries not yet sealed)."""
    previous, position = GENESIS, 0
    sealed: dict[str, set[int]] = {ledger.EVENT: set(), ledger.JOURNAL: set()}
    last: ledger.Place | None = None
    for place in ledger.places(connection):
        position += 1
        last = place
        where = t("place {position}", position=place.position)
        if place.position != position:
            findings.append(
                Finding(
                    "ledger",
                    t("place {position} is missing (the next is {next}): deleted?", position=position, next=place.position),
                )
            )
            return position, 0
        if place.prev_hash != previous or place.hash != ledger.place_hash(
            previous, position, place.kind, place.ref_id, place.entry_hash
        ):
            findings.append(Finding("ledger", t("{where}: its hash or link does not recompute (edited?)", where=where)))
            return position, 0
        if place.signature is not None and not (
            keys.knows(place.key_id) and keys.verify(place.key_id, place.hash, place.signature)
        ):
            findings.append(
                Finding("ledger", t("{where}: bad signature (forged, or made by a key that is not trusted)", where=where))
            )
            return position, 0
        previous = place.hash
        if position == 1 and (place.kind != ledger.RULES or place.entry_hash != ledger.rules_hash(legacy)):
            findings.append(
                Finding("ledger", t("place 1 does not vouch for this database's audit rules (the switch record was altered)"))
            )
        stored = {ledger.EVENT: event_hashes, ledger.JOURNAL: journal_hashes}.get(place.kind)
        if stored is None:
            continue
        sealed[place.kind].add(place.ref_id)
        event = place.kind == ledger.EVENT
        actual = stored.get(place.ref_id)
        if actual is None:
            gone = (
                t("{where}: the event it seals (id {id}) is gone (deleted, with its case?)", where=where, id=place.ref_id)
                if event
                else t("{where}: the journal entry it seals (id {id}) is gone (deleted?)", where=where, id=place.ref_id)
            )
            findings.append(Finding("ledger", gone))
        elif actual != place.entry_hash:
            rewritten = (
                t("{where}: the event it seals (id {id}) has another hash now (rewritten?)", where=where, id=place.ref_id)
                if event
                else t(
                    "{where}: the journal entry it seals (id {id}) has another hash now (rewritten?)",
                    where=where,
                    id=place.ref_id,
                )
            )
            findings.append(Finding("ledger", rewritten))
    if last is not None and last.signature is None:
        findings.append(
            Finding(
                "ledger",
                t(
                    "place {position}, the last, is not signed (places appended behind the sealer's back?)",
                    position=last.position,
                ),
            )
        )
    unsealed = len(set(event_hashes) - sealed[ledger.EVENT]) + len(set(journal_hashes) - sealed[ledger.JOURNAL])
    return position, unsealed


def verify_database(
    store: Store,
    keys: Keyring,
    *,
    checkpoint: str | None = None,
    checkpoint_source: str | None = None,
    calendar: WorkingCalendar | None = None,
) -> AuditReport:
    """Check everything the audit keeps; see the module's text.

    ``checkpoint`` is the text of a checkpoint file kept elsewhere, and
    ``checkpoint_source`` its name in what is wrong with it (its file).
    """
    findings: list[Finding] = []
    with store.unit(write=False) as uow:
        connection = uow.connection
        legacy = ledger.legacy_events(connection)
        cases, events, event_hashes = _cases(connection, keys, calendar or WorkingCalendar(), legacy, findings)
        entries = list(journal.entries(connection))
        for entry in entries:
            problem = journal.check_entry(entry, keys)
            if problem is not None:
                findings.append(
                    Finding(
                        "journal",
                        t(
                            "entry {id} ({kind} {subject}): {problem}",
                            id=entry.id,
                            kind=entry.kind,
                            subject=entry.subject[:40],
                            problem=problem,
                        ),
                    )
                )
        findings.extend(Finding("state", p) for p in journal.compare_state(connection, journal.fold(entries)))
        places, unsealed = _ledger(connection, keys, event_hashes, {e.id: e.hash for e in entries}, legacy, findings)
        if places == 0 and findings:
            # First when nothing was ever journalled either (a database from
            # before, not yet adopted); after the real findings otherwise.
            findings.insert(0 if not entries else len(findings), Finding("ledger", never_sealed()))
        result = None
        if checkpoint is not None:
            try:
                statement = ledger.read_checkpoint(checkpoint, keys, checkpoint_source or t("the checkpoint"))
            except ledger.CheckpointError as error:
                findings.append(Finding("checkpoint", str(error)))
            else:
                result = ledger.check_checkpoint(connection, statement)
                if not result.ok:
                    findings.append(Finding("checkpoint", result.message))
    return AuditReport(cases, events, len(entries), places, unsealed, tuple(findings), result)


def seal(store: Store, signer: Signer) -> int:
    """Run one seal in a transaction of its own; returns the places appended."""
    with store.unit() as uow:
        return ledger.seal_pending(uow.connection, signer)


@dataclass(frozen=True, slots=True)
class KnownKey:
    """A public key that signs or signed here: ``current`` the key file's,
    ``trusted`` when verification takes its signatures."""

    key_id: str
    public_pem: str
    current: bool
    trusted: bool


def known_keys(store: Store, trusted: Keyring) -> list[KnownKey]:
    """The trusted keys, the current one first, then any the database lists that is not trusted."""
    out = [KnownKey(key_id, pem, key_id == trusted.current.key_id, True) for key_id, pem in trusted.public_pems()]
    out += [KnownKey(key_id, pem, False, False) for key_id, pem in listed_keys(store) if not trusted.knows(key_id)]
    return out


def listed_keys(store: Store) -> list[tuple[str, str]]:
    """``(key_id, PEM)`` of every key the database lists as having signed here."""
    with store.unit(write=False) as uow:
        return [
            (r.key_id, r.public_pem)
            for r in uow.connection.execute(select(AuditKeyRow.key_id, AuditKeyRow.public_pem).order_by(AuditKeyRow.first_used))
        ]


def seal_all(store: Store, signer: Signer) -> int:
    """Seal until nothing is pending (each seal a batch of its own); the places appended."""
    total = 0
    while appended := seal(store, signer):
        total += appended
    return total


def sealed_checkpoint(store: Store, signer: Signer) -> dict[str, Any]:
    """Seal everything pending, then a signed checkpoint of the ledger as it stands."""
    seal_all(store, signer)
    with store.unit(write=False) as uow:
        return ledger.checkpoint(uow.connection, signer)


def mark_backup(store: Store, signer: Signer, target: str) -> tuple[int, str]:
    """Journal that a backup is about to be taken to ``target``, and seal it:
    the copy then holds that entry at a ledger place which later
    checkpoints list (``backups``), so a database restored from the copy is
    recognised as such (:func:`engine.ledger.check_checkpoint`).
    Returns the ledger's ``(length, head)`` after the seal."""
    with store.unit() as uow:
        entry = journal.entry_values(signer, kind=journal.BACKUP, subject=target, data={"file": target}, actor="tinhgon")
        journal.write(uow.connection, entry)
    seal_all(store, signer)
    with store.unit(write=False) as uow:
        return ledger.head(uow.connection)
