"""Renderers of one ScanResult. They never re-derive severities or facts, and never look the
catalog or the compliance mappings up: each finding carries its texts from the moment it was made.

Every format is a `render(result) -> str` in its module and a file name; `write_report` puts the
text on disk through the one atomic writer (reports/atomic.py), optionally passed through a
transform first (the configuration audit masks secrets before anything reaches the disk).
The HTML and Markdown writers take an optional AuditView: the same writer then reads as an audit.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import write_atomic

if TYPE_CHECKING:  # the format names are read at start-up, before any model is needed
    from ..models import ScanResult
    from .audit_view import AuditView

# format name -> (module, file name, newline); modules are imported only when used
FORMATS: dict[str, tuple[str, str, str | None]] = {
    "json": ("json_report", "scan.json", None),
    "html": ("html", "report.html", None),
    "csv": ("csv_report", "findings.csv", ""),
    "sarif": ("sarif", "phiwatch.sarif", None),
    "md": ("markdown", "report.md", None),
}
AUDIT_AWARE = {"html", "md"}  # formats with an audit mode; the others show an audit as findings only


def render(name: str, result: ScanResult, audit: AuditView | None = None) -> str:
    module, _, _ = FORMATS[name]
    renderer = import_module(f"{__name__}.{module}").render
    if audit is not None and name in AUDIT_AWARE:
        return str(renderer(result, audit))
    return str(renderer(result))


def write_report(name: str, result: ScanResult, directory: Path,
                 transform: Callable[[str], str] | None = None, audit: AuditView | None = None) -> Path:
    _, filename, newline = FORMATS[name]
    text = render(name, result, audit)
    return write_atomic(directory / filename, transform(text) if transform else text, newline)


def writer(name: str) -> Callable[[ScanResult, Path], Path]:
    return lambda result, directory: write_report(name, result, directory)


def write_reports(result: ScanResult, directory: Path, formats: list[str]) -> list[Path]:
    return [write_report(name, result, directory) for name in formats]
