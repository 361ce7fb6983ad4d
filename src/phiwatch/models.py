"""The data that travels through phiwatch: services, facts, findings, scans.

Nothing in these models may hold a PHI value. Facts carry attribute *names*,
counts, years and protocol metadata only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .peertext import PeerText, PlaceName
from .protocol import Protocol
from .severity import Severity
from .status import UNFINISHED, ProbeStatus

# re-exported: models name every kind of value a scan holds
__all__ = ["UNFINISHED", "ProbeStatus", "Protocol", "Severity"]


class RejectReason(StrEnum):
    """A-ASSOCIATE-RJ (source, reason) pairs, PS3.8 table 9-21, as distinct names."""

    NO_REASON = "no-reason-given"
    APP_CONTEXT_NOT_SUPPORTED = "application-context-not-supported"
    CALLING_AE_NOT_RECOGNIZED = "calling-ae-not-recognized"
    CALLED_AE_NOT_RECOGNIZED = "called-ae-not-recognized"
    PROTOCOL_VERSION_NOT_SUPPORTED = "protocol-version-not-supported"
    TEMPORARY_CONGESTION = "temporary-congestion"
    LOCAL_LIMIT_EXCEEDED = "local-limit-exceeded"
    UNKNOWN = "unknown"


class Model(BaseModel):
    # Assignments are validated too: text a peer sent fails the PeerText and PlaceName types
    # (phiwatch.peertext) wherever a probe would store it, not only where a model is built.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_UID = r"^[0-9][0-9.]{0,63}$"
_VERSION_TEXT = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$"
_TOKEN = r"^[A-Za-z][A-Za-z0-9-]{0,15}$"


class TlsFacts(Model):
    version: str | None = None
    cipher: str | None = None
    subject: PeerText | None = None
    issuer: PeerText | None = None
    alt_names: list[PeerText] = Field([], description="Subject alternative names, each through the gate")
    not_before: datetime | None = None
    not_after: datetime | None = None
    expired: bool | None = None
    self_signed: bool | None = None


class AssociationReject(Model):
    result: int = Field(description="1 rejected-permanent, 2 rejected-transient")
    source: int = Field(description="1 service user, 2 ACSE provider, 3 presentation provider")
    reason: int
    reason_name: RejectReason
    permanent: bool


class ContextResult(Model):
    name: str = Field(description="Short SOP class name, e.g. study-root-find")
    abstract_syntax: str
    accepted: bool
    result: int = Field(description="PS3.8 presentation context result (0 = acceptance)")


class AnswerInspection(Model):
    """How a C-FIND's answers were shaped, beyond what they matched. Names and counts only."""

    responses: int = Field(0, description="Pending responses that carried an identifier")
    duplicate_uid_responses: int = Field(
        0, description="Responses whose Study Instance UID an earlier response already carried"
    )
    responses_without_uid: int = Field(0, description="Responses without a Study Instance UID")
    unrequested_attributes: list[str] = Field(
        [], description="Attributes in an answer that the query did not ask for (names or tags)"
    )
    matched_by: Literal["empty-keys", "universal"] | None = Field(
        None, description="The query whose answer is reported: empty matching keys, or a '*' wildcard"
    )
    universal_retry: bool = Field(
        False, description="The empty-key query came back empty, so a universal '*' query followed"
    )
    interrupted: str | None = Field(None, description="Why counting stopped early (the counts stand)")


class AnswerFacts(Model):
    """More of a C-FIND's answers, for plausibility signals: sizes, counts and a digest keyed
    with a secret that lives only as long as the scan's processes. Never a value."""

    largest_identifier_bytes: int = Field(0, description="Largest answer's encoded size (approximate)")
    pixel_data: bool = Field(False, description="An answer carried Pixel Data (7FE0,0010)")
    dated_today: int = Field(0, description="Answers whose StudyDate is the day of the scan (+-1 day)")
    study_uids_digest: str | None = Field(
        None, description="Keyed digest of the set of Study Instance UIDs; comparable within one scan only")
    ignores_keys: bool | None = Field(
        None, description="A control C-FIND for a date range before DICOM existed still matched")


class StudyExposure(AnswerInspection):
    """What one bounded STUDY-level C-FIND proved. Never PHI values."""

    status: Literal["refused", "empty", "exposed"]
    refusal: str | None = Field(None, description="How the query was refused: abort, status, ...")
    failure_status: int | None = None
    information_model: str | None = None
    studies: int = Field(0, description="Distinct Study Instance UIDs (plus answers without one)")
    instances: int | None = Field(
        None, description="Sum of NumberOfStudyRelatedInstances; None when no study gave it (unknown)"
    )
    studies_without_instance_count: int = Field(
        0, description="Studies whose answer left NumberOfStudyRelatedInstances empty or absent"
    )
    truncated: bool = Field(False, description="Stopped at --max-matches and sent C-CANCEL")
    modalities: list[str] = []
    study_year_min: int | None = None
    study_year_max: int | None = None
    phi_attributes: list[str] = Field([], description="PHI attribute names that came back non-empty")
    answers: AnswerFacts | None = None


class WorklistExposure(AnswerInspection):
    """What one bounded Modality Worklist C-FIND proved. Never PHI values."""

    status: Literal["refused", "empty", "exposed"]
    refusal: str | None = None
    failure_status: int | None = None
    items: int = Field(0, description="Worklist items (pending responses) that came back")
    procedure_steps: int = Field(0, description="Scheduled Procedure Step Sequence items in them")
    truncated: bool = Field(False, description="Stopped at --max-matches and sent C-CANCEL")
    modalities: list[str] = []
    phi_attributes: list[str] = Field([], description="PHI attribute names that came back non-empty")


class DicomFacts(Model):
    called_ae: str
    calling_ae: str
    tls: bool = False
    association: Literal["accepted", "rejected", "aborted", "failed"] = "failed"
    reject: AssociationReject | None = None
    abort_source: int | None = None
    abort_reason: int | None = None
    called_ae_guessed: bool = Field(False, description="Accepted only under a guessed AE title")
    called_ae_supplied: bool = Field(False, description="The user gave this called AE title (--called-ae)")
    aet_attempts: int = 1
    max_pdu_length: int | None = None
    implementation_class_uid: str | None = Field(None, pattern=_UID)
    implementation_version_name: PeerText | None = None
    vendor: str | None = None
    product: str | None = None
    contexts: list[ContextResult] = []
    echo_status: int | None = None
    released: bool = False
    query: StudyExposure | None = None
    worklist: WorklistExposure | None = None
    error: str | None = None


class ProductMatch(Model):
    product: str
    version: str | None = Field(None, pattern=_VERSION_TEXT)
    path: str
    kind: str = Field(description="ui, api, login or auth")


class DicomWebExposure(Model):
    """What bounded QIDO-RS paging (or Orthanc's /statistics) proved. Never PHI values."""

    root: str
    status_code: int | None = None
    result: Literal["exposed", "empty", "auth-required", "refused", "error"]
    access: Literal["none", "blank-login", "default-login"] = "none"
    studies: int = 0
    instances: int = 0
    exact: bool = Field(False, description="Counts from the server's own statistics, not paging")
    truncated: bool = False
    phi_attributes: list[str] = []
    cors_wildcard: bool = False
    error: str | None = None


class HttpFacts(Model):
    scheme: Literal["http", "https"]
    status_code: int | None = None
    server: PeerText | None = None
    title: PeerText | None = None
    auth_scheme: str | None = Field(None, pattern=_TOKEN)
    auth_realm: PeerText | None = None
    login_form: bool = False
    products: list[ProductMatch] = []
    open_paths: list[str] = Field([], description="Product pages or APIs answered 2xx without credentials")
    blank_login: bool | None = None
    default_login_user: str | None = Field(None, description="User name of an accepted default login")
    default_logins_tried: int = 0
    cors_wildcard_credentials: bool = False
    bucket_names: list[PlaceName] = Field(
        [], description="S3 bucket names the root page links to or its CORS origin names, by the place-name rule"
    )
    # The names as the page gave them, to try on the host's S3 endpoints; held in memory only
    # (a private attribute is never serialised into scan.json, the store or a report).
    _bucket_hints: list[str] = PrivateAttr(default_factory=list)
    dicomweb: list[DicomWebExposure] = []
    vulnerabilities: list[str] = []
    requests: int = 0
    error: str | None = None


class FileKindCount(Model):
    verified: int = Field(0, description="Files whose first bytes proved the kind")
    estimated: int = Field(0, description="Files counted from their names only (beyond the sniff budget)")


class ShareFacts(Model):
    """One share, module, export, bucket or root of a file repository, as an anonymous visitor saw it."""

    name: PlaceName = Field(description="Share/module/export/bucket name (generic words, else a keyed hash)")
    readable: bool = False
    auth_required: bool = False
    directories: int = 0
    entries: int = 0
    files_sniffed: int = 0
    bytes_read: int = 0
    limited: bool = Field(False, description="A depth, entry, file, byte or time bound was reached")
    loops: int = Field(0, description="Directory or symlink loops detected and not followed")
    files: dict[str, FileKindCount] = Field({}, description="dicom, dicomdir, hl7, x12 -> counts")
    phi_attributes: dict[str, list[str]] = Field({}, description="kind -> PHI attribute names seen")
    world_readable: bool | None = Field(None, description="NFS: exported to every client (*)")
    error: str | None = None


class RepositoryFacts(Model):
    """What a file repository (FTP, SMB, rsync, NFS, S3, HTTP index) gave without real credentials."""

    access: Literal["anonymous", "guest", "denied", "not-attempted"]
    login: str | None = Field(None, description="User name that worked (never a password)")
    tls_offered: bool | None = None
    server: PeerText | None = Field(None, description="Server banner, through the peer-text gate")
    registered: str | None = Field(None, description="NFS: RPC programs, versions and ports the portmapper listed")
    listing: str | None = Field(None, description="How folders were listed: mlsd, list, smb, rsync, nfs, s3, html")
    dialect: str | None = Field(None, description="SMB dialect, rsync or NFS version, or web index style")
    smb1: bool | None = Field(None, description="The server accepted an SMB1 (NT LM 0.12) negotiate")
    signing_required: bool | None = Field(None, description="SMB: the server requires message signing")
    hinted_buckets: int = Field(0, description="S3: bucket names found elsewhere in the scan and tried")
    random_bucket: str | None = Field(
        None, description="S3: the error code an unsigned request for a random bucket name got (NoSuchBucket: "
        "anonymous requests are served; AccessDenied: they are refused)",
    )
    shares: list[ShareFacts] = []
    error: str | None = None


class TrustReason(StrEnum):
    """Why a service looks less than real: a closed list (see trust/signals.py)."""

    NO_IMPLEMENTATION_CLASS_UID = "no-implementation-class-uid"
    ACCEPTS_NONSENSE_SYNTAX = "accepts-nonsense-abstract-syntax"
    ACCEPTS_EVERY_CONTEXT = "accepts-every-proposed-context"
    VERSION_CONTRADICTS_CLASS_UID = "version-name-contradicts-class-uid"
    KNOWN_HONEYPOT_FINGERPRINT = "known-honeypot-fingerprint"
    UNREQUESTED_ELEMENTS = "unrequested-elements-in-answers"
    PIXEL_DATA_IN_ANSWERS = "pixel-data-in-answers"
    OVERSIZED_ANSWERS = "oversized-answers"
    DUPLICATE_STUDY_UIDS = "duplicate-study-uids"
    ALL_STUDIES_ONE_YEAR = "all-studies-in-one-year"
    ALL_STUDIES_TODAY = "all-studies-dated-today"
    UNIVERSAL_MATCH_ONLY = "answers-only-a-universal-match"
    IGNORES_QUERY_KEYS = "ignores-query-keys"
    STUDY_UIDS_SHARED_ACROSS_HOSTS = "study-uids-shared-across-hosts"
    PERSONA_CONTRADICTED_BY_WEB = "persona-contradicted-by-web-ports"


class Trust(Model):
    """How far a service's answers can be believed; a cluster id says which services look alike."""

    score: float = Field(1.0, ge=0.0, le=1.0, description="1 = nothing implausible seen")
    honeypot: bool = Field(False, description="Likely a honeypot or a fake: excluded from filtered counts")
    reasons: list[TrustReason] = []
    cluster: str | None = Field(
        None, description="Shared by services with identical fingerprints (a fact, not a verdict)")


class FeedFacts(Model):
    """A server-first clinical feed (HL7 v2 or ASTM) that sends to anyone who connects. Counts only."""

    kind: Literal["hl7-mllp", "hl7", "astm"]
    bytes_read: int = 0
    complete: bool = Field(False, description="The sender closed or went quiet within the bounds")
    messages: int = Field(0, description="HL7 messages (MSH) or ASTM message headers (H records)")
    message_types: list[str] = Field([], description="HL7 MSH-9 codes, e.g. ADT^A01")
    segments: dict[str, int] = Field({}, description="HL7 segment ids or ASTM record types -> count")
    phi_attributes: list[str] = Field([], description="Names of PHI fields that came filled")
    handshake_only: bool = Field(False, description="ASTM: an ENQ and no record sent unasked")


class Service(Model):
    host: str
    port: int
    protocol: Protocol
    status: ProbeStatus
    detail: str | None = Field(None, description="Short reason, never PHI")
    identified_by: Literal["port", "banner", "probe", "none"] = "none"
    tls: TlsFacts | None = None
    banner: PeerText | None = Field(None, description="First bytes a server-first protocol sent: product or class")
    dicom: DicomFacts | None = None
    http: HttpFacts | None = None
    repository: RepositoryFacts | None = None
    feed: FeedFacts | None = None
    elapsed_ms: int = 0
    trust: Trust | None = None


class FileCounts(Model):
    dicom: int = 0
    hl7: int = 0
    x12: int = 0


class Exposure(Model):
    studies: int = 0
    instances: int | None = Field(0, description="None: the server did not say (unknown, not zero)")
    worklist_items: int = 0
    files: FileCounts = FileCounts()
    phi_attributes: list[str] = []


class Location(Model):
    """Where a configuration finding points: a file and a 1-based line (None: the whole file)."""

    path: str
    line: int | None = None


class LineChange(Model):
    """One line of a fix: replace line `line` (old -> new), insert after it (old None), or delete it (new None)."""

    path: str
    line: int
    old: str | None = None
    new: str | None = None


class Finding(Model):
    """One check that fired on one service, with everything every output shows, attached once when
    the finding is made (phiwatch.checks.make_finding) and stored with the scan: a report renders
    these texts, never today's catalog."""

    check_id: str
    title: str
    severity: Severity
    host: str
    port: int
    protocol: Protocol
    uri: str = Field("", description="The service as a URI: dicom://host:port, https://host:port/, ...")
    evidence: str = Field(description="What was observed; never a PHI value")
    exposure: Exposure | None = None
    description: str = ""
    risk: str = ""
    remediation: str
    references: list[str] = []
    location: Location | None = Field(None, description="Configuration audits: the file and line")
    fix: list[LineChange] | None = Field(None, description="Configuration audits: the lines to change")
    categories: list[str] = []
    compliance: dict[str, list[str]] = Field(
        {}, description="Framework (HIPAA, GDPR) -> requirement ids this finding bears on")
    catalog_version: str = Field("", description="The check catalog and compliance mappings it came from")


class TargetSummary(Model):
    specs: list[str]
    excludes: list[str]
    addresses: int = Field(description="Addresses to sweep (0 when services came from a list)")
    ports: list[int]
    services_file: str | None = Field(None, description="Discovery tool output the services came from")
    services: int | None = Field(None, description="Services listed in that file, after excludes")


class ScanOptions(Model):
    ports: list[int]
    concurrency: int
    per_host: int
    rate: float
    timeout: float
    retries: int
    max_matches: int
    calling_ae: str
    called_ae: str
    guess_aet: bool
    aet_file: str | None = None
    try_default_logins: bool = False
    byte_budget: int
    honeypot_signals: bool = True


class ScanInfo(Model):
    id: str
    start: datetime
    end: datetime | None = None
    version: str
    options: ScanOptions
    targets: TargetSummary
    complete: bool = True
    addresses_done: int = 0


class LadderStep(Model):
    step: str
    raw: int = Field(description="Services that reached this step")
    filtered: int = Field(description="The same, likely honeypots left out")


class ExposureTotals(Model):
    exposed_services: int = 0
    studies: int = 0
    instances: int = 0
    files: FileCounts = FileCounts()


class ScanSummary(Model):
    """The exposure ladder per protocol family, and exposure totals raw and filtered."""

    ladder: dict[str, list[LadderStep]] = Field(
        description="dicom, web and files: each step's service count, raw and filtered")
    likely_honeypots: int = 0
    fleets: int = Field(0, description="Cluster ids shared by two or more services")
    raw: ExposureTotals = ExposureTotals()
    filtered: ExposureTotals = ExposureTotals()
    honeypots_excluded: bool = Field(False, description="Services marked honeypot were dropped from this file")


class ScanResult(Model):
    """The output contract: `scan.json` validates against this model's JSON Schema."""

    model_config = ConfigDict(extra="forbid", title="phiwatch scan")

    schema_version: Literal[1] = 1
    scan: ScanInfo
    summary: ScanSummary | None = None
    services: list[Service] = []
    findings: list[Finding] = []
