"""What the first bytes of a file hold: DICOM, a DICOMDIR, HL7 v2, X12, an archive, or unknown.

`sniff` looks at no more than a byte budget taken from the START of a file (the caller reads
headers only) and names the PHI attributes it finds non-empty. It never keeps, decodes into
output or logs a value: a result carries attribute names, counts, message and transaction
type codes, and masked archive entry names (see `safe_entry_name`). Every failure ends in a
status, never an exception.

The package stands on its own; file-repository probes (FTP, SMB, rsync, NFS, S3, HTTP
listings) and `phiwatch sniff PATH` (`walk.sniff_path`) build on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .kinds import DEFAULT_BUDGET, KINDS, Kind, Sniffed, SniffStatus, kind_from_name, safe_entry_name

if TYPE_CHECKING:
    from .sniffer import sniff
    from .walk import FileError, KindCount, SniffSummary, sniff_path

# pydicom (under the DICOM sniffer) loads in a quarter of a second: only when a file is sniffed
_LAZY = {"sniff": "sniffer", "FileError": "walk", "KindCount": "walk", "SniffSummary": "walk",
         "sniff_path": "walk"}

__all__ = [
    "DEFAULT_BUDGET",
    "KINDS",
    "FileError",
    "Kind",
    "KindCount",
    "SniffStatus",
    "SniffSummary",
    "Sniffed",
    "kind_from_name",
    "safe_entry_name",
    "sniff",
    "sniff_path",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
