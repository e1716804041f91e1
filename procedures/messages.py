"""Every text a person reads, from one message catalogue per language.

The texts are written in the code in English, as gettext's message ids,
each through :func:`t` with its values named (``t("no case {case}",
case=7)``); the catalogues (``procedures/locale/LANG/LC_MESSAGES/tinhgon.po``,
read with Babel) give each id its Vietnamese and its English wording. A
test extracts every id from the code and fails when either catalogue lacks
one or names other values.

Vietnamese is the language unless English is asked for explicitly: the
command line's ``--lang en`` or ``TINHGON_LANG=en`` (never ``LANG``: a server
set to ``en_US.UTF-8`` still answers in Vietnamese), an ``Accept-Language``
whose first tag is ``en`` in the API, the switch on the pages. The language
is a context variable, so each request (and the threads it hands work to,
which copy its context) speaks its own.

What machines read stays as the spec fixes it: ``FILE:LINE: PATH:``, JSON
keys, rule ids, problem ``type`` slugs.

>>> t("Not found")
'Không tìm thấy'
>>> with speaking("en"):
...     t("Not found")
'Not found'
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = ("vi", "en")
DEFAULT = "vi"
ENVIRONMENT = "TINHGON_LANG"
DOMAIN = "tinhgon"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("tinhgon_language", default=DEFAULT)


@functools.cache
def catalogue(language: str) -> Mapping[str, str]:
    """``{message id: text}`` of ``language``'s catalogue (read once per process)."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalogue for language {language!r}; tinhgon speaks {', '.join(LANGUAGES)}")
    po = resources.files(__package__).joinpath("locale", language, "LC_MESSAGES", f"{DOMAIN}.po")
    with po.open("rb") as f:
        read = read_po(f, locale=language, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in read if m.id and isinstance(m.id, str) and m.string}


def language() -> str:
    """The language of this context (:data:`DEFAULT` unless set)."""
    return _current.get()


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """Speak ``language`` inside the block (a request, a test)."""
    token = _current.set(chosen(language))
    try:
        yield
    finally:
        _current.reset(token)


def chosen(asked: str | None) -> str:
    """The language ``asked`` names (``en``, ``en-GB``, ``EN_us``...: English;
    ``vi``...; empty or None: the default).

    Raises:
        ValueError: a language tinhgon has no catalogue for.
    """
    if not asked:
        return DEFAULT
    primary = asked.strip().replace("_", "-").split("-")[0].lower()
    if primary not in LANGUAGES:
        raise ValueError(asked)
    return primary


def from_environment(environ: Mapping[str, str] = os.environ) -> str:
    """The command line's language from ``TINHGON_LANG`` (``LANG`` is ignored on purpose).

    Raises:
        ValueError: ``TINHGON_LANG`` names a language tinhgon does not speak.
    """
    return chosen(environ.get(ENVIRONMENT))


def accepted(header: str | None) -> str:
    """The API's language from ``Accept-Language``: English when its first
    tag is ``en`` (or ``en-...``), Vietnamese for anything else."""
    if not header:
        return DEFAULT
    first = header.split(",")[0].split(";")[0].strip().lower()
    return "en" if first == "en" or first.startswith("en-") else DEFAULT


def t(message: str, /, **values: Any) -> str:
    """``message`` (its English id) in this context's language, with ``values`` put in.

    Only the catalogue's text is a template: a value (a name someone typed,
    with its own braces) is put in as it is, never read as one."""
    text = catalogue(language()).get(message, message)
    return text.format_map(values) if values else text


__all__ = [
    "DEFAULT",
    "ENVIRONMENT",
    "LANGUAGES",
    "accepted",
    "catalogue",
    "chosen",
    "from_environment",
    "language",
    "speaking",
    "t",
]
