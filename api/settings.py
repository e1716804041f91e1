"""The service's settings: one object, built from the command line (or the
environment) once, and handed to :func:`api.app.create_app`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engine.settings import database_url, key_path

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
    max_upload_bytes: int = 1_000_000
    """the largest definition an upload takes (the API's body, or the file or text of the page's form)"""
    page_limit: int = 200
    """the largest ``limit`` a list accepts"""
    idempotency_lease_seconds: float = 60.0
    write_threads: int = Field(default=4, ge=1)
    """PostgreSQL: the case actions a worker runs at once: plain ones on
    the event loop's connections, any other in a thread each (SQLite has one writer)"""
    secure_cookies: bool = False
    """mark the web session cookie ``Secure`` (behind HTTPS)"""

    @property
    def max_body_bytes(self) -> int:
        """The largest request body the service reads at all (413 beyond):
        an upload at its limit inside a form. Case data and comments come
        under it too, so that no request stores megabytes in a case."""
        return self.max_upload_bytes + FORM_OVERHEAD
