"""The service's settings: one object, built from the command line (or the
environment) once, and handed to :func:`api.app.create_app`; and how
``serve``'s options read them."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from engine.sealer import CHECKPOINT_MINUTES, SEAL_SECONDS
from engine.sessions import Lifetime
from engine.settings import database_url, key_path
from procedures.messages import t

from .logs import FORMATS
from .metrics import LOOPBACK, Network, allowed_networks
from .offload import MAX_STEPS, OFFLOAD_BYTES

SECURE_COOKIES_ENV = "TINHGON_SECURE_COOKIES"
SESSION_IDLE_ENV = "TINHGON_SESSION_IDLE_MINUTES"
SESSION_HOURS_ENV = "TINHGON_SESSION_HOURS"
WEB_ENV = {SECURE_COOKIES_ENV: "secure_cookies", SESSION_IDLE_ENV: "session_idle_minutes", SESSION_HOURS_ENV: "session_hours"}
"""the environment variables of the web's settings, and the settings they give"""
SEAL_SECONDS_ENV = "TINHGON_SEAL_SECONDS"
CHECKPOINT_DIR_ENV = "TINHGON_CHECKPOINT_DIR"
CHECKPOINT_MINUTES_ENV = "TINHGON_CHECKPOINT_MINUTES"
AUDIT_ENV = {SEAL_SECONDS_ENV: "seal_seconds", CHECKPOINT_DIR_ENV: "checkpoint_dir", CHECKPOINT_MINUTES_ENV: "checkpoint_minutes"}
"""the environment variables of the audit sealer's settings"""
LIMIT_ENV = {
    "TINHGON_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "TINHGON_MAX_STEPS": "max_steps",
    "TINHGON_HEAVY_SECONDS": "heavy_seconds",
    "TINHGON_HEAVY_AT_ONCE": "heavy_at_once",
    "TINHGON_OFFLOAD_BYTES": "offload_bytes",
}
"""the environment variables of the limits on uploads and on the heavy work of big definitions"""
DEFAULT_CHECKPOINTS = Path("tinhgon-checkpoints")
"""where ``serve`` writes checkpoint files unless told: a folder in the working directory (move it away from the database)"""

FORM_OVERHEAD = 64 * 1024
"""What a form adds around an uploaded definition, beyond the upload limit."""


class Settings(BaseModel):
    """Everything a running service needs to know about its surroundings."""

    model_config = ConfigDict(frozen=True)

    database_url: str = Field(default_factory=database_url)
    key_file: Path = Field(default_factory=key_path)
    calendar_file: Path | None = None
    definitions: Path | None = None
    """a folder of definitions loaded and published at start (``serve`` does it once, before the workers)"""
    max_upload_bytes: int = Field(default=4_000_000, ge=1024)
    """the largest definition an upload takes (the API's body, or the file or text of the page's form):
    a 20,000-step definition is about 1.7 MB"""
    max_steps: int = Field(default=MAX_STEPS, ge=1)
    """the most steps an uploaded definition may have"""
    heavy_seconds: float = Field(default=120.0, gt=0)
    """the time one analysis, simplification, drawing or upload check of a big definition may take"""
    offload_bytes: int = Field(default=OFFLOAD_BYTES, ge=0)
    """a definition longer than this is read, measured, simplified and drawn in a child process"""
    heavy_at_once: int = Field(default=2, ge=1)
    """how many such jobs a worker runs at once, each in a child process (:mod:`api.offload`)"""
    page_limit: int = 200
    """the largest ``limit`` a list accepts"""
    idempotency_lease_seconds: float = 60.0
    write_threads: int = Field(default=4, ge=1)
    """PostgreSQL: the case actions a worker runs at once: plain ones on
    the event loop's connections, any other in a thread each (SQLite has one writer)"""
    secure_cookies: bool = False
    """mark the web's cookies ``Secure``, so that browsers send them over HTTPS only (behind HTTPS)"""
    session_idle_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    """a web session not seen for this long ends"""
    session_hours: float = Field(default=8.0, gt=0, le=30 * 24)
    """a web session ends this long after sign-in, however busy"""

    seal_seconds: float = Field(default=SEAL_SECONDS, gt=0, le=3600)
    """how often the audit sealer seals what was written since its last pass (:mod:`engine.sealer`)"""
    checkpoint_dir: Path | None = None
    """where the service writes a signed checkpoint of the ledger (none when None; ``serve``: :data:`DEFAULT_CHECKPOINTS`)"""
    checkpoint_minutes: float = Field(default=CHECKPOINT_MINUTES, gt=0, le=7 * 24 * 60)
    """how often it writes one (when the ledger has grown)"""

    metrics_allow: tuple[Network, ...] = Field(default_factory=lambda: allowed_networks(LOOPBACK))
    """the client addresses that may read ``/metrics`` (others get 404): loopback unless told otherwise"""

    @field_validator("metrics_allow", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return allowed_networks(value) if isinstance(value, str) else value

    @property
    def session_lifetime(self) -> Lifetime:
        return Lifetime(dt.timedelta(minutes=self.session_idle_minutes), dt.timedelta(hours=self.session_hours))

    @property
    def max_body_bytes(self) -> int:
        """The largest request body the service reads at all (413 beyond):
        an upload at its limit inside a form. Case data and comments come
        under it too, so that no request stores megabytes in a case."""
        return self.max_upload_bytes + FORM_OVERHEAD


class BadSetting(ValueError):
    """A setting given in the environment (or an option) that is not valid."""


def checked(field: str, value: str) -> str:
    """``value``, when the setting ``field`` takes it.

    Raises:
        BadSetting: it does not; says why.
    """
    try:
        Settings.model_validate({field: value})
    except ValidationError as exc:
        raise BadSetting(_why(exc.errors()[0])) from None
    return value


def _why(error: ErrorDetails) -> str:
    """What pydantic's ``error`` says, in this context's language."""
    kind, limits = error["type"], error.get("ctx") or {}
    limit = next(iter(limits.values()), None)
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)  # 0, not 0.0
    if kind == "greater_than":
        return t("must be greater than {limit}", limit=limit)
    if kind == "greater_than_equal":
        return t("must be at least {limit}", limit=limit)
    if kind == "less_than_equal":
        return t("must be at most {limit}", limit=limit)
    if kind == "int_parsing":
        return t("must be a whole number")
    if kind == "float_parsing":
        return t("must be a number")
    if kind == "bool_parsing":
        return t("must be 1 or 0 (or true or false, yes or no, on or off)")
    return t("not valid ({reason})", reason=error["msg"])


def web_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The web's settings that ``environ`` gives (:data:`WEB_ENV`; a
    variable set to an empty text is not given).

    Raises:
        BadSetting: a value the setting does not take, with the variable's name.
    """
    return _given(environ, WEB_ENV)


def audit_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The sealer's settings that ``environ`` gives (:data:`AUDIT_ENV`), as :func:`web_settings`."""
    return _given(environ, AUDIT_ENV)


def limit_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The limits that ``environ`` gives (:data:`LIMIT_ENV`), as :func:`web_settings`."""
    return _given(environ, LIMIT_ENV)


def _given(environ: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, field in names.items():
        value = environ.get(name, "").strip()
        if value:
            try:
                values[field] = checked(field, value)
            except BadSetting as exc:
                raise BadSetting(f"{name}={value!r}: {exc}") from None
    return values


# -- serve's options ------------------------------------------------------------------
def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(t("«{text}» is not a whole number", text=text)) from None


def port_option(text: str) -> int:
    """``--port``: a TCP port."""
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(t("a TCP port is {low} to {high}, not {value}", low=0, high=65535, value=value))
    return value


def workers_option(text: str) -> int:
    """``--workers``: 1 to 64."""
    value = _whole(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(t("the number of workers is {low} to {high}, not {value}", low=1, high=64, value=value))
    return value


def setting_option(field: str) -> Any:
    """An option's parser for the setting ``field``: what the setting takes."""

    def parse(text: str) -> str:
        try:
            return checked(field, text)
        except BadSetting as exc:
            raise argparse.ArgumentTypeError(f"«{text}»: {exc}") from None

    return parse


def networks_option(text: str) -> str:
    """``--metrics-allow``: addresses and networks (:func:`api.metrics.allowed_networks`)."""
    try:
        allowed_networks(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def log_format_option(text: str) -> str:
    """``--log-format``: one of :data:`api.logs.FORMATS`."""
    if text not in FORMATS:
        raise argparse.ArgumentTypeError(t("«{text}» is not a log format: text or json", text=text))
    return text
