"""Given a DICOM peer that sends what real servers never send, the probe ends in a status:
no crash, no hang past its timeout, bounded memory, no PHI in the facts."""

from __future__ import annotations

import asyncio
import struct
import time
import tracemalloc

import pytest
from pydicom.dataset import Dataset

from phiwatch.engine import Engine, Limits
from phiwatch.models import ProbeStatus, RejectReason
from phiwatch.probes import dicom
from phiwatch.probes.options import ProbeOptions
from phiwatch.probes.outcome import Peer
from phiwatch.scanner import ScanConfig, Scanner
from phiwatch.targets import build_targets

from .parrot import IMPLICIT, Parrot, associate_ac, echo_rsp, find_rsp, pdu, read_pdu

CANARY = "PARROTCANARY^HOSTILE^ZX9"
TIMEOUT = 1.0  # for peers that are meant to stall: the probe must give up after this
PATIENT = 10.0  # for peers that answer: a loaded CI machine must not turn them into timeouts


def run_probe(
    scenario,
    limits: Limits | None = None,
    max_matches: int = 1000,
    timeout: float = PATIENT,
):
    limits = limits or Limits(timeout=timeout, retries=0, probe_time=20)

    async def go():
        engine = Engine(limits)
        try:
            options = ProbeOptions(dicom=dicom.DicomOptions(max_matches=max_matches))
            return await dicom.probe(engine, Peer("127.0.0.1", parrot.port), options)
        finally:
            engine.close()

    with Parrot(scenario) as parrot:
        started = time.monotonic()
        outcome = asyncio.run(go())
        return outcome, time.monotonic() - started


def canary_identifier(index: int) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = CANARY
    ds.PatientID = f"PARROT-{index}"
    ds.StudyDate = "20190102"
    ds.ModalitiesInStudy = ["CT", "<script>"]
    ds.NumberOfStudyRelatedInstances = "7"
    ds.StudyInstanceUID = f"1.2.3.{index}"
    return ds


async def truncated(reader, writer):
    await read_pdu(reader)
    writer.write(struct.pack(">BBL", 2, 0, 100) + b"\x00" * 10)
    await writer.drain()


async def absurd_length(reader, writer):
    await read_pdu(reader)
    writer.write(struct.pack(">BBL", 2, 0, 0xFFFFFFF0) + b"\x00" * 64)
    await writer.drain()
    await asyncio.sleep(2)


async def garbage(reader, writer):
    await reader.read(100)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nServer: <script>alert(1)</script>\r\n\r\n")
    await writer.drain()


async def drip(reader, writer):
    await read_pdu(reader)
    for byte in associate_ac({1: IMPLICIT}):
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


async def silent(reader, writer):
    await asyncio.sleep(30)


async def close_mid_association(reader, writer):
    await read_pdu(reader)
    writer.write(associate_ac({1: IMPLICIT}))
    await writer.drain()
    await read_pdu(reader)  # the C-ECHO; hang up instead of answering


async def malformed_ac(reader, writer):
    await read_pdu(reader)
    writer.write(pdu(2, b"\x00\x01\x00\x00" + b"\xff" * 70 + b"\x21\x00\xff\xff"))
    await writer.drain()


async def abort_at_once(reader, writer):
    await read_pdu(reader)
    writer.write(pdu(7, b"\x00\x00\x02\x00"))
    await writer.drain()


async def odd_reject(reader, writer):
    await read_pdu(reader)
    writer.write(pdu(3, b"\x00\x02\x09\x63"))
    await writer.drain()


async def reject_calling(reader, writer):
    await read_pdu(reader)
    writer.write(pdu(3, b"\x00\x01\x01\x03"))
    await writer.drain()


async def reject_called(reader, writer):
    await read_pdu(reader)
    writer.write(pdu(3, b"\x00\x01\x01\x07"))
    await writer.drain()


async def _accept_and_echo(reader, writer, accept: dict[int, str]) -> None:
    await read_pdu(reader)
    writer.write(associate_ac(accept))
    await writer.drain()
    await read_pdu(reader)  # C-ECHO-RQ
    writer.write(echo_rsp(1))
    await writer.drain()


def find_flood(count: int):
    async def scenario(reader, writer):
        await _accept_and_echo(reader, writer, {1: IMPLICIT, 3: IMPLICIT})
        await read_pdu(reader)  # C-FIND-RQ
        for index in range(count):
            writer.write(find_rsp(3, 0xFF00, canary_identifier(index)))
            if index % 50 == 0:
                await writer.drain()
        writer.write(find_rsp(3, 0x0000))
        await writer.drain()
        while True:  # C-CANCEL, then A-RELEASE-RQ
            pdu_type, _ = await read_pdu(reader)
            if pdu_type == 5:
                writer.write(pdu(6, b"\x00" * 4))
                await writer.drain()
                return

    return scenario


async def abort_on_find(reader, writer):
    await _accept_and_echo(reader, writer, {1: IMPLICIT, 3: IMPLICIT})
    await read_pdu(reader)
    writer.write(pdu(7, b"\x00\x00\x02\x00"))
    await writer.drain()


async def find_failure_status(reader, writer):
    await _accept_and_echo(reader, writer, {1: IMPLICIT, 3: IMPLICIT})
    await read_pdu(reader)
    writer.write(find_rsp(3, 0xC001))
    await writer.drain()
    await read_pdu(reader)


async def giant_p_data(reader, writer):
    await read_pdu(reader)
    writer.write(associate_ac({1: IMPLICIT}))
    await writer.drain()
    await read_pdu(reader)
    writer.write(struct.pack(">BBL", 4, 0, 10_000_000) + b"\x00" * 1024)
    await writer.drain()
    await asyncio.sleep(2)


async def garbage_identifier(reader, writer):
    await _accept_and_echo(reader, writer, {1: IMPLICIT, 3: IMPLICIT})
    await read_pdu(reader)
    command = find_rsp(3, 0xFF00, canary_identifier(0))
    # keep the command fragment, replace the data set fragment with junk
    first_len = struct.unpack(">L", command[2:6])[0]
    junk_item = b"\x03\x02" + b"\x10\x00\x10\x00\xff\xff\xff\x7f" + b"junk"
    writer.write(command[: 6 + first_len] + pdu(4, struct.pack(">L", len(junk_item)) + junk_item))
    writer.write(find_rsp(3, 0x0000))
    await writer.drain()
    await read_pdu(reader)


@pytest.mark.parametrize(
    ("scenario", "status"),
    [
        (truncated, ProbeStatus.PROTOCOL_ERROR),
        (absurd_length, ProbeStatus.PROTOCOL_ERROR),
        (garbage, ProbeStatus.PROTOCOL_ERROR),
        (drip, ProbeStatus.TIMEOUT),
        (silent, ProbeStatus.TIMEOUT),
        (close_mid_association, ProbeStatus.RESET),
        (malformed_ac, ProbeStatus.PROTOCOL_ERROR),
        (abort_at_once, ProbeStatus.ABORTED),
        (giant_p_data, ProbeStatus.PROTOCOL_ERROR),
    ],
)
def test_hostile_peer_ends_in_a_status_within_its_timeout(scenario, status):
    # Given a scripted peer, When phiwatch probes it
    timeout = TIMEOUT if status is ProbeStatus.TIMEOUT else PATIENT
    tracemalloc.start()
    outcome, elapsed = run_probe(scenario, timeout=timeout)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Then it ends with the expected status, within its timeouts, with bounded memory
    assert outcome.status is status, outcome
    assert elapsed < 3 * timeout + 1.5
    assert peak < 8 * 1024 * 1024
    assert outcome.detail is None or CANARY not in outcome.detail


def test_rejects_are_told_apart_by_source_and_reason():
    called, _ = run_probe(reject_called)
    calling, _ = run_probe(reject_calling)
    odd, _ = run_probe(odd_reject)
    assert called.facts.reject.reason_name is RejectReason.CALLED_AE_NOT_RECOGNIZED
    assert calling.facts.reject.reason_name is RejectReason.CALLING_AE_NOT_RECOGNIZED
    assert (odd.facts.reject.result, odd.facts.reject.source, odd.facts.reject.reason) == (2, 9, 99)
    assert odd.facts.reject.reason_name is RejectReason.UNKNOWN
    assert {called.status, calling.status, odd.status} == {ProbeStatus.REJECTED}
    assert not odd.facts.reject.permanent and called.facts.reject.permanent


def test_a_flood_of_matches_is_counted_up_to_max_matches_then_cancelled():
    tracemalloc.start()
    outcome, _ = run_probe(find_flood(3000), max_matches=100)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    query = outcome.facts.query
    assert outcome.status is ProbeStatus.EXPOSED
    assert query.studies == 100 and query.truncated
    assert query.instances == 700
    assert query.modalities == ["CT"]  # a hostile modality code is not kept
    assert (query.study_year_min, query.study_year_max) == (2019, 2019)
    assert {"PatientName", "PatientID", "StudyDate"} <= set(query.phi_attributes)
    assert CANARY not in outcome.facts.model_dump_json()
    assert "PARROT-" not in outcome.facts.model_dump_json()
    assert peak < 16 * 1024 * 1024


def test_a_flood_beyond_the_byte_budget_stops_at_the_budget():
    limits = Limits(timeout=PATIENT, retries=0, byte_budget=64 * 1024)
    outcome, _ = run_probe(find_flood(3000), limits=limits, max_matches=100_000)
    # The budget ends the count, and the matches counted before it still prove the exposure
    query = outcome.facts.query
    assert outcome.facts.association == "accepted"
    assert outcome.status is ProbeStatus.EXPOSED and 0 < query.studies < 3000
    assert query.interrupted is not None and "more than 65536 bytes" in query.interrupted


def test_abort_on_find_is_a_refused_query_not_an_exposure():
    outcome, _ = run_probe(abort_on_find)
    assert outcome.status is ProbeStatus.QUERY_REFUSED
    assert outcome.facts.query.status == "refused" and outcome.facts.query.refusal == "abort"
    assert outcome.facts.echo_status == 0


def test_a_failure_status_is_a_refused_query_with_its_code():
    outcome, _ = run_probe(find_failure_status)
    assert outcome.status is ProbeStatus.QUERY_REFUSED
    assert outcome.facts.query.failure_status == 0xC001


def test_the_scanner_identifies_a_garbage_peer_on_an_odd_port_without_crashing():
    # Given a peer that answers anything with an HTTP-looking error and a hostile header
    with Parrot(garbage) as parrot:
        config = ScanConfig(ports=[parrot.port], limits=Limits(timeout=TIMEOUT, retries=0))
        outcome = asyncio.run(Scanner(config).run(build_targets(["127.0.0.1"])))
    # Then it is recorded as an HTTP service, its Server header kept only as sanitised text
    [service] = outcome.services
    assert service.protocol == "http" and service.status is ProbeStatus.OPEN
    assert service.http is not None and service.http.status_code == 400
    assert service.http.server is not None and service.http.server.startswith("#")  # through the gate


def test_a_truncated_identifier_counts_as_a_match_and_its_bytes_are_not_kept():
    outcome, _ = run_probe(garbage_identifier)
    assert outcome.status is ProbeStatus.EXPOSED
    assert outcome.facts.query.studies == 1
    assert outcome.facts.query.phi_attributes == ["PatientName"]
    assert "junk" not in outcome.facts.model_dump_json()


def test_a_dicom_default_port_that_speaks_http_is_identified_from_its_bytes():
    # Given an HTTP-answering peer on a DICOM default port (11112) of its own loopback address
    with Parrot(garbage, host="127.0.0.2", port=11112):
        config = ScanConfig(ports=[11112], limits=Limits(timeout=TIMEOUT, retries=0))
        outcome = asyncio.run(Scanner(config).run(build_targets(["127.0.0.2"])))
    # Then the DICOM attempt fails as a protocol error and the bytes say HTTP
    [service] = outcome.services
    assert (service.protocol, service.identified_by) == ("http", "probe")
    assert service.dicom is None and service.http is not None
