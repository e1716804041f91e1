"""What the analyser says of one definition, as the ``analyze --json``
object (format section 9) that the command line and the HTTP API print."""

from __future__ import annotations

from typing import Any

from .findings import find_all
from .metrics import metrics
from .model import Definition


def analysis(defn: Definition) -> dict[str, Any]:
    """``{"procedure": {code, version}, "metrics": {...}, "findings": [...]}``."""
    return {
        "procedure": {"code": defn.code, "version": defn.version},
        "metrics": metrics(defn),
        "findings": [f.as_dict() for f in find_all(defn)],
    }
