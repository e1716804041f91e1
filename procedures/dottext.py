"""The one way text reaches DOT: every name, label, tooltip and id goes through here.

Graphviz reads a quoted string with backslash escapes (``\\N``, ``\\l``; a
final ``\\`` swallows the closing quote) and takes any value shaped ``<...>``
as an HTML-like label, which may carry ``URL`` and ``HREF``. :func:`text`
makes a value for a quoted attribute or node name: backslashes doubled and
the value marked as not HTML (``graphviz.escape``), so it is drawn as written.
:func:`cell` makes text for a cell of an HTML-like label the diagram builds
itself: HTML-escaped. Both first make characters DOT cannot carry visible:
control characters become their Unicode pictures (NUL as ␀), lone
surrogates U+FFFD.
"""

from __future__ import annotations

import html
import re

import graphviz

_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x7F:
        return "\u2421"
    if code < 0x20:
        return chr(0x2400 + code)
    return "\ufffd"


def visible(value: str) -> str:
    """``value`` with control characters as their pictures and lone surrogates as U+FFFD."""
    return _INVISIBLE.sub(_picture, value)


def text(value: str) -> str:
    """``value`` as a quoted DOT string drawn literally; a newline breaks the line.

    >>> text('a\\\\')
    'a\\\\\\\\'
    >>> type(text('<b>')).__name__
    'NoHtml'
    """
    escaped = graphviz.escape(visible(value).replace("\t", " "))
    drawn: str = graphviz.nohtml(escaped.replace("\n", "\\n"))  # a str marked as not HTML
    return drawn


def cell(value: str) -> str:
    """``value`` for a cell of an HTML-like label: drawn as written, no markup."""
    return html.escape(visible(value).replace("\n", " ").replace("\t", " "), quote=True)
