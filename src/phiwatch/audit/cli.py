"""`phiwatch audit PATH...` and `phiwatch audit s3`: registered on the main app by cli.py.

Kept light: everything the audit needs is imported when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..severity import Severity


def audit(
    paths: Annotated[list[str] | None, typer.Argument(metavar="PATHS",
        help="Configuration files or folders to audit; 's3' alone audits your S3 account instead "
             "(write ./s3 for a local file named s3)")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output",
        help="Write audit.json, report.html, findings.csv, phiwatch.sarif and report.md here")] = None,
    formats: Annotated[str, typer.Option("-f", "--formats", metavar="FORMATS", help="Formats for --output")]
        = "json,html,csv,sarif,md",
    fail_on: Annotated[Severity | None, typer.Option("--fail-on",
        help="Exit 1 when a finding of this severity or higher is found")] = None,
    diff: Annotated[bool, typer.Option("--diff", help="Print the fixes as a unified diff (nothing is written)")]
        = False,
    sniff_served: Annotated[bool, typer.Option("--sniff-served",
        help="Read the first 16 KiB of up to 20 files in each folder a configuration serves, to tell medical "
             "data from other files")] = False,
    max_files: Annotated[int, typer.Option(help="Files to audit at most")] = 20_000,
    max_bytes: Annotated[int, typer.Option(help="Bytes per file at most")] = 1_048_576,
    max_depth: Annotated[int, typer.Option(help="Folder depth at most")] = 16,
    max_include_depth: Annotated[int, typer.Option(help="Nested includes at most")] = 8,
    profile: Annotated[str | None, typer.Option(help="s3: the AWS profile (botocore's usual chain otherwise)")]
        = None,
    endpoint_url: Annotated[str | None, typer.Option(help="s3: an S3-compatible endpoint")] = None,
    region: Annotated[str | None, typer.Option(help="s3: the region")] = None,
    bucket: Annotated[list[str] | None, typer.Option(help="s3: audit only these buckets (repeatable)")] = None,
    sample: Annotated[int, typer.Option(help="s3: object heads sniffed per readable bucket at most")] = 20,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only the summary line")] = False,
) -> None:
    """Audit configurations (Samba, FTP, rsync, NFS, nginx, Apache, Orthanc, dcmqrscp, S3) for exposures."""
    from .model import AuditBounds
    from .report import FORMATS, console_lines, summary, unified_diff, write

    if not paths:
        typer.echo("phiwatch: error: give configuration files or folders to audit, or 's3'", err=True)
        raise typer.Exit(2)
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        typer.echo(f"phiwatch: error: unknown format {', '.join(unknown)}; choose from {', '.join(FORMATS)}",
                   err=True)
        raise typer.Exit(2)
    if paths == ["s3"]:
        from .s3account import AccountError, audit_account

        try:
            result = audit_account(profile=profile, endpoint_url=endpoint_url, region=region, buckets=bucket,
                                   sample=sample)
        except AccountError as exc:
            typer.echo(f"phiwatch: error: {exc}", err=True)
            raise typer.Exit(2) from None
    else:
        from .walker import audit_paths

        bounds = AuditBounds(max_files=max_files, max_bytes=max_bytes, max_depth=max_depth,
                             max_include_depth=max_include_depth, sniff_served=sniff_served)
        result = audit_paths([Path(p) for p in paths], bounds)
    if not quiet:
        for line in console_lines(result):
            typer.echo(line)
    if diff:
        sys.stdout.write(unified_diff(result))
    if output is not None:
        for path in write(result, output, chosen):
            typer.echo(f"{path.name} written to {path}", err=True)
    typer.echo(summary(result), err=True)
    if fail_on is not None and any(f.severity.rank >= fail_on.rank for f in result.findings):
        raise typer.Exit(1)


def register(app: typer.Typer, command_class: type | None = None) -> None:
    """Add `phiwatch audit` to the main app (with the app's own command class, for its help layout)."""
    app.command("audit", cls=command_class)(audit)
