"""Errors of the case engine.

Each carries its context as attributes (``case_id``, ``step``, ``outcome``)
so that the HTTP layer can turn it into a problem document in one place and
the command line can print it, without parsing messages. ``kind`` is a short
slug naming the error for machines (the HTTP layer uses it in ``type``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from procedures.errors import TinhgonError
from procedures.messages import t


class EngineError(TinhgonError):
    """Root of the engine's errors."""

    kind = "engine-error"

    def __init__(self, message: str, *, case_id: int | None = None, step: str | None = None, outcome: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.case_id = case_id
        self.step = step
        self.outcome = outcome


class NotFound(EngineError):
    """A case, procedure or user that does not exist, or that the caller may not see."""

    kind = "not-found"


class InvalidAction(EngineError):
    """The action names a step or outcome the procedure does not have."""

    kind = "invalid-action"


class UnstorableText(InvalidAction):
    """A comment holding a NUL character, which PostgreSQL cannot store, or
    a lone surrogate, which has no UTF-8 (refused on every database alike;
    the same problem to API clients)."""


class CommentTooLong(InvalidAction):
    """A comment longer than :data:`engine.machine.COMMENT_LENGTH` characters
    (every comment is kept in the audit trail, on every page of the case)."""

    def __init__(self, length: int, limit: int, *, case_id: int | None = None) -> None:
        super().__init__(
            t("the comment is {length} characters long; at most {limit}", length=length, limit=limit), case_id=case_id
        )
        self.length, self.limit = length, limit


class Forbidden(EngineError):
    """The caller sees the case but may not act on this step."""

    kind = "forbidden"


class CorruptRecord(EngineError):
    """Something stored no longer matches the hash it was stored with (a
    procedure version's body): a fault of the server's data, for the
    operator (``tinhgon audit verify`` names it), never the caller's."""

    kind = "corrupt-record"


class Conflict(EngineError):
    """The action does not fit the case's state (closed case, step not active)."""

    kind = "conflict"


class CaseClosed(Conflict):
    kind = "case-closed"


class StepNotActive(Conflict):
    kind = "step-not-active"


class GuideOnce(Conflict):
    """A second return to an applicant step in one case: the law asks the
    official to list every missing item in a single request."""

    kind = "guide-once"

    def __init__(self, message: str, *, case_id: int | None, step: str, outcome: str, earlier: GuidedReturn) -> None:
        super().__init__(message, case_id=case_id, step=step, outcome=outcome)
        self.earlier = earlier


class StaleCase(Conflict):
    """The case changed since the caller read it (optimistic concurrency)."""

    kind = "stale"

    def __init__(self, message: str, *, case_id: int | None, expected: int | None = None, actual: int | None = None) -> None:
        super().__init__(message, case_id=case_id)
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str
    """what people read, in the language it was made in"""
    kind: str = ""
    """what is wrong, for machines and pages (``required``, ``unstorable``...):
    the message depends on the language; ``as_dict`` leaves it out"""

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidData(EngineError):
    """Case data that breaks the procedure's ``fields``; one problem per field."""

    kind = "invalid-data"

    def __init__(self, problems: Sequence[FieldProblem], *, case_id: int | None = None) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems), case_id=case_id)


class IdempotencyMismatch(EngineError):
    """An ``Idempotency-Key`` reused for a different request."""

    kind = "idempotency-mismatch"


class IdempotencyInFlight(Conflict):
    """The first request under this ``Idempotency-Key`` has not finished."""

    kind = "idempotency-in-flight"


class NotPublished(EngineError):
    """A procedure code with no published version."""

    kind = "not-published"


class Abolished(NotPublished):
    """The published current version of a code abolishes the procedure: no
    new case may start (running cases go on)."""

    kind = "abolished"

    def __init__(self, code: str, reason: str, merged_into: str | None) -> None:
        if merged_into:
            message = t(
                "procedure {code} is abolished ({reason}); the procedure replacing it: {merged_into}; no new case can be opened",
                code=code,
                reason=reason,
                merged_into=merged_into,
            )
        else:
            message = t("procedure {code} is abolished ({reason}); no new case can be opened", code=code, reason=reason)
        super().__init__(message)
        self.code, self.reason, self.merged_into = code, reason, merged_into


@dataclass(frozen=True, slots=True)
class GuidedReturn:
    """The one return to an applicant step a case may have (guide once)."""

    step: str
    """the step that returned the case"""
    outcome: str
    target: str
    """the applicant step the case went back to"""
    actor: str
    at: str
    """ISO 8601 instant"""
    missing: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "step": self.step,
            "outcome": self.outcome,
            "target": self.target,
            "actor": self.actor,
            "at": self.at,
            "missing": list(self.missing),
        }


class DatabaseUnavailable(TinhgonError):
    """The database named cannot be used: its URL is not one tinhgon
    reads, or nothing answers there. Not an :class:`EngineError`: it
    stops a command or a start, it is no answer to a request."""
