"""Protocol names, in a module of their own so the protocol table and the command line can name
them without loading models."""

from __future__ import annotations

from enum import StrEnum


class Protocol(StrEnum):
    """Every protocol name a service or a finding may carry, and the keys of the protocol table
    (phiwatch.probes.PROTOCOLS); the check catalog is validated against it."""

    DICOM = "dicom"
    HTTP = "http"
    HTTPS = "https"
    TLS = "tls"
    FTP = "ftp"
    SMB = "smb"
    RSYNC = "rsync"
    NFS = "nfs"
    S3 = "s3"
    DIRINDEX = "dirindex"  # a web directory index: its services keep the name http or https
    WEBDAV = "webdav"  # a WebDAV share on a web port: its services keep the name http or https
    SSH = "ssh"
    IMAP = "imap"
    POP3 = "pop3"
    HL7 = "hl7"  # HL7 v2 sent unasked (over MLLP or bare): a server-first clinical feed
    ASTM = "astm"  # ASTM E1381/E1394 offered unasked: a laboratory instrument's feed
    UNKNOWN = "unknown"
