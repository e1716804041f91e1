"""Procedure codes: their form, and the key under which codes that differ
only in case are one code (procedure-format.md section 1).

A code is ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a
letter or digit, at most 100 characters: no space, no look-alike letter
(``ＸＳＳ-2``), no invisible character (``XSS-2\\u200b``), no ``/``. Its
key is the code casefolded, computed here rather than by the database
(SQLite's ``lower`` and PostgreSQL's differ outside ASCII), and kept in the
``code_key`` column, on which the store's unique index stands.
"""

from __future__ import annotations

import hashlib
import re

CODE_FORM = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""The rule every procedure code follows (anchored, for OpenAPI and JSON Schema too)."""
_CODE = re.compile(CODE_FORM)
VERSION_MIN, VERSION_MAX = 1, 1_000_000
"""The versions a definition may have (procedure-format.md section 1)."""
EXACT = "="
"""Marks the key of a row stored, before the rule, under a spelling that
equals an earlier code ignoring case: its key is ``=`` and its exact
spelling, a text no code's key can be (``=`` is in no code), so the unique
index holds over old data as it stands (see the migration 0003_code_key)."""


def valid_code(code: str) -> bool:
    """Whether ``code`` follows the code rule.

    >>> valid_code("QP-CS-XN-02"), valid_code("XSS-2 "), valid_code("ＸＳＳ-2")
    (True, False, False)
    """
    return _CODE.fullmatch(code) is not None


def code_key(code: str) -> str:
    """The key of ``code``: codes with one key are the same code.

    >>> code_key("QP-cs-XN-02")
    'qp-cs-xn-02'
    """
    return code.casefold()


def exact_key(code: str) -> str:
    """The key of a row that keeps its own spelling (see :data:`EXACT`)."""
    return EXACT + code


def code_lock(key: str) -> int:
    """The PostgreSQL advisory lock number of a code's key: two transactions
    storing versions of one code, spelled alike or not, take turns, so that
    a second spelling cannot slip in beside the first (SQLite has one
    writer at a time anyway)."""
    digest = hashlib.sha256(f"procedure code\x01{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
