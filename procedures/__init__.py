"""The procedure model: load and check ``tinhgon/1`` definitions, measure
them, find their redundancy and simplify them.

This package imports nothing from :mod:`engine` or :mod:`api`.
"""

from .errors import DefinitionError, Problem, ReadError, TinhgonError
from .findings import Finding, find_all
from .loader import build, load_bytes, load_path, load_text
from .metrics import Metrics, metrics
from .model import Definition
from .simplify import Simplification, simplify

__all__ = [
    "Definition",
    "DefinitionError",
    "Finding",
    "Metrics",
    "Problem",
    "ReadError",
    "Simplification",
    "TinhgonError",
    "build",
    "find_all",
    "load_bytes",
    "load_path",
    "load_text",
    "metrics",
    "simplify",
]
