"""Loading a definition: bytes -> YAML -> checked, indexed :class:`Definition`.

Every problem in a file is reported at once, each at the line of the key or
list item that is wrong, with its YAML path. Checking happens in layers:

1. the text: UTF-8, YAML syntax, duplicate keys, alias expansion;
2. the shape of each part (:mod:`procedures.schema`), item by item, so one
   broken step does not hide the errors of the others;
3. what needs the whole definition: ids that resolve and are unique, roles,
   conditions against fields, outcomes, producers;
4. the ``after`` graph: cycles first; then, only when every id resolves and
   there is no cycle, the rules about ancestors (inputs, returns).
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path as FsPath
from typing import Any

import networkx as nx
from pydantic import BaseModel, ValidationError

from . import conditions
from .durations import parse_hours
from .errors import DefinitionError, Problem, ReadError
from .messages import t
from .model import (
    BUILTIN_REGISTRIES,
    Copies,
    CostModel,
    Definition,
    Document,
    Effect,
    Fee,
    FieldDef,
    Labels,
    Role,
    Step,
)
from .schema import (
    CODE_PATTERN,
    FORMAT,
    ITEM_MODELS,
    CopiesSpec,
    CostModelSpec,
    DefinitionSpec,
    DocumentSpec,
    FeeSpec,
    FieldSpec,
    RegistrySpec,
    RoleSpec,
    StepSpec,
    code_rule,
    shape_message,
)
from .yamlio import Map, Path, Seq, YamlProblems, describe_value, format_path, line_of, load_yaml, to_plain

_NESTED_MODELS: dict[str, type[BaseModel]] = {
    "cost_model": CostModelSpec,
    "fees": FeeSpec,
    "registries": RegistrySpec,
    "copies": CopiesSpec,
    **ITEM_MODELS,
}
_CODE = re.compile(CODE_PATTERN)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ABOLISHED_EMPTY = ("roles", "documents", "steps", "fields")
_REQUIRED_LISTS = ("roles", "documents", "steps")


def shape() -> str:
    """What a definition file holds, for a file that holds something else."""
    return t("a definition is a YAML mapping with keys format, code, name, version, roles, documents, steps")


SHAPE = shape
"""The former name of :func:`shape`, which :mod:`procedures.amendment` still uses."""


def load_path(path: str | os.PathLike[str]) -> Definition:
    """Read and check one definition file.

    Raises :class:`ReadError` when the file cannot be read and
    :class:`DefinitionError` when it is not a valid definition.
    """
    source = os.fspath(path)
    return load_bytes(read_bytes(source), source)


def read_bytes(source: str) -> bytes:
    """The bytes of file ``source``; :class:`ReadError` when it cannot be read."""
    try:
        return FsPath(source).read_bytes()
    except IsADirectoryError:
        raise ReadError(source, t("is a directory, not a definition file")) from None
    except FileNotFoundError:
        raise ReadError(source, t("no such file")) from None
    except OSError as exc:
        raise ReadError(source, t("cannot be read: {reason}", reason=exc.strerror or str(exc))) from None


def decode(raw: bytes, source: str) -> str:
    """``raw`` as UTF-8 text; :class:`DefinitionError` at the line of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        bad = f"0x{raw[exc.start]:02X}"
        message = t("the file is not UTF-8 text: byte {byte} at offset {offset}", byte=bad, offset=exc.start)
        raise DefinitionError(source, [Problem(line, "", message)]) from None


def load_bytes(raw: bytes, source: str = "<bytes>") -> Definition:
    return load_text(decode(raw, source), source)


def load_text(text: str, source: str = "<text>") -> Definition:
    root, notes = parse_text(text, source, shape)
    return build(root, source, notes)


def parse_text(text: str, source: str, shape: Callable[[], str]) -> tuple[Any, list[Problem]]:
    """The composed YAML of ``text`` (a mapping or list with lines) and the
    warnings found reading it; ``shape()`` says what the file should hold
    when it holds no document. Raises :class:`DefinitionError`."""
    text = text.removeprefix("\ufeff")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: a str made from bytes that were no UTF-8
        line = text.count("\n", 0, exc.start) + 1
        bad = f"U+{ord(text[exc.start]):04X}"
        message = t("the text holds {character}, a lone surrogate, which is no character", character=bad)
        raise DefinitionError(source, [Problem(line, "", message)]) from None
    notes: list[Problem] = []
    try:
        root = load_yaml(text, notes=notes)
    except YamlProblems as exc:
        raise DefinitionError(source, exc.problems) from None
    if not isinstance(root, (Map, Seq)):
        # Nothing, or one bare value: no node of ours carries a line, so say
        # where the document starts (line 1 of a file of blanks and comments).
        line = next((n for n, row in enumerate(text.splitlines(), 1) if row.strip() and not row.lstrip().startswith("#")), 1)
        message = (
            t("the file holds no YAML document (it is empty or only comments); {shape}", shape=shape())
            if root is None
            else t("the file holds one bare value; {shape}", shape=shape())
        )
        raise DefinitionError(source, [Problem(line, "", message)])
    return root, notes


def check_shape(
    root: Any, source: str, model: type[BaseModel], nested: Mapping[str, type[BaseModel]]
) -> tuple[Any, list[Problem]]:
    """``root`` checked against ``model`` (keys and types), as a definition's
    parts are: the model instance (None when broken) and each problem at its
    line. ``nested`` names the model of each key that holds a mapping, for the
    allowed keys an unknown key's message lists."""
    checker = _Checker(root, source, [], nested)
    return checker._validate((), model, root), checker.problems


def build(root: Any, source: str = "<data>", notes: list[Problem] | None = None) -> Definition:
    """Check composed YAML (or plain data) and build the definition.

    ``notes`` are warnings found while reading the text; they are kept with
    the definition's own warnings."""
    return _Checker(root, source, notes or []).run()


def _text(value: Any) -> bool:
    """Whether ``value`` is a text with something in it."""
    return isinstance(value, str) and bool(value.strip())


class _Checker:
    def __init__(
        self, root: Any, source: str, notes: list[Problem], nested: Mapping[str, type[BaseModel]] = _NESTED_MODELS
    ) -> None:
        self.root = root
        self.nested = nested
        self.source = source
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = list(notes)
        # Rules about ancestors run only when every id resolves.
        self.unresolved = False
        self._positions: dict[str, int] | None = None

    def unknown(self, path: Path, message: str) -> None:
        """A reference to an id that does not exist."""
        self.unresolved = True
        self.add(path, message)

    def add(self, path: Path, message: str) -> None:
        self.problems.append(Problem(line_of(self.root, path), format_path(path), message))

    def fail(self) -> DefinitionError:
        return DefinitionError(self.source, self.problems)

    # -- what messages call the parts: steps by position and name, the rest by name
    def _raw(self, key: str, i: int) -> Mapping[str, Any]:
        items = self.root.get(key) if isinstance(self.root, Mapping) else None
        item = items[i] if isinstance(items, list) and 0 <= i < len(items) else None
        return item if isinstance(item, Mapping) else {}

    def step(self, i: int) -> str:
        """Item ``i`` of ``steps``, as messages name it: ``bước 3 «Xét hồ sơ»``."""
        name = self._raw("steps", i).get("name")
        if _text(name):
            return t("step {position} «{name}»", position=i + 1, name=name)
        return t("step {position}", position=i + 1)

    def position(self, sid: str) -> int:
        """The index of the first step whose id is ``sid``, -1 if none."""
        if self._positions is None:
            self._positions = {}
            raw = self.root.get("steps") if isinstance(self.root, Mapping) else None
            for n, item in enumerate(raw if isinstance(raw, list) else []):
                if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                    self._positions.setdefault(item["id"], n)
        return self._positions.get(sid, -1)

    def document(self, did: str) -> str:
        """A declared document's name (its id when it has none)."""
        raw = self.root.get("documents") if isinstance(self.root, Mapping) else None
        for item in raw if isinstance(raw, list) else []:
            if isinstance(item, Mapping) and item.get("id") == did and _text(item.get("name")):
                return str(item["name"])
        return did

    def item(self, key: str, i: int) -> str:
        """Item ``i`` of the list ``key`` (steps, roles, documents, fields), as messages name it."""
        if key == "steps":
            return self.step(i)
        raw = self._raw(key, i)
        name = raw.get("name") if _text(raw.get("name")) else raw.get("id")
        if key == "roles":
            return t("role «{name}»", name=name)
        if key == "documents":
            return t("document «{name}»", name=name)
        return t("field «{name}»", name=name)

    # -- layer 2: shapes -------------------------------------------------
    def _shape_problem(self, prefix: Path, model: type[BaseModel], err: Any) -> None:
        loc = tuple(err["loc"])
        owner = model
        for seg in reversed(loc[:-1]):
            if isinstance(seg, str) and seg in self.nested:
                owner = self.nested[seg]
                break
        allowed = [f.alias or name for name, f in owner.model_fields.items()]
        self.add((*prefix, *loc), shape_message(err, allowed))

    def _validate(self, prefix: Path, model: type[BaseModel], data: Any) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            for err in errors:
                self._shape_problem(prefix, model, err)
        return None

    def _salvage(self, model: type[BaseModel], data: Any) -> Any:
        """The item without its broken keys, when that still makes sense, so
        the rest of it can be checked too. Never used to build a definition."""
        if not isinstance(data, Mapping):
            return None
        try:
            model.model_validate(data)
        except ValidationError as exc:
            bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
            try:
                return model.model_validate({k: v for k, v in data.items() if k not in bad})
            except ValidationError:
                return None
        return None  # pragma: no cover - only called on items that failed

    # -- the whole run ---------------------------------------------------
    def run(self) -> Definition:
        root = self.root
        if not isinstance(root, Mapping):
            self.add((), shape())
            raise self.fail()
        fmt = root.get("format")
        if "format" in root and fmt != FORMAT:
            message = t(
                "format must be «{format}»; {value} is not a format tinhgon reads", format=FORMAT, value=describe_value(fmt)
            )
            self.add(("format",), message)
            raise self.fail()

        top = dict(root)
        for key in ITEM_MODELS:
            if isinstance(top.get(key), list):
                top[key] = []
        spec = self._validate((), DefinitionSpec, top)

        abolished = "abolished" in root
        self._top_level(root, abolished)
        items: dict[str, list[tuple[int, Any]]] = {}
        known_ids: dict[str, dict[str, int]] = {}
        broken = False
        for key, model in ITEM_MODELS.items():
            raw_list = root.get(key)
            items[key] = []
            known_ids[key] = {}
            if key not in root and key in _REQUIRED_LISTS and not abolished:
                self.add((key,), t("missing required key «{key}»", key=key))
                broken = True
            if not isinstance(raw_list, list):
                broken = broken or key in root
                continue
            if abolished and raw_list:
                self.add(
                    (key,),
                    t(
                        "this version abolishes the procedure, so it has no {key}: leave the list empty or remove the key «{key}»",
                        key=key,
                    ),
                )
            for i, raw in enumerate(raw_list):
                checked = self._validate((key, i), model, raw)
                raw_id = raw.get("id") if isinstance(raw, Mapping) else None
                if isinstance(raw_id, str):
                    if raw_id in known_ids[key]:
                        first = known_ids[key][raw_id]
                        line = line_of(root, (key, first))
                        message = t(
                            "duplicate id «{id}»: {first} (line {line}) has it already",
                            id=raw_id,
                            first=self.item(key, first),
                            line=line,
                        )
                        self.add((key, i, "id"), message)
                    else:
                        known_ids[key][raw_id] = i
                if checked is None:
                    broken = True
                    checked = self._salvage(model, raw)
                if checked is not None:
                    items[key].append((i, checked))

        roles = self._roles(items["roles"])
        fields = self._fields(items["fields"])
        registries = self._registries(root.get("registries"))
        documents = self._documents(items["documents"], registries)
        steps_raw = root.get("steps")
        if isinstance(steps_raw, list) and not steps_raw and not abolished:
            self.add(("steps",), t("a procedure has at least one step"))
        steps = self._steps(items["steps"], known_ids, fields, roles)
        self._producers(items["steps"], documents, known_ids)

        if spec is not None and spec.based_on is not None and spec.based_on >= spec.version:
            message = t(
                "based_on ({based_on}) must name an earlier version than version {version}",
                based_on=spec.based_on,
                version=spec.version,
            )
            self.add(("based_on",), message)

        complete = not broken and not self.unresolved
        if isinstance(steps_raw, list) and len(steps) == len(steps_raw) and complete:
            self._graph_rules(steps, documents)
        else:
            for i, step in steps:
                if step.outcomes and not any(e.kind == "proceed" for _, e in step.outcomes):
                    message = t(
                        "{step} has no outcome that proceeds, so what comes after it can never be reached and no case could complete",
                        step=self.step(i),
                    )
                    self.add(("steps", i, "outcomes"), message)
        if self.problems or spec is None or broken:
            if not self.problems:  # pragma: no cover - every broken item reported a problem
                self.add((), t("the definition is not valid"))
            raise self.fail()
        return self._definition(spec, roles, fields, documents, steps, registries)

    # -- layer 3: parts ----------------------------------------------------
    def _top_level(self, root: Mapping[str, Any], abolished: bool) -> None:
        """What the shape models cannot say about the top-level keys; read
        from the raw data, so that one broken part hides none of these."""
        day = root.get("in_force_from")
        if isinstance(day, str):
            try:
                if not _DATE.fullmatch(day):
                    raise ValueError(day)
                datetime.date.fromisoformat(day)
            except ValueError:
                self.add(
                    ("in_force_from",),
                    t("in_force_from is a real day, written YYYY-MM-DD (e.g. 2025-07-01); got «{day}»", day=day),
                )
        reason = root.get("abolished")
        if isinstance(reason, str) and not reason.strip():
            self.add(("abolished",), t("abolished gives the reason and the act that abolishes the procedure; it is empty here"))
        target = root.get("merged_into")
        if "merged_into" in root and not abolished:
            self.add(
                ("merged_into",), t("merged_into goes only with abolished: only an abolished procedure is merged into another")
            )
        if isinstance(target, str):
            code = root.get("code")
            if not _CODE.fullmatch(target):
                message = t(
                    "merged_into gives the code of the procedure that replaces this one, a code of {rule}; got «{code}»",
                    rule=code_rule(),
                    code=target,
                )
                self.add(("merged_into",), message)
            elif isinstance(code, str) and target.casefold() == code.casefold():
                message = t(
                    "procedure «{code}» cannot be merged into itself; merged_into gives the code of another procedure", code=code
                )
                self.add(("merged_into",), message)

    def _registries(self, raw: Any) -> dict[str, str]:
        """Registry id -> name: the built-in ones, then those declared (which
        may rename a built-in one). Shapes were checked with the top level."""
        out = dict(BUILTIN_REGISTRIES)
        if not isinstance(raw, list):
            return out
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                continue
            rid = item["id"]
            if rid in seen:
                line = line_of(self.root, ("registries", seen[rid]))
                self.add(
                    ("registries", i, "id"),
                    t("registry «{registry}» is declared twice; first at line {line}", registry=rid, line=line),
                )
                continue
            seen[rid] = i
            if isinstance(item.get("name"), str):
                out[rid] = item["name"]
        return out

    def _roles(self, items: list[tuple[int, RoleSpec]]) -> dict[str, Role]:
        out: dict[str, Role] = {}
        applicant: tuple[int, RoleSpec] | None = None
        for i, r in items:
            if r.kind == "applicant":
                if applicant is not None:
                    message = t(
                        "a second applicant role; role «{first}» (line {line}) is already the applicant, and a procedure has at most one",
                        first=applicant[1].name,
                        line=line_of(self.root, ("roles", applicant[0])),
                    )
                    self.add(("roles", i, "kind"), message)
                else:
                    applicant = (i, r)
            out.setdefault(r.id, Role(r.id, r.name, r.kind, r.unit))
        return out

    def _fields(self, items: list[tuple[int, FieldSpec]]) -> dict[str, FieldDef]:
        out: dict[str, FieldDef] = {}
        for i, f in items:
            values, labels = self._values(("fields", i, "values"), f.values)
            called = f.name or f.id
            if f.type == "enum":
                if not f.values:
                    self.add(
                        ("fields", i), t("field «{field}» is of type enum: list its allowed values under values", field=called)
                    )
                elif values is not None and len(set(values)) != len(values):
                    twice = next(v for n, v in enumerate(values) if v in values[:n])
                    self.add(("fields", i, "values"), t("value «{value}» is listed twice", value=twice))
            elif f.values is not None:
                message = t("values goes with type enum; field «{field}» is of type {type}", field=called, type=f.type)
                self.add(("fields", i, "values"), message)
            out.setdefault(f.id, FieldDef(f.id, f.type, f.name, values, f.required, labels))
        return out

    def _values(self, path: Path, raw: Any) -> tuple[tuple[str, ...] | None, Labels]:
        """An enum field's values and the labels written beside them; None
        when they are not a list of what values may be."""
        if raw is None:
            return None, ()
        if not isinstance(raw, list):
            self.add(path, t("expected {expected}, got {value}", expected=t("a list"), value=describe_value(raw)))
            return None, ()
        values: list[str] = []
        labels: list[tuple[str, str]] = []
        whole = True
        for j, item in enumerate(raw):
            at = (*path, j)
            if isinstance(item, str):
                values.append(item)
            elif isinstance(item, Mapping):
                for key in item:
                    if key not in ("value", "label"):
                        message = t("key «{key}» is not used here; a value written long is {{value: ..., label: ...}}", key=key)
                        self.add((*at, key), message)
                        whole = False
                value, label = item.get("value"), item.get("label")
                if not isinstance(value, str):
                    where = (*at, "value") if "value" in item else at
                    self.add(where, t("value is the text the case data holds; got {value}", value=describe_value(value)))
                    whole = False
                elif not isinstance(label, str) or not label.strip():
                    where = (*at, "label") if "label" in item else at
                    message = t(
                        "label is what people read for the value «{value}» and must not be empty; got {label}",
                        value=value,
                        label=describe_value(label),
                    )
                    self.add(where, message)
                    whole = False
                else:
                    values.append(value)
                    labels.append((value, label))
            else:
                if isinstance(item, (int, float)) and not isinstance(item, bool):
                    message = t(
                        "expected text or {{value, label}}, got {value} (put it in quotes to keep it as text)",
                        value=describe_value(item),
                    )
                else:
                    message = t("expected text or {{value, label}}, got {value}", value=describe_value(item))
                self.add(at, message)
                whole = False
        return (tuple(values) if whole else None), tuple(labels)

    def _documents(self, items: list[tuple[int, DocumentSpec]], registries: Mapping[str, str]) -> dict[str, Document]:
        out: dict[str, Document] = {}
        for i, d in items:
            if d.registry is not None and d.from_ is None:
                message = t(
                    "document «{document}» is produced by a step, so it has no registry: registry goes with from: applicant or from: registry",
                    document=d.name,
                )
                self.add(("documents", i, "registry"), message)
            elif d.registry is not None and d.registry not in registries:
                message = t(
                    "registry «{registry}» is neither built into the format nor declared: add {{id: {registry}, name: ...}} under registries",
                    registry=d.registry,
                )
                self.add(("documents", i, "registry"), message)
            copies = None
            if d.copies is not None:
                c = d.copies
                copies = Copies(c.originals, c.copies, c.certified, frozenset(c.model_fields_set))
            out.setdefault(
                d.id,
                Document(d.id, d.name, d.from_, d.registry, d.prep_hours, d.prep_cost, d.deliverable, copies, d.present_only),
            )
        return out

    def _outcomes(self, path: Path, raw: Any, step_ids: Mapping[str, int]) -> tuple[tuple[tuple[str, Effect], ...], Labels]:
        """A step's outcomes, and the labels of those written long."""
        if raw is None:
            return (("done", Effect("proceed")),), ()
        if not isinstance(raw, Mapping):
            message = t(
                "outcomes is a mapping of decision name -> proceed, reject or {{return: STEP}}; got {value}",
                value=describe_value(raw),
            )
            self.add(path, message)
            return (), ()
        out: list[tuple[str, Effect]] = []
        labels: list[tuple[str, str]] = []
        for name, value in raw.items():
            at = (*path, name)
            if not isinstance(name, str) or not name.strip():
                self.add(at, t("an outcome needs a name"))
                continue
            if isinstance(value, Mapping) and ("effect" in value or "label" in value):
                value = self._long_outcome(at, value)
                if value is None:
                    continue
                if "label" in value:
                    labels.append((name, value["label"]))
                value = value["effect"] if "effect" in value else {"return": value["return"]}
            if value in ("proceed", "reject"):
                out.append((name, Effect(value)))
            elif isinstance(value, Mapping) and set(value) == {"return"}:
                target = value["return"]
                if not isinstance(target, str):
                    self.add(at, t("return names a step id; got {value}", value=describe_value(target)))
                elif target not in step_ids:
                    self.unknown(at, t("unknown step «{step}» to return to", step=target))
                else:
                    out.append((name, Effect("return", target)))
            else:
                message = t(
                    "outcome «{outcome}» must be proceed, reject or {{return: STEP}}; got {value}",
                    outcome=name,
                    value=describe_value(value),
                )
                self.add(at, message)
        if not raw:
            self.add(path, t("outcomes is empty; a step needs at least one outcome that proceeds"))
        return tuple(out), tuple(labels)

    def _long_outcome(self, at: Path, value: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """An outcome written long (``{effect: ..., label: ...}`` or
        ``{return: STEP, label: ...}``), or None when it is not well formed."""
        good = True
        name = at[-1]
        for key in value:
            if key not in ("effect", "return", "label"):
                message = t(
                    "key «{key}» is not used in an outcome; write {{effect: proceed, label: ...}}, "
                    "{{effect: reject, label: ...}} or {{return: STEP, label: ...}}",
                    key=key,
                )
                self.add((*at, key), message)
                good = False
        if "effect" in value and "return" in value:
            message = t(
                "outcome «{outcome}» has effect or return, not both; write {{effect: proceed, label: ...}}, "
                "{{effect: reject, label: ...}} or {{return: STEP, label: ...}}",
                outcome=name,
            )
            self.add(at, message)
            good = False
        elif "effect" not in value and "return" not in value:
            message = t(
                "outcome «{outcome}» is written long, so it needs effect or return; write {{effect: proceed, label: ...}}, "
                "{{effect: reject, label: ...}} or {{return: STEP, label: ...}}",
                outcome=name,
            )
            self.add(at, message)
            good = False
        elif "effect" in value and value["effect"] not in ("proceed", "reject"):
            message = t(
                "effect is proceed or reject (to send back, write {{return: STEP, label: ...}}); got {value}",
                value=describe_value(value["effect"]),
            )
            self.add((*at, "effect"), message)
            good = False
        if "label" in value and not _text(value["label"]):
            message = t(
                "label is what people read for the outcome «{outcome}» and must not be empty; got {label}",
                outcome=name,
                label=describe_value(value["label"]),
            )
            self.add((*at, "label"), message)
            good = False
        return value if good else None

    def _steps(
        self,
        items: list[tuple[int, StepSpec]],
        known: dict[str, dict[str, int]],
        fields: dict[str, FieldDef],
        roles: dict[str, Role],
    ) -> list[tuple[int, Step]]:
        field_types = {f.id: (f.type, f.values) for f in fields.values()}
        field_names = {f.id: f.name for f in fields.values() if f.name}
        step_ids = known["steps"]
        steps_list = self.root.get("steps") if isinstance(self.root, Mapping) else None
        out: list[tuple[int, Step]] = []
        for i, s in items:
            base = ("steps", i)
            if s.role not in known["roles"]:
                self.unknown((*base, "role"), t("unknown role «{role}»: declare it under roles", role=s.role))
            for key in ("inputs", "outputs"):
                seen: set[str] = set()
                for j, doc in enumerate(getattr(s, key)):
                    if doc not in known["documents"]:
                        self.unknown(
                            (*base, key, j), t("unknown document «{document}»: declare it under documents", document=doc)
                        )
                    elif doc in seen:
                        self.add((*base, key, j), t("document «{document}» is listed twice", document=self.document(doc)))
                    seen.add(doc)
            if s.after is None:
                prev = steps_list[i - 1] if isinstance(steps_list, list) and i > 0 else None
                prev_id = prev.get("id") if isinstance(prev, Mapping) else None
                after: tuple[str, ...] = (prev_id,) if isinstance(prev_id, str) else ()
            else:
                after = tuple(s.after)
                seen = set()
                for j, a in enumerate(s.after):
                    if a not in step_ids:
                        self.unknown((*base, "after", j), t("unknown step «{step}»", step=a))
                    elif a in seen:
                        self.add((*base, "after", j), t("{step} is listed twice", step=self.step(step_ids[a])))
                    seen.add(a)
            hours: dict[str, float] = {}
            for key in ("duration", "effort"):
                text = getattr(s, key)
                if text is not None:
                    try:
                        hours[key] = parse_hours(text)
                    except ValueError as exc:
                        self.add((*base, key), str(exc))
            when = None
            if s.when is not None:
                try:
                    when = conditions.parse(s.when, field_types, field_names)
                except conditions.ConditionError as exc:
                    for cp in exc.problems:
                        self.add((*base, "when", *cp.path), cp.message)
            outcomes, labels = self._outcomes((*base, "outcomes"), s.outcomes, step_ids)
            if s.share is not None and s.when is None:
                message = t("share goes only with when: a step without a condition runs in every case, its share is 1")
                self.add((*base, "share"), message)
            duration = hours.get("duration", 0.0)
            out.append(
                (
                    i,
                    Step(
                        id=s.id,
                        name=s.name,
                        role=s.role,
                        kind=s.kind,
                        duration=duration,
                        effort=hours.get("effort", duration),
                        visit=s.visit,
                        fee=s.fee,
                        inputs=tuple(s.inputs),
                        outputs=tuple(s.outputs),
                        after=after,
                        when=when,
                        outcomes=outcomes,
                        share=s.share,
                        outcome_labels=labels,
                    ),
                )
            )
        return out

    def _producers(
        self, items: list[tuple[int, StepSpec]], documents: dict[str, Document], known: dict[str, dict[str, int]]
    ) -> None:
        produced_by: dict[str, int] = {}
        for i, s in items:
            for j, doc in enumerate(s.outputs):
                d = documents.get(doc)
                if d is None:
                    continue
                if d.source is not None:
                    message = t(
                        "document «{document}» is from: {source}; a step cannot also produce it", document=d.name, source=d.source
                    )
                    self.add(("steps", i, "outputs", j), message)
                elif doc in produced_by:
                    message = t(
                        "document «{document}» is already produced by {step}; a document has one producer",
                        document=d.name,
                        step=self.step(produced_by[doc]),
                    )
                    self.add(("steps", i, "outputs", j), message)
                else:
                    produced_by[doc] = i
        # A step whose shape is broken was reported already; what it lists
        # as outputs still counts, so that one error does not breed another.
        raw_steps = self.root.get("steps")
        checked = {i for i, _ in items}
        if isinstance(raw_steps, list):
            for i, raw in enumerate(raw_steps):
                if i not in checked and isinstance(raw, Mapping) and isinstance(raw.get("outputs"), list):
                    for doc in raw["outputs"]:
                        if isinstance(doc, str):
                            produced_by.setdefault(doc, i)
        else:
            return
        for doc_id, i in known["documents"].items():
            d = documents.get(doc_id)
            if d is not None and d.source is None and doc_id not in produced_by:
                message = t(
                    "document «{document}» has no from and no step produces it; add from: applicant or from: registry, "
                    "or list it in a step's outputs",
                    document=d.name,
                )
                self.add(("documents", i), message)

    # -- layer 4: the after graph -------------------------------------------
    def _graph_rules(self, steps: list[tuple[int, Step]], documents: dict[str, Document]) -> None:
        by_id = {s.id: (i, s) for i, s in steps}
        graph = nx.DiGraph()
        graph.add_nodes_from(by_id)
        graph.add_edges_from((a, s.id) for _, s in steps for a in s.after)
        cyclic = [c for c in nx.strongly_connected_components(graph) if len(c) > 1 or any(graph.has_edge(n, n) for n in c)]
        for component in cyclic:
            cycle_edges = nx.find_cycle(graph.subgraph(component))
            on_cycle = {(u, v) for u, v in cycle_edges}
            names = [self.step(by_id[u][0]) for u, _ in cycle_edges]
            message = t("these steps wait for each other in a cycle: {steps}", steps=" → ".join([*names, names[0]]))
            for sid in sorted({v for _, v in on_cycle}, key=lambda x: by_id[x][0]):
                i, step = by_id[sid]
                raw_after = self.root["steps"][i].get("after")
                if raw_after is None:
                    continue
                for j, a in enumerate(raw_after):
                    if (a, sid) in on_cycle:
                        self.add(("steps", i, "after", j), message)
        if cyclic:
            return
        position = {sid: n for n, sid in enumerate(by_id)}
        anc: dict[str, int] = {}
        for sid in nx.topological_sort(graph):
            mask = 0
            for a in by_id[sid][1].after:
                mask |= anc[a] | (1 << position[a])
            anc[sid] = mask

        def comes_before(a: str, b: str) -> bool:
            return bool(anc[b] >> position[a] & 1)

        producer = {doc: s.id for _, s in steps for doc in s.outputs}
        for i, step in steps:
            for j, doc in enumerate(step.inputs):
                d = documents.get(doc)
                if d is None or d.source is not None:
                    continue
                made_by = producer.get(doc)
                if made_by is None:
                    message = t(
                        "input «{document}» is not available: it is not brought by the applicant, not fetched from a registry, "
                        "and no step produces it",
                        document=d.name,
                    )
                elif made_by == step.id:
                    message = t(
                        "input «{document}» is produced by {step} itself; a step cannot read what it has not yet made",
                        document=d.name,
                        step=self.step(i),
                    )
                elif not comes_before(made_by, step.id):
                    message = t(
                        "input «{document}» is produced by {producer}, which does not come before {step}; "
                        "add «{id}» to its after (directly or through other steps)",
                        document=d.name,
                        producer=self.step(by_id[made_by][0]),
                        step=self.step(i),
                        id=made_by,
                    )
                else:
                    continue
                self.add(("steps", i, "inputs", j), message)
            for name, target in step.returns:
                if not comes_before(target, step.id):
                    message = t(
                        "outcome «{outcome}» of {step} returns to {target}, which does not come before it; "
                        "a return goes back to an earlier step",
                        outcome=name,
                        step=self.step(i),
                        target=self.step(by_id[target][0]),
                    )
                    self.add(("steps", i, "outcomes", name), message)
            if step.outcomes and not any(e.kind == "proceed" for _, e in step.outcomes):
                self._no_proceed(i, step, graph)

    def _no_proceed(self, i: int, step: Step, graph: nx.DiGraph) -> None:
        later = sorted(self.position(sid) for sid in nx.descendants(graph, step.id))
        if later:
            message = t(
                "{step} has no outcome that proceeds, so these steps can never be reached: {blocked}; and no case could complete",
                step=self.step(i),
                blocked=", ".join(self.step(n) for n in later),
            )
        else:
            message = t("{step} has no outcome that proceeds, so no case could ever complete", step=self.step(i))
        self.add(("steps", i, "outcomes"), message)

    # -- the result ----------------------------------------------------------
    def _definition(
        self,
        spec: DefinitionSpec,
        roles: dict[str, Role],
        fields: dict[str, FieldDef],
        documents: dict[str, Document],
        steps: list[tuple[int, Step]],
        registries: dict[str, str],
    ) -> Definition:
        warnings = self.warnings
        if spec.abolished is None and not any(d.deliverable for d in documents.values()):
            warnings.append(
                Problem(
                    line_of(self.root, ("documents",)),
                    "documents",
                    t("no document is marked deliverable: true: what does the procedure give the applicant?"),
                )
            )
        cm = spec.cost_model
        raw_cm = self.root.get("cost_model")
        written = frozenset(raw_cm) if isinstance(raw_cm, Mapping) else frozenset()
        return Definition(
            code=spec.code,
            name=spec.name,
            version=spec.version,
            based_on=spec.based_on,
            sector=spec.sector,
            agency=spec.agency,
            scope=spec.scope,
            channels=tuple(spec.channels),
            time_limit=parse_hours(spec.time_limit) if spec.time_limit is not None else None,
            time_limit_text=spec.time_limit,
            annual_volume=spec.annual_volume,
            annual_volume_given="annual_volume" in self.root,
            in_force_from=datetime.date.fromisoformat(spec.in_force_from) if spec.in_force_from is not None else None,
            abolished=spec.abolished,
            merged_into=spec.merged_into,
            business=spec.business,
            registries=registries,
            legal_basis=tuple(spec.legal_basis),
            fees=tuple(Fee(f.name, f.amount) for f in spec.fees),
            cost_model=CostModel(cm.hourly_cost, cm.visit_cost, cm.visit_hours, cm.office_hourly_cost, cm.reason, written),
            roles=tuple(roles.values()),
            fields=tuple(fields.values()),
            documents=tuple(documents.values()),
            steps=tuple(s for _, s in steps),
            data=to_plain(self.root),
            source=self.source,
            warnings=tuple(warnings),
        )
