"""Given a probe that raises (a bug, or an answer nobody foresaw), the service keeps its protocol
and a status from the closed vocabulary; the scan goes on; the exception's text is not kept."""

from __future__ import annotations

import asyncio

from phiwatch.engine import Limits
from phiwatch.models import ProbeStatus
from phiwatch.probes import feed
from phiwatch.scanner import ScanConfig, Scanner
from phiwatch.targets import build_targets

from .parrot import Parrot

SECRET = "PWSTEPCANARY^ANN"


async def pushes_hl7(reader, writer):
    message = b"MSH|^~\\&|A|B|C|D|202612061200||ADT^A01|1|P|2.5\rPID|1||1||" + SECRET.encode() + b"\r"
    writer.write(b"\x0b" + message + b"\x1c\r")
    await writer.drain()
    await reader.read(1024)


def scan(port: int):
    config = ScanConfig(ports=[port], limits=Limits(timeout=1.0, retries=0))
    return asyncio.run(Scanner(config).run(build_targets(["127.0.0.1"])))


def test_a_probe_that_raises_keeps_its_protocol_and_ends_with_a_status(monkeypatch):
    with Parrot(pushes_hl7) as parrot:
        # Given the HL7 feed probe, whose counting step raises with the peer's text in the message
        def broken(kind, data, complete):
            raise RuntimeError(SECRET)

        monkeypatch.setattr(feed, "count", broken)
        outcome = scan(parrot.port)
    [service] = outcome.services
    # Then the service is still the HL7 feed the banner showed, with an error status and no message
    assert service.protocol == "hl7" and service.identified_by == "banner"
    assert service.status is ProbeStatus.ERROR and service.detail == "hl7: internal error (RuntimeError)"
    assert SECRET not in service.model_dump_json()


def test_the_same_feed_without_the_fault_is_a_counted_exposure():
    with Parrot(pushes_hl7) as parrot:
        outcome = scan(parrot.port)
    [service] = outcome.services
    assert service.protocol == "hl7" and service.status is ProbeStatus.EXPOSED
    assert service.feed is not None and service.feed.segments == {"MSH": 1, "PID": 1}
    assert service.feed.phi_attributes == ["PID-3 patient identifier list", "PID-5 patient name"]
    assert {f.check_id for f in outcome.findings} == {"clinical_feed_exposed"}
    assert SECRET not in service.model_dump_json() and SECRET not in outcome.findings[0].model_dump_json()
