"""ASC X12 interchanges (837 claims, 835 remittances, 270/271, 276/277, 834) from a header budget.

The ISA segment is fixed width (106 characters): its 4th character is the element separator,
its 105th the component separator and its last the segment terminator. Newlines after the
terminator are tolerated, and so is an ISA whose fields lost their padding. PHI segments are
named ("NM1*IL subscriber name and member id") when they carry data; no value is kept.
"""

from __future__ import annotations

import re

from .kinds import Sniffed, SniffStatus

ISA_LENGTH = 106
MAX_SETS = 32
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_SET_ID = re.compile(rb"^[0-9]{3}$")
_VERSION = re.compile(rb"[0-9]{6}[0-9A-Z]{0,6}")
_SEGMENT_ID = re.compile(rb"^[A-Z][A-Z0-9]{1,2}$")

TRANSACTION_SETS = {
    "837": "health care claim",
    "835": "claim payment/advice",
    "834": "benefit enrollment and maintenance",
    "270": "eligibility inquiry",
    "271": "eligibility response",
    "276": "claim status request",
    "277": "claim status response",
    "278": "services review",
    "820": "premium payment",
    "999": "implementation acknowledgment",
    "997": "functional acknowledgment",
}

# (segment id, qualifier in element 1 or None) -> (name, elements that carry the data)
PHI_SEGMENTS: dict[tuple[bytes, bytes | None], tuple[str, tuple[int, ...]]] = {
    (b"NM1", b"IL"): ("NM1*IL subscriber name and member id", (3, 4, 5, 7, 9)),
    (b"NM1", b"QC"): ("NM1*QC patient name and id", (3, 4, 5, 7, 9)),
    (b"DMG", None): ("DMG birth date and sex", (2, 3)),
    (b"N3", None): ("N3 address", (1, 2)),
    (b"N4", None): ("N4 city, state and postal code", (1, 2, 3)),
    (b"REF", b"SY"): ("REF*SY social security number", (2,)),
    (b"REF", b"EA"): ("REF*EA medical record number", (2,)),
    (b"CLM", None): ("CLM01 patient control number", (1,)),
    (b"DTP", None): ("DTP dates", (3,)),
}
_QUALIFIED = frozenset(segment for segment, qualifier in PHI_SEGMENTS if qualifier is not None)


def _separators(text: bytes) -> tuple[bytes, bytes, bytes, bool] | None:
    """(element separator, component separator, segment terminator, fixed width) of the ISA."""
    if len(text) < 4:
        return None
    element = text[3:4]
    if element[0] in _ALNUM or element in b" \r\n":
        return None
    head = text[:ISA_LENGTH]
    if len(head) == ISA_LENGTH and head.count(element) == 16 and head[103:104] == element:
        return element, head[104:105], head[105:106], True
    position = -1
    for _ in range(16):  # an ISA without padding: ISA16 is one character after the 16th separator
        position = text.find(element, position + 1, 512)
        if position == -1:
            return None
    component, terminator = text[position + 1 : position + 2], text[position + 2 : position + 3]
    if len(terminator) != 1:
        return None
    return element, component, terminator, False


def sniff_x12(data: bytes, complete: bool) -> Sniffed:
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    found = _separators(text)
    if found is None:
        truncated = not complete and len(text) < ISA_LENGTH
        return Sniffed(
            kind="x12",
            status="truncated" if truncated else "malformed",
            truncated=truncated,
            detail="ISA segment cut by the byte budget" if truncated else "ISA segment without valid separators",
        )
    element, component, terminator, fixed = found
    if terminator[0] in _ALNUM or terminator == element:
        return Sniffed(kind="x12", status="malformed", detail="ISA segment terminator is not a separator")
    blank = b" \t\r\n" + component
    phi: set[str] = set()
    sets: list[str] = []
    versions: set[str] = set()
    counts = {b"ISA": 0, b"GS": 0, b"ST": 0, b"SE": 0, b"IEA": 0}
    segments = bad = 0
    for segment in text.split(terminator):
        segment = segment.strip(b" \t\r\n")
        if not segment:
            continue
        fields = segment.split(element, 10)
        segment_id = fields[0]
        if not _SEGMENT_ID.fullmatch(segment_id):
            bad += 1
            continue
        segments += 1
        if segment_id in counts:
            counts[segment_id] += 1
        if segment_id == b"ST" and len(fields) > 1 and _SET_ID.fullmatch(fields[1].strip()):
            if len(sets) < MAX_SETS:
                sets.append(fields[1].strip().decode("ascii"))
        elif segment_id == b"GS" and len(fields) > 8 and _VERSION.fullmatch(fields[8].strip()):
            versions.add(fields[8].strip().decode("ascii"))
        qualifier = fields[1].strip() if segment_id in _QUALIFIED and len(fields) > 1 else None
        rule = PHI_SEGMENTS.get((segment_id, qualifier))
        if rule is None:
            continue
        name, positions = rule
        if any(position < len(fields) and fields[position].strip(blank) for position in positions):
            phi.add(name)
    verified = counts[b"ISA"] >= 1 and (counts[b"GS"] + counts[b"ST"]) >= 1 and bad <= segments
    ended = counts[b"IEA"] >= 1 and text.rstrip(b" \t\r\n").endswith(terminator)
    truncated = not complete and not ended
    status: SniffStatus = "truncated" if truncated else ("ok" if verified else "malformed")
    parts = [f"{counts[b'ST']} transaction set{'s' if counts[b'ST'] != 1 else ''}"]
    for code in sorted(set(sets)):
        parts.append(f"{code} {TRANSACTION_SETS.get(code, 'transaction set')}")
    if versions:
        parts.append("version " + ", ".join(sorted(versions)))
    if not fixed:
        parts.append("ISA without fixed-width padding")
    if bad:
        parts.append(f"{bad} pieces that are not segments")
    if truncated:
        parts.append("the byte budget ends before IEA")
    return Sniffed(
        kind="x12",
        verified=verified,
        status=status,
        detail="; ".join(parts),
        phi_attributes=sorted(phi),
        records=counts[b"ST"],
        transaction_set=sets[0] if sets else None,
        truncated=truncated,
    )
