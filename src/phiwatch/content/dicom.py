"""DICOM files (PS3.10, with or without the preamble) and DICOMDIRs, from a header budget.

Elements are read with pydicom's raw element generator (`data_element_generator`, values as
bytes, large values deferred) inside `warnings.catch_warnings()`. A PHI attribute is named
when its raw bytes are not blank; no value is converted, kept or logged. Every pydicom error
ends in a status (truncated, malformed).
"""

from __future__ import annotations

import logging
import re
import struct
import warnings
import zlib
from collections import Counter
from contextvars import ContextVar
from io import BytesIO
from typing import Any

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.filereader import data_element_generator
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from ..phi import DICOM_PHI_KEYWORDS
from .kinds import Sniffed, SniffStatus, kind_from_name

DEFER_SIZE = 1024  # values longer than this are skipped, never read (a PHI value this long is still "present")
MAGIC_OFFSET = 128
_PHI_TAGS: dict[int, str] = {}
for _keyword in DICOM_PHI_KEYWORDS:
    _tag = tag_for_keyword(_keyword)
    if _tag is not None:
        _PHI_TAGS[_tag] = _keyword

TRANSFER_SYNTAX = 0x00020010
MEDIA_SOP_CLASS = 0x00020002
SOP_CLASS = 0x00080016
MODALITY = 0x00080060
BURNED_IN = 0x00280301
DIRECTORY_RECORDS = 0x00041220
RECORD_TYPE = 0x00041430
FIRST_PIXEL_TAG = 0x7FE00008  # Float Pixel Data, Double Float Pixel Data, Pixel Data: stop before
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF

MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"

_VRS = frozenset(vr.value.encode("ascii") for vr in VR if len(vr.value) == 2)
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_UID = re.compile(rb"^[0-9]{1,10}(?:\.[0-9]{1,20}){1,30}$")
_CODE = re.compile(rb"^[A-Z0-9_ ]{1,16}$")
_BARE_GROUPS = (0x0002, 0x0008)
_SNIFFING: ContextVar[bool] = ContextVar("phiwatch_content_sniffing", default=False)


class _QuietWhileSniffing(logging.Filter):
    """Drops pydicom's log records while a sniff runs in this thread or task.

    pydicom logs some values as it reads them (a Specific Character Set it does not know,
    via `warn_and_log`); a hostile file can put anything there. Warnings are silenced with
    `warnings.catch_warnings()`, log records here. Outside a sniff the filter passes all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not _SNIFFING.get()


logging.getLogger("pydicom").addFilter(_QuietWhileSniffing())


def has_part10_magic(data: bytes) -> bool:
    return len(data) >= MAGIC_OFFSET + 4 and data[MAGIC_OFFSET : MAGIC_OFFSET + 4] == b"DICM"


def _bare_encoding(data: bytes, name: str) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) when offset 0 holds a plausible first element, else None."""
    if len(data) < 8:
        return None
    groups: tuple[int, ...] = _BARE_GROUPS
    if kind_from_name(name) in ("dicom", "dicomdir"):
        groups = (0x0002, 0x0008, 0x0010, 0x0018, 0x0020)  # the name backs a weaker start
    little_group, big_group = struct.unpack("<H", data[:2])[0], struct.unpack(">H", data[:2])[0]
    if little_group in groups and data[4:6] in _VRS:
        return False, True
    if big_group in groups and big_group != 0x0002 and data[4:6] in _VRS:
        return False, False
    if little_group in groups and little_group != 0x0002:
        length = struct.unpack("<L", data[4:8])[0]
        if length < 0x10000 and (length == 0 or length % 2 == 0 or length < 256):
            return True, True
    return None


def looks_like_bare_dicom(data: bytes, name: str = "") -> bool:
    return _bare_encoding(data, name) is not None


def _is_blank(value: Any, length: int) -> bool:
    if value is None:  # deferred: longer than DEFER_SIZE, so not blank
        return length == 0
    if isinstance(value, bytes | bytearray):
        return not bytes(value).strip(b" \x00")
    return False  # a parsed sequence or other value: present


def _code(value: Any) -> str | None:
    """A short code string (CS) or UID from raw bytes, or None when it is not one."""
    if not isinstance(value, bytes):
        return None
    raw = value.strip(b" \x00")
    if _UID.fullmatch(raw) or _CODE.fullmatch(raw):
        return raw.decode("ascii")
    return None


def _uid_name(uid: str | None) -> str | None:
    """The standard's name for a UID (transfer syntax, SOP class), from pydicom's table, unvalidated."""
    entry = UID_dictionary.get(uid) if uid else None
    return str(entry[0]) if entry else None


class _Scan:
    """The state of one sniff: names, facts and how reading ended."""

    def __init__(self, data: bytes, complete: bool) -> None:
        self.data = data
        self.end = len(data)
        self.complete = complete
        self.phi: set[str] = set()
        self.facts: dict[int, str] = {}
        self.records: Counter[str] = Counter()
        self.elements = 0
        self.cut = False  # the data ended inside the header
        self.malformed: str | None = None
        self.finished = False  # reached pixel data, the end of the records, or a clean end
        self.directory = False
        self.inferred: str | None = None  # the encoding read from the bytes when there is no meta group
        self._stopped_at: int | None = None

    # -- top level ------------------------------------------------------------------------

    def _stop(self, tag: int, vr: str | None, length: int) -> bool:
        value = int(tag)  # a pydicom BaseTag: its comparisons are slow
        if value >= FIRST_PIXEL_TAG or value == DIRECTORY_RECORDS:
            self._stopped_at = value
            return True
        return False

    def _stop_meta(self, tag: int, vr: str | None, length: int) -> bool:
        value = int(tag)
        if value >> 16 != 0x0002:
            self._stopped_at = value
            return True
        return False

    def walk(self, fp: BytesIO, implicit: bool, little: bool, meta: bool = False) -> None:
        """Top-level elements from fp's position; `meta` stops at the end of group 0x0002."""
        self._stopped_at = None
        stop = self._stop_meta if meta else self._stop
        previous = -1
        generator = data_element_generator(fp, implicit, little, stop_when=stop, defer_size=DEFER_SIZE)
        try:
            for element in generator:
                tag = int(element.tag)
                if tag <= previous:
                    self.malformed = "elements out of order"
                    return
                previous = tag
                self.elements += 1
                if isinstance(element, RawDataElement):
                    length = element.length
                    if length != UNDEFINED and element.value_tell + length > self.end:
                        self.cut = True
                    self._element(tag, element.value, length)
                if self.cut:
                    return
        except Exception:  # pydicom on hostile bytes: struct, EOF, OS, value and recursion errors
            if fp.tell() >= self.end - 8:
                self.cut = True
            else:
                self.malformed = "the header does not parse"
            return
        if meta:
            self.cut = self._stopped_at is None and fp.tell() >= self.end
            return
        if self._stopped_at == DIRECTORY_RECORDS:
            self.directory = True
            self.walk_records(fp, implicit, little)
        elif self._stopped_at is not None:
            self.finished = True
        elif fp.tell() >= self.end:
            # the data ended between elements: the whole dataset if the file is complete
            self.finished = self.complete
            self.cut = not self.complete
        else:
            self.finished = True  # an item delimiter at top level: nothing more to read

    def _element(self, tag: int, value: Any, length: int) -> None:
        keyword = _PHI_TAGS.get(tag)
        if keyword is not None:
            if not _is_blank(value, length):
                self.phi.add(keyword)
            return
        if tag in (TRANSFER_SYNTAX, MEDIA_SOP_CLASS, SOP_CLASS, MODALITY, BURNED_IN):
            code = _code(value)
            if code is not None:
                self.facts[tag] = code

    # -- DICOMDIR records -----------------------------------------------------------------

    def walk_records(self, fp: BytesIO, implicit: bool, little: bool) -> None:
        """Count the Directory Record Sequence's items, streaming, as far as the data goes."""
        endian = "<" if little else ">"
        header = fp.read(8)
        if len(header) < 8:
            self.cut = True
            return
        if implicit:
            length = struct.unpack(endian + "L", header[4:8])[0]
        elif header[4:6].decode("latin-1") in _LONG_VRS:
            extra = fp.read(4)
            if len(extra) < 4:
                self.cut = True
                return
            length = struct.unpack(endian + "L", extra)[0]
        else:
            length = struct.unpack(endian + "H", header[6:8])[0]
        sequence_end = None if length == UNDEFINED else fp.tell() + length
        while True:
            if sequence_end is not None and fp.tell() >= sequence_end:
                self.finished = sequence_end <= self.end
                self.cut = not self.finished
                return
            item = fp.read(8)
            if len(item) < 8:
                self.cut = True
                return
            group, element, item_length = struct.unpack(endian + "HHL", item)
            tag = group << 16 | element
            if tag == SEQUENCE_END:
                self.finished = True
                return
            if tag != ITEM:
                self.malformed = "a directory record is not a sequence item"
                return
            start = fp.tell()
            if item_length == UNDEFINED:
                record_type = self._record(fp, implicit, little, self.end)
                closed = fp.tell() <= self.end and self.data[fp.tell() - 8 : fp.tell() - 4] == struct.pack(
                    endian + "HH", 0xFFFE, 0xE00D
                )
            else:
                closed = start + item_length <= self.end
                body = self.data[start : start + item_length]
                record_type = self._record(BytesIO(body), implicit, little, len(body))
                fp.seek(start + item_length)
            if not closed:
                self.cut = True
                return
            if self.malformed:
                return
            self.records[record_type or "UNKNOWN"] += 1

    def _record(self, fp: BytesIO, implicit: bool, little: bool, end: int) -> str | None:
        record_type = None
        try:
            for element in data_element_generator(fp, implicit, little, defer_size=DEFER_SIZE):
                tag = int(element.tag)
                value = element.value
                if tag == RECORD_TYPE:
                    record_type = _code(value)
                    continue
                keyword = _PHI_TAGS.get(tag)
                if keyword is not None and not _is_blank(value, getattr(element, "length", 0)):
                    self.phi.add(keyword)
        except Exception:
            if fp.tell() < end - 8:
                self.malformed = "a directory record does not parse"
        return record_type


def _dataset_encoding(data: bytes, offset: int, transfer_syntax: str | None) -> tuple[bool, bool]:
    """(implicit, little endian) for the dataset at `offset`, checked against the bytes there."""
    little = transfer_syntax != EXPLICIT_BE
    implicit = transfer_syntax == IMPLICIT_LE
    vr = data[offset + 4 : offset + 6]
    if len(vr) == 2:
        implicit = vr not in _VRS  # what pydicom does too: trust the bytes over the meta header
    return implicit, little


def sniff_dicom(data: bytes, name: str, budget: int, complete: bool) -> Sniffed:
    part10 = has_part10_magic(data)
    if not part10 and _bare_encoding(data, name) is None:
        return Sniffed(status="unrecognised", detail="content not recognised")
    scan = _Scan(data, complete)
    quiet = _SNIFFING.set(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scan = _read(scan, data, part10, name, budget, complete)
    finally:
        _SNIFFING.reset(quiet)
    if not part10:
        enough = scan.elements >= 3 or (scan.elements >= 1 and scan.finished)
        if not enough or (scan.malformed and scan.elements < 8):
            return Sniffed(status="unrecognised", detail="content not recognised")
    return _result(scan, "Part 10" if part10 else "no preamble")


def _read(scan: _Scan, data: bytes, part10: bool, name: str, budget: int, complete: bool) -> _Scan:
    fp = BytesIO(data)
    offset = MAGIC_OFFSET + 4 if part10 else 0
    if not part10 and data[:2] != b"\x02\x00":
        encoding = _bare_encoding(data, name)
        if encoding is not None:
            implicit, little = encoding
            scan.inferred = f"{'Implicit' if implicit else 'Explicit'} VR {'Little' if little else 'Big'} Endian"
            scan.walk(fp, implicit, little)
        return scan
    fp.seek(offset)
    scan.walk(fp, data[offset + 4 : offset + 6] not in _VRS, True, meta=True)
    if scan.elements == 0 and not scan.cut:
        scan.malformed = scan.malformed or "DICM magic without a file meta group"
    if scan.malformed or scan.cut:
        return scan
    transfer_syntax = scan.facts.get(TRANSFER_SYNTAX)
    offset = fp.tell()
    if transfer_syntax == DEFLATED_LE:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data[offset:], budget)
        except zlib.error:
            scan.malformed = "the deflated dataset does not inflate"
            return scan
        scan = _rescan(scan, data, complete and inflater.eof)
        fp, offset = BytesIO(data), 0
    implicit, little = _dataset_encoding(data, offset, transfer_syntax)
    fp.seek(offset)
    scan.walk(fp, implicit, little)
    return scan


def _rescan(scan: _Scan, inflated: bytes, complete: bool) -> _Scan:
    """A scan over the inflated dataset that keeps what the meta group showed."""
    fresh = _Scan(inflated, complete)
    fresh.facts.update(scan.facts)
    fresh.elements = scan.elements
    fresh.malformed = scan.malformed
    return fresh


def _result(scan: _Scan, layout: str) -> Sniffed:
    media_class = scan.facts.get(MEDIA_SOP_CLASS)
    directory = scan.directory or media_class == MEDIA_DIRECTORY
    status: SniffStatus
    truncated = False
    if scan.malformed:
        status = "malformed"
    elif scan.cut and not scan.complete:
        status, truncated = "truncated", True
    elif scan.cut:
        status = "malformed"
    else:
        status = "ok"
    verified = scan.elements >= 2 and not (scan.malformed and scan.elements < 4)
    parts: list[str] = [layout]
    transfer_syntax = _uid_name(scan.facts.get(TRANSFER_SYNTAX)) or scan.inferred
    if transfer_syntax:
        parts.append(transfer_syntax)
    sop_class = _uid_name(scan.facts.get(SOP_CLASS) or media_class)
    if sop_class:
        parts.append(sop_class)
    modality = scan.facts.get(MODALITY)
    if modality and modality.isalnum():
        parts.append(f"modality {modality}")
    phi = set(scan.phi)
    if scan.facts.get(BURNED_IN) == "YES":
        parts.append("BurnedInAnnotation YES: the pixels carry identifying text")
        phi.add("BurnedInAnnotation")
    if directory:
        counted = ", ".join(f"{count} {kind}" for kind, count in sorted(scan.records.items()))
        parts.append(f"records: {counted}" if counted else "no directory records read")
    if scan.malformed:
        parts.append(scan.malformed)
    elif scan.cut and not scan.complete:
        parts.append("the byte budget ends inside the header")
    elif scan.cut:
        parts.append("the file ends inside the header")
    return Sniffed(
        kind="dicomdir" if directory else "dicom",
        verified=verified,
        status=status,
        detail="; ".join(parts)[:400],
        phi_attributes=sorted(phi),
        records=sum(scan.records.values()) if directory else None,
        truncated=truncated,
    )
