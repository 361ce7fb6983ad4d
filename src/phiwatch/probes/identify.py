"""Which protocol speaks on an open port: from the port's defaults, else from its own bytes.

Server-first protocols announce themselves in a banner (FTP `220`, rsync
`@RSYNCD:`, SSH); otherwise TLS, HTTP, DICOM association and SMB negotiate are
tried in turn, each on its own connection and bounded in time.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType

from ..engine import Channel, Engine, ProbeFailure
from ..models import ProbeStatus, Service
from ..text import sanitize
from . import dicom, http
from .steps import Steps
from .walk import FileOptions, Outcome

BANNERS: list[tuple[bytes, str]] = [
    (b"@RSYNCD:", "rsync"),
    (b"SSH-", "ssh"),
    (b"220", "ftp"),
    (b"* OK", "imap"),
    (b"+OK", "pop3"),
]
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
NOT_THIS_PROTOCOL = {ProbeStatus.PROTOCOL_ERROR, ProbeStatus.RESET, ProbeStatus.TIMEOUT}


ByPort = Callable[["Engine", str, int, "Channel", "ProbeOptions"], Awaitable[tuple[Service, bool]]]


@dataclass(frozen=True)
class IdentifyOptions:
    banner_wait: float = 1.0
    step_timeout: float = 3.0


@dataclass(frozen=True)
class ProbeOptions:
    dicom: dicom.DicomOptions = dicom.DicomOptions()
    http: http.HttpOptions = http.HttpOptions()
    files: FileOptions = FileOptions()
    identify: IdentifyOptions = IdentifyOptions()


def classify_banner(data: bytes) -> str:
    for prefix, protocol in BANNERS:
        if data.startswith(prefix):
            return protocol
    return "unknown"


async def service_on(
    engine: Engine, host: str, port: int, channel: Channel, options: ProbeOptions
) -> Service:
    """Probe one open port; the sweep's connection is handed over and always closed."""
    started = time.monotonic()
    service = await _identify(engine, host, port, channel, options)
    await channel.close()
    service.elapsed_ms = int((time.monotonic() - started) * 1000)
    return service


async def _dicom_by_port(
    engine: Engine, host: str, port: int, channel: Channel, options: ProbeOptions
) -> tuple[Service, bool]:
    service = await _dicom_service(engine, host, port, options.dicom, channel, "port")
    return service, service.status is ProbeStatus.PROTOCOL_ERROR


async def _http_by_port(
    engine: Engine, host: str, port: int, channel: Channel, options: ProbeOptions
) -> tuple[Service, bool]:
    await channel.close()
    service = await _http_service(engine, host, port, options, port in http.TLS_PORTS, "port")
    return service, service.status in NOT_THIS_PROTOCOL | {ProbeStatus.TLS_ERROR}


@dataclass(frozen=True)
class RepositoryProbe:
    """A file-repository probe module, imported when its first service is probed.

    The module (phiwatch.probes.<NAME>) has NAME, DEFAULT_PORTS and
    `async probe(engine, host, port, FileOptions) -> walk.Outcome` (never raising). Its
    protocol library (ftplib, impacket, botocore, pyNfsClient) is imported with it, so a
    scan that meets no such service imports none of them.
    """

    NAME: str
    DEFAULT_PORTS: tuple[int, ...]

    def module(self) -> ModuleType:
        return importlib.import_module(f"{__package__}.{self.NAME}")

    async def probe(self, engine: Engine, host: str, port: int, options: FileOptions) -> Outcome:
        outcome: Outcome = await self.module().probe(engine, host, port, options)
        return outcome


ftp = RepositoryProbe("ftp", (21,))
rsync = RepositoryProbe("rsync", (873,))
s3 = RepositoryProbe("s3", (9000,))
nfs = RepositoryProbe("nfs", (2049, 111))
smb = RepositoryProbe("smb", (445, 139))
REPOSITORY_PROBES: tuple[RepositoryProbe, ...] = (ftp, rsync, s3, nfs, smb)


def _repository_by_port(module: RepositoryProbe) -> ByPort:
    async def by_port(
        engine: Engine, host: str, port: int, channel: Channel, options: ProbeOptions
    ) -> tuple[Service, bool]:
        await channel.close()
        service = await _repository_service(module, engine, host, port, options.files, "port")
        return service, service.status in NOT_THIS_PROTOCOL

    return by_port


# Server-first file repositories, probed when their banner shows on any port.
BANNER_PROBES: dict[str, RepositoryProbe] = {"ftp": ftp, "rsync": rsync}


# The one registry of protocols probed by port: (default ports, probe returning (service, failed)).
BY_PORT: tuple[tuple[tuple[int, ...], ByPort], ...] = (
    *((module.DEFAULT_PORTS, _repository_by_port(module)) for module in REPOSITORY_PROBES),
    (dicom.DEFAULT_PORTS, _dicom_by_port),
    (http.DEFAULT_PORTS, _http_by_port),
)
DEFAULT_PORTS: tuple[int, ...] = tuple(sorted({p for ports, _ in BY_PORT for p in ports}))


async def _identify(
    engine: Engine, host: str, port: int, channel: Channel, options: ProbeOptions
) -> Service:
    by_port = next((probe for ports, probe in BY_PORT if port in ports), None)
    if by_port is not None:
        service, failed = await by_port(engine, host, port, channel, options)
        if not failed:
            return service
        try:  # not the port's usual protocol after all: ask its own bytes
            channel = await engine.connect(host, port)
        except ProbeFailure:
            return service
    banner = await _banner(channel, options.identify.banner_wait)
    await channel.close()
    if banner is None:
        return Service(host=host, port=port, protocol="unknown", status=ProbeStatus.RESET,
                       detail="peer closed the connection at once", identified_by="none")
    if not banner:
        return await _probes_in_turn(engine, host, port, options)
    protocol = classify_banner(banner)
    module = BANNER_PROBES.get(protocol)
    if module is not None:
        return await _repository_service(module, engine, host, port, options.files, "banner")
    return Service(host=host, port=port, protocol=protocol, status=ProbeStatus.OPEN,
                   banner=sanitize(banner), identified_by="banner")


async def _banner(channel: Channel, wait: float) -> bytes | None:
    """b'' when the peer is silent, None when it closed, else its first bytes."""
    try:
        data = await channel.read_some(512, timeout=wait)
    except ProbeFailure as failure:
        return b"" if failure.status is ProbeStatus.TIMEOUT else None
    return data or None


async def _probes_in_turn(engine: Engine, host: str, port: int, options: ProbeOptions) -> Service:
    tls_service = await _tls(engine, host, port, options)
    if tls_service is not None:
        return tls_service
    if await _speaks_http(engine, host, port, options.identify, tls=False):
        return await _http_service(engine, host, port, options, False, "probe")
    service = await _dicom_service(engine, host, port, options.dicom, None, "probe")
    if service.status not in NOT_THIS_PROTOCOL:
        return service
    if await _smb(engine, host, port, options.identify):
        return await _repository_service(smb, engine, host, port, options.files, "probe")
    return Service(host=host, port=port, protocol="unknown", status=ProbeStatus.TIMEOUT,
                   detail="open, but no answer to TLS, HTTP, DICOM or SMB", identified_by="none")


async def _dicom_service(
    engine: Engine,
    host: str,
    port: int,
    options: dicom.DicomOptions,
    channel: Channel | None,
    identified_by: str,
    tls: bool = False,
) -> Service:
    use_tls = tls or (port in dicom.TLS_PORTS and identified_by == "port")
    if use_tls and channel is not None:
        await channel.close()
        channel = None
    outcome = await dicom.probe(engine, host, port, options, tls=use_tls, channel=channel)
    if use_tls and not tls and outcome.status in (ProbeStatus.TLS_ERROR, ProbeStatus.TIMEOUT):
        outcome = await dicom.probe(engine, host, port, options, tls=False)  # plain on 2762
    return Service(
        host=host,
        port=port,
        protocol="dicom",
        status=outcome.status,
        detail=outcome.detail,
        identified_by=identified_by,  # type: ignore[arg-type]
        dicom=outcome.facts,
    )


async def _tls(engine: Engine, host: str, port: int, options: ProbeOptions) -> Service | None:
    try:
        channel = await engine.connect(host, port, tls=True, timeout=options.identify.step_timeout)
    except ProbeFailure:
        return None
    tls_facts = channel.tls
    await channel.close()
    if await _speaks_http(engine, host, port, options.identify, tls=True):
        return await _http_service(engine, host, port, options, True, "probe")
    service = await _dicom_service(engine, host, port, options.dicom, None, "probe", tls=True)
    if service.status in NOT_THIS_PROTOCOL:
        service = Service(host=host, port=port, protocol="tls", status=ProbeStatus.OPEN,
                          identified_by="probe")
    service.tls = tls_facts
    return service


async def _speaks_http(engine: Engine, host: str, port: int, options: IdentifyOptions, tls: bool) -> bool:
    try:
        async with await engine.connect(host, port, tls=tls, timeout=options.step_timeout) as ch:
            await ch.write(HTTP_REQUEST % host.encode("ascii", "replace"))
            data = await ch.read_some(1024, timeout=options.step_timeout)
    except ProbeFailure:
        return False
    return data.startswith(b"HTTP/")


async def _http_service(
    engine: Engine, host: str, port: int, options: ProbeOptions, tls: bool, identified_by: str
) -> Service:
    outcome = await http.probe(engine, host, port, options.http, tls)
    if tls and outcome.status is ProbeStatus.TLS_ERROR and identified_by == "port":
        outcome = await http.probe(engine, host, port, options.http, tls=False)  # plain HTTP on 443
        tls = False
    service = Service(
        host=host,
        port=port,
        protocol="https" if tls else "http",
        status=outcome.status,
        detail=outcome.detail,
        identified_by=identified_by,  # type: ignore[arg-type]
        tls=outcome.tls,
        http=outcome.facts,
    )
    if outcome.facts is None or outcome.status in NOT_THIS_PROTOCOL | {ProbeStatus.TLS_ERROR}:
        return service
    from . import webrepo  # S3 and directory-index libraries: imported once a web service answers

    steps = Steps()  # a repository probe that raises leaves the HTTP facts as they are
    found = await steps.run("repository", webrepo.probe, engine, host, port, tls, outcome.facts, options.files)
    if steps.failures:
        service.detail = steps.detail
    if found is not None:  # an S3 endpoint or a directory index: its files are the exposure
        service.protocol = found.protocol
        service.repository = found.outcome.facts
        if service.status is not ProbeStatus.EXPOSED:
            service.status = found.outcome.status
            service.detail = found.outcome.detail or service.detail
    return service


async def _repository_service(
    module: RepositoryProbe, engine: Engine, host: str, port: int, options: FileOptions, identified_by: str
) -> Service:
    outcome = await module.probe(engine, host, port, options)
    return Service(
        host=host,
        port=port,
        protocol=module.NAME,
        status=outcome.status,
        detail=outcome.detail,
        identified_by=identified_by,  # type: ignore[arg-type]
        banner=outcome.facts.server,
        repository=outcome.facts,
    )


async def _smb(engine: Engine, host: str, port: int, options: IdentifyOptions) -> bool:
    try:
        async with await engine.connect(host, port, timeout=options.step_timeout) as ch:
            await ch.write(SMB_NEGOTIATE)
            data = await ch.read_exact(8, timeout=options.step_timeout)
    except ProbeFailure:
        return False
    return data[4:8] in (b"\xffSMB", b"\xfeSMB")
