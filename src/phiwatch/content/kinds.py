"""The kinds of file content, what a sniff found (names and counts only), and what a file's name
suggests. Shared by every sniffer in this package; imports none of them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..text import sanitize

Kind = Literal["dicom", "dicomdir", "hl7", "x12", "archive", "unknown"]
SniffStatus = Literal["ok", "truncated", "malformed", "unrecognised", "error"]
KINDS: tuple[str, ...] = ("dicom", "dicomdir", "hl7", "x12", "archive", "unknown")

DEFAULT_BUDGET = 65_536
MAX_NESTING = 2  # a gzip inside a gzip is looked into; a third level is not
MAX_ENTRIES = 1_000  # archive entry names kept per result


class Sniffed(BaseModel):
    """What a byte budget from the start of a file showed. Names and counts only."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind = "unknown"
    verified: bool = False  # the content (not only a magic number or the name) confirmed the kind
    status: SniffStatus = "unrecognised"
    detail: str | None = None  # format facts (transfer syntax, SOP class, record counts); never PHI
    phi_attributes: list[str] = Field(default_factory=list)  # names of non-empty PHI attributes
    records: int | None = None  # DICOMDIR records, HL7 messages or X12 transaction sets in the budget
    transaction_set: str | None = None  # X12 ST01, e.g. "837"
    hl7_message_types: list[str] = Field(default_factory=list)  # e.g. "ADT^A01"
    truncated: bool = False  # the byte budget ended before the header did
    entries: list[str] | None = None  # archives: masked entry names within the budget


InnerSniff = Callable[[bytes, str, int, bool, int], Sniffed]


# --- names -------------------------------------------------------------------------------

_DICOM_EXT = frozenset({".dcm", ".dicom", ".dic", ".dc3", ".dcm30", ".ima"})
_HL7_EXT = frozenset({".hl7", ".hl7v2", ".h7"})
_X12_EXT = frozenset({".edi", ".x12", ".837", ".835", ".834", ".270", ".271", ".276", ".277", ".820", ".999"})
_ARCHIVE_EXT = frozenset({".zip", ".gz", ".tgz", ".tar", ".bz2", ".tbz2", ".xz", ".txz", ".7z", ".rar", ".zst"})
# Basenames that are DICOM by convention (PS3.10 media: IM00001; viewers: IMG0001, I0000001).
_IMAGE_NAME = re.compile(r"^(?:IM|IMG|I)[0-9#]{1,12}[A-Z]?$", re.IGNORECASE)
# Bare numbers and UID-shaped names: DICOM only inside an imaging folder.
_NUMERIC_NAME = re.compile(r"^(?:[0-9#]{1,16}[A-Z]?|[0-9]+(?:\.[0-9]+){3,})$", re.IGNORECASE)
_IMAGING_DIR = re.compile(
    r"^(?:DICOM|DCM|PACS|IMAGES?|IMG|SERIES|STUDY|STUDIES|EXAMS?|"
    r"(?:SE|ST|PT|PA|S|P)[0-9#]{1,12}|(?:CT|MR|US|CR|DX|MG|XA|NM|PT|OT|SC)[0-9#]{1,12}|"
    r"[0-9]+(?:\.[0-9]+){3,})$",
    re.IGNORECASE,
)
_SPLIT_PATH = re.compile(r"[\\/]+")


def kind_from_name(name: str) -> Kind | None:
    """The kind a file's name suggests, for counts estimated beyond the sniff budget.

    `name` may be a relative path: numeric names (``00000001``, a UID) count as DICOM only
    inside an imaging folder (``DICOM``, ``SE000001``, ``MR700``, a UID folder ...). Masked
    names from `safe_entry_name` (``IM#####``) are understood too.
    """
    parts = [part for part in _SPLIT_PATH.split(name) if part]
    if not parts:
        return None
    base = parts[-1]
    if base.upper() == "DICOMDIR":
        return "dicomdir"
    dot = base.rfind(".")
    ext = base[dot:].lower() if dot > 0 else ""
    if ext in _DICOM_EXT:
        return "dicom"
    if ext in _HL7_EXT:
        return "hl7"
    if ext in _X12_EXT:
        return "x12"
    if ext in _ARCHIVE_EXT:
        return "archive"
    if _IMAGE_NAME.fullmatch(base):
        return "dicom"
    if _NUMERIC_NAME.fullmatch(base) and any(_IMAGING_DIR.fullmatch(part) for part in parts[-5:-1]):
        return "dicom"
    return None


# File and folder names in medical shares often carry PHI (viewers export to folders named
# "NAME^GIVEN 12345"; MRNs name patient folders). Entry names are therefore masked: a path
# component survives only as a structural word, or as its shape with every digit as '#'
# behind a known DICOM prefix; anything else becomes '*'. Known extensions are kept.
_STRUCTURAL = frozenset(
    {"DICOMDIR", "DICOM", "DCM", "PACS", "IMAGES", "IMAGE", "IMG", "SERIES", "STUDY", "STUDIES", "EXAM", "EXAMS"}
)
_KNOWN_EXT = _DICOM_EXT | _HL7_EXT | _X12_EXT | _ARCHIVE_EXT | frozenset(
    {".txt", ".xml", ".json", ".csv", ".pdf", ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".raw", ".img",
     ".nii", ".htm", ".html", ".dat", ".bin", ".log", ".doc", ".docx", ".xls", ".xlsx", ".ini", ".cfg"}
)
_SHAPED = re.compile(
    r"^(IM|IMG|I|SE|SER|ST|STU|PT|PA|EX|S|P|CT|MR|US|CR|DX|MG|XA|NM|OT|SC)?([0-9]{1,16})([A-Z]?)$", re.IGNORECASE
)


def safe_entry_name(name: str | bytes) -> str:
    """A masked, printable form of an archive entry name that keeps what says its kind."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    out: list[str] = []
    for part in [part for part in _SPLIT_PATH.split(name) if part][-8:]:
        dot = part.rfind(".")
        stem, ext = (part[:dot], part[dot:].lower()) if dot > 0 else (part, "")
        if ext and ext not in _KNOWN_EXT:
            stem, ext = part, ""
        if stem in (".", ".."):
            out.append(stem)
        elif stem.upper() in _STRUCTURAL:
            out.append(stem.upper() + ext)
        elif match := _SHAPED.fullmatch(stem):
            prefix, digits, letter = match.groups()
            out.append((prefix or "").upper() + "#" * len(digits) + letter.upper() + ext)
        else:
            out.append("*" + ext)
    return sanitize("/".join(out), 160)
