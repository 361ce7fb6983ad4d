"""HL7 v2 messages (ER7 encoding), plain or MLLP-framed, from a header budget.

Segments end with CR, LF or CRLF; MLLP start (0x0B) and end (0x1C) bytes are dropped. Each
MSH sets the field separator and encoding characters for its message. PHI fields are named
("PID-5 patient name") when non-empty; values are never decoded. Every step is a linear pass
(split, strip), so one multi-megabyte line costs a few copies of itself, never quadratic work.
"""

from __future__ import annotations

import re

from .kinds import Sniffed, SniffStatus

MAX_MESSAGE_TYPES = 32
_SEGMENT_END = re.compile(rb"[\r\n]+")
_SEGMENT_ID = re.compile(rb"^[A-Z][A-Z0-9]{2}$")
_MESSAGE_TYPE = re.compile(r"^[A-Z0-9]{3}(?:\^[A-Z0-9]{2,3})?$")
_VERSION = re.compile(rb"^2\.[0-9](?:\.[0-9])?$")
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

# (segment, field number) -> name; field numbers as in the standard (PID-5 is PID's 5th field).
FIELDS: dict[tuple[bytes, int], str] = {
    (b"PID", 3): "PID-3 patient identifier list",
    (b"PID", 5): "PID-5 patient name",
    (b"PID", 7): "PID-7 date of birth",
    (b"PID", 11): "PID-11 patient address",
    (b"PID", 13): "PID-13 home phone",
    (b"PID", 14): "PID-14 business phone",
    (b"PID", 18): "PID-18 patient account number",
    (b"PID", 19): "PID-19 SSN",
    (b"PID", 20): "PID-20 driver's licence number",
    (b"PV1", 7): "PV1-7 attending doctor",
    (b"PV1", 8): "PV1-8 referring doctor",
    (b"PV1", 17): "PV1-17 admitting doctor",
    (b"OBX", 5): "OBX-5 observation value",
    (b"NTE", 3): "NTE-3 comment",
}
# Segments that are about a person as a whole: named when any field after the set ID is filled.
SEGMENTS: dict[bytes, str] = {
    b"NK1": "NK1 next of kin",
    b"GT1": "GT1 guarantor",
    b"IN1": "IN1 insurance",
}
_MAX_FIELD: dict[bytes, int] = {}
for (_segment, _field), _name in FIELDS.items():
    _MAX_FIELD[_segment] = max(_MAX_FIELD.get(_segment, 0), _field)


class _Encoding:
    def __init__(self, field: bytes, characters: bytes) -> None:
        self.field = field
        self.component = characters[:1] or b"^"
        self.blank = b' "' + field + characters  # what an empty field may still contain

    def filled(self, value: bytes) -> bool:
        return bool(value.strip(self.blank))


def _msh_encoding(segment: bytes) -> _Encoding | None:
    """The separators an MSH (or FHS, BHS) segment declares, or None when they are not valid."""
    if len(segment) < 5:
        return None
    field = segment[3:4]
    if field[0] in _ALNUM or field in (b" ", b"\r", b"\n"):
        return None
    end = segment.find(field, 4, 10)
    characters = segment[4:end] if end != -1 else segment[4:9]
    if not 2 <= len(characters) <= 5 or len(set(characters)) != len(characters):
        return None
    if any(c in _ALNUM or c in b" \r\n" for c in characters) or field in characters:
        return None
    return _Encoding(field, characters)


def sniff_hl7(data: bytes, complete: bool) -> Sniffed:
    text = data.translate(None, b"\x0b\x1c")  # MLLP framing; 0x1C 0x0D becomes a segment end
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    phi: set[str] = set()
    types: set[str] = set()
    versions: set[str] = set()
    messages = 0
    segments = 0
    bad_segments = 0
    encoding: _Encoding | None = None
    for segment in _SEGMENT_END.split(text):
        segment = segment.lstrip(b" \t")
        if not segment:
            continue
        segment_id = segment[:3]
        if not _SEGMENT_ID.fullmatch(segment_id):
            bad_segments += 1
            continue
        segments += 1
        if segment_id in (b"MSH", b"FHS", b"BHS"):
            encoding = _msh_encoding(segment)
            if encoding is None:
                bad_segments += 1
                continue
            if segment_id == b"MSH":
                messages += 1
                _header(segment, encoding, types, versions)
            continue
        if encoding is None:
            continue  # a segment before any header: not part of a message we can read
        if segment_id in SEGMENTS:
            fields = segment.split(encoding.field, 2)
            if len(fields) == 3 and encoding.filled(fields[2]):
                phi.add(SEGMENTS[segment_id])
            continue
        last = _MAX_FIELD.get(segment_id)
        if last is None:
            continue
        fields = segment.split(encoding.field, last + 1)
        for number in range(1, min(last, len(fields) - 1) + 1):
            name = FIELDS.get((segment_id, number))
            if name and encoding.filled(fields[number]):
                phi.add(name)
    truncated = not complete and not text.rstrip(b" \t").endswith((b"\r", b"\n"))
    verified = messages > 0 and bad_segments <= segments
    status: SniffStatus = "truncated" if truncated else ("ok" if verified else "malformed")
    parts = [f"{messages} message{'s' if messages != 1 else ''}", f"{segments} segments"]
    if versions:
        parts.append("HL7 v" + ", v".join(sorted(versions)))
    if bad_segments:
        parts.append(f"{bad_segments} lines that are not segments")
    if truncated:
        parts.append("the byte budget ends inside a segment")
    if not messages:
        parts.append("no valid MSH segment")
    return Sniffed(
        kind="hl7",
        verified=verified,
        status=status,
        detail="; ".join(parts),
        phi_attributes=sorted(phi),
        records=messages,
        hl7_message_types=sorted(types)[:MAX_MESSAGE_TYPES],
        truncated=truncated,
    )


def _header(segment: bytes, encoding: _Encoding, types: set[str], versions: set[str]) -> None:
    """Message type (MSH-9) and version (MSH-12): codes from the standard's tables, checked."""
    fields = segment.split(encoding.field, 12)  # fields[n - 1] is MSH-n (MSH-1 is the separator)
    if len(fields) > 8 and len(types) < MAX_MESSAGE_TYPES:
        components = fields[8].split(encoding.component, 2)[:2]
        code = "^".join(part.strip().decode("ascii", "replace") for part in components if part.strip())
        if _MESSAGE_TYPE.fullmatch(code):
            types.add(code)
    if len(fields) > 11:
        version = fields[11].split(encoding.component, 1)[0].strip()
        if _VERSION.fullmatch(version):
            versions.add(version.decode("ascii"))
