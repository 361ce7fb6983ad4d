"""The protocol table: one typed row per protocol, and everything derived from it.

Identification (which probe a default port or a banner leads to, what is tried in turn on
a silent port), the default ports, the order in which web services are asked whether they
are a file repository, the checks a service's findings come from, the per-protocol
options of `phiwatch scan` and the protocol names the check catalog may use: all read
this tuple. Adding a protocol means one probe module, its checks and catalog entries, its
lab plug-in and one row here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..protocol import Protocol
from ..status import ProbeStatus
from .spec import NOT_THIS_PROTOCOL, ProtocolOption, ProtocolSpec

if TYPE_CHECKING:
    from .options import ProbeOptions

_S3_OPTIONS = (
    ProtocolOption("--s3-bucket", "S3 bucket name to try on every S3 endpoint besides those it lists "
                   "(repeatable)"),
    ProtocolOption("--s3-buckets-file", "File of S3 bucket names, one per line (at most 1000)", "FILE", path=True),
)

# In table order: silent ports are tried with HTTP, DICOM, then SMB; web services are asked
# whether they are a WebDAV share (mountable, even where GET shows an HTML listing), a directory
# index, then an S3 endpoint.
PROTOCOLS: tuple[ProtocolSpec, ...] = (
    ProtocolSpec(Protocol.HTTP, "http:probe", default_ports=(80, 443, 3333, 8000, 8042, 8080, 8081, 8443),
                 tls_ports=(443, 8443), in_turn=True, recognise="identify:speaks_http",
                 not_this=NOT_THIS_PROTOCOL | {ProbeStatus.TLS_ERROR}, carried_as=(Protocol.HTTP, Protocol.HTTPS),
                 checks=("http",)),
    ProtocolSpec(Protocol.DICOM, "dicom:probe", default_ports=(104, 2761, 2762, 4242, 11112), tls_ports=(2762,),
                 in_turn=True, uses_channel=True, not_this=frozenset({ProbeStatus.PROTOCOL_ERROR}),
                 tls_fallback=frozenset({ProbeStatus.TLS_ERROR, ProbeStatus.TIMEOUT}), checks=("dicom",)),
    ProtocolSpec(Protocol.FTP, "ftp:probe", default_ports=(21,), banners=(b"220",), checks=("ftp",)),
    ProtocolSpec(Protocol.RSYNC, "rsync:probe", default_ports=(873,), banners=(b"@RSYNCD:",), checks=("rsync",)),
    ProtocolSpec(Protocol.NFS, "nfs:probe", default_ports=(2049, 111), checks=("nfs",)),
    ProtocolSpec(Protocol.SMB, "smb:probe", default_ports=(445, 139), in_turn=True,
                 recognise="identify:speaks_smb", checks=("smb",)),
    ProtocolSpec(Protocol.WEBDAV, on_http="webdav:probe", carried_as=(Protocol.HTTP, Protocol.HTTPS), checks=("webdav",)),  # noqa: E501
    ProtocolSpec(Protocol.DIRINDEX, on_http="dirindex:probe", carried_as=(Protocol.HTTP, Protocol.HTTPS),
                 checks=("dirindex",)),
    ProtocolSpec(Protocol.S3, "s3:probe", default_ports=(9000,), on_http="s3:on_web", options=_S3_OPTIONS,
                 configure="s3:configure", checks=("s3",)),
    ProtocolSpec(Protocol.HL7, "feed:hl7", default_ports=(2575,), banners=(b"\x0bMSH", b"MSH|"), checks=("feed",)),
    ProtocolSpec(Protocol.ASTM, "feed:astm", banners=(b"\x05", b"H|\\^&", *(b"\x02%dH|" % n for n in range(8))),
                 checks=("feed",)),
    ProtocolSpec(Protocol.SSH, banners=(b"SSH-",)),
    ProtocolSpec(Protocol.IMAP, banners=(b"* OK",)),
    ProtocolSpec(Protocol.POP3, banners=(b"+OK",)),
    ProtocolSpec(Protocol.TLS),  # TLS that carries nothing phiwatch recognises
    ProtocolSpec(Protocol.UNKNOWN),
)

BY_NAME: dict[Protocol, ProtocolSpec] = {spec.name: spec for spec in PROTOCOLS}
DEFAULT_PORTS: tuple[int, ...] = tuple(sorted({p for spec in PROTOCOLS if spec.probe for p in spec.default_ports}))
WEB_REPOSITORIES: tuple[ProtocolSpec, ...] = tuple(spec for spec in PROTOCOLS if spec.on_http)
IN_TURN: tuple[ProtocolSpec, ...] = tuple(spec for spec in PROTOCOLS if spec.in_turn)
OPTIONS: tuple[ProtocolOption, ...] = tuple(option for spec in PROTOCOLS for option in spec.options)


def by_port(port: int) -> ProtocolSpec | None:
    """The protocol whose default ports hold this port (and that has a probe)."""
    return next((spec for spec in PROTOCOLS if spec.probe and port in spec.default_ports), None)


def by_banner(data: bytes) -> ProtocolSpec | None:
    return next((spec for spec in PROTOCOLS if any(data.startswith(b) for b in spec.banners)), None)


def serving(protocol: str) -> tuple[ProtocolSpec, ...]:
    """The rows whose services carry this protocol name (http: the HTTP probe's and the index's)."""
    return tuple(spec for spec in PROTOCOLS if protocol in spec.names)


def check_modules(protocol: str) -> tuple[str, ...]:
    """The check modules for a service of this protocol, in table order."""
    return tuple(dict.fromkeys(module for spec in serving(protocol) for module in spec.checks))


def configure(options: ProbeOptions, values: Mapping[str, Any]) -> ProbeOptions:
    """Apply the per-protocol options given on the command line; raises ValueError naming the option."""
    for spec in PROTOCOLS:
        given = {o.key: values[o.key] for o in spec.options if values.get(o.key) not in (None, [], ())}
        if given:
            options = spec.load_configure()(options, given)
    return options


def _check_table() -> None:
    names = [spec.name for spec in PROTOCOLS]
    assert len(names) == len(set(names)), "one row per protocol"
    assert {n for spec in PROTOCOLS for n in (spec.name, *spec.names)} == set(Protocol), "every name has a row"
    ports = [p for spec in PROTOCOLS if spec.probe for p in spec.default_ports]
    assert len(ports) == len(set(ports)), "a default port belongs to one protocol"


_check_table()
