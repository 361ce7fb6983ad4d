"""A honeypot-like DICOM server for the lab, written from the public honeypots' documented
behaviour (DICOMHawk, dicompot), not from their code.

Run: ``python -m phiwatch_lab.honeypot --dicom HOST:PORT:KIND ... [--web HOST:PORT]``.
Kinds:

- ``canned`` (like dicompot): the A-ASSOCIATE-AC carries no Implementation Class UID nor
  version name; every presentation context is accepted with the first transfer syntax
  proposed, whatever its abstract syntax; C-FIND ignores the query's keys and answers
  with whole canned datasets, Pixel Data included (about 525 KB each), Study Instance
  UIDs repeated, every study in one year.
- ``canned-bare``: the same without Pixel Data (so the control query shows that the keys
  are ignored).
- ``persona`` (like DICOMHawk's early defaults): pynetdicom's class UID with the version
  name ``ORTHANC``; every known context accepted, an unknown abstract syntax rejected;
  C-FIND answers only when a key holds the universal ``*``, then with canned studies one
  response per instance (UIDs repeated), all dated today, elements nobody asked for added.

``--web`` serves a one-page "Horos Web Portal" on the persona's host, so the host's web
port contradicts its DICOM persona. Every value is synthetic; nothing is logged but counts.
Malformed input gets an A-ABORT; PDUs over 1 MiB are refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
import struct
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dimse_messages import C_ECHO_RSP, C_FIND_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_FIND
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RQ, A_RELEASE_RP, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext

LOG = logging.getLogger("phiwatch_lab.honeypot")
KINDS = ("canned", "canned-bare", "persona")
APP_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
PERSONA_CLASS_UID = "1.2.826.0.1.3680043.9.3811.2.0.1"  # pynetdicom's root
PERSONA_VERSION = "ORTHANC"
# SOP classes a pynetdicom-based honeypot supports: anything under the DICOM root.
KNOWN_ROOT = "1.2.840.10008."
MAX_PDU = 16384
MAX_INPUT_PDU = 1 << 20
PIXEL_BYTES = 512 * 512 * 2  # one 512 x 512 16-bit CT slice: the "~525 KB" answers
C_ECHO_RQ, C_FIND_RQ, C_CANCEL_RQ = 0x0030, 0x0020, 0x0FFF
WEB_PAGE = (
    b"<!DOCTYPE html><html><head><title>Horos Web Portal</title></head>"
    b"<body><h1>Horos Web Portal</h1><form method=post action=/login>"
    b"<input name=username><input type=password name=password></form></body></html>"
)


def canned_records(kind: str) -> list[Dataset]:
    """The canned answers: synthetic patients, Study Instance UIDs repeated."""
    today = datetime.now(UTC).strftime("%Y%m%d")
    records = []
    for index in range(5):
        study = index % 3 + 1  # 5 answers, 3 distinct studies
        ds = Dataset()
        ds.PatientName = f"HONEY^POT{study}"
        ds.PatientID = f"HP-{study:04d}"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.4242.{study}"
        ds.StudyDate = today if kind == "persona" else f"2019{study:02d}15"
        ds.ModalitiesInStudy = "CT"
        ds.NumberOfStudyRelatedInstances = "2"
        ds.AccessionNumber = f"HPACC{study}"
        ds.StudyDescription = "CT HEAD"
        if kind == "persona":  # one answer per instance, with the instance's own attributes
            ds.SeriesInstanceUID = f"{ds.StudyInstanceUID}.1"
            ds.SOPInstanceUID = f"{ds.StudyInstanceUID}.1.{index + 1}"
            ds.Modality = "CT"
        else:  # the whole stored dataset, pixels and all
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            ds.SOPInstanceUID = f"{ds.StudyInstanceUID}.1.{index + 1}"
            ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored = 512, 512, 16, 12
            if kind == "canned":
                ds.PixelData = bytes(PIXEL_BYTES)
                ds["PixelData"].VR = "OW"
        records.append(ds)
    return records


def _universal(identifier: Dataset) -> bool:
    return any(str(getattr(element, "value", "")).strip() == "*" for element in identifier)


class Association(asyncio.Protocol):
    """One connection; never lets an exception escape."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.associated = False
        self.peer_max = MAX_PDU
        self.message: DIMSEMessage | None = None
        self.syntax: dict[int, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            while self.transport is not None and len(self.buffer) >= 6:
                pdu_type, length = struct.unpack(">BxI", self.buffer[:6])
                if length > MAX_INPUT_PDU:
                    self._close(_abort())
                    return
                if len(self.buffer) < 6 + length:
                    return
                pdu = bytes(self.buffer[: 6 + length])
                del self.buffer[: 6 + length]
                self._handle(pdu_type, pdu)
        except Exception:  # malformed or hostile input
            self._close(_abort())

    def _close(self, last: bytes = b"") -> None:
        if self.transport is not None:
            if last:
                self.transport.write(last)
            self.transport.close()
            self.transport = None

    def _handle(self, pdu_type: int, pdu: bytes) -> None:
        assert self.transport is not None
        if pdu_type == 0x01 and not self.associated:
            request = A_ASSOCIATE_RQ()
            request.decode(pdu)
            self.transport.write(self._accept(request))
            self.associated = True
        elif pdu_type == 0x04 and self.associated:
            self._p_data(pdu)
        elif pdu_type == 0x05:
            self._close(A_RELEASE_RP().encode())
        else:
            self._close(_abort() if pdu_type != 0x07 else b"")

    def _accept(self, request: A_ASSOCIATE_RQ) -> bytes:
        primitive = A_ASSOCIATE()
        primitive.application_context_name = UID(APP_CONTEXT)
        primitive.called_ae_title = request.called_ae_title or "ANY-SCP"
        primitive.calling_ae_title = request.calling_ae_title or "ANY-SCU"
        primitive.result, primitive.result_source = 0, 1
        results = []
        for item in request.presentation_context:
            context = PresentationContext()
            context.context_id = item.context_id
            proposed = [str(ts) for ts in item.transfer_syntax] or [IMPLICIT_LE]
            known = str(item.abstract_syntax).startswith(KNOWN_ROOT)
            context.result = 0 if self.kind != "persona" or known else 3
            context.add_transfer_syntax(UID(proposed[0]))
            results.append(context)
            if context.result == 0:
                self.syntax[int(item.context_id or 0)] = proposed[0]
        primitive.presentation_context_definition_results_list = results
        peer_max = request.user_information.maximum_length if request.user_information else None
        if peer_max:
            self.peer_max = max(4096, min(int(peer_max), 1 << 20))
        length = MaximumLengthNotification()
        length.maximum_length_received = MAX_PDU
        items: list[Any] = [length]
        if self.kind == "persona":
            class_uid = ImplementationClassUIDNotification()
            class_uid.implementation_class_uid = UID(PERSONA_CLASS_UID)
            version = ImplementationVersionNameNotification()
            version.implementation_version_name = PERSONA_VERSION
            items += [class_uid, version]
        primitive.user_information = items
        return bytes(A_ASSOCIATE_AC(primitive).encode())

    def _p_data(self, pdu: bytes) -> None:
        p_data = P_DATA_TF()
        p_data.decode(pdu)
        if self.message is None:
            self.message = DIMSEMessage()
        if not self.message.decode_msg(p_data.to_primitive()):  # type: ignore[attr-defined]
            return
        message, self.message = self.message, None
        command = message.command_set
        context_id = int(message.context_id or 0)
        field = int(command.CommandField)
        if field == C_ECHO_RQ:
            self._send(_echo_response(int(command.MessageID)), context_id)
        elif field == C_FIND_RQ:
            self._find(message, context_id)
        elif field != C_CANCEL_RQ:  # everything it answers is sent at once; a cancel comes late
            self._close(_abort())

    def _find(self, message: DIMSEMessage, context_id: int) -> None:
        command = message.command_set
        implicit = self.syntax.get(context_id, IMPLICIT_LE) == IMPLICIT_LE
        identifier = decode(message.data_set, implicit, True)  # type: ignore[arg-type]
        answer = self.kind != "persona" or _universal(identifier)
        records = canned_records(self.kind) if answer else []
        for record in records:
            if self.kind == "persona":  # the keys asked for, plus the instance's own
                for element in identifier:
                    if element.keyword and element.keyword not in record:
                        record[element.tag] = element
                record.RetrieveAETitle = "ORTHANC"
            self._send(_find_response(command, 0xFF00, record, implicit), context_id)
        self._send(_find_response(command, 0x0000, None, implicit), context_id)
        LOG.info("C-FIND answered with %d matches", len(records))

    def _send(self, message: DIMSEMessage, context_id: int) -> None:
        if self.transport is None:
            return
        for fragment in message.encode_msg(context_id, self.peer_max):
            self.transport.write(P_DATA_TF(fragment).encode())


def _abort() -> bytes:
    abort = A_ABORT_RQ()
    abort.source, abort.reason_diagnostic = 2, 0
    return bytes(abort.encode())


def _echo_response(message_id: int) -> DIMSEMessage:
    primitive = C_ECHO()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = "1.2.840.10008.1.1"
    primitive.Status = 0x0000
    message = C_ECHO_RSP()
    message.primitive_to_message(primitive)
    return message


def _find_response(command: Dataset, status: int, record: Dataset | None, implicit: bool) -> DIMSEMessage:
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = int(command.MessageID)
    primitive.AffectedSOPClassUID = str(command.AffectedSOPClassUID)
    primitive.Status = status
    if record is not None:
        primitive.Identifier = BytesIO(encode(record, implicit, True) or b"")
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    return message


class WebPage(asyncio.Protocol):
    """Any HTTP request gets the one page."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.seen = b""

    def data_received(self, data: bytes) -> None:
        self.seen += data
        if b"\r\n\r\n" not in self.seen and len(self.seen) < 8192:
            return
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Phiwatch-Fixture: honeypot\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(WEB_PAGE)).encode() + b"\r\n\r\n"
        )
        self.transport.write(head + (b"" if self.seen.startswith(b"HEAD") else WEB_PAGE))
        self.transport.close()


def _endpoint(text: str) -> tuple[str, int, str]:
    parts = text.split(":")
    host, port, kind = parts[0], int(parts[1]), (parts[2] if len(parts) > 2 else "")
    if not host.startswith("127."):
        raise argparse.ArgumentTypeError("the lab honeypot listens on 127.0.0.0/8 only")
    return host, port, kind


async def serve(dicom: list[tuple[str, int, str]], web: list[tuple[str, int, str]]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = [
        await loop.create_server(functools.partial(Association, kind), host, port, reuse_address=True)
        for host, port, kind in dicom
    ] + [await loop.create_server(WebPage, host, port, reuse_address=True) for host, port, _ in web]
    LOG.info("listening: %d DICOM, %d web", len(dicom), len(web))
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dicom", type=_endpoint, action="append", default=[], metavar="HOST:PORT:KIND")
    parser.add_argument("--web", type=_endpoint, action="append", default=[], metavar="HOST:PORT")
    args = parser.parse_args(argv)
    if not args.dicom or any(kind not in KINDS for _, _, kind in args.dicom):
        parser.error(f"give --dicom HOST:PORT:KIND with KIND one of {', '.join(KINDS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.dicom, args.web))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
