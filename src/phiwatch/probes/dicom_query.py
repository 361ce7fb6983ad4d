"""DIMSE over an accepted association: one C-ECHO and one bounded STUDY-level C-FIND.

Never C-GET, C-MOVE or C-STORE. Identifiers that come back are inspected as raw
elements for *emptiness* and a few non-PHI facts (counts, modality codes, the
study year); no value of a PHI attribute is decoded, kept or logged.
"""

from __future__ import annotations

import re
import warnings
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pynetdicom import pdu as ul
from pynetdicom.dimse_messages import C_CANCEL_RQ, C_ECHO_RQ, C_FIND_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_CANCEL, C_ECHO, C_FIND
from pynetdicom.dsutils import decode, encode

from ..engine import Channel, ProbeFailure
from ..models import ProbeStatus, StudyExposure
from ..phi import STUDY_QUERY_PHI
from . import dicom_ul as dul
from .steps import failure_of

VERIFICATION = "1.2.840.10008.1.1"
FIND_MODELS = {
    "study-root-find": "1.2.840.10008.5.1.4.1.2.2.1",
    "patient-root-find": "1.2.840.10008.5.1.4.1.2.1.1",
}
ECHO_ID, FIND_ID, CANCEL_ID = 1, 2, 3
MAX_RESPONSES_AFTER_CANCEL = 10_000
_MODALITY = re.compile(rb"^[A-Z0-9]{1,16}$")
_TAG_INSTANCES = Tag("NumberOfStudyRelatedInstances")
_TAG_MODALITIES = Tag("ModalitiesInStudy")
_TAG_STUDY_DATE = Tag("StudyDate")
_PHI_TAGS = [(keyword, Tag(keyword)) for keyword in STUDY_QUERY_PHI]


class QueryRefused(Exception):
    """The peer refused the query (failure status or abort); the reason holds no PHI."""

    def __init__(self, how: str, status: int | None = None) -> None:
        super().__init__(how)
        self.how = how
        self.status = status


async def send_message(channel: Channel, message: DIMSEMessage, context_id: int, max_pdu: int) -> None:
    for p_data in message.encode_msg(context_id, max_pdu):
        await channel.write(ul.P_DATA_TF(p_data).encode())


async def receive_message(channel: Channel) -> DIMSEMessage:
    """The next complete DIMSE message; A-ABORT raises PeerAborted."""
    message = DIMSEMessage()
    while True:
        pdu_type, raw = await dul.read_pdu(channel)
        if pdu_type == 0x07:
            raise dul.abort_of(raw)
        if pdu_type != 0x04:
            raise ProbeFailure(
                ProbeStatus.PROTOCOL_ERROR, f"unexpected {dul.PDU_TYPES[pdu_type]} during DIMSE"
            )
        p_data = dul.decode_pdu(ul.P_DATA_TF, raw)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                done = message.decode_msg(p_data.to_primitive())  # type: ignore[attr-defined]
        except Exception as exc:  # malformed command set or fragments
            raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, "malformed DIMSE message") from exc
        if done:
            return message


def _status(message: DIMSEMessage) -> int:
    try:
        return int(message.command_set.Status)
    except Exception as exc:
        raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, "DIMSE response without status") from exc


def _max_pdu(peer_max: int | None) -> int:
    if not peer_max:
        return 16_384
    return max(1024, min(peer_max, dul.OUR_MAX_PDU))


async def echo(channel: Channel, context_id: int, peer_max: int | None) -> int:
    primitive = C_ECHO()
    primitive.MessageID = ECHO_ID
    primitive.AffectedSOPClassUID = VERIFICATION
    message = C_ECHO_RQ()
    message.primitive_to_message(primitive)
    await send_message(channel, message, context_id, _max_pdu(peer_max))
    return _status(await receive_message(channel))


def study_query(information_model: str) -> bytes:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in (
        "StudyInstanceUID",
        "StudyDate",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        *STUDY_QUERY_PHI,
    ):
        setattr(ds, keyword, "")
    encoded = encode(ds, True, True)
    assert encoded is not None
    return encoded


class _Tally:
    def __init__(self) -> None:
        self.studies = 0
        self.instances = 0
        self.modalities: set[str] = set()
        self.years: set[int] = set()
        self.phi: set[str] = set()

    def add(self, identifier: BytesIO | None, transfer_syntax: str) -> None:
        self.studies += 1
        if identifier is None:
            return
        raw = identifier.getvalue()
        if not raw:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = decode(BytesIO(raw), transfer_syntax == dul.IMPLICIT_LE, True)
                self._inspect(ds)
        except Exception as exc:
            raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, "malformed C-FIND identifier") from exc

    def _inspect(self, ds: Dataset) -> None:
        for keyword, tag in _PHI_TAGS:
            if _raw_value(ds, tag).strip(b" \x00"):
                self.phi.add(keyword)
        count = _raw_value(ds, _TAG_INSTANCES).strip(b" \x00")
        if count.isdigit() and len(count) <= 9:
            self.instances += int(count)
        for code in _raw_value(ds, _TAG_MODALITIES).split(b"\\")[:32]:
            code = code.strip(b" \x00")
            if _MODALITY.match(code) and len(self.modalities) < 64:
                self.modalities.add(code.decode("ascii"))
        date = _raw_value(ds, _TAG_STUDY_DATE).strip(b" \x00")
        if len(date) >= 4 and date[:4].isdigit() and 1900 <= int(date[:4]) <= 2200:
            self.years.add(int(date[:4]))


def _raw_value(ds: Dataset, tag: int) -> bytes:
    """The element's bytes without converting them to a Python value."""
    if tag not in ds:
        return b""
    element = ds.get_item(tag)
    value = getattr(element, "value", None)
    if isinstance(value, bytes):
        return value
    return str(value).encode("ascii", "replace") if value not in (None, "") else b""


async def find_studies(
    channel: Channel,
    context_id: int,
    model_name: str,
    transfer_syntax: str,
    peer_max: int | None,
    max_matches: int,
) -> StudyExposure:
    """One STUDY-level C-FIND with universal matching, counted up to `max_matches`."""
    primitive = C_FIND()
    primitive.MessageID = FIND_ID
    primitive.AffectedSOPClassUID = FIND_MODELS[model_name]
    primitive.Priority = 2  # low
    ds = Dataset()
    encoded = study_query(model_name)
    if transfer_syntax != dul.IMPLICIT_LE:
        ds = decode(BytesIO(encoded), True, True)
        encoded = encode(ds, False, True) or b""
    primitive.Identifier = BytesIO(encoded)
    message = C_FIND_RQ()
    message.primitive_to_message(primitive)
    max_pdu = _max_pdu(peer_max)
    await send_message(channel, message, context_id, max_pdu)

    tally = _Tally()
    cancelled = False
    extra = 0
    interrupted = None
    try:
        while True:
            try:
                response = await receive_message(channel)
            except dul.PeerAborted as exc:
                if tally.studies and cancelled:
                    break  # some peers abort on C-CANCEL; the count stands
                raise QueryRefused("abort") from exc
            status = _status(response)
            if status in (0xFF00, 0xFF01):
                if cancelled:
                    extra += 1
                    if extra > MAX_RESPONSES_AFTER_CANCEL:
                        break
                    continue
                tally.add(response.data_set, transfer_syntax)  # type: ignore[arg-type]
                if tally.studies >= max_matches:
                    cancel = C_CANCEL()
                    cancel.MessageIDBeingRespondedTo = FIND_ID
                    cancel_message = C_CANCEL_RQ()
                    cancel_message.primitive_to_message(cancel)
                    await send_message(channel, cancel_message, context_id, max_pdu)
                    cancelled = True
                continue
            if status in (0x0000, 0xFE00):
                break
            if tally.studies == 0:
                raise QueryRefused("status", status)
            break  # a failure after matches: what came back is still exposed
    except QueryRefused:
        raise
    except Exception as exc:  # the answer broke after matches: what came back is still exposed
        if not tally.studies:
            raise
        interrupted = failure_of(exc)[1]

    return StudyExposure(
        status="exposed" if tally.studies else "empty",
        information_model=model_name,
        studies=tally.studies,
        instances=tally.instances,
        truncated=cancelled,
        modalities=sorted(tally.modalities),
        study_year_min=min(tally.years) if tally.years else None,
        study_year_max=max(tally.years) if tally.years else None,
        phi_attributes=sorted(tally.phi),
        interrupted=interrupted,
    )
