"""The one entry point that looks at a file's first bytes and hands them to the sniffer of its kind."""

from __future__ import annotations

from . import archive, dicom, hl7, x12
from .kinds import DEFAULT_BUDGET, Sniffed, kind_from_name


def sniff(data: bytes, name: str = "", *, budget: int = DEFAULT_BUDGET, complete: bool | None = None) -> Sniffed:
    """Sniff `data`, at most `budget` bytes from the start of a file called `name`.

    `complete` says whether `data` is the whole file; by default it is inferred as
    ``len(data) < budget``. When it is not complete, a header that runs past the end of
    `data` gives ``truncated=True``; when it is, the file itself is cut (``malformed``).
    Decompressed heads (gzip, bzip2, xz) are bounded by `budget` too.
    """
    budget = max(1, int(budget))
    if len(data) > budget:
        data = bytes(data[:budget])
        complete = False
    elif complete is None:
        complete = len(data) < budget
    return _sniff(bytes(data), name, budget, complete, 0)


def _sniff(data: bytes, name: str, budget: int, complete: bool, depth: int) -> Sniffed:
    try:
        if dicom.has_part10_magic(data):
            return dicom.sniff_dicom(data, name, budget, complete)
        if archive.has_archive_magic(data, name):
            return archive.sniff_archive(data, name, budget, complete, depth, _sniff)
        head = data[:16].lstrip(b"\xef\xbb\xbf\x0b \t\r\n")
        if head[:3] in (b"MSH", b"FHS", b"BHS"):
            return hl7.sniff_hl7(data, complete)
        if head[:3] == b"ISA":
            return x12.sniff_x12(data, complete)
        if dicom.looks_like_bare_dicom(data, name):
            found = dicom.sniff_dicom(data, name, budget, complete)
            if found.kind != "unknown":
                return found
        hint = kind_from_name(name)
        return Sniffed(
            status="unrecognised",
            detail=f"content not recognised; the name suggests {hint}" if hint else "content not recognised",
        )
    except Exception as exc:  # a sniffer bug must not end a walk; no message: it could quote bytes
        return Sniffed(status="error", detail=f"sniffer failed ({type(exc).__name__})")
