"""``tinhgon serve --log-format json``: one JSON object a line for every
log record of the service (uvicorn's and tinhgon's), with ``time`` (UTC,
ISO 8601), ``level``, ``logger`` and ``message``, and on access lines
(:mod:`api.observe`) ``method``, ``route``, ``status`` and ``duration_ms``.

A record carries only what its message says: the access lines name the
route template, never the raw path, a header (``Authorization``), a cookie
or a body, and SQL statements' parameters never reach an error message
(:func:`engine.connection.connect` hides them).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Final

FORMATS: Final = ("text", "json")
FORMAT_ENV: Final = "TINHGON_LOG_FORMAT"
ACCESS_FIELDS: Final = ("method", "route", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (ASCII: any character of a message,
    a lone surrogate or a newline included, is written as its escape)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ACCESS_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def log_config(log_format: str, level: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for ``log_format``: None (uvicorn's own) for
    ``text``; for ``json`` every logger through :class:`JsonFormatter` to
    standard error, and tinhgon's access lines in place of uvicorn's (which
    know the raw path only)."""
    if log_format == "text":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "tinhgon": {"handlers": ["json"], "level": level, "propagate": False},
            "tinhgon.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["json"], "level": "WARNING"},
    }
