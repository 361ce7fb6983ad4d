"""DICOM upper layer (PS3.8) over an engine Channel.

pynetdicom encodes and decodes the PDUs; this module frames them on our own
sockets, bounds every length, and turns what the peer says into typed facts.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from functools import lru_cache

from pynetdicom import pdu as ul
from pynetdicom.pdu_items import (
    ImplementationClassUIDSubItem,
    ImplementationVersionNameSubItem,
    MaximumLengthSubItem,
)
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context
from pynetdicom.utils import set_ae

from ..engine import Channel, ProbeFailure
from ..models import AssociationReject, ContextResult, ProbeStatus, RejectReason
from ..peertext import implementation_name
from ..text import sanitize

_UID = re.compile(r"[0-9][0-9.]{0,63}")

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
OUR_IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1492.1"
OUR_VERSION_NAME = "PHIWATCH_01"
OUR_MAX_PDU = 65536
# A negotiation PDU (AC, RJ, abort, release) is small; a P-DATA-TF may not exceed what we
# announced by more than the framing; anything larger is a protocol error, not a read.
MAX_NEGOTIATION_PDU = 64 * 1024
MAX_DATA_PDU = OUR_MAX_PDU + 1024

# (short name, SOP class UID), proposed in this order; context ids are 1, 3, 5, ...
CONTEXTS: list[tuple[str, str]] = [
    ("verification", "1.2.840.10008.1.1"),
    ("study-root-find", "1.2.840.10008.5.1.4.1.2.2.1"),
    ("patient-root-find", "1.2.840.10008.5.1.4.1.2.1.1"),
    ("study-root-move", "1.2.840.10008.5.1.4.1.2.2.2"),
    ("patient-root-move", "1.2.840.10008.5.1.4.1.2.1.2"),
    ("study-root-get", "1.2.840.10008.5.1.4.1.2.2.3"),
    ("patient-root-get", "1.2.840.10008.5.1.4.1.2.1.3"),
    ("modality-worklist-find", "1.2.840.10008.5.1.4.31"),
    ("ct-storage", "1.2.840.10008.5.1.4.1.1.2"),
    ("mr-storage", "1.2.840.10008.5.1.4.1.1.4"),
    ("cr-storage", "1.2.840.10008.5.1.4.1.1.1"),
    ("dx-storage", "1.2.840.10008.5.1.4.1.1.1.1"),
    ("us-storage", "1.2.840.10008.5.1.4.1.1.6.1"),
    ("sc-storage", "1.2.840.10008.5.1.4.1.1.7"),
    ("mg-storage", "1.2.840.10008.5.1.4.1.1.1.2"),
    ("xa-storage", "1.2.840.10008.5.1.4.1.1.12.1"),
    ("nm-storage", "1.2.840.10008.5.1.4.1.1.20"),
    ("pt-storage", "1.2.840.10008.5.1.4.1.1.128"),
]
STORAGE_CONTEXTS = {name for name, _ in CONTEXTS if name.endswith("-storage")}
# A UID under phiwatch's own root that names no SOP class at all. Proposed last, as one more
# presentation context in the same A-ASSOCIATE-RQ (no extra connection, nothing sent in it):
# a real SCP answers "abstract syntax not supported" (3); a server that accepts it accepts
# anything, as honeypots do. Turned off with the trust signals.
UNKNOWN_SOP_CLASS = ("unknown-sop-class", "1.2.826.0.1.3680043.10.1492.99.1")
PROPOSED = [*CONTEXTS, UNKNOWN_SOP_CLASS]

PDU_TYPES = {
    0x01: "A-ASSOCIATE-RQ",
    0x02: "A-ASSOCIATE-AC",
    0x03: "A-ASSOCIATE-RJ",
    0x04: "P-DATA-TF",
    0x05: "A-RELEASE-RQ",
    0x06: "A-RELEASE-RP",
    0x07: "A-ABORT",
}

_REJECT_REASONS = {
    (1, 1): RejectReason.NO_REASON,
    (1, 2): RejectReason.APP_CONTEXT_NOT_SUPPORTED,
    (1, 3): RejectReason.CALLING_AE_NOT_RECOGNIZED,
    (1, 7): RejectReason.CALLED_AE_NOT_RECOGNIZED,
    (2, 1): RejectReason.NO_REASON,
    (2, 2): RejectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
    (3, 1): RejectReason.TEMPORARY_CONGESTION,
    (3, 2): RejectReason.LOCAL_LIMIT_EXCEEDED,
}


class PeerAborted(Exception):
    """The peer sent A-ABORT."""

    def __init__(self, source: int, reason: int) -> None:
        super().__init__(f"A-ABORT source {source} reason {reason}")
        self.source = source
        self.reason = reason


def valid_ae_title(title: str) -> bool:
    return 0 < len(title.strip()) <= 16 and all(
        0x20 <= ord(c) < 0x7F and c != "\\" for c in title
    )


@lru_cache(maxsize=64)
def association_request(called_ae: str, calling_ae: str, unknown_syntax: bool = True) -> bytes:
    """The A-ASSOCIATE-RQ bytes; the same for every host, so built once per AE pair.

    unknown_syntax: propose UNKNOWN_SOP_CLASS as the last context (a honeypot signal)."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT
    primitive.calling_ae_title = set_ae(calling_ae, "calling_ae_title", False, False) or ""
    primitive.called_ae_title = set_ae(called_ae, "called_ae_title", False, False) or ""
    contexts = []
    for index, (_, uid) in enumerate(PROPOSED if unknown_syntax else CONTEXTS):
        context = build_context(uid, [IMPLICIT_LE, EXPLICIT_LE])
        context.context_id = 2 * index + 1
        contexts.append(context)
    primitive.presentation_context_definition_list = contexts
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = OUR_MAX_PDU
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = OUR_IMPLEMENTATION_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = OUR_VERSION_NAME
    primitive.user_information = [max_length, class_uid, version]
    return ul.A_ASSOCIATE_RQ(primitive).encode()


RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
ABORT_RQ = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"


async def read_pdu(channel: Channel, expect_data: bool = False) -> tuple[int, bytes]:
    """One whole PDU (header included), its length bounded before any body byte is read."""
    header = await channel.read_exact(6)
    pdu_type, _reserved, length = struct.unpack(">BBL", header)
    if pdu_type not in PDU_TYPES:
        raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, f"not a DICOM PDU (type 0x{pdu_type:02x})")
    limit = MAX_DATA_PDU if pdu_type == 0x04 else MAX_NEGOTIATION_PDU
    if length > limit:
        raise ProbeFailure(
            ProbeStatus.PROTOCOL_ERROR,
            f"{PDU_TYPES[pdu_type]} announces {length} bytes (limit {limit})",
        )
    body = await channel.read_exact(length) if length else b""
    return pdu_type, header + body


def decode_pdu(kind: type[ul.PDU], raw: bytes) -> ul.PDU:
    pdu = kind()
    try:
        pdu.decode(raw)
    except Exception as exc:  # pynetdicom raises many types on malformed bytes
        name = PDU_TYPES.get(raw[0], "PDU") if raw else "PDU"
        raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, f"malformed {name}") from exc
    return pdu


def abort_of(raw: bytes) -> PeerAborted:
    pdu = decode_pdu(ul.A_ABORT_RQ, raw)
    return PeerAborted(int(pdu.source or 0), int(pdu.reason_diagnostic or 0))  # type: ignore[attr-defined]


@dataclass
class Accepted:
    contexts: list[ContextResult]
    transfer_syntax: dict[int, str] = field(default_factory=dict)  # accepted context id -> TS
    context_ids: dict[str, int] = field(default_factory=dict)  # accepted name -> context id
    max_pdu_length: int | None = None
    implementation_class_uid: str | None = None
    implementation_version_name: str | None = None


def parse_accept(raw: bytes) -> Accepted:
    ac = decode_pdu(ul.A_ASSOCIATE_AC, raw)
    proposed = {2 * i + 1: (name, uid) for i, (name, uid) in enumerate(PROPOSED)}
    result = Accepted(contexts=[])
    for item in ac.presentation_context:  # type: ignore[attr-defined]
        context_id = int(item.presentation_context_id or 0)
        if context_id not in proposed:
            continue  # a context we never proposed: ignore, never trust
        name, uid = proposed[context_id]
        code = int(item.result_reason if item.result_reason is not None else 2)
        accepted = code == 0
        transfer = str(item.transfer_syntax or "")
        if accepted and transfer not in (IMPLICIT_LE, EXPLICIT_LE):
            accepted = False  # accepted with a syntax we never proposed: unusable
        result.contexts.append(
            ContextResult(name=name, abstract_syntax=uid, accepted=accepted, result=code)
        )
        if accepted:
            result.transfer_syntax[context_id] = transfer
            result.context_ids[name] = context_id
    user_info = ac.user_information  # type: ignore[attr-defined]
    for sub in getattr(user_info, "user_data", None) or []:
        if isinstance(sub, MaximumLengthSubItem):
            result.max_pdu_length = int(sub.maximum_length_received or 0)
        elif isinstance(sub, ImplementationClassUIDSubItem) and sub.implementation_class_uid:
            uid = sanitize(str(sub.implementation_class_uid), 64)
            result.implementation_class_uid = uid if _UID.fullmatch(uid) else None
        elif isinstance(sub, ImplementationVersionNameSubItem):
            if sub.implementation_version_name:
                name = sanitize(sub.implementation_version_name, 16)
                result.implementation_version_name = implementation_name(name)
    return result


def parse_reject(raw: bytes) -> AssociationReject:
    rj = decode_pdu(ul.A_ASSOCIATE_RJ, raw)
    result = int(rj.result or 0)  # type: ignore[attr-defined]
    source = int(rj.source or 0)  # type: ignore[attr-defined]
    reason = int(rj.reason_diagnostic or 0)  # type: ignore[attr-defined]
    return AssociationReject(
        result=result,
        source=source,
        reason=reason,
        reason_name=_REJECT_REASONS.get((source, reason), RejectReason.UNKNOWN),
        permanent=result == 1,
    )
