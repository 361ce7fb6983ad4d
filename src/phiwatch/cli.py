"""Command line: parse arguments, call the scanner, hand results to reports. Nothing else."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from . import __version__
from .models import ScanResult, Severity
from .targets import TargetError

app = typer.Typer(
    name="phiwatch",
    help="Find exposed medical images and health records on networks you are responsible "
    "for; prove each exposure without copying patient data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


DbPath = Annotated[
    Path | None, typer.Option(help="SQLite store (default: $XDG_DATA_HOME/phiwatch/phiwatch.db)")
]


class UserError(Exception):
    """A problem with the user's input: one line, exit 2."""


@app.command()
def scan(
    targets: Annotated[list[str] | None, typer.Argument(
        help="Addresses, CIDR blocks, ranges (10.0.0.1-20), host names or files")] = None,
    ports: Annotated[str | None, typer.Option("-p", "--ports",
        help="Ports, e.g. 104,4242,11110-11112 (default: every probe's default ports)")] = None,
    input_list: Annotated[list[Path] | None, typer.Option("-iL", "--input-list",
        help="File of targets, one or more per line")] = None,
    from_file: Annotated[Path | None, typer.Option("--from",
        help="Probe only the open services listed in nmap XML, masscan (-oL/-oJ/-oX), ZMap CSV "
             "or host:port output; no sweep. Targets, if given, narrow the list")] = None,
    from_format: Annotated[str, typer.Option("--from-format",
        help="auto, xml, masscan-list, masscan-json, zmap-csv or list")] = "auto",
    exclude: Annotated[list[str] | None, typer.Option("--exclude",
        help="Addresses, blocks or ranges never to touch (comma-separated; repeatable)")] = None,
    exclude_file: Annotated[list[Path] | None, typer.Option("--exclude-file",
        help="File of addresses never to touch (a do-not-probe list)")] = None,
    rate: Annotated[float, typer.Option(
        help="Ceiling of the adaptive connection rate (new connections per second); 0 = none")] = 50_000,
    concurrency: Annotated[int, typer.Option(help="Connections open at once")] = 512,
    per_host: Annotated[int, typer.Option(help="Connections open at once to one address")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds for a connect and for each answer")] = 5.0,
    retries: Annotated[int, typer.Option(help="Extra connect attempts after a timeout")] = 1,
    output: Annotated[Path | None, typer.Option("-o", "--output",
        help="Directory for scan.json")] = None,
    db: DbPath = None,
    no_db: Annotated[bool, typer.Option("--no-db", help="Do not store the scan")] = False,
    fail_on: Annotated[Severity | None, typer.Option(
        help="Exit 1 when a finding of this severity or worse is found")] = None,
    max_matches: Annotated[int, typer.Option(
        help="Stop counting studies after this many matches (then C-CANCEL)")] = 1000,
    calling_ae: Annotated[str, typer.Option(help="Our calling AE title")] = "PHIWATCH",
    called_ae: Annotated[str | None, typer.Option(
        help="Called AE title tried first (default ANY-SCP, a made-up title)")] = None,
    guess_aet: Annotated[bool, typer.Option("--guess-aet",
        help="After a called-AE reject, try a short list of common AE titles (intrusive)")] = False,
    aet_file: Annotated[Path | None, typer.Option(
        help="After a called-AE reject, try these AE titles (one per line)")] = None,
    try_default_logins: Annotated[bool, typer.Option("--try-default-logins",
        help="Try a product's well-known default logins, at most 3 per service (intrusive)")] = False,
    byte_budget: Annotated[int, typer.Option(
        help="Bytes one probe may read from one service")] = 8 * 1024 * 1024,
    probe_time: Annotated[float, typer.Option(
        help="Seconds all probes of one service may take")] = 60.0,
    host_time: Annotated[float, typer.Option(
        help="Seconds all probes of one address may take")] = 600.0,
    allow_large: Annotated[bool, typer.Option("--allow-large",
        help="Allow a scan of more than 65,536 addresses")] = False,
    log_file: Annotated[Path | None, typer.Option(help="Write a debug log here")] = None,
    progress: Annotated[str, typer.Option(
        help="auto (Rich on a terminal, JSON lines otherwise), rich, json or none")] = "auto",
    cluster: Annotated[str | None, typer.Option("--cluster", metavar="tcp://HOST:PORT",
        help="Spread the scan's shards over the workers of this Dask scheduler")] = None,
    shard_size: Annotated[int, typer.Option("--shard-size",
        help="Addresses (or listed services) per shard, the unit a resume skips")] = 4096,
    resume: Annotated[str | None, typer.Option("--resume", metavar="SCAN_ID",
        help="Finish an interrupted scan with its stored targets and options; only --output, "
             "--db, --cluster, --progress and --log-file apply")] = None,
    s3_bucket: Annotated[list[str] | None, typer.Option("--s3-bucket", metavar="NAME",
        help="S3 bucket name to try on every S3 endpoint besides those it lists (repeatable)")] = None,
    s3_buckets_file: Annotated[Path | None, typer.Option("--s3-buckets-file", metavar="FILE",
        help="File of S3 bucket names, one per line (at most 1000)")] = None,
) -> None:
    """Find DICOM services and prove, without copying patient data, what they expose."""
    from .run import ScanRequest, run_scan

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
        s3_buckets=s3_bucket or [],
        s3_buckets_file=s3_buckets_file,
    )
    try:
        result = run_scan(request, err)
    except TargetError as exc:
        raise UserError(str(exc)) from exc
    if not result.scan.complete:
        raise typer.Exit(130)
    if fail_on is not None and any(f.severity.rank >= fail_on.rank for f in result.findings):
        raise typer.Exit(1)


@app.command()
def sniff(
    path: Annotated[Path, typer.Argument(help="A local file or folder to sniff")],
    budget: Annotated[int, typer.Option(help="Bytes read from the start of each file")] = 65536,
    max_files: Annotated[int, typer.Option(help="Files opened at most; beyond, counts come from names")] = 10000,
    max_depth: Annotated[int, typer.Option(help="Folder depth walked at most")] = 20,
) -> None:
    """Count DICOM, DICOMDIR, HL7 and X12 files under a local path, reading headers only.

    Prints counts and the names of PHI attributes found, never a value or a file name.
    """
    from .content import sniff_path

    if not 132 <= budget <= 16 * 1024 * 1024 or max_files < 1 or not 0 <= max_depth <= 256:
        raise UserError("--budget must be 132 to 16777216 bytes, --max-files at least 1, --max-depth 0 to 256")
    summary = sniff_path(path, byte_budget=budget, max_files=max_files, max_depth=max_depth)
    print(summary.model_dump_json(indent=2))
    if summary.status == "error":
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema that scan.json validates against."""
    from .reports.json_report import schema as scan_schema

    print(json.dumps(scan_schema(), indent=2))


def _load_scan(reference: str, db: Path | None) -> ScanResult:
    """A scan.json file, or a scan id from the store."""
    from pydantic import ValidationError

    from .store import Store

    path = Path(reference)
    if path.is_dir():
        path = path / "scan.json"
    if path.is_file():
        try:
            return ScanResult.model_validate_json(path.read_bytes())
        except (ValidationError, ValueError) as exc:
            raise UserError(f"{str(path)!r} is not a phiwatch scan.json ({type(exc).__name__})") from exc
    if reference.endswith(".json") or "/" in reference:
        raise UserError(f"no such scan file: {reference!r}")
    store = Store(db)
    try:
        result = store.load(reference)
    finally:
        store.close()
    if result is None:
        raise UserError(f"no scan.json file and no stored scan named {reference!r}")
    return result


@app.command()
def report(
    scan_ref: Annotated[str, typer.Argument(metavar="SCAN",
        help="A scan.json, its folder, or a stored scan id")],
    formats: Annotated[str, typer.Option("--format", "-f",
        help="Comma-separated: html, csv, sarif, md, json")] = "html,csv,sarif,md",
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the reports")] = Path("."),
    db: DbPath = None,
) -> None:
    """Render reports from a stored scan or a scan.json."""
    from .reports import FORMATS, write_reports

    chosen = [f.strip().lower() for f in formats.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise UserError(f"unknown report format {unknown[0] if unknown else formats!r}; "
                        f"choose from {', '.join(FORMATS)}")
    if output.exists() and not output.is_dir():
        raise UserError(f"--output {str(output)!r} is not a directory")
    for path in write_reports(_load_scan(scan_ref, db), output, list(dict.fromkeys(chosen))):
        err.print(f"{path.name} written to {path}", markup=False)


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="Older scan: a scan.json, its folder, or a stored scan id")],
    new: Annotated[str, typer.Argument(help="Newer scan: a scan.json, its folder, or a stored scan id")],
    db: DbPath = None,
    fail_on_new: Annotated[bool, typer.Option("--fail-on-new",
        help="Exit 1 when the newer scan has findings the older one did not")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the difference as JSON")] = False,
) -> None:
    """List new, fixed and changed findings between two scans."""
    from .diff import diff_scans

    result = diff_scans(_load_scan(old, db), _load_scan(new, db))
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        out = Console(highlight=False, soft_wrap=True)
        out.print(f"{result.old_scan} -> {result.new_scan}: {len(result.new)} new, "
                  f"{len(result.fixed)} fixed, {len(result.changed)} changed, "
                  f"{result.unchanged} unchanged", markup=False)
        for label, findings in (("new", result.new), ("fixed", result.fixed)):
            for f in findings:
                out.print(f"  {label:<7} {f.severity.value:<8} {f.host}:{f.port}/{f.protocol} "
                          f"{f.check_id}", markup=False)
        for change in result.changed:
            f = change.after
            out.print(f"  changed {f.severity.value:<8} {f.host}:{f.port}/{f.protocol} {f.check_id}: "
                      f"{'; '.join(change.what)}", markup=False)
    if fail_on_new and result.new:
        raise typer.Exit(1)


@app.command()
def scans(
    db: DbPath = None,
) -> None:
    """List stored scans."""
    from .store import Store

    store = Store(db)
    for row in store.scans():
        summary = row.scan.get("targets", {})
        state = "complete" if row.complete else "partial"
        print(f"{row.id}  {row.started:%Y-%m-%d %H:%M}  {state:<8}  "
              f"{summary.get('addresses', 0)} addresses")
    store.close()


@app.command()
def version() -> None:
    """Print phiwatch's version."""
    print(__version__)


LAB_HINT = ("the lab is a distribution of its own: install it with "
            "'pip install -e lab/' from phiwatch's repository (or 'make install')")


def add_plugin_commands(target: typer.Typer) -> None:
    """Command groups other distributions add through the ``phiwatch.commands`` entry point (the
    lab adds ``lab``); without the lab installed, ``phiwatch lab`` says in one line how to get it."""
    from importlib.metadata import entry_points

    names = set()
    for entry in entry_points(group="phiwatch.commands"):
        try:
            plugin = entry.load()
        except ImportError as exc:  # a broken plug-in must not break the scanner
            err.print(f"phiwatch: plug-in {entry.name!r} not loaded ({type(exc).__name__})", markup=False)
            continue
        target.add_typer(plugin, name=entry.name)
        names.add(entry.name)
    if "lab" not in names:

        @target.command("lab", add_help_option=False, hidden=False,
                        context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
        def lab_missing() -> None:
            """The built-in lab (not installed: phiwatch-lab is a distribution of its own)."""
            raise UserError(LAB_HINT)


add_plugin_commands(app)


def main() -> None:
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("phiwatch: interrupted")
        sys.exit(130)
    except UserError as exc:
        err.print(f"phiwatch: error: {exc}", markup=False)
        sys.exit(2)
    except typer.TyperException as exc:  # usage errors: bad option, missing value, ...
        err.print(f"phiwatch: error: {exc.format_message()}", markup=False)
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except KeyboardInterrupt:
        err.print("phiwatch: interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
