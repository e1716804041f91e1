"""Reading YAML 1.2 with line numbers, safely.

The loader drives libyaml's event parser (fast, and it never builds Python
objects from tags) and composes plain Python values itself, so that

* scalars follow the YAML 1.2 core schema (``no``, ``on``, ``yes`` stay text;
  dates stay text),
* every mapping key and sequence item keeps the line it was written on,
* a key written twice in one mapping is an error, not a silent overwrite,
* aliases share their anchor's value instead of copying it, and a document
  whose expansion would exceed :data:`MAX_NODES` nodes is refused before it
  costs memory or time.

Mappings come back as :class:`Map` (a ``dict``) and sequences as :class:`Seq`
(a ``list``); both remember their lines. :func:`line_of` finds the line of a
path such as ``("steps", 2, "inputs", 0)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import yaml

from .errors import Problem
from .labels import number
from .messages import language, t

MAX_NODES = 100_000
"""A document whose aliases expand to more than this many nodes is refused.

The limit is on what aliases add, not on what is written: a large definition
written out in full (ten thousand steps is a few hundred thousand nodes) costs
what it weighs, while a few lines of nested aliases could otherwise stand for
billions of nodes."""

Path = tuple[str | int, ...]


class Map(dict[str, Any]):
    """A YAML mapping that remembers its first line and each key's line."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}


class Seq(list[Any]):
    """A YAML sequence that remembers its first line and each item's line."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class YamlProblems(Exception):
    """The text is not a YAML document tinhgon can use."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_NULLS = frozenset(["", "~", "null", "Null", "NULL"])
_TRUE = frozenset(["true", "True", "TRUE"])
_FALSE = frozenset(["false", "False", "FALSE"])
_CORE = "tag:yaml.org,2002:"


_MAYBE_SPECIAL = frozenset("0123456789+-.~nNtTfF")


def resolve_plain(text: str) -> Any:
    """Resolve an untagged plain scalar by the YAML 1.2 core schema."""
    if text and text[0] not in _MAYBE_SPECIAL:
        return text
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT10.fullmatch(text):
        return int(text)
    if _INT8.fullmatch(text):
        return int(text[2:], 8)
    if _INT16.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def _resolve_tagged(tag: str, text: str) -> Any:
    if tag == _CORE + "str":
        return text
    value = resolve_plain(text)
    wanted = {
        _CORE + "int": int,
        _CORE + "float": float,
        _CORE + "bool": bool,
        _CORE + "null": type(None),
    }.get(tag)
    if wanted is None:
        raise ValueError(t("unsupported tag «{tag}»", tag=tag))
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
        raise ValueError(t("«{text}» is not a valid {type}", text=text, type=tag.removeprefix(_CORE)))
    return value


class _Frame:
    __slots__ = ("anchor", "flow", "key", "key_line", "key_span", "node", "segment", "size", "text_key", "text_span")

    def __init__(self, node: Map | Seq, segment: str | int | None, anchor: str | None, flow: bool) -> None:
        self.node = node
        self.segment = segment
        self.anchor = anchor
        self.size = 1
        self.key: str | None = None
        self.key_line = 0
        self.flow = flow
        # For the comma rule (see load_yaml): where the current key and the
        # last plain-text value of this flow mapping stand in the source.
        self.key_span: tuple[int, int] | None = None
        self.text_span: tuple[int, int] | None = None
        self.text_key: str | None = None


def _path_text(segments: Sequence[str | int | None]) -> str:
    out = ""
    for seg in segments:
        if seg is None:
            continue
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else seg
    return out


def format_path(path: Path) -> str:
    """Write a path the way error messages show it: ``steps[2].inputs[0]``."""
    return _path_text(path)


def _code_point(character: int | str) -> int:
    return character if isinstance(character, int) else ord(character)


def _line_of_position(text: str, position: int) -> int:
    return text.count("\n", 0, max(position, 0)) + 1


def load_yaml(text: str, *, max_nodes: int = MAX_NODES, notes: list[Problem] | None = None) -> Any:
    """Compose one YAML document from ``text``.

    One reading differs from plain YAML, on purpose: in a flow mapping such as
    ``{id: q, name: Hạ sĩ quan, binh sĩ, kind: applicant}`` a bare word with no
    ``:`` that follows a plain text value continues that value, so the name
    is ``"Hạ sĩ quan, binh sĩ"`` (YAML would read a key ``binh sĩ`` with no
    value). Vietnamese names often hold commas; each such reading is added to
    ``notes`` as a warning suggesting quotes.

    Raises :class:`YamlProblems` for a syntax error, a duplicate key, a
    non-text key, an unsupported tag, an undefined or recursive alias, more
    than one document, or aliases that expand to more than ``max_nodes`` nodes.
    """
    problems: list[Problem] = []
    stack: list[_Frame] = []
    anchors: dict[str, tuple[Any, int]] = {}
    open_anchors: set[str] = set()
    expanded = 0
    documents = 0
    root: Any = None

    def current_path() -> str:
        segs: list[str | int | None] = [f.segment for f in stack[1:]]
        if stack and isinstance(stack[-1].node, Map) and stack[-1].key is not None:
            segs.append(stack[-1].key)
        return _path_text(segs)

    def add(value: Any, line: int, size: int) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        frame = stack[-1]
        frame.size += size
        node = frame.node
        if isinstance(node, Seq):
            node.append(value)
            node.item_lines.append(line)
        elif frame.key is None:
            if not isinstance(value, str):
                problems.append(
                    Problem(line, current_path(), t("mapping keys must be text, not {key}", key=describe_value(value)))
                )
                value = str(value)
            if value in node:
                first = node.key_lines[value]
                where = _path_text([*[f.segment for f in stack[1:]], value])
                problems.append(
                    Problem(line, where, t("duplicate key «{key}» (first written at line {line})", key=value, line=first))
                )
            frame.key = value
            frame.key_line = line
        else:
            key = frame.key
            if key not in node:
                node.key_lines[key] = frame.key_line
                node[key] = value
            frame.key = None

    def next_segment() -> str | int | None:
        if not stack:
            return None
        frame = stack[-1]
        if isinstance(frame.node, Seq):
            return len(frame.node)
        return frame.key

    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            line = event.start_mark.line + 1 if event.start_mark is not None else 0
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise YamlProblems([Problem(line, "", t("a definition file holds one YAML document; found a second one"))])
            elif isinstance(event, yaml.ScalarEvent):
                if stack and _continues_text(stack[-1], event, text):
                    frame = stack[-1]
                    assert frame.text_span is not None and frame.key_span is not None and frame.text_key is not None
                    assert isinstance(frame.node, Map)
                    start, end = frame.text_span[0], frame.key_span[1]
                    joined = " ".join(text[start:end].split())
                    frame.node[frame.text_key] = joined
                    frame.text_span = (start, end)
                    frame.key = None
                    frame.size -= 1
                    if notes is not None:
                        where = _path_text([*[f.segment for f in stack[1:]], frame.text_key])
                        if notes and notes[-1].path == where:
                            notes.pop()
                        notes.append(
                            Problem(line, where, t("read as one text «{text}»; put it in quotes to be sure", text=joined))
                        )
                    continue
                tag = event.tag
                if tag in (None, "!"):
                    plain = tag is None and event.implicit[0] and not event.style
                    value = resolve_plain(event.value) if plain else event.value
                else:
                    try:
                        value = _resolve_tagged(tag, event.value)
                    except ValueError as exc:
                        problems.append(Problem(line, current_path(), str(exc)))
                        value = event.value
                if isinstance(value, str) and "\x00" in value:  # written "\0" or "\x00" in a quoted text
                    problems.append(Problem(line, current_path(), t("text must not contain NUL characters")))
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                if stack and stack[-1].flow and isinstance(stack[-1].node, Map):
                    _track_span(stack[-1], event, value)
                add(value, line, 1)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if event.tag not in (None, "!", _CORE + "seq", _CORE + "map"):
                    problems.append(Problem(line, current_path(), t("unsupported tag «{tag}»", tag=event.tag)))
                container: Map | Seq = Seq(line) if isinstance(event, yaml.SequenceStartEvent) else Map(line)
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
                stack.append(_Frame(container, next_segment(), event.anchor, bool(event.flow_style)))
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                frame = stack.pop()
                if frame.anchor is not None:
                    open_anchors.discard(frame.anchor)
                    anchors[frame.anchor] = (frame.node, frame.size)
                add(frame.node, frame.node.line, frame.size)
            elif isinstance(event, yaml.AliasEvent):
                name = event.anchor
                if name in open_anchors:
                    raise YamlProblems(
                        [Problem(line, current_path(), t("alias *{name} refers to the node that contains it", name=name))]
                    )
                if name not in anchors:
                    raise YamlProblems(
                        [Problem(line, current_path(), t("alias *{name} has no anchor &{name} before it", name=name))]
                    )
                value, size = anchors[name]
                expanded += size
                if expanded > max_nodes:
                    raise YamlProblems(
                        [
                            Problem(
                                line,
                                current_path(),
                                t("aliases expand the document by more than {count} nodes; refused", count=grouped(max_nodes)),
                            )
                        ]
                    )
                add(value, line, size)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = mark.line + 1 if mark is not None else 0
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise YamlProblems([*problems, Problem(at, "", t("YAML syntax error: {detail}", detail=what))]) from None
    except yaml.reader.ReaderError as exc:
        at = _line_of_position(text, exc.position)
        character = f"U+{_code_point(exc.character):04X}"
        raise YamlProblems([Problem(at, "", t("character {character} is not allowed in YAML", character=character))]) from None
    except yaml.YAMLError as exc:
        raise YamlProblems([Problem(0, "", t("YAML error: {detail}", detail=str(exc)))]) from None
    if problems:
        raise YamlProblems(problems)
    return root


def _continues_text(frame: _Frame, event: yaml.ScalarEvent, text: str) -> bool:
    """An empty value right after a bare key, in a flow mapping whose previous
    value was plain text: the key was the tail of that text after a comma."""
    if not (frame.flow and isinstance(frame.node, Map) and frame.key is not None):
        return False
    if frame.key_span is None or frame.text_span is None or event.value or event.style or event.tag is not None:
        return False
    if event.start_mark is None:
        return False
    between = text[frame.key_span[1] : event.start_mark.index]
    return ":" not in between and frame.text_key is not None and frame.key not in frame.node


def _track_span(frame: _Frame, event: yaml.ScalarEvent, value: Any) -> None:
    plain = event.tag is None and not event.style
    if event.start_mark is None or event.end_mark is None:
        frame.key_span = frame.text_span = None
        return
    span = (event.start_mark.index, event.end_mark.index)
    if frame.key is None:  # this scalar is a key
        frame.key_span = span if plain and isinstance(value, str) else None
    elif plain and isinstance(value, str) and value:
        frame.text_span = span
        frame.text_key = frame.key
    else:
        frame.text_span = None
        frame.text_key = None


def line_of(root: Any, path: Path) -> int:
    """The line of the key or item at ``path``; for a path that goes past what
    is written (a missing key), the first line of the deepest mapping or
    sequence on the way."""
    node = root
    if not isinstance(node, (Map, Seq)):
        return 0
    line = node.line
    for seg in path:
        if isinstance(node, Map) and isinstance(seg, str) and seg in node.key_lines:
            line = node.key_lines[seg]
            node = node[seg]
        elif isinstance(node, Seq) and isinstance(seg, int) and 0 <= seg < len(node.item_lines):
            line = node.item_lines[seg]
            node = node[seg]
        else:
            if isinstance(node, (Map, Seq)):
                return node.line
            return line
    return line


def grouped(count: int) -> str:
    """A whole number as this context's language groups it: ``100.000`` in
    Vietnamese, ``100,000`` in English."""
    return f"{count:,}" if language() == "en" else number(count, 0)


def describe_value(value: Any) -> str:
    """A value as it was written, in words, for a message: ``the number 5``,
    ``the text «Đơn»``, ``a list``."""
    if value is None:
        return t("nothing (null)")
    if isinstance(value, bool):
        return t("the boolean {value}", value=str(value).lower())
    if isinstance(value, (int, float)):
        return t("the number {value}", value=value)
    if isinstance(value, str):
        return t("the text «{value}»", value=value)
    if isinstance(value, list):
        return t("a list")
    if isinstance(value, dict):
        return t("a mapping")
    return repr(value)


def to_plain(value: Any) -> Any:
    """A deep copy made of plain ``dict`` and ``list`` (no line records)."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
