"""Where the database and the signing key are, for every command that
needs them: a command-line option, else an environment variable, else a
file in the working directory (service.md section 4)."""

from __future__ import annotations

import os
from pathlib import Path

from .connection import DEFAULT_URL

DATABASE_ENV = "TINHGON_DATABASE_URL"
KEY_ENV = "TINHGON_SIGNING_KEY"
DEFAULT_KEY = "tinhgon-signing.key"


def database_url(given: str | None = None) -> str:
    """``given``, else ``$TINHGON_DATABASE_URL``, else ``tinhgon.db`` here.

    >>> database_url("postgresql+psycopg://db/x")
    'postgresql+psycopg://db/x'
    """
    return given or os.environ.get(DATABASE_ENV) or DEFAULT_URL


def key_path(given: str | None = None) -> Path:
    """The Ed25519 private key that signs decisions: kept in a file beside
    the database, never in it (``$TINHGON_SIGNING_KEY`` or
    ``tinhgon-signing.key`` in the working directory by default)."""
    return Path(given or os.environ.get(KEY_ENV) or DEFAULT_KEY)
