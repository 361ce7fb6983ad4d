"""DIMSE over an accepted association: one C-ECHO and bounded STUDY-level C-FINDs.

Never C-GET, C-MOVE or C-STORE. Identifiers that come back are inspected as raw
elements for *emptiness* and a few non-PHI facts (counts, modality codes, the
study year); no value of a PHI attribute is decoded, kept or logged.

Real servers differ (PS3.4 C.2.2.2.4): some match nothing with empty matching keys
and answer only a universal ``*``, so an empty answer is followed by one ``*`` query
at the same level with the same keys; some send one response per series or instance
at STUDY level, so studies are counted by distinct Study Instance UID (salted hashes,
in memory only); a NumberOfStudyRelatedInstances left empty is unknown, not zero.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pynetdicom import pdu as ul
from pynetdicom.dimse_messages import C_CANCEL_RQ, C_ECHO_RQ, C_FIND_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_CANCEL, C_ECHO, C_FIND
from pynetdicom.dsutils import decode, encode

from ..engine import Channel, ProbeFailure
from ..models import ProbeStatus, StudyExposure
from ..phi import STUDY_QUERY_PHI
from . import dicom_ul as dul
from .dicom_answers import AnswerInspector
from .steps import failure_of

VERIFICATION = "1.2.840.10008.1.1"
FIND_MODELS = {
    "study-root-find": "1.2.840.10008.5.1.4.1.2.2.1",
    "patient-root-find": "1.2.840.10008.5.1.4.1.2.1.1",
}
ECHO_ID = 1
STUDY_FIND_IDS = (2, 3)  # empty matching keys, then the universal '*' retry
MAX_RESPONSES_AFTER_CANCEL = 10_000
_MODALITY = re.compile(rb"^[A-Z0-9]{1,16}$")
# At most this many responses per study counted before C-CANCEL (per-instance answers).
MAX_RESPONSES_PER_STUDY = 16
MAX_UNREQUESTED_NAMES = 32
_TAG_STUDY_UID = Tag("StudyInstanceUID")
_TAG_INSTANCES = Tag("NumberOfStudyRelatedInstances")
_TAG_MODALITIES = Tag("ModalitiesInStudy")
_TAG_STUDY_DATE = Tag("StudyDate")
_PHI_TAGS = [(keyword, Tag(keyword)) for keyword in STUDY_QUERY_PHI]
# Attributes an SCP may add to any C-FIND answer without being asked (PS3.4 C.4.1.1.3.2).
_ALWAYS_ALLOWED = frozenset(
    Tag(k)
    for k in (
        "SpecificCharacterSet",
        "QueryRetrieveLevel",
        "RetrieveAETitle",
        "InstanceAvailability",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "StorageMediaFileSetID",
        "StorageMediaFileSetUID",
    )
)
# Per process: Study Instance UIDs are compared as keyed hashes and never leave memory.
_UID_SALT = secrets.token_bytes(16)


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


def study_query(universal: bool = False) -> Dataset:
    """The STUDY-level identifier: empty matching keys, or PatientName '*' for the retry."""
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
    if universal:
        ds.PatientName = "*"
    return ds


def encode_identifier(ds: Dataset, transfer_syntax: str) -> bytes:
    encoded = encode(ds, transfer_syntax == dul.IMPLICIT_LE, True)
    if encoded is None:
        raise ProbeFailure(ProbeStatus.ERROR, "cannot encode the C-FIND identifier")
    return encoded


def raw_value(ds: Dataset, tag: int) -> bytes:
    """The element's bytes without converting them to a Python value."""
    if tag not in ds:
        return b""
    element = ds.get_item(tag)
    value = getattr(element, "value", None)
    if isinstance(value, bytes):
        return value
    return str(value).encode("ascii", "replace") if value not in (None, "") else b""


def filled(ds: Dataset, tag: int) -> bool:
    return bool(raw_value(ds, tag).strip(b" \x00"))


def modality_codes(value: bytes) -> list[str]:
    codes = []
    for code in value.split(b"\\")[:32]:
        code = code.strip(b" \x00")
        if _MODALITY.match(code):
            codes.append(code.decode("ascii"))
    return codes


def _tag_name(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"


class Inspection:
    """What every C-FIND answer is checked for, whatever it matched: names and counts only."""

    def __init__(self, query: Dataset) -> None:
        self.requested = {BaseTag(tag) for tag in query.keys()}
        self.responses = 0
        self.unrequested: set[str] = set()

    def see(self, ds: Dataset) -> None:
        self.responses += 1
        for tag in ds.keys():
            if len(self.unrequested) >= MAX_UNREQUESTED_NAMES:
                return
            tag = BaseTag(tag)
            if tag.element == 0 or tag in self.requested or tag in _ALWAYS_ALLOWED:
                continue  # group lengths say nothing
            self.unrequested.add(_tag_name(tag))


def decode_identifier(identifier: BytesIO | None, transfer_syntax: str) -> Dataset:
    raw = identifier.getvalue() if identifier is not None else b""
    if not raw:
        return Dataset()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = decode(BytesIO(raw), transfer_syntax == dul.IMPLICIT_LE, True)
            list(ds.keys())  # the top level parsed
            return ds
    except Exception as exc:
        raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, "malformed C-FIND identifier") from exc


@dataclass
class FindEnd:
    matches: int
    cancelled: bool
    interrupted: str | None = None  # why the answer broke after matches (the count stands)


async def run_find(
    channel: Channel,
    context_id: int,
    sop_class: str,
    query: Dataset,
    transfer_syntax: str,
    peer_max: int | None,
    message_id: int,
    take: Callable[[Dataset], bool],
) -> FindEnd:
    """One C-FIND; each match goes to `take`, which returns True at its bound (then C-CANCEL).

    Raises QueryRefused for an abort or a failure status before any match.
    """
    primitive = C_FIND()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.Priority = 2  # low
    primitive.Identifier = BytesIO(encode_identifier(query, transfer_syntax))
    message = C_FIND_RQ()
    message.primitive_to_message(primitive)
    max_pdu = _max_pdu(peer_max)
    await send_message(channel, message, context_id, max_pdu)

    matches = 0
    cancelled = False
    extra = 0
    try:
        while True:
            try:
                response = await receive_message(channel)
            except dul.PeerAborted as exc:
                if matches and cancelled:
                    break  # some peers abort on C-CANCEL; the count stands
                raise QueryRefused("abort") from exc
            status = _status(response)
            if status in (0xFF00, 0xFF01):
                if cancelled:
                    extra += 1
                    if extra > MAX_RESPONSES_AFTER_CANCEL:
                        break
                    continue
                ds = decode_identifier(response.data_set, transfer_syntax)  # type: ignore[arg-type]
                try:
                    at_bound = take(ds)
                except ProbeFailure:
                    raise
                except Exception as exc:  # a value pydicom cannot convert: the peer's fault
                    raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, "malformed C-FIND identifier") from exc
                matches += 1
                if at_bound:
                    cancel = C_CANCEL()
                    cancel.MessageIDBeingRespondedTo = message_id
                    cancel_message = C_CANCEL_RQ()
                    cancel_message.primitive_to_message(cancel)
                    await send_message(channel, cancel_message, context_id, max_pdu)
                    cancelled = True
                continue
            if status in (0x0000, 0xFE00):
                break
            if matches == 0:
                raise QueryRefused("status", status)
            break  # a failure after matches: what came back is still exposed
    except QueryRefused:
        raise
    except Exception as exc:  # the answer broke after matches: what came back is still exposed
        if not matches:
            raise
        return FindEnd(matches, cancelled, failure_of(exc)[1])
    return FindEnd(matches, cancelled)


class _Studies:
    """Distinct studies among the answers, by salted hash of the Study Instance UID."""

    def __init__(self, max_matches: int) -> None:
        self.max_matches = max_matches
        self.instances: dict[bytes, int | None] = {}  # uid hash -> NumberOfStudyRelatedInstances
        self.without_uid: list[int | None] = []
        self.duplicates = 0
        self.responses = 0
        self.modalities: set[str] = set()
        self.years: set[int] = set()
        self.phi: set[str] = set()

    @property
    def studies(self) -> int:
        return len(self.instances) + len(self.without_uid)

    def take(self, ds: Dataset) -> bool:
        self.responses += 1
        count = _instance_count(ds)
        uid = raw_value(ds, _TAG_STUDY_UID).strip(b" \x00")
        if not uid:
            self.without_uid.append(count)
        else:
            key = hashlib.blake2b(uid[:64], digest_size=16, key=_UID_SALT).digest()
            if key in self.instances:
                self.duplicates += 1
                if self.instances[key] is None:
                    self.instances[key] = count
            else:
                self.instances[key] = count
        for keyword, tag in _PHI_TAGS:
            if filled(ds, tag):
                self.phi.add(keyword)
        for code in modality_codes(raw_value(ds, _TAG_MODALITIES)):
            if len(self.modalities) < 64:
                self.modalities.add(code)
        date = raw_value(ds, _TAG_STUDY_DATE).strip(b" \x00")
        if len(date) >= 4 and date[:4].isdigit() and 1900 <= int(date[:4]) <= 2200:
            self.years.add(int(date[:4]))
        return (
            self.studies >= self.max_matches
            or self.responses >= self.max_matches * MAX_RESPONSES_PER_STUDY
        )

    def counts(self) -> tuple[int | None, int]:
        """(sum of the known instance counts or None when none is known, studies without one)."""
        known = [n for n in (*self.instances.values(), *self.without_uid) if n is not None]
        return (sum(known) if known else None), self.studies - len(known)


def _instance_count(ds: Dataset) -> int | None:
    count = raw_value(ds, _TAG_INSTANCES).strip(b" \x00")
    if count.isdigit() and len(count) <= 9:
        return int(count)
    return None


async def find_studies(
    channel: Channel,
    context_id: int,
    model_name: str,
    transfer_syntax: str,
    peer_max: int | None,
    max_matches: int,
    digest_key: bytes | None = None,
) -> StudyExposure:
    """A STUDY-level C-FIND with empty keys; when empty, the same with PatientName '*'.

    digest_key: also inspect the answers for the trust signals (dicom_answers), keyed with it."""
    exposure = StudyExposure(status="empty", information_model=model_name)
    for attempt, universal in enumerate((False, True)):
        query = study_query(universal)
        inspection = Inspection(query)
        studies = _Studies(max_matches)
        answers = AnswerInspector(digest_key) if digest_key is not None else None

        def take(ds: Dataset, studies: _Studies = studies, inspection: Inspection = inspection,
                 answers: AnswerInspector | None = answers) -> bool:
            inspection.see(ds)
            if answers is not None:
                answers.add(ds)
            return studies.take(ds)

        try:
            end = await run_find(
                channel, context_id, FIND_MODELS[model_name], query, transfer_syntax, peer_max,
                STUDY_FIND_IDS[attempt], take,
            )  # fmt: skip
        except QueryRefused:
            if not universal:
                raise
            return exposure  # the first query was answered empty; the retry's refusal adds nothing
        if universal:
            exposure.universal_retry = True
        if end.matches == 0:
            continue
        instances, unknown = studies.counts()
        return StudyExposure(
            status="exposed",
            information_model=model_name,
            studies=studies.studies,
            instances=instances,
            studies_without_instance_count=unknown,
            truncated=end.cancelled,
            modalities=sorted(studies.modalities),
            study_year_min=min(studies.years) if studies.years else None,
            study_year_max=max(studies.years) if studies.years else None,
            phi_attributes=sorted(studies.phi),
            responses=inspection.responses,
            duplicate_uid_responses=studies.duplicates,
            responses_without_uid=len(studies.without_uid),
            unrequested_attributes=sorted(inspection.unrequested),
            matched_by="universal" if universal else "empty-keys",
            universal_retry=universal,
            interrupted=end.interrupted,
            answers=answers.facts() if answers is not None else None,
        )
    return exposure
