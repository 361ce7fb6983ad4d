"""A malformed-peer DICOM server: scripted bytes that real servers never send.

Each scenario is an async function (reader, writer) run per connection. The server
runs its own event loop in a thread so tests can drive phiwatch's asyncio code.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom import pdu as ul
from pynetdicom.dimse_messages import C_ECHO_RSP, C_FIND_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext

Scenario = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

VERIFICATION = "1.2.840.10008.1.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
IMPLICIT = "1.2.840.10008.1.2"


def associate_ac(accept: dict[int, str], max_pdu: int = 16384) -> bytes:
    """An A-ASSOCIATE-AC accepting the given context ids (odd numbers, as phiwatch proposes)."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "PHIWATCH"
    primitive.called_ae_title = "ANY-SCP"
    primitive.result = 0x00
    results = []
    for context_id in range(1, 37, 2):
        context = PresentationContext()
        context.context_id = context_id
        context.abstract_syntax = VERIFICATION
        context.transfer_syntax = [accept.get(context_id, IMPLICIT)]
        context.result = 0 if context_id in accept else 3
        results.append(context)
    primitive.presentation_context_definition_results_list = results
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = max_pdu
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = "1.2.826.0.1.3680043.10.1492.99"
    primitive.user_information = [max_length, class_uid]
    return ul.A_ASSOCIATE_AC(primitive).encode()


def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def echo_rsp(context_id: int) -> bytes:
    primitive = C_ECHO()
    primitive.MessageIDBeingRespondedTo = 1
    primitive.AffectedSOPClassUID = VERIFICATION
    primitive.Status = 0
    message = C_ECHO_RSP()
    message.primitive_to_message(primitive)
    return b"".join(ul.P_DATA_TF(p).encode() for p in message.encode_msg(context_id, 16384))


def find_rsp(context_id: int, status: int, identifier: Dataset | None = None) -> bytes:
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = 2
    primitive.AffectedSOPClassUID = STUDY_FIND
    primitive.Status = status
    if identifier is not None:
        primitive.Identifier = BytesIO(encode(identifier, True, True) or b"")
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    return b"".join(ul.P_DATA_TF(p).encode() for p in message.encode_msg(context_id, 16384))


async def read_pdu(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await reader.readexactly(6)
    pdu_type, _, length = struct.unpack(">BBL", header)
    return pdu_type, await reader.readexactly(length)


class Parrot:
    """Serve one scenario on 127.0.0.1:<ephemeral port> (or a given address) from a thread."""

    def __init__(
        self,
        scenario: Scenario,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.scenario = scenario
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self.ssl_context, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.scenario(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()

    def __enter__(self) -> Parrot:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
