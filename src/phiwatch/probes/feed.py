"""Server-first clinical feeds: HL7 v2 (over MLLP or bare) and ASTM sent to anyone who connects.

An interface engine or a laboratory instrument that pushes messages to whoever opens a
connection is itself an exposure. phiwatch recognises such a service from its first bytes
(on any port; HL7 MLLP's 2575 is a default port), then listens once more, bounded in bytes
and time, and counts what came by message type and by segment or record type. It never
writes a byte to the feed: no HL7 ACK and no ASTM ACK, so the sender never takes phiwatch for
the receiver it expects and never marks a message as delivered. Values are never kept: the
bytes are read into memory, counted (PHI field *names* through content.hl7) and dropped.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from ..content.hl7 import sniff_hl7
from ..engine import Engine, ProbeFailure
from ..models import FeedFacts, ProbeStatus
from .outcome import Outcome, Peer

if TYPE_CHECKING:
    from .options import ProbeOptions

MAX_BYTES = 64 * 1024
QUIET = 1.5  # seconds without a byte: the sender has said what it says on connect
WALL = 6.0
_SEGMENT = re.compile(rb"(?:^|[\r\n\x0b])([A-Z][A-Z0-9]{2})(?=[|\r\n])")
_ASTM_RECORD = re.compile(rb"(?:^|[\r\n]|\x02[0-7])([HPOCRMQLS])\|")
ASTM_RECORDS = {b"H": "header", b"P": "patient", b"O": "order", b"R": "result", b"C": "comment",
                b"M": "manufacturer", b"Q": "request", b"L": "terminator", b"S": "scientific"}
MAX_KINDS = 32


def kind_of(data: bytes) -> str | None:
    """'hl7-mllp', 'hl7' or 'astm' when these first bytes start such a feed, else None."""
    if data[:4] == b"\x0bMSH":
        return "hl7-mllp"
    if data[:3] == b"MSH" and len(data) > 8 and not data[3:4].isalnum():
        return "hl7"
    if data[:1] == b"\x05" or (data[:1] == b"\x02" and data[1:2].isdigit() and data[2:4] == b"H|"):
        return "astm"
    if data[:2] == b"H|" and data[2:3] in (b"\\", b"^"):
        return "astm"
    return None


def count(kind: str, data: bytes, complete: bool) -> FeedFacts:
    """What the pushed bytes hold, as counts and names; the bytes themselves are dropped."""
    facts = FeedFacts(kind=kind, bytes_read=len(data), complete=complete)  # type: ignore[arg-type]
    if kind == "astm":
        records = [match.group(1) for match in _ASTM_RECORD.finditer(data)]
        facts.messages = records.count(b"H")
        facts.segments = _tally(ASTM_RECORDS[r] for r in records)
        facts.handshake_only = not records
        if b"P" in records and _astm_patient_filled(data):
            facts.phi_attributes = ["P patient information record"]
        return facts
    sniffed = sniff_hl7(data, complete)
    facts.messages = sniffed.records or 0
    facts.message_types = sniffed.hl7_message_types[:MAX_KINDS]
    facts.segments = _tally(match.group(1).decode("ascii") for match in _SEGMENT.finditer(data))
    facts.phi_attributes = sniffed.phi_attributes
    return facts


def _tally(names: object) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:  # type: ignore[attr-defined]
        if name in counts or len(counts) < MAX_KINDS:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _astm_patient_filled(data: bytes) -> bool:
    """A patient record with any field after its sequence number filled."""
    for match in re.finditer(rb"(?:^|[\r\n]|\x02[0-7])P\|([^\r\n]*)", data):
        fields = match.group(1).split(b"|")[1:]
        if any(field.strip(b" ^\\&") for field in fields):
            return True
    return False


async def listen(engine: Engine, host: str, port: int) -> tuple[bytes, bool]:
    """What the service sends a new, silent connection: (bytes, complete). Never writes."""
    data = b""
    complete = False
    started = time.monotonic()
    try:
        async with await engine.connect(host, port) as channel:
            while len(data) < MAX_BYTES:
                left = WALL - (time.monotonic() - started)
                if left <= 0:
                    break
                try:
                    chunk = await channel.read_some(MAX_BYTES - len(data), timeout=min(QUIET, left))
                except ProbeFailure as failure:
                    complete = failure.status is ProbeStatus.TIMEOUT and bool(data)  # it went quiet
                    break
                if not chunk:
                    complete = True
                    break
                data += chunk
    except ProbeFailure:
        pass
    return data, complete


async def _probe(engine: Engine, peer: Peer, kinds: tuple[str, ...]) -> Outcome[FeedFacts] | None:
    """Listen to a feed; None when what it sends is not one of `kinds` (not this protocol)."""
    if peer.channel is not None:
        await peer.channel.close()
    data, complete = await listen(engine, peer.host, peer.port)
    kind = kind_of(data)
    if kind not in kinds:
        return None
    facts = count(kind, data, complete)
    exposed = facts.phi_attributes or facts.messages
    return Outcome(ProbeStatus.EXPOSED if exposed else ProbeStatus.OPEN, facts)


async def hl7(engine: Engine, peer: Peer, options: ProbeOptions) -> Outcome[FeedFacts] | None:
    """The protocol table's HL7 v2 probe (MLLP or bare)."""
    return await _probe(engine, peer, ("hl7-mllp", "hl7"))


async def astm(engine: Engine, peer: Peer, options: ProbeOptions) -> Outcome[FeedFacts] | None:
    """The protocol table's ASTM probe."""
    return await _probe(engine, peer, ("astm",))
