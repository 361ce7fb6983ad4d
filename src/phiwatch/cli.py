"""Command line: parse arguments, call the scanner, hand results to reports. Nothing else.

Start-up stays light: this module imports Typer and the standard library only; models,
the store, the engine and the report writers are imported by the command that uses them.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer
from typer.core import TyperCommand

from . import __version__, plain_options
from .audit.cli import register as register_audit
from .plugins import PluginError, PluginGroup
from .severity import Severity
from .watch.cli import register as register_watch
from .web.cli import register as register_serve

if TYPE_CHECKING:
    from rich.console import Console

    from .models import ScanResult

CONTEXT = {"help_option_names": ["-h", "--help"]}


class Command(TyperCommand):
    """A command whose arguments show their plain placeholder (TARGETS), never a Python type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", CONTEXT)
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "argument":
                param.display_type_rich = lambda ctx: None  # type: ignore[attr-defined]

    def get_params(self, ctx: Any) -> list[Any]:
        return plain_options.install(super().get_params(ctx))  # no pydantic TypeAdapter per option


app = typer.Typer(
    name="phiwatch",
    help="Find exposed medical images and health records on networks you are responsible "
    "for; prove each exposure without copying patient data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=True,
    context_settings=CONTEXT,
    cls=PluginGroup,  # plug-ins (the lab) loaded only when their command runs
)


class UserError(Exception):
    """A problem with the user's input: one line, exit 2."""


_consoles: dict[bool, Console] = {}


def console(stderr: bool = True) -> Console:
    """stderr (progress, summary, errors) or stdout (findings), created on first use."""
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=True)
    return _consoles[stderr]


def _show_version(value: bool) -> None:
    if value:
        print(f"phiwatch {__version__}")
        raise typer.Exit()


def _option_names(ctx: Any) -> dict[str, set[str]]:
    """Command name -> its parameter names, for checking a config file."""
    group = ctx.command
    commands = getattr(group, "commands", {})
    return {name: {p.name for p in command.params if p.name} for name, command in commands.items()}


def _apply_config(ctx: typer.Context, path: Path | None) -> None:
    from . import config

    layers = []
    default = config.default_config_path()
    root = ctx.find_root()
    names = _option_names(root)
    try:
        if default.is_file():
            layers.append(config.load(default, names))
        if path is not None:
            layers.append(config.load(path, names))
    except config.ConfigError as exc:
        raise UserError(str(exc)) from None
    if layers:
        root.default_map = config.merge(dict(root.default_map or {}), *layers)


def _command_config(ctx: typer.Context, param: object, value: Path | None) -> Path | None:
    """`--config FILE` after a command: that command's table becomes its defaults."""
    if value is not None:
        from . import config

        try:
            table = config.load(value, _option_names(ctx.find_root())).get(ctx.info_name or "", {})
        except config.ConfigError as exc:
            raise UserError(str(exc)) from None
        ctx.default_map = {**(ctx.default_map or {}), **table}
    return value


ConfigOption = Annotated[Path | None, typer.Option(
    "--config", metavar="FILE", is_eager=True, callback=_command_config, expose_value=False,
    help="TOML file of defaults, one table per command (besides "
         "$XDG_CONFIG_HOME/phiwatch/config.toml)")]


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", "-V", is_eager=True, callback=_show_version,
                                          help="Print phiwatch's version and exit")] = False,
    config_file: Annotated[Path | None, typer.Option("--config", metavar="FILE",
        help="TOML file of defaults, one table per command (besides "
             "$XDG_CONFIG_HOME/phiwatch/config.toml)")] = None,
) -> None:
    """Find exposed medical images and health records on networks you are responsible for;
    prove each exposure without copying patient data."""
    if ctx.resilient_parsing:  # shell completion: no files read
        return
    _apply_config(ctx, config_file)


DbPath = Annotated[str | None, typer.Option(metavar="FILE|URL",
    help="The store: a SQLite file (default: $XDG_DATA_HOME/phiwatch/phiwatch.db) or a SQLAlchemy URL, "
         "e.g. postgresql+psycopg://USER@HOST:PORT/DB")]
SeverityFilter = Annotated[str | None, typer.Option("--severity", "-s", metavar="LIST",
    help="Show only these severities, e.g. critical,high")]
NMAP_OUTPUT_FLAGS = {"X": "XML", "N": "normal", "G": "grepable", "A": "all formats", "S": "script kiddie",
                     "J": "masscan JSON", "L": "masscan list"}


def _severities(text: str | None) -> frozenset[Severity] | None:
    from .severity import parse_severities

    if text is None:
        return None
    try:
        return parse_severities(text)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _formats(text: str) -> list[str]:
    from .reports import FORMATS

    chosen = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise UserError(f"unknown report format {unknown[0] if unknown else text!r}; "
                        f"choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(chosen))


def _nmap_habit(targets: list[str], output: Path | None) -> None:
    """`-oX scan.xml` reads as `-o X` and a target `scan.xml`: say so before anything resolves."""
    from .targets import looks_like_file_name

    letter = str(output) if output is not None else ""
    named = next((t for t in targets if looks_like_file_name(t)), None)
    if letter in NMAP_OUTPUT_FLAGS and named is not None:
        raise UserError(f"did you mean -o{letter} ({NMAP_OUTPUT_FLAGS[letter]} output, as in nmap)? "
                        f"phiwatch writes reports with -o DIR --format html,sarif,csv,md,json; "
                        f"{named[:80]!r} is not a target")


def with_protocol_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the per-protocol options of the protocol table (--s3-bucket, ...) as
    keyword parameters; they reach it in its **protocol_options."""
    from .probes import OPTIONS

    signature = inspect.signature(command)
    hints = get_type_hints(command, include_extras=True)
    rest = [p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
                  if p.name not in rest]
    for name in rest:
        hints.pop(name, None)
    for option in OPTIONS:
        kind: Any = Path | None if option.path else list[str] | None
        annotation = Annotated[kind, typer.Option(option.flag, metavar=option.metavar, help=option.help)]
        parameters.append(inspect.Parameter(option.key, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=annotation))
        hints[option.key] = annotation
    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = hints
    return command


@app.command(cls=Command)
@with_protocol_options
def scan(
    targets: Annotated[list[str] | None, typer.Argument(metavar="TARGETS",
        help="Addresses, CIDR blocks, ranges (10.0.0.1-20), host names or files")] = None,
    ports: Annotated[str | None, typer.Option("-p", "--ports", metavar="PORTS",
        help="Ports, e.g. 104,4242,11110-11112; -p- for all (default: every probe's default ports)")] = None,
    input_list: Annotated[list[Path] | None, typer.Option("-iL", "--input-list", metavar="FILE",
        help="File of targets, one or more per line; - reads standard input")] = None,
    from_file: Annotated[Path | None, typer.Option("--from", metavar="FILE",
        help="Probe only the open services listed in nmap XML, masscan (-oL/-oJ/-oX), ZMap CSV "
             "or host:port output; no sweep. Targets, if given, narrow the list")] = None,
    from_format: Annotated[str, typer.Option("--from-format", metavar="FORMAT",
        help="auto, xml, masscan-list, masscan-json, zmap-csv or list")] = "auto",
    exclude: Annotated[list[str] | None, typer.Option("--exclude", metavar="ADDRESSES",
        help="Addresses, blocks or ranges never to touch (comma-separated; repeatable)")] = None,
    exclude_file: Annotated[list[Path] | None, typer.Option("--exclude-file", metavar="FILE",
        help="File of addresses never to touch (a do-not-probe list)")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", metavar="DIR",
        help="Folder for scan.json and the reports chosen with --format")] = None,
    formats: Annotated[str, typer.Option("--format", "-f", metavar="LIST",
        help="Reports written with --output: html, sarif, csv, md, json (scan.json is always written)")]
        = "json,html",
    jsonl: Annotated[bool, typer.Option("--jsonl",
        help="Stream findings to stdout as JSON lines, as they are found (with --exclude-honeypots: "
        "at the end, once the scan knows which services look like honeypots)")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose",
        help="Also list every open service and why a probe stopped")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet",
        help="Findings only: no progress, no summary")] = False,
    severity: SeverityFilter = None,
    fail_on: Annotated[Severity | None, typer.Option(metavar="SEVERITY",
        help="Exit 1 when a finding of this severity or worse is found")] = None,
    db: DbPath = None,
    no_db: Annotated[bool, typer.Option("--no-db", help="Do not store the scan")] = False,
    rate: Annotated[float, typer.Option(metavar="N",
        help="Ceiling of the adaptive connection rate (new connections per second); 0 = none")] = 50_000,
    concurrency: Annotated[int, typer.Option(metavar="N", help="Connections open at once")] = 512,
    per_host: Annotated[int, typer.Option(metavar="N",
        help="Connections open at once to one address")] = 8,
    timeout: Annotated[float, typer.Option(metavar="SECONDS",
        help="Seconds for a connect and for each answer")] = 5.0,
    retries: Annotated[int, typer.Option(metavar="N",
        help="Extra connect attempts after a timeout")] = 1,
    max_matches: Annotated[int, typer.Option(metavar="N",
        help="Stop counting studies after this many matches (then C-CANCEL)")] = 1000,
    calling_ae: Annotated[str, typer.Option(metavar="AE", help="Our calling AE title")] = "PHIWATCH",
    called_ae: Annotated[str | None, typer.Option(metavar="AE",
        help="Called AE title tried first (default ANY-SCP, a made-up title)")] = None,
    guess_aet: Annotated[bool, typer.Option("--guess-aet",
        help="After a called-AE reject, try a short list of common AE titles (intrusive)")] = False,
    aet_file: Annotated[Path | None, typer.Option(metavar="FILE",
        help="After a called-AE reject, try these AE titles (one per line)")] = None,
    try_default_logins: Annotated[bool, typer.Option("--try-default-logins",
        help="Try a product's well-known default logins, at most 3 per service (intrusive)")] = False,
    byte_budget: Annotated[int, typer.Option(metavar="BYTES",
        help="Bytes one probe may read from one service")] = 8 * 1024 * 1024,
    probe_time: Annotated[float, typer.Option(metavar="SECONDS",
        help="Seconds all probes of one service may take")] = 60.0,
    host_time: Annotated[float, typer.Option(metavar="SECONDS",
        help="Seconds all probes of one address may take")] = 600.0,
    allow_large: Annotated[bool, typer.Option("--allow-large",
        help="Allow a scan of more than 65,536 addresses")] = False,
    log_file: Annotated[Path | None, typer.Option(metavar="FILE", help="Write a debug log here")] = None,
    progress: Annotated[str, typer.Option(metavar="MODE",
        help="auto (Rich on a terminal, JSON lines otherwise), rich, json or none")] = "auto",
    cluster: Annotated[str | None, typer.Option("--cluster", metavar="tcp://HOST:PORT",
        help="Spread the scan's shards over the workers of this Dask scheduler")] = None,
    shard_size: Annotated[int, typer.Option("--shard-size", metavar="N",
        help="Addresses (or listed services) per shard, the unit a resume skips")] = 4096,
    resume: Annotated[str | None, typer.Option("--resume", metavar="SCAN_ID",
        help="Finish an interrupted scan with its stored targets and options; only --output, "
             "--db, --cluster, --progress and --log-file apply")] = None,
    no_honeypot_signals: Annotated[bool, typer.Option("--no-honeypot-signals",
        help="Do not propose the unknown SOP class nor send the control query (see README)")] = False,
    exclude_honeypots: Annotated[bool, typer.Option("--exclude-honeypots",
        help="Leave likely honeypots out of the outputs, the counts and the exit code")] = False,
    _config: ConfigOption = None,
    **protocol_options: Any,  # the protocol table's options (--s3-bucket, ...): see with_protocol_options
) -> None:
    """Find DICOM services and prove, without copying patient data, what they expose."""
    _nmap_habit(targets or [], output)
    if verbose and quiet:
        raise UserError("-v and -q exclude each other")
    shown = _severities(severity)
    chosen = _formats(formats)
    from .run import ScanRequest, run_scan
    from .targets import TargetError

    request = ScanRequest(
        targets=targets or [],
        ports=ports,
        input_lists=[str(p) for p in input_list or []],
        excludes=exclude or [],
        exclude_files=[str(p) for p in exclude_file or []],
        rate=rate,
        concurrency=concurrency,
        per_host=per_host,
        timeout=timeout,
        retries=retries,
        output=output,
        formats=chosen,
        db=None if no_db else db,
        store=not no_db,
        max_matches=max_matches,
        calling_ae=calling_ae,
        called_ae=called_ae or "ANY-SCP",
        called_ae_supplied=called_ae is not None,
        guess_aet=guess_aet,
        aet_file=aet_file,
        try_default_logins=try_default_logins,
        from_file=from_file,
        from_format=from_format,
        byte_budget=byte_budget,
        probe_time=probe_time,
        host_time=host_time,
        allow_large=allow_large,
        log_file=log_file,
        progress=progress,
        cluster=cluster,
        shard_size=shard_size,
        resume=resume,
        jsonl=jsonl,
        verbosity=-1 if quiet else 1 if verbose else 0,
        severities=shown,
        honeypot_signals=not no_honeypot_signals,
        exclude_honeypots=exclude_honeypots,
        protocol_options={key: str(value) if isinstance(value, Path) else value
                          for key, value in protocol_options.items() if value not in (None, [])},
    )
    if quiet:
        request.progress = "none"
    try:
        result = run_scan(request, console(), console(stderr=False))
    except TargetError as exc:
        raise UserError(str(exc)) from exc
    if not result.scan.complete:
        raise typer.Exit(130)
    if fail_on is not None and any(f.severity.rank >= fail_on.rank for f in result.findings):
        raise typer.Exit(1)


@app.command(cls=Command)
def sniff(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A local file or folder to sniff")],
    budget: Annotated[int, typer.Option(metavar="BYTES",
        help="Bytes read from the start of each file")] = 65536,
    max_files: Annotated[int, typer.Option(metavar="N",
        help="Files opened at most; beyond, counts come from names")] = 10000,
    max_depth: Annotated[int, typer.Option(metavar="N", help="Folder depth walked at most")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole summary as JSON")] = False,
) -> None:
    """Count DICOM, DICOMDIR, HL7 and X12 files under a local path, reading headers only.

    Prints counts and the names of PHI attributes found, never a value or a file name.
    """
    if not 132 <= budget <= 16 * 1024 * 1024 or max_files < 1 or not 0 <= max_depth <= 256:
        raise UserError("--budget must be 132 to 16777216 bytes, --max-files at least 1, --max-depth 0 to 256")
    from .content import sniff_path

    summary = sniff_path(path, byte_budget=budget, max_files=max_files, max_depth=max_depth)
    if as_json:
        print(summary.model_dump_json(indent=2))
    elif summary.status != "error":
        from .reports.sniffed import human_summary

        print("\n".join(human_summary(summary)))
    if summary.status == "error":
        if as_json:
            raise typer.Exit(1)
        raise UserError(f"cannot sniff {str(path)[:200]!r}: {summary.detail}")


@app.command(cls=Command)
def schema() -> None:
    """Print the JSON Schema that scan.json validates against."""
    import json

    from .reports.json_report import schema as scan_schema

    print(json.dumps(scan_schema(), indent=2))


@app.command(cls=Command)
def checks(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON")] = False,
    severity: SeverityFilter = None,
) -> None:
    """List the checks phiwatch runs: id, severity, protocols, title."""
    from .checks.metadata import load_catalog

    shown = _severities(severity)
    entries = sorted(load_catalog().values(), key=lambda e: (-e.severity.rank, e.id))
    rows = [{"id": e.id, "severity": e.severity.value, "protocols": e.protocols, "title": e.title}
            for e in entries if shown is None or e.severity in shown]
    if as_json:
        import json

        print(json.dumps(rows, indent=2))
        return
    width = max((len(r["id"]) for r in rows), default=2)
    print(f"{'ID':<{width}}  {'SEVERITY':<8}  {'PROTOCOLS':<18}  TITLE")
    for row in rows:
        print(f"{row['id']:<{width}}  {row['severity']:<8}  {','.join(row['protocols']):<18}  {row['title']}")
    print(f"{len(rows)} checks", file=sys.stderr)


def _load_scan(reference: str, db: str | None) -> ScanResult:
    """A scan.json file, or a scan id from the store."""
    from pydantic import ValidationError

    from .models import ScanResult

    path = Path(reference)
    if path.is_dir():
        path = path / "scan.json"
    if path.is_file():
        try:
            return _assessed(ScanResult.model_validate_json(path.read_bytes()))
        except (ValidationError, ValueError) as exc:
            raise UserError(f"{str(path)!r} is not a phiwatch scan.json ({type(exc).__name__})") from exc
    if reference.endswith(".json") or "/" in reference:
        raise UserError(f"no such scan file: {reference!r}")
    store = _open_store(db)
    try:
        result = store.load(reference)
    finally:
        store.close()
    if result is None:
        raise UserError(f"no scan.json file and no stored scan named {reference!r} in {str(store.path)!r}")
    return _assessed(result)


def _assessed(result: ScanResult) -> ScanResult:
    """Trust and the exposure ladder, for a scan stored or written without them."""
    from .trust import assess

    return result if result.summary is not None else assess(result)


def _open_store(db: str | None) -> Any:
    from .store import Store, StoreError

    try:
        return Store(db)
    except StoreError as exc:
        raise UserError(str(exc)) from None


@app.command(cls=Command)
def report(
    scan_ref: Annotated[str, typer.Argument(metavar="SCAN",
        help="A scan.json, its folder, or a stored scan id; or an audit.json, or its folder")],
    formats: Annotated[str, typer.Option("--format", "-f", metavar="LIST",
        help="Comma-separated: html, csv, sarif, md, json")] = "html,csv,sarif,md",
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR",
        help="Directory for the reports")] = Path("."),
    severity: SeverityFilter = None,
    db: DbPath = None,
    exclude_honeypots: Annotated[bool, typer.Option("--exclude-honeypots",
        help="Leave likely honeypots out of the reports and their counts")] = False,
    _config: ConfigOption = None,
) -> None:
    """Render reports from a stored scan, a scan.json or an audit.json."""
    from .reports import write_reports
    from .run import writable_folder
    from .targets import TargetError

    chosen = _formats(formats)
    shown = _severities(severity)
    try:
        writable_folder(output, "--output")
    except TargetError as exc:
        raise UserError(str(exc)) from None
    from .audit.report import audit_file

    if (audited := audit_file(scan_ref)) is not None:
        _report_audit(audited, output, chosen, shown)
        return
    result = _load_scan(scan_ref, db)
    if shown is not None:
        result = result.model_copy(update={"findings": [f for f in result.findings if f.severity in shown]})
    if exclude_honeypots:
        from .trust import exclude_honeypots as leave_out

        result = leave_out(result)
    for path in write_reports(result, output, chosen):
        console().print(f"{path.name} written to {path}", markup=False)
    from .reports.trust_view import summary_line

    console().print(summary_line(result), markup=False)


def _report_audit(path: Path, output: Path, chosen: list[str], shown: frozenset[Severity] | None) -> None:
    """`phiwatch report audit.json`: the audit's reports again, in every chosen format."""
    from pydantic import ValidationError

    from .audit.report import load, summary, write

    try:
        result = load(path)
    except (OSError, ValidationError) as exc:
        raise UserError(f"{str(path)!r} is not a phiwatch audit.json ({type(exc).__name__})") from None
    if shown is not None:
        result = result.model_copy(update={"findings": [f for f in result.findings if f.severity in shown]})
    for written in write(result, output, chosen):
        console().print(f"{written.name} written to {written}", markup=False)
    console().print(summary(result), markup=False)


@app.command(cls=Command)
def diff(
    old: Annotated[str, typer.Argument(metavar="OLD",
        help="Older scan: a scan.json, its folder, or a stored scan id")],
    new: Annotated[str, typer.Argument(metavar="NEW",
        help="Newer scan: a scan.json, its folder, or a stored scan id")],
    db: DbPath = None,
    fail_on_new: Annotated[bool, typer.Option("--fail-on-new",
        help="Exit 1 when the newer scan has findings the older one did not")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the difference as JSON")] = False,
) -> None:
    """New, fixed and changed findings between two scans, within what both of them covered."""
    from .diff import complete_shards, diff_scans, diff_text

    newer = _load_scan(new, db)
    done = None
    if not newer.scan.complete and not Path(new).exists():  # a stored partial scan: its complete shards
        store = _open_store(db)
        try:
            done = complete_shards(store, newer.scan.id)
        finally:
            store.close()
    result = diff_scans(_load_scan(old, db), newer, done)
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        print("\n".join(diff_text(result)))
    if fail_on_new and result.new:
        raise typer.Exit(1)


@app.command(cls=Command)
def scans(
    db: DbPath = None,
) -> None:
    """List stored scans."""
    store = _open_store(db)
    try:
        rows = list(store.scans())
        sizes = store.sizes()
        if not rows:
            print(f"no scans in {store.path}")
            return
        print(f"{'SCAN':<25}  {'STARTED (UTC)':<16}  {'STATE':<8}  {'TARGETS':>9}  SERVICES  FINDINGS")
        for row in rows:
            summary = row.scan.get("targets", {})
            state = "complete" if row.complete else "partial"
            targets = summary.get("addresses") or summary.get("services") or 0
            services, findings = sizes.get(row.id, (0, 0))
            print(f"{row.id:<25}  {row.started:%Y-%m-%d %H:%M}  {state:<8}  {targets:>9}  "
                  f"{services:>8}  {findings:>8}")
        print(f"{len(rows)} scans in {store.path}", file=sys.stderr)
    finally:
        store.close()


@app.command(cls=Command)
def version() -> None:
    """Print phiwatch's version."""
    print(__version__)


@app.command(cls=Command)
def man(
    output: Annotated[Path | None, typer.Option("-o", "--output", metavar="FILE",
        help="Write the page here instead of stdout")] = None,
) -> None:
    """Print phiwatch's manual page (roff), generated from the commands' own help."""
    from .manpage import render

    page = render(typer.main.get_command(app))
    if output is None:
        sys.stdout.write(page)
    else:
        try:
            output.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None




register_audit(app, Command)  # phiwatch audit: its own module
register_watch(app, Command)  # phiwatch watch: its own module
register_serve(app, Command)  # phiwatch serve: the dashboard, its own module


def _error(message: str) -> None:
    """One line on stderr, whatever the message held (newlines folded)."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"phiwatch: error: {text}\n")
    sys.stderr.flush()


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("phiwatch: interrupted\n")
        sys.exit(130)
    except (UserError, PluginError) as exc:
        _error(str(exc))
        sys.exit(2)
    except typer.TyperException as exc:  # usage errors: bad option, missing value, ...
        _error(exc.format_message())
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("phiwatch: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # a fault of phiwatch's own: its type only (a message may quote a peer)
        if os.environ.get("PHIWATCH_DEBUG"):
            raise
        _error(f"internal error ({type(exc).__name__}); PHIWATCH_DEBUG=1 shows where")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
