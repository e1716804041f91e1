"""The ``tinhgon`` command line.

Exit status: 0 when all went well, 2 for input that is invalid or cannot be
read (each problem printed as ``FILE:LINE: PATH: message`` on standard
error), 1 for anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from engine.calendar import CalendarError, WorkingCalendar, load_calendar, local_time
from engine.errors import DatabaseUnavailable
from procedures import (
    Definition,
    DefinitionError,
    ReadError,
    TinhgonError,
    find_all,
    load_path,
    messages,
    metrics,
    simplify,
)
from procedures.analysis import analysis
from procedures.catalog import CatalogFiles, definition_files, load_catalog
from procedures.catalog_file import catalog_path, read_catalog_file
from procedures.compare import compare, time_limit_text
from procedures.compare_view import compare_diagram, compare_page
from procedures.diagram import diagram
from procedures.diagram import write as write_diagram
from procedures.durations import parse_hours
from procedures.messages import t
from procedures.metrics import METRIC_NAMES, change
from procedures.report import report_data, summary_text
from procedures.report_markdown import report_markdown
from procedures.report_page import report_html
from procedures.schema import json_schema
from procedures.simplify import next_version_text

from . import admin_cli, serve_cli
from .render import METRIC_LABELS, RULE_LABELS, metric_text, money, number, percent, table

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class _Out:
    """Where a command writes; errors of input are counted for the exit status."""

    def __init__(self) -> None:
        self.invalid = False
        self.catalogs = CatalogFiles()

    def error(self, exc: DefinitionError | ReadError) -> None:
        self.invalid = True
        print(str(exc), file=sys.stderr)

    @staticmethod
    def warn(defn: Definition) -> None:
        for w in defn.warnings:
            warning = t("warning")
            print(f"{defn.source}:{w.line}: {w.path or '(document)'}: {warning}: {w.message}", file=sys.stderr)

    def load(self, path: str) -> Definition | None:
        """The definition at ``path``, costed under its folder's price list
        (reform-plan.md section 1); None when it or the catalog is broken."""
        try:
            defn = self.catalogs.load(path)
        except (DefinitionError, ReadError) as exc:
            self.error(exc)
            return None
        self.warn(defn)
        return defn

    def status(self) -> int:
        return EXIT_INVALID if self.invalid else EXIT_OK


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1))


def _files(args_files: list[str], out: _Out) -> list[str]:
    files = definition_files(args_files)
    for given in args_files:
        if Path(given).is_dir() and not definition_files([given]):
            print(t("{folder}: no *.yaml definitions in this folder", folder=given), file=sys.stderr)
            out.invalid = True
    return files


# -- validate ------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    out = _Out()
    results = []
    for folder in args.files:
        if Path(folder).is_dir() and catalog_path(folder).is_file():
            results.append(_validate_catalog(str(catalog_path(folder)), out, quiet=args.json))
    for f in _files(args.files, out):
        try:
            defn = load_path(f)
        except (DefinitionError, ReadError) as exc:
            out.error(exc)
            results.append({"file": f, "valid": False, "errors": _problems(exc), "warnings": []})
            continue
        out.warn(defn)
        results.append(
            {
                "file": f,
                "valid": True,
                "code": defn.code,
                "version": defn.version,
                "errors": [],
                "warnings": [w.as_dict() for w in defn.warnings],
            }
        )
        if not args.json:
            print(
                t(
                    "{file}: valid — {code} v{version}, {steps} steps",
                    file=f,
                    code=defn.code,
                    version=defn.version,
                    steps=len(defn.steps),
                )
            )
    if args.json:
        _print_json(results)
    return out.status()


def _problems(exc: DefinitionError | ReadError) -> list[dict[str, object]]:
    if isinstance(exc, DefinitionError):
        return [p.as_dict() for p in exc.problems]
    return [{"line": 0, "path": "", "message": exc.message}]


def _validate_catalog(path: str, out: _Out, *, quiet: bool) -> dict[str, Any]:
    """A folder's ``catalog.yaml``, checked as a catalog (reform-plan.md section 1)."""
    try:
        cat = read_catalog_file(path)
    except (DefinitionError, ReadError) as exc:
        out.error(exc)
        return {"file": path, "valid": False, "catalog": True, "errors": _problems(exc), "warnings": []}
    if not quiet:
        print(t("{file}: valid — a catalog, {programmes} programmes", file=path, programmes=len(cat.programmes)))
    return {"file": path, "valid": True, "catalog": True, "errors": [], "warnings": []}


# -- analyze -------------------------------------------------------------------
def _metrics_rows(before: dict[str, Any], after: dict[str, Any] | None = None) -> list[list[str]]:
    if after is None:
        rows = [[t("Metric"), "", t("Value")]]
        rows += [[k, METRIC_LABELS[k], metric_text(k, before[k])] for k in METRIC_NAMES]
        return rows
    rows = [[t("Metric"), "", t("Before"), t("After"), t("Change"), "%"]]
    for k in METRIC_NAMES:
        c = change(before[k], after[k])
        rows.append(
            [
                k,
                METRIC_LABELS[k],
                metric_text(k, before[k]),
                metric_text(k, after[k]),
                metric_text(k, c["delta"]),
                percent(c["percent"]),
            ]
        )
    return rows


def print_analysis(defn: Definition) -> None:
    m = metrics(defn)
    scope = t("internal") if defn.scope == "internal" else t("public")
    print(f"{defn.code} v{defn.version} — {defn.name} ({scope}; {defn.source})")
    print()
    print(table(_metrics_rows(dict(m)), right=(2,)))
    findings = find_all(defn)
    print()
    print(t("Findings: {count}", count=len(findings)))
    by_rule: dict[str, list[Any]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)
    for rule, group in by_rule.items():
        mode = t("fixed automatically") if group[0].fix == "auto" else t("to consider")
        print(f"\n  {rule} — {RULE_LABELS[rule]} [{mode}] ({len(group)})")
        for f in group:
            about = ", ".join([*f.documents, *f.steps]) if f.rule != "needless-order" else " → ".join(f.steps)
            print(f"    • {about}: {f.message}" if about else f"    • {f.message}")
    result = simplify(defn)
    print()
    if not result.changed:
        print(t("Automatic fixes: nothing to apply."))
        return
    print(
        t(
            "With its {count} automatic fixes applied (tinhgon simplify), v{version} would be:",
            count=len(result.applied),
            version=result.after.version,
        )
    )
    print(table(_metrics_rows(dict(m), dict(metrics(result.after))), right=(2, 3, 4, 5)))


def print_catalog(paths: list[str], out: _Out) -> None:
    catalog = load_catalog(paths)
    for exc in catalog.errors:
        out.error(exc)  # type: ignore[arg-type]
    rows = [
        [
            t("Code"),
            t("Procedure"),
            t("Versions"),
            t("Compliance cost (VND per case)"),
            "%",
            t("Time (working days)"),
            "%",
            t("Processing cost (VND per case)"),
            "%",
        ]
    ]
    totals = {"compliance": [0.0, 0.0], "burden": [0.0, 0.0], "processing": [0.0, 0.0], "annual_processing": [0.0, 0.0]}
    for entry in catalog.entries:
        newest = entry.newest
        label = f"v{entry.oldest.version}→v{newest.version}"
        if newest is entry.oldest:
            newest = simplify(entry.oldest).after
            proposed = t("proposed")
            label = f"v{entry.oldest.version}→({proposed})" if newest is not entry.oldest else f"v{entry.oldest.version}"
        b, a = entry.before, entry.after if newest is entry.newest else metrics(newest)
        name = entry.name if len(entry.name) <= 48 else entry.name[:47] + "…"
        rows.append(
            [
                entry.code,
                name,
                label,
                f"{metric_text('compliance_cost', b['compliance_cost'])} → {metric_text('compliance_cost', a['compliance_cost'])}",
                percent(change(b["compliance_cost"], a["compliance_cost"])["percent"]),
                f"{number(b['lead_time_days'])} → {number(a['lead_time_days'])}",
                percent(change(b["lead_time_days"], a["lead_time_days"])["percent"]),
                f"{metric_text('processing_cost', b['processing_cost'])} → {metric_text('processing_cost', a['processing_cost'])}",
                percent(change(b["processing_cost"], a["processing_cost"])["percent"]),
            ]
        )
        for key, metric in (
            ("compliance", "compliance_cost"),
            ("burden", "annual_burden"),
            ("processing", "processing_cost"),
            ("annual_processing", "annual_processing_cost"),
        ):
            totals[key][0] += float(b[metric])  # type: ignore[literal-required]
            totals[key][1] += float(a[metric])  # type: ignore[literal-required]
    print(t("Catalog: {count} procedures ({paths})", count=len(catalog.entries), paths=", ".join(paths)))
    print()
    print(table(rows, right=(3, 4, 5, 6, 7, 8)))
    print()
    for key, label in (
        ("burden", t("Yearly compliance cost of citizens and units")),
        ("annual_processing", t("Yearly processing cost of the agency")),
    ):
        before, after = totals[key]
        print(f"{label}: {money(before)} → {money(after)} ({percent(change(before, after)['percent'])})")


def cmd_analyze(args: argparse.Namespace) -> int:
    out = _Out()
    is_dir = any(Path(f).is_dir() for f in args.files)
    if args.json:
        results = []
        for f in _files(args.files, out):
            defn = out.load(f)
            if defn is not None:
                results.append(analysis(defn))
        if is_dir or len(args.files) > 1:
            _print_json(results)
        elif results:
            _print_json(results[0])
        return out.status()
    if is_dir:
        print_catalog(args.files, out)
        return out.status()
    for i, f in enumerate(_files(args.files, out)):
        defn = out.load(f)
        if defn is not None:
            if i:
                print("\n" + "─" * 72 + "\n")
            print_analysis(defn)
    return out.status()


# -- simplify ------------------------------------------------------------------
def cmd_simplify(args: argparse.Namespace) -> int:
    out = _Out()
    defn = out.load(args.file)
    if defn is None:
        return out.status()
    result = simplify(defn)
    if result.changed:
        text = next_version_text(result, Path(args.file).read_text(encoding="utf-8-sig"), source=args.output)
        Path(args.output).write_text(text, encoding="utf-8")
    if args.json:
        _print_json(result.report())
        return EXIT_OK
    if not result.changed:
        print(t("{file}: no automatic fix to apply; no new file written.", file=args.file))
    else:
        print(
            t(
                "{file}: {code} v{version} (based on v{based_on}), {count} automatic fixes applied:",
                file=args.output,
                code=defn.code,
                version=result.after.version,
                based_on=defn.version,
                count=len(result.applied),
            )
        )
        for f in result.applied:
            print(f"  • [{f.rule}] {f.message}")
        print()
        print(table(_metrics_rows(dict(metrics(defn)), dict(metrics(result.after))), right=(2, 3, 4, 5)))
    for title, group in (
        (t("Passed over: they would lengthen the lead time"), result.skipped),
        (t("To consider"), result.advice),
    ):
        if group:
            print(f"\n{title} ({len(group)}):")
            for f in group:
                print(f"  • [{f.rule}] {f.message}")
    return EXIT_OK


# -- compare -------------------------------------------------------------------
def _write_compare(a: Definition, b: Definition, output: str) -> None:
    path = Path(output)
    graph = compare_diagram(a, b)
    if path.suffix.lower() == ".html":
        svg = graph.pipe(format="svg", encoding="utf-8")
        path.write_text(compare_page(a, b, svg), encoding="utf-8")
    else:
        write_diagram(graph, path)
    print(t("{file}: compared v{before} → v{after}", file=str(path), before=a.version, after=b.version), file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> int:
    out = _Out()
    a, b = out.load(args.before), out.load(args.after)
    if a is None or b is None:
        return out.status()
    if a.code != b.code:
        print(
            t(
                "tinhgon: warning: {before} is procedure {before_code} and {after} is procedure {after_code}:"
                " this compares two different procedures, not two versions of one",
                before=args.before,
                before_code=a.code,
                after=args.after,
                after_code=b.code,
            ),
            file=sys.stderr,
        )
    result = compare(a, b)
    if args.output:
        _write_compare(a, b, args.output)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"{a.code} v{a.version} ({args.before})  →  {b.code} v{b.version} ({args.after})")
    print()
    print(table(_metrics_rows(dict(result["before"]), dict(result["after"])), right=(2, 3, 4, 5)))
    steps, edges = result["steps"], result["edges"]
    print()
    print(time_limit_text(result["time_limit"], a, b))
    print(t("Steps added: {steps}", steps=", ".join(steps["added"]) or "—"))
    print(t("Steps removed: {steps}", steps=", ".join(steps["removed"]) or "—"))
    print(t("Steps changed: {steps}", steps="—" if not steps["changed"] else ""))
    for c in steps["changed"]:
        print(f"  • {c['id']}: {', '.join(c['fields'])}")
    print(t("Orderings added: {edges}", edges=", ".join(f"{x} → {y}" for x, y in edges["added"]) or "—"))
    print(t("Orderings removed: {edges}", edges=", ".join(f"{x} → {y}" for x, y in edges["removed"]) or "—"))
    return EXIT_OK


# -- diagram -------------------------------------------------------------------
def cmd_diagram(args: argparse.Namespace) -> int:
    out = _Out()
    defn = out.load(args.file)
    if defn is None:
        return out.status()
    graph = diagram(defn, documents=args.documents, full=args.full)
    path = write_diagram(graph, args.output)
    print(
        t("{file}: {code} v{version}, {steps} steps", file=str(path), code=defn.code, version=defn.version, steps=len(defn.steps))
    )
    return EXIT_OK


# -- calendar ------------------------------------------------------------------
def cmd_calendar_due(args: argparse.Namespace) -> int:
    try:
        start = datetime.fromisoformat(args.start)
    except ValueError:
        print(
            t(
                "tinhgon: «{start}» is not an ISO 8601 instant, e.g. 2027-02-03T15:00 (local time) or 2027-02-03T08:00:00Z",
                start=args.start,
            ),
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        hours = parse_hours(args.duration)
    except ValueError as exc:
        print(f"tinhgon: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        calendar = load_calendar(args.calendar) if args.calendar else WorkingCalendar()
    except CalendarError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    try:
        due = calendar.add(start, hours)
    except ValueError as exc:  # a duration that runs past the year 9999
        print(f"tinhgon: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        _print_json({"start": local_time(start).isoformat(), "duration": args.duration, "hours": hours, "due": due.isoformat()})
    else:
        print(due.isoformat())
    return EXIT_OK


# -- report --------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    out = _Out()
    files = _files(args.paths, out)
    if out.invalid or not files:
        return EXIT_INVALID
    catalog = load_catalog(args.paths)
    for exc in catalog.errors:
        print(str(exc), file=sys.stderr)
    if catalog.errors:
        # A plan whose totals leave out a procedure would mislead; fix the file first.
        return EXIT_INVALID
    for entry in catalog.entries:
        out.warn(entry.oldest)
        if entry.newest is not entry.oldest:
            out.warn(entry.newest)
    data = report_data(catalog)
    if args.output:
        path = Path(args.output)
        if path.suffix.lower() not in (".html", ".htm", ".md"):
            print(t("tinhgon: {file}: the report is written as OUT.html or OUT.md", file=str(path)), file=sys.stderr)
            return EXIT_INVALID
        text = report_markdown(data) if path.suffix.lower() == ".md" else report_html(catalog, data)
        path.write_text(text, encoding="utf-8")
        print(t("{file}: a report of {count} procedures", file=str(path), count=len(catalog.entries)), file=sys.stderr)
    if args.json:
        _print_json(data)
    elif args.md:
        print(report_markdown(data), end="")
    elif not args.output:
        print(summary_text(data))
    return EXIT_OK


# -- schema --------------------------------------------------------------------
def cmd_schema(args: argparse.Namespace) -> int:
    _print_json(json_schema())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tinhgon", description=t("Model, analyse and simplify administrative procedures (tinhgon/1 definitions).")
    )
    parser.add_argument(
        "--lang",
        choices=messages.LANGUAGES,
        help=t("the language of messages and help: vi (the default) or en; also $TINHGON_LANG"),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar=t("COMMAND"), parser_class=_Parser)

    p = sub.add_parser("validate", help=t("check definitions and report every error with its line"))
    p.add_argument("files", nargs="+", metavar="FILE", help=t("definition files or folders of *.yaml"))
    p.add_argument("--json", action="store_true", help=t("machine-readable output"))
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("analyze", help=t("metrics, redundancy findings and the savings simplification would bring"))
    p.add_argument("files", nargs="+", metavar="FILE", help=t("definition files, or a folder for a catalog summary"))
    p.add_argument("--json", action="store_true", help=t("the analyze JSON (an array for a folder)"))
    p.set_defaults(handler=cmd_analyze)

    p = sub.add_parser("simplify", help=t("apply the automatic fixes and write the next version"))
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=t("where to write the new version"))
    p.add_argument("--json", action="store_true", help=t("the simplify JSON"))
    p.set_defaults(handler=cmd_simplify)

    p = sub.add_parser("compare", help=t("two versions side by side"))
    p.add_argument("before", metavar="A")
    p.add_argument("after", metavar="B")
    p.add_argument(
        "-o", "--output", metavar="OUT", help=t("also draw both versions in one picture: OUT.svg, .png, .pdf, or a page OUT.html")
    )
    p.add_argument("--json", action="store_true", help=t("the compare JSON"))
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("diagram", help=t("draw a procedure: swimlanes, critical path, returns (SVG, PNG, PDF or DOT)"))
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=t("OUT.svg, OUT.png, OUT.pdf or OUT.dot"))
    p.add_argument("--documents", action="store_true", help=t("also draw dossier components and produced papers"))
    p.add_argument("--full", action="store_true", help=t("draw every step even on large procedures (no grouping)"))
    p.set_defaults(handler=cmd_diagram)

    p = sub.add_parser(
        "report", help=t("the reform-plan report of a catalog: before/after, totals, targets (HTML, Markdown, JSON)")
    )
    p.add_argument("paths", nargs="+", metavar="DIR", help=t("folders of definitions (or files): each code's oldest vs newest"))
    p.add_argument("-o", "--output", metavar="OUT", help=t("write the report: OUT.html (self-contained, A4) or OUT.md"))
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help=t("print the report data as JSON"))
    form.add_argument("--md", action="store_true", help=t("print the report as Markdown"))
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("schema", help=t("print a JSON Schema of the definition format, for editors"))
    p.set_defaults(handler=cmd_schema)

    p = sub.add_parser("calendar", help=t("working-time deadlines (Asia/Ho_Chi_Minh, Vietnam's public holidays)"))
    calendar_sub = p.add_subparsers(dest="calendar_command", required=True, metavar=t("ACTION"), parser_class=_Parser)
    p = calendar_sub.add_parser("due", help=t("when DURATION of working time after START falls due"))
    p.add_argument("start", metavar="START", help=t("ISO 8601 instant; without an offset, local time in Asia/Ho_Chi_Minh"))
    p.add_argument("duration", metavar="DURATION", help=t('working time, e.g. "15d", "4h", "1d4h" (1d = 8 working hours)'))
    p.add_argument("--calendar", metavar="FILE", help=t("the operator's calendar file: days_off, working_days, hours"))
    p.add_argument("--json", action="store_true", help=t("start, duration, hours and due as JSON"))
    p.set_defaults(handler=cmd_calendar_due)
    admin_cli.add_parsers(sub)
    serve_cli.add_parsers(sub)
    return parser


class _Formatter(argparse.HelpFormatter):
    """argparse's help in this context's language: its usage line's prefix."""

    def add_usage(self, usage: str | None, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, t("usage: ") if prefix is None else prefix)


class _Parser(argparse.ArgumentParser):
    """An argument parser that speaks the command line's language in what it
    writes itself (the usage line, the options' heading, help and errors);
    argparse's own explanations of a mistake stay in English."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs.setdefault("add_help", False)
        super().__init__(*args, **kwargs)
        self._optionals.title = t("options")
        self._positionals.title = t("arguments")
        self.add_argument("-h", "--help", action="help", help=t("show this help and exit"))

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, t("{prog}: error: {message}", prog=self.prog, message=message) + "\n")


def _language(argv: Sequence[str]) -> str:
    """The language asked for: ``--lang`` anywhere before ``--``, else
    ``$TINHGON_LANG``, else Vietnamese; a server's ``LANG`` is ignored.

    Raises:
        ValueError: a language tinhgon does not speak.
    """
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            return messages.chosen(argv[i + 1])
        if arg.startswith("--lang="):
            return messages.chosen(arg.partition("=")[2])
    return messages.from_environment()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        language = _language(arguments)
    except ValueError as exc:
        print(t("tinhgon: no messages in language «{language}»; choose vi or en", language=str(exc)), file=sys.stderr)
        return EXIT_INVALID
    with messages.speaking(language):
        return _command(arguments)


def _command(arguments: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(arguments)
    try:
        code: int = args.handler(args)
        return code
    except (DefinitionError, ReadError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    except DatabaseUnavailable as exc:
        print(f"tinhgon: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:
        # The reader went away (`tinhgon analyze ... | head`): stop quietly,
        # and keep Python from reporting the pipe again as it flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        print(f"tinhgon: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except TinhgonError as exc:
        print(f"tinhgon: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
