"""What a scan tells its probes: one options object handed to every probe, and its parts.

Plain data, importing no probe: the probes import it.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_AE_TITLES = (
    "ANY-SCP",
    "ORTHANC",
    "DCM4CHEE",
    "CONQUESTSRV1",
    "STORESCP",
    "PACS",
    "DICOM",
    "OSIRIX",
    "HOROS",
    "CLEARCANVAS",
    "DICOOGLE",
    "QRSCP",
    "DCMQRSCP",
    "ECHOSCP",
    "SERVER",
    "ARCHIVE",
    "OFFIS",  # dcmtk's example Modality Worklist (wlmscpfs) serves this title
)
MAX_AE_GUESSES = 32


@dataclass(frozen=True)
class DicomOptions:
    called_ae: str = "ANY-SCP"
    called_ae_supplied: bool = False  # the user named the called AE (--called-ae)
    calling_ae: str = "PHIWATCH"
    guess_aet: bool = False
    extra_ae_titles: tuple[str, ...] = ()
    max_matches: int = 1000
    # Trust signals: propose an unknown SOP class, inspect the answers, send the control
    # query (probes/dicom_control.py). digest_key keys the Study Instance UID digests; it is
    # made per scan and never stored.
    trust_signals: bool = True
    digest_key: bytes = b"phiwatch"

    def candidates(self) -> list[str]:
        """Called AE titles to try after a called-AE reject; empty unless asked for."""
        titles: list[str] = list(self.extra_ae_titles)
        if self.guess_aet:
            titles.extend(DEFAULT_AE_TITLES)
        unique = [t for t in dict.fromkeys(titles) if t != self.called_ae]
        return unique[:MAX_AE_GUESSES]


@dataclass(frozen=True)
class HttpOptions:
    try_default_logins: bool = False
    max_matches: int = 1000
    request_time: float = 10.0


@dataclass(frozen=True)
class WalkLimits:
    max_depth: int = 6
    max_entries: int = 2_000  # per folder
    max_files: int = 200  # files sniffed in all, per host
    per_directory: int = 25  # files sniffed in one folder; the rest are counted by name
    file_budget: int = 16_384  # bytes read from the start of each file
    total_bytes: int = 8 * 1024 * 1024  # listings and file heads, per host
    walk_time: float = 45.0  # wall time of the whole session, per host
    max_shares: int = 32  # shares, modules, exports or buckets walked per host


@dataclass(frozen=True)
class FileOptions:
    """What every file-repository probe is given: the walk's bounds and the user's extra names."""

    limits: WalkLimits = WalkLimits()
    s3_buckets: tuple[str, ...] = ()  # bucket names to try besides those the endpoint lists


@dataclass(frozen=True)
class IdentifyOptions:
    banner_wait: float = 1.0
    step_timeout: float = 3.0


@dataclass(frozen=True)
class ProbeOptions:
    dicom: DicomOptions = DicomOptions()
    http: HttpOptions = HttpOptions()
    files: FileOptions = FileOptions()
    identify: IdentifyOptions = IdentifyOptions()
