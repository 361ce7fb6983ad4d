"""Which protocol speaks on an open port, and its probe's outcome as a Service.

Everything protocol-specific comes from the protocol table (phiwatch.probes.PROTOCOLS):
a default port leads to its protocol's probe; else the port's own bytes decide: a
server-first banner, else TLS, then the table's in-turn protocols (HTTP, DICOM, SMB),
each on its own connection and bounded in time. A web service is then asked, in table
order, whether it is a file repository (a directory index, an S3 endpoint).
"""

from __future__ import annotations

import time
from typing import Literal

from ..engine import Channel, Engine, ProbeFailure
from ..models import DicomFacts, FeedFacts, HttpFacts, ProbeStatus, Protocol, RepositoryFacts, Service
from ..peertext import first_bytes
from . import IN_TURN, WEB_REPOSITORIES, by_banner, by_port
from .options import IdentifyOptions, ProbeOptions
from .outcome import Outcome, Peer
from .spec import NOT_THIS_PROTOCOL, ProtocolSpec
from .steps import Steps

__all__ = ["IdentifyOptions", "ProbeOptions", "service_on", "speaks_http", "speaks_smb"]

IdentifiedBy = Literal["port", "banner", "probe", "none"]
HTTP_REQUEST = b"GET / HTTP/1.0\r\nHost: %s\r\nUser-Agent: phiwatch\r\nAccept: */*\r\n\r\n"
# SMB1 NEGOTIATE offering "NT LM 0.12", "SMB 2.002" and "SMB 2.???": any SMB server answers.
_SMB_DIALECTS = b"\x02NT LM 0.12\x00\x02SMB 2.002\x00\x02SMB 2.???\x00"
_SMB_HEADER = (
    b"\xffSMB\x72\x00\x00\x00\x00\x18\x01\x48\x00\x00"
    + b"\x00" * 8
    + b"\x00\x00\xff\xff\xff\xfe\x00\x00\x00\x00"
)
_SMB_BODY = b"\x00" + len(_SMB_DIALECTS).to_bytes(2, "little") + _SMB_DIALECTS
SMB_NEGOTIATE = (
    b"\x00" + (len(_SMB_HEADER) + len(_SMB_BODY)).to_bytes(3, "big") + _SMB_HEADER + _SMB_BODY
)


def classify_banner(data: bytes) -> str:
    spec = by_banner(data)
    return spec.name.value if spec is not None else "unknown"


async def service_on(
    engine: Engine, host: str, port: int, channel: Channel, options: ProbeOptions
) -> Service:
    """Probe one open port; the sweep's connection is handed over and always closed."""
    started = time.monotonic()
    service = await _identify(engine, host, port, channel, options)
    await channel.close()
    service.elapsed_ms = int((time.monotonic() - started) * 1000)
    return service


async def _identify(
    engine: Engine, host: str, port: int, channel: Channel, options: ProbeOptions
) -> Service:
    spec = by_port(port)
    if spec is not None:
        service = await run(spec, engine, Peer(host, port, channel=channel), options, "port")
        if service.status not in spec.not_this:
            return service
        try:  # not the port's usual protocol after all: ask its own bytes
            channel = await engine.connect(host, port)
        except ProbeFailure:
            return service
    banner = await _banner(channel, options.identify.banner_wait)
    await channel.close()
    if banner is None:
        return Service(host=host, port=port, protocol=Protocol.UNKNOWN, status=ProbeStatus.RESET,
                       detail="peer closed the connection at once", identified_by="none")
    if not banner:
        return await _in_turn(engine, host, port, options)
    spec = by_banner(banner)
    if spec is not None and spec.probe is not None:
        return await run(spec, engine, Peer(host, port), options, "banner")
    return Service(host=host, port=port, protocol=spec.name if spec else Protocol.UNKNOWN,
                   status=ProbeStatus.OPEN, banner=first_bytes(banner), identified_by="banner")


async def _banner(channel: Channel, wait: float) -> bytes | None:
    """b'' when the peer is silent, None when it closed, else its first bytes."""
    try:
        data = await channel.read_some(512, timeout=wait)
    except ProbeFailure as failure:
        return b"" if failure.status is ProbeStatus.TIMEOUT else None
    return data or None


async def _in_turn(engine: Engine, host: str, port: int, options: ProbeOptions) -> Service:
    """A silent port: TLS first (then the protocols that have TLS ports, inside it), else the
    in-turn protocols in table order."""
    try:
        channel = await engine.connect(host, port, tls=True, timeout=options.identify.step_timeout)
    except ProbeFailure:
        channel = None
    if channel is not None:
        tls_facts = channel.tls
        await channel.close()
        service = await _try_in_turn(engine, host, port, options, tls=True)
        if service is None:
            service = Service(host=host, port=port, protocol=Protocol.TLS, status=ProbeStatus.OPEN,
                              identified_by="probe")
        service.tls = tls_facts
        return service
    service = await _try_in_turn(engine, host, port, options, tls=False)
    if service is not None:
        return service
    return Service(host=host, port=port, protocol=Protocol.UNKNOWN, status=ProbeStatus.TIMEOUT,
                   detail="open, but no answer to TLS, HTTP, DICOM or SMB", identified_by="none")


async def _try_in_turn(engine: Engine, host: str, port: int, options: ProbeOptions, tls: bool) -> Service | None:
    for spec in IN_TURN:
        if tls and not spec.tls_ports:
            continue
        recognise = spec.load_recogniser()
        if recognise is not None:
            if await recognise(engine, host, port, options.identify, tls):
                return await run(spec, engine, Peer(host, port, tls), options, "probe")
            continue
        service = await run(spec, engine, Peer(host, port, tls), options, "probe")
        if service.status not in NOT_THIS_PROTOCOL:
            return service
    return None


async def run(spec: ProtocolSpec, engine: Engine, peer: Peer, options: ProbeOptions,
              identified_by: IdentifiedBy) -> Service:
    """One protocol's probe on one port, as a Service (TLS first on its TLS ports, then plain)."""
    probe = spec.load_probe()
    tls = peer.tls or (identified_by == "port" and peer.port in spec.tls_ports)
    channel = peer.channel if spec.uses_channel and not tls else None
    if peer.channel is not None and channel is None:
        await peer.channel.close()
    steps = Steps()  # a probe that raises still leaves a service of its protocol, with a status
    outcome = await steps.run(spec.name.value, probe, engine, Peer(peer.host, peer.port, tls, channel), options)
    if tls and not peer.tls and not steps.failures and (outcome is None or outcome.status in spec.tls_fallback):
        outcome = await steps.run(spec.name.value, probe, engine, Peer(peer.host, peer.port, False), options)
        tls = False  # plain on a TLS port
    if steps.failures:
        failure = steps.failures[-1]
        outcome = Outcome(failure.status, None, steps.detail)
    elif outcome is None:
        outcome = Outcome(ProbeStatus.PROTOCOL_ERROR, None, f"not {spec.name.value}")
    service = _service(spec, peer, tls, outcome, identified_by)
    if isinstance(outcome.facts, HttpFacts) and outcome.status not in spec.not_this:
        await _web_repository(service, engine, Peer(peer.host, peer.port, tls, http=outcome.facts), options)
    return service


def _name(spec: ProtocolSpec, tls: bool) -> Protocol:
    """The name a service carries: a row's second name is its name over TLS (http, https)."""
    names = spec.names
    return names[1] if tls and len(names) > 1 else names[0]


def _service(spec: ProtocolSpec, peer: Peer, tls: bool, outcome: Outcome, identified_by: IdentifiedBy) -> Service:
    service = Service(host=peer.host, port=peer.port, protocol=_name(spec, tls), status=outcome.status,
                      detail=outcome.detail, identified_by=identified_by, tls=outcome.tls)
    facts = outcome.facts
    if isinstance(facts, DicomFacts):
        service.dicom = facts
    elif isinstance(facts, HttpFacts):
        service.http = facts
    elif isinstance(facts, RepositoryFacts):
        service.repository = facts
        service.banner = facts.server
    elif isinstance(facts, FeedFacts):
        service.feed = facts
    return service


async def _web_repository(service: Service, engine: Engine, peer: Peer, options: ProbeOptions) -> None:
    """Ask the web service, in table order, whether it is a file repository; the first that
    answers makes its files the exposure. A repository probe that raises leaves the HTTP facts."""
    steps = Steps()
    for spec in WEB_REPOSITORIES:
        found = await steps.run("repository", spec.load_on_http(), engine, peer, options)
        if found is None or not isinstance(found.facts, RepositoryFacts):
            continue
        service.protocol = _name(spec, peer.tls)
        service.repository = found.facts
        if service.status is not ProbeStatus.EXPOSED:
            service.status = found.status
            service.detail = found.detail or service.detail
        break
    if steps.failures:
        service.detail = steps.detail


async def speaks_http(engine: Engine, host: str, port: int, options: IdentifyOptions, tls: bool) -> bool:
    try:
        async with await engine.connect(host, port, tls=tls, timeout=options.step_timeout) as ch:
            await ch.write(HTTP_REQUEST % host.encode("ascii", "replace"))
            data = await ch.read_some(1024, timeout=options.step_timeout)
    except ProbeFailure:
        return False
    return data.startswith(b"HTTP/")


async def speaks_smb(engine: Engine, host: str, port: int, options: IdentifyOptions, tls: bool) -> bool:
    try:
        async with await engine.connect(host, port, tls=tls, timeout=options.step_timeout) as ch:
            await ch.write(SMB_NEGOTIATE)
            data = await ch.read_exact(8, timeout=options.step_timeout)
    except ProbeFailure:
        return False
    return data[4:8] in (b"\xffSMB", b"\xfeSMB")
