"""The lab's server-first clinical feeds: an HL7 v2 interface that pushes an ADT message over
MLLP to anyone who connects, and an ASTM instrument that offers results (ENQ, then records).

Run: ``python -m phiwatch_lab.feeds --hl7-port N --astm-port M``. Listens on 127.0.0.1
only. Each connection gets the canary patient's ADT^A01 (HL7 port) or an ENQ followed, after
a pause, by one result message of the canary patient without waiting for an ACK (ASTM port,
the way instruments behind serial-to-TCP gateways stream). The server never reads what the
client sends beyond a small bound and closes each connection after 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from . import canary
from .plugins import LabServer, Prepared

LOG = logging.getLogger("phiwatch_lab.feeds")
HL7_OFFSET = 70
ASTM_OFFSET = 71
HOLD = 10.0


def adt_message() -> bytes:
    """An ADT^A01 of the canary patient (PID-3, -5, -7, -11, -13; PV1-7), segments ending in CR."""
    family, given = canary.CANARY_PATIENT_NAME.split("^")[:2]
    segments = [
        "MSH|^~\\&|PHIWATCHLAB|LABHOSP|RECEIVER|LABHOSP|202612061200||ADT^A01|LAB00001|P|2.5",
        "EVN|A01|202612061200",
        f"PID|1||{canary.CANARY_PATIENT_ID}^^^LABHOSP^MR||{family}^{given}||{canary.CANARY_BIRTH_DATE}|F"
        f"|||1 CANARY ROAD^^LABTOWN||555-0100",
        f"PV1|1|I|WARD^1^1||||{canary.CANARY_REFERRING_PHYSICIAN}",
    ]
    return "\r".join(segments).encode() + b"\r"


def astm_records() -> bytes:
    """One ASTM E1394 message of the canary patient: header, patient, order, result, terminator."""
    records = [
        "H|\\^&|||PHIWATCHLAB-ANALYZER|||||||P|1",
        f"P|1||{canary.CANARY_PATIENT_ID}||{canary.CANARY_PATIENT_NAME}||{canary.CANARY_BIRTH_DATE}|F",
        "O|1|SPECIMEN1||^^^GLU|R",
        "R|1|^^^GLU|5.4|mmol/L||N||F",
        "L|1|N",
    ]
    frame = ("1" + "\r".join(records) + "\r").encode() + b"\x03"
    checksum = f"{sum(frame) % 256:02X}".encode()
    return b"\x02" + frame + checksum + b"\r\n"


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(TimeoutError, OSError, asyncio.IncompleteReadError):
        await asyncio.wait_for(reader.read(4096), timeout=HOLD)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def hl7_push(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        writer.write(b"\x0b" + adt_message() + b"\x1c\r")
        await writer.drain()
    await _hold(reader, writer)


async def astm_push(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        writer.write(b"\x05")
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(astm_records() + b"\x04")
        await writer.drain()
    await _hold(reader, writer)


async def serve(host: str, hl7_port: int, astm_port: int) -> None:
    hl7 = await asyncio.start_server(hl7_push, host, hl7_port, backlog=256)
    astm = await asyncio.start_server(astm_push, host, astm_port, backlog=256)
    LOG.info("HL7 push on %s:%d, ASTM on %s:%d", host, hl7_port, host, astm_port)
    async with hl7, astm:
        await asyncio.gather(hl7.serve_forever(), astm.serve_forever())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Push HL7 v2 (MLLP) and ASTM to anyone who connects.")
    parser.add_argument("--hl7-port", type=int, required=True)
    parser.add_argument("--astm-port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.hl7_port, args.astm_port))
    return 0


# --- the plug-in ----------------------------------------------------------------------


def _prepare(folder: Path, base: int) -> Prepared:
    argv = [sys.executable, "-m", "phiwatch_lab.feeds", "--hl7-port", str(base + HL7_OFFSET),
            "--astm-port", str(base + ASTM_OFFSET)]
    return Prepared(argv=argv, python=True)


def _services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    common = {"process": "feeds", "tls": False, "called_ae": None}
    return [
        {**common, "name": "hl7-push", "port": base + HL7_OFFSET, "protocol": "hl7",
         "description": "HL7 v2 interface that pushes the canary patient's ADT^A01 over MLLP on connect",
         "expected": {"kind": "hl7-mllp", "messages": 1, "message_types": ["ADT^A01"],
                      "segments": {"EVN": 1, "MSH": 1, "PID": 1, "PV1": 1},
                      "findings": ["clinical_feed_exposed"]}},
        {**common, "name": "astm-push", "port": base + ASTM_OFFSET, "protocol": "astm",
         "description": "ASTM instrument: ENQ, then the canary patient's result message without waiting for ACK",
         "expected": {"kind": "astm", "messages": 1,
                      "segments": {"header": 1, "order": 1, "patient": 1, "result": 1, "terminator": 1},
                      "findings": ["clinical_feed_exposed"]}},
    ]


def _nothing_to_install() -> None:
    return None


SERVER = LabServer(
    name="feeds",
    offsets=(HL7_OFFSET, ASTM_OFFSET),
    check_installed=_nothing_to_install,
    prepare=_prepare,
    services=_services,
    canary=("hl7-push", "astm-push"),
)


if __name__ == "__main__":
    raise SystemExit(main())
