"""Writing definitions as YAML that reads like a person wrote it.

:func:`dump` writes new data in the house style (short lists and the items
of ``roles``, ``documents`` and ``fields`` on one line each, steps as blocks).
Given the text the data came from, it edits that text's YAML tree in place
instead (ruamel.yaml's round trip), so the key order, comments, quoting and
layout of everything that did not change stay as the author wrote them.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

_FLOW_ITEMS = frozenset({"roles", "documents", "fields", "fees"})
_BREAKS = frozenset("\x85\u2028\u2029\r\n")


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _flow_seq(items: list[Any]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _safe_text(text: str) -> str:
    """``text`` as it must be written to read back the same with libyaml:
    quoted with escapes when it holds characters libyaml reads as line
    breaks or cannot take raw, or starts like an indicator ruamel would
    leave plain."""
    risky = any(ch in _BREAKS or (unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch not in "\t") for ch in text)
    if risky or text[:1] in ("?", ":", "-") or text != text.strip():
        quoted: str = DoubleQuotedScalarString(text)
        return quoted
    return text


def _styled(value: Any, key: str | None = None, in_flow_list: bool = False) -> Any:
    """Plain data as ruamel nodes in the house style."""
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, Mapping):
        node = CommentedMap()
        for k, v in value.items():
            node[_safe_text(k)] = _styled(v, k)
        if in_flow_list or key in ("when", "cost_model") or (key not in ("outcomes",) and _is_small(value)):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        if all(not isinstance(v, (Mapping, list)) for v in value):
            items = [_safe_text(v) if isinstance(v, str) else v for v in value]
            return _flow_seq(items) if key != "legal_basis" else CommentedSeq(items)
        seq = CommentedSeq(_styled(v, None, in_flow_list=key in _FLOW_ITEMS) for v in value)
        return seq
    return value


def _is_small(value: Mapping[str, Any]) -> bool:
    return len(value) <= 2 and all(not isinstance(v, (Mapping, list)) for v in value.values())


def _same_scalar(old: Any, new: Any) -> bool:
    return (
        (type(old) is type(new) and old == new)
        or (isinstance(old, str) and isinstance(new, str) and str(old) == new)
        or (
            isinstance(old, (int, float))
            and isinstance(new, (int, float))
            and not isinstance(old, bool)
            and not isinstance(new, bool)
            and old == new
        )
    )


def _reconcile(old: Any, new: Any, key: str | None = None) -> Any:
    """``old`` (a ruamel node) edited to hold ``new`` (plain data)."""
    if isinstance(old, CommentedMap) and isinstance(new, Mapping):
        for k in [k for k in old if k not in new]:
            del old[k]
        previous: str | None = None
        for k, v in new.items():
            if k in old:
                old[k] = _reconcile(old[k], v, k)
            else:
                position = list(old).index(previous) + 1 if previous is not None else 0
                old.insert(position, _safe_text(k), _styled(v, k))
            previous = k
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        if all(isinstance(v, Mapping) and "id" in v for v in new):
            by_id = {item.get("id"): item for item in old if isinstance(item, CommentedMap)}
            items = [
                _reconcile(by_id[v["id"]], v) if v["id"] in by_id else _styled(v, None, in_flow_list=key in _FLOW_ITEMS)
                for v in new
            ]
            if [id(i) for i in items] != [id(i) for i in old]:
                kept = {id(i) for i in items}
                if all(id(i) in kept for i in old) and len(items) == len(old):
                    old[:] = items
                else:
                    # Comments attached to removed items would land on the
                    # wrong neighbours: keep the sequence's own comment only.
                    ca = old.ca
                    for idx in list(ca.items):
                        del ca.items[idx]
                    old[:] = items
            return old
        if len(old) == len(new) and all(_same_scalar(a, b) for a, b in zip(old, new, strict=True)):
            return old
        replacement = CommentedSeq(_styled(v) for v in new)
        if old.fa.flow_style():
            replacement.fa.set_flow_style()
        return replacement
    if _same_scalar(old, new):
        return old
    return _styled(new, key)


def dump(data: Mapping[str, Any], like_text: str | None = None) -> str:
    """YAML text for ``data``; edits ``like_text`` in place when given."""
    y = _yaml()
    if like_text is not None:
        tree = y.load(like_text)
        tree = _reconcile(tree, data) if isinstance(tree, CommentedMap) else _styled(dict(data))
    else:
        tree = _styled(dict(data))
        tree.fa.set_block_style()
    out = io.StringIO()
    y.dump(tree, out)
    return out.getvalue()
