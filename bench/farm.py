"""A farm of simulated DICOM hosts on loopback addresses, for benchmarking scanners.

One asyncio process binds one listening socket per simulated host, all on the same port,
at distinct random addresses inside a loopback network. Kinds, in roughly equal thirds:

- ``accept-any``: accepts any A-ASSOCIATE-RQ (Verification with Implicit VR LE; every other
  context gets result 3), answers C-ECHO-RQ with status 0 and A-RELEASE-RQ with A-RELEASE-RP.
- ``called-ae-check``: A-ASSOCIATE-RJ (permanent, service user, called AE not recognised)
  unless the called AE title is ``FARMPACS``; then it behaves like accept-any.
- ``silent``: accepts the TCP connection, never sends a byte, closes after 300 s.

Usage: python bench/farm.py [--count 1000] [--net 127.77.0.0/16] [--port 104] [--seed 7]
[--truth FILE]. Prints ``READY n=<count>`` once every listener is bound; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import random
import resource
import signal
import struct
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from pydicom.uid import UID
from pynetdicom.dimse_messages import C_ECHO_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.pdu import (
    A_ABORT_RQ,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    P_DATA_TF,
)
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext

KINDS = ("accept-any", "called-ae-check", "silent")
ACCEPTED_CALLED_AE = "FARMPACS"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPL_CLASS_UID = "1.2.826.0.1.3680043.9.3811.3.0.4"
IMPL_VERSION = "PHIWATCH_FARM"
MAX_PDU = 16384
MAX_INPUT_PDU = 1 << 20  # refuse larger incoming PDUs (hostile input)
SILENT_CLOSE_S = 300.0
C_ECHO_RQ_FIELD = 0x0030


def plan_hosts(net: str, count: int, seed: int) -> list[tuple[str, str]]:
    """Deterministic (address, kind) pairs: distinct addresses, kinds in near-equal thirds."""
    network = ipaddress.ip_network(net)
    usable = network.num_addresses - 2  # skip the network and broadcast addresses
    if count > usable:
        raise ValueError(f"{net} has only {usable} usable addresses, {count} requested")
    rng = random.Random(seed)
    offsets = sorted(rng.sample(range(1, network.num_addresses - 1), count))
    kinds = [KINDS[i % len(KINDS)] for i in range(count)]
    rng.shuffle(kinds)
    return [(str(network.network_address + o), k) for o, k in zip(offsets, kinds, strict=True)]


def raise_nofile() -> int:
    """Raise the soft open-file limit to the hard limit; return the new soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def encode_reject() -> bytes:
    rj = A_ASSOCIATE_RJ()
    rj.result, rj.source, rj.reason_diagnostic = 1, 1, 7
    return rj.encode()


def encode_accept(rq: A_ASSOCIATE_RQ) -> bytes:
    prim = A_ASSOCIATE()
    prim.application_context_name = UID(APP_CONTEXT)
    prim.called_ae_title = rq.called_ae_title or "ANY-SCP"
    prim.calling_ae_title = rq.calling_ae_title or "ANY-SCU"
    prim.result, prim.result_source = 0, 1
    results: list[PresentationContext] = []
    for item in rq.presentation_context:
        cx = PresentationContext()
        cx.context_id = item.context_id
        proposed = [str(ts) for ts in item.transfer_syntax]
        if str(item.abstract_syntax) != VERIFICATION:
            cx.result, ts = 3, (proposed[0] if proposed else IMPLICIT_LE)
        elif IMPLICIT_LE in proposed:
            cx.result, ts = 0, IMPLICIT_LE
        else:
            cx.result, ts = 4, (proposed[0] if proposed else IMPLICIT_LE)
        cx.add_transfer_syntax(UID(ts))
        results.append(cx)
    prim.presentation_context_definition_results_list = results
    max_len = MaximumLengthNotification()
    max_len.maximum_length_received = MAX_PDU
    impl_uid = ImplementationClassUIDNotification()
    impl_uid.implementation_class_uid = UID(IMPL_CLASS_UID)
    impl_ver = ImplementationVersionNameNotification()
    impl_ver.implementation_version_name = IMPL_VERSION
    prim.user_information = [max_len, impl_uid, impl_ver]
    return A_ASSOCIATE_AC(prim).encode()


def encode_echo_rsp(message_id: int, context_id: int) -> bytes:
    rsp = C_ECHO()
    rsp.MessageIDBeingRespondedTo = message_id
    rsp.AffectedSOPClassUID = VERIFICATION
    rsp.Status = 0x0000
    msg = C_ECHO_RSP()
    msg.primitive_to_message(rsp)
    return b"".join(P_DATA_TF(p).encode() for p in msg.encode_msg(context_id, MAX_PDU))


def encode_abort(source: int, reason: int) -> bytes:
    ab = A_ABORT_RQ()
    ab.source, ab.reason_diagnostic = source, reason
    return ab.encode()


RELEASE_RP = A_RELEASE_RP().encode()
REJECT_CALLED_AE = encode_reject()


class DicomHost(asyncio.Protocol):
    """One connection to a simulated host; never lets an exception escape."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.associated = False
        self.message: DIMSEMessage | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self.kind == "silent":
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(SILENT_CLOSE_S, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.kind == "silent" or self.transport is None:
            return  # read and discard
        self.buf += data
        try:
            self._drain()
        except Exception:  # hostile or malformed input: abort this connection only
            self._close(encode_abort(2, 0))

    def _close(self, last: bytes = b"") -> None:
        if self.transport is not None:
            if last:
                self.transport.write(last)
            self.transport.close()  # flushes pending writes first
            self.transport = None
        self.buf.clear()

    def _drain(self) -> None:
        while self.transport is not None and len(self.buf) >= 6:
            pdu_type, length = struct.unpack(">BxI", self.buf[:6])
            if length > MAX_INPUT_PDU:
                self._close(encode_abort(2, 6))  # invalid PDU parameter value
                return
            if len(self.buf) < 6 + length:
                return
            pdu = bytes(self.buf[: 6 + length])
            del self.buf[: 6 + length]
            self._handle(pdu_type, pdu)

    def _handle(self, pdu_type: int, pdu: bytes) -> None:
        assert self.transport is not None
        if pdu_type == 0x01 and not self.associated:
            rq = A_ASSOCIATE_RQ()
            rq.decode(pdu)
            called = rq.called_ae_title.strip()
            if self.kind == "called-ae-check" and called != ACCEPTED_CALLED_AE:
                self._close(REJECT_CALLED_AE)
                return
            self.transport.write(encode_accept(rq))
            self.associated = True
        elif pdu_type == 0x04 and self.associated:
            self._p_data(pdu)
        elif pdu_type == 0x05 and self.associated:
            self._close(RELEASE_RP)
        elif pdu_type == 0x07:
            self._close()
        else:
            self._close(encode_abort(2, 2))  # unexpected PDU

    def _p_data(self, pdu: bytes) -> None:
        assert self.transport is not None
        pdata = P_DATA_TF()
        pdata.decode(pdu)
        if self.message is None:
            self.message = DIMSEMessage()
        if not self.message.decode_msg(pdata.to_primitive()):
            return
        msg, self.message = self.message, None
        cmd = msg.command_set
        if cmd.CommandField != C_ECHO_RQ_FIELD or msg.context_id is None:
            self._close(encode_abort(0, 0))  # only Verification is served
            return
        self.transport.write(encode_echo_rsp(int(cmd.MessageID), msg.context_id))


async def serve(hosts: list[tuple[str, str]], port: int, backlog: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers: list[asyncio.Server] = []
    try:
        for addr, kind in hosts:
            server = await loop.create_server(
                functools.partial(DicomHost, kind), host=addr, port=port, backlog=backlog,
                reuse_address=True,
            )
            servers.append(server)
        print(f"READY n={len(servers)}", flush=True)
        await stop.wait()
    finally:
        for server in servers:
            server.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--net", default="127.77.0.0/16")
    ap.add_argument("--port", type=int, default=104)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--backlog", type=int, default=1024)
    ap.add_argument("--truth", type=Path, help="write ground truth JSON [{host, kind}]")
    args = ap.parse_args(argv)
    if not ipaddress.IPv4Network(args.net).subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
        ap.error("--net must be inside 127.0.0.0/8")
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    raise_nofile()
    hosts = plan_hosts(args.net, args.count, args.seed)
    if args.truth:
        truth = [{"host": h, "kind": k} for h, k in hosts]
        args.truth.write_text(json.dumps(truth, indent=1) + "\n")
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(hosts, args.port, args.backlog))
    return 0


if __name__ == "__main__":
    sys.exit(main())
