"""Given a DICOM peer whose C-FIND answers are shaped the way no honest server shapes them,
the study and worklist counts stay bounded and right, and no value reaches the facts."""

from __future__ import annotations

import asyncio
import struct
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom import pdu as ul
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode

from phiwatch.engine import Engine, Limits
from phiwatch.models import ProbeStatus
from phiwatch.probes import dicom, dicom_worklist
from phiwatch.probes.options import ProbeOptions
from phiwatch.probes.outcome import Peer

from .parrot import IMPLICIT, Parrot, associate_ac, echo_rsp, pdu, read_pdu

CANARY = "PARROTCANARY^WORKLIST^QX7"
WORKLIST_CONTEXT = 15  # phiwatch proposes Modality Worklist FIND as its eighth context
STUDY_CONTEXT = 3


def find_rsp_raw(context_id: int, status: int, identifier: bytes | None, sop_class: str) -> bytes:
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = 2
    primitive.AffectedSOPClassUID = sop_class
    primitive.Status = status
    if identifier is not None:
        primitive.Identifier = BytesIO(identifier)
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    return b"".join(ul.P_DATA_TF(p).encode() for p in message.encode_msg(context_id, 16384))


def encoded(ds: Dataset) -> bytes:
    return encode(ds, True, True) or b""


async def serve_finds(reader, writer, context_id: int, identifiers: list[bytes], sop_class: str) -> None:
    """Answer every C-FIND-RQ (one PDU here) in full, until A-RELEASE-RQ."""
    while True:
        pdu_type, _ = await read_pdu(reader)
        if pdu_type == 5:  # A-RELEASE-RQ
            writer.write(pdu(6, b"\x00" * 4))
            await writer.drain()
            return
        for identifier in identifiers:
            writer.write(find_rsp_raw(context_id, 0xFF00, identifier, sop_class))
        writer.write(find_rsp_raw(context_id, 0x0000, None, sop_class))
        await writer.drain()


def answering(context_id: int, identifiers: list[bytes], sop_class: str):
    async def scenario(reader, writer):
        await read_pdu(reader)
        writer.write(associate_ac({1: IMPLICIT, context_id: IMPLICIT}))
        await writer.drain()
        await read_pdu(reader)  # C-ECHO-RQ
        writer.write(echo_rsp(1))
        await writer.drain()
        await serve_finds(reader, writer, context_id, identifiers, sop_class)

    return scenario


def probe(scenario, max_matches: int = 1000) -> dicom.DicomOutcome:
    async def go():
        engine = Engine(Limits(timeout=2, retries=0, probe_time=20))
        try:
            options = ProbeOptions(dicom=dicom.DicomOptions(max_matches=max_matches))
            return await dicom.probe(engine, Peer("127.0.0.1", parrot.port), options)
        finally:
            engine.close()

    with Parrot(scenario) as parrot:
        return asyncio.run(go())


def worklist_item(steps: int) -> Dataset:
    ds = Dataset()
    ds.PatientName = CANARY
    ds.PatientID = "PARROT-WL-1"
    items = []
    for _ in range(steps):
        step = Dataset()
        step.Modality = "CT"
        step.ScheduledPerformingPhysicianName = CANARY
        items.append(step)
    ds.ScheduledProcedureStepSequence = items
    return ds


def no_canary(outcome: dicom.DicomOutcome) -> None:
    text = outcome.facts.model_dump_json() + str(outcome.status)
    assert "PARROTCANARY" not in text and "PARROT-WL" not in text


def test_a_worklist_item_with_a_thousand_steps_is_counted_to_the_per_item_bound():
    outcome = probe(answering(WORKLIST_CONTEXT, [encoded(worklist_item(1000))], dicom_worklist.WORKLIST_FIND))
    worklist = outcome.facts.worklist
    assert outcome.status is ProbeStatus.EXPOSED and worklist is not None
    assert (worklist.items, worklist.procedure_steps) == (1, dicom_worklist.MAX_STEPS_PER_ITEM)
    assert worklist.phi_attributes == ["PatientID", "PatientName", "ScheduledPerformingPhysicianName"]
    no_canary(outcome)


def test_a_broken_scheduled_step_sequence_is_a_status_not_a_crash():
    # PatientName (0010,0010) then a sequence (0040,0100) of undefined length whose only item
    # announces two gigabytes
    name = struct.pack("<HHI", 0x0010, 0x0010, len(CANARY) + 1) + CANARY.encode() + b" "
    sequence = struct.pack("<HHI", 0x0040, 0x0100, 0xFFFFFFFF)
    broken = sequence + struct.pack("<HHI", 0xFFFE, 0xE000, 0x7FFFFFFF) + b"\x08"
    outcome = probe(answering(WORKLIST_CONTEXT, [name + broken], dicom_worklist.WORKLIST_FIND))
    assert outcome.status in (ProbeStatus.PROTOCOL_ERROR, ProbeStatus.EXPOSED), outcome.status
    assert outcome.facts.association == "accepted"
    assert outcome.status is ProbeStatus.EXPOSED or outcome.facts.error == "malformed C-FIND identifier"
    no_canary(outcome)


def test_one_study_sent_five_hundred_times_is_one_study():
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.PatientName = CANARY
    ds.NumberOfStudyRelatedInstances = "7"
    outcome = probe(answering(STUDY_CONTEXT, [encoded(ds)] * 500, "1.2.840.10008.5.1.4.1.2.2.1"))
    query = outcome.facts.query
    assert outcome.status is ProbeStatus.EXPOSED and query is not None
    assert (query.studies, query.responses, query.duplicate_uid_responses) == (1, 500, 499)
    assert query.instances == 7  # counted once per study, not once per response
    no_canary(outcome)


def test_answers_without_uid_and_with_unasked_private_elements_are_named_not_quoted():
    answers = []
    for index in range(3):
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientName = CANARY
        ds.add_new(0x00091001, "LO", f"PARROT-WL-{index}")  # a private element nobody asked for
        answers.append(encoded(ds))
    outcome = probe(answering(STUDY_CONTEXT, answers, "1.2.840.10008.5.1.4.1.2.2.1"))
    query = outcome.facts.query
    assert query is not None and query.status == "exposed"
    # Each answer without a Study Instance UID is a study of its own; none gave an instance count
    assert (query.studies, query.responses_without_uid, query.instances) == (3, 3, None)
    assert query.studies_without_instance_count == 3
    assert query.unrequested_attributes == ["(0009,1001)"]
    no_canary(outcome)


def test_a_peer_that_aborts_the_study_query_is_still_asked_its_worklist_on_a_new_association():
    connections = []

    async def scenario(reader, writer):
        connections.append(1)
        await read_pdu(reader)
        writer.write(associate_ac({1: IMPLICIT, STUDY_CONTEXT: IMPLICIT, WORKLIST_CONTEXT: IMPLICIT}))
        await writer.drain()
        if len(connections) == 1:
            await read_pdu(reader)  # C-ECHO-RQ
            writer.write(echo_rsp(1))
            await writer.drain()
            await read_pdu(reader)  # the study C-FIND: refused with an abort, like Orthanc
            writer.write(pdu(7, b"\x00\x00\x02\x00"))
            await writer.drain()
            return
        # The second association: no C-ECHO this time, straight to the worklist C-FIND
        item = encoded(worklist_item(2))
        await serve_finds(reader, writer, WORKLIST_CONTEXT, [item], dicom_worklist.WORKLIST_FIND)

    outcome = probe(scenario)
    # Then the study query is refused, the worklist on the second association exposed
    assert len(connections) == 2
    assert outcome.facts.query is not None and outcome.facts.query.refusal == "abort"
    worklist = outcome.facts.worklist
    assert worklist is not None and (worklist.items, worklist.procedure_steps) == (1, 2)
    assert outcome.status is ProbeStatus.EXPOSED
    no_canary(outcome)
