"""Renderers of one ScanResult. They never re-derive severities or facts."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the format names are read at start-up, before any model is needed
    from ..models import ScanResult

# format name -> (module, writer function); modules are imported only when used
FORMATS: dict[str, tuple[str, str]] = {
    "json": ("json_report", "write_scan_json"),
    "html": ("html", "write"),
    "csv": ("csv_report", "write"),
    "sarif": ("sarif", "write"),
    "md": ("markdown", "write"),
}


def writer(name: str) -> Callable[[ScanResult, Path], Path]:
    module, function = FORMATS[name]
    return getattr(import_module(f"{__name__}.{module}"), function)  # type: ignore[no-any-return]


def write_reports(result: ScanResult, directory: Path, formats: list[str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [writer(name)(result, directory) for name in formats]
