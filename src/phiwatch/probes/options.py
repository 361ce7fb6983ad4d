"""What a scan tells its probes: one options object handed to every probe."""

from __future__ import annotations

from dataclasses import dataclass

from .dicom import DicomOptions
from .http import HttpOptions
from .walk import FileOptions


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
