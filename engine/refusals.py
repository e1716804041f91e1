"""What the machine says when it refuses an action, in the context's
language (:mod:`procedures.messages`).

People read these (officials, applicants, reform officers), so a step is
named by its name and a role by its name, never by their ids; the problem
documents still carry the ids (``step``, ``outcome``) for machines.
"""

from __future__ import annotations

from procedures.messages import t
from procedures.model import Definition

from .errors import GuidedReturn


def step_not_active(step: str, status: str) -> str:
    """Step ``step`` (its name) is ``status``, not active."""
    if status == "waiting":
        return t("step «{step}» is waiting for the steps before it, not active", step=step)
    if status == "completed":
        return t("step «{step}» is completed, not active", step=step)
    if status == "skipped":
        return t("step «{step}» was skipped, not active", step=step)
    return t("step «{step}» is cancelled, not active", step=step)


def case_closed(status: str) -> str:
    """The case is closed (``status``: completed, rejected or withdrawn)."""
    if status == "completed":
        return t("the case is completed and accepts no further action")
    if status == "rejected":
        return t("the case is rejected and accepts no further action")
    return t("the case is withdrawn and accepts no further action")


def not_the_actors(defn: Definition, step_index: int, kind: str, unit: str) -> str:
    """Why the actor may not act on step ``step_index`` (its role's ``kind``)."""
    step = defn.steps[step_index]
    if kind == "applicant":
        return t("step «{step}» is the applicant's; only the case's applicant may act on it", step=step.name)
    if kind == "system":
        return t("step «{step}» is a system step; it completes by itself", step=step.name)
    role = defn.role_by_id[step.role].name
    return t("step «{step}» needs the role «{role}» in unit «{unit}»", step=step.name, role=role, unit=unit)


def guided_once(defn: Definition, earlier: GuidedReturn) -> str:
    """The refusal of a second return to the applicant (guide once)."""
    step = defn.step(earlier.step) if earlier.step in defn.index else None
    return t(
        "the case was already returned to the applicant once (step «{step}», outcome «{outcome}», by {actor} at {at}); "
        "the official must list every missing item in that one request, so a second return to the applicant is refused",
        step=step.name if step is not None else earlier.step,
        outcome=step.outcome_label(earlier.outcome) if step is not None else earlier.outcome,
        actor=earlier.actor,
        at=earlier.at,
    )


def outcomes_text(defn: Definition, step_index: int, outcome: str) -> str:
    """A step that has no outcome ``outcome``, with the names it has."""
    step = defn.steps[step_index]
    names = ", ".join(n for n, _ in step.outcomes)
    return t("step «{step}» has no outcome «{outcome}» (its outcomes: {names})", step=step.name, outcome=outcome, names=names)
