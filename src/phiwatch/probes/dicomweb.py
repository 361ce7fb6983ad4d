"""DICOMweb exposure: bounded QIDO-RS study paging, or Orthanc's exact /statistics.

Only study-level QIDO-RS (search) is ever sent: never WADO-RS/WADO-URI retrieve. Answers
are inspected for counts and for which PHI attributes are non-empty; values are dropped.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from pydicom.datadict import keyword_for_tag

from ..engine import ProbeFailure
from ..models import DicomWebExposure
from ..phi import DICOM_PHI_KEYWORDS

if TYPE_CHECKING:
    from .http_client import HttpSession

PAGE = 100
QIDO_HEADERS = {"Accept": "application/dicom+json, application/json"}
INSTANCES_TAG = "00201208"


MAX_TAG = 0xFFFFFFFF


def _phi_names(study: dict[str, Any], into: set[str]) -> None:
    for tag, element in list(study.items())[:512]:
        if not isinstance(element, dict):
            continue
        values = element.get("Value")
        if not isinstance(values, list) or not values:
            continue
        try:
            number = int(tag, 16)
        except (ValueError, TypeError):
            continue
        if not 0 <= number <= MAX_TAG:
            continue
        keyword = keyword_for_tag(number)
        if keyword in DICOM_PHI_KEYWORDS and any(_non_empty(v) for v in values[:8]):
            into.add(keyword)


def _non_empty(value: object) -> bool:
    if isinstance(value, dict):  # PN: {"Alphabetic": ...}
        return any(_non_empty(v) for v in list(value.values())[:4])
    return value not in (None, "", [])


def _instances(study: dict[str, Any]) -> int:
    """NumberOfStudyRelatedInstances, when it is a sane count; 0 for anything else."""
    element = study.get(INSTANCES_TAG)
    values = element.get("Value") if isinstance(element, dict) else None
    if not isinstance(values, list) or not values:
        return 0
    value = values[0]
    if isinstance(value, bool):
        return 0
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return 0
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 9:
        value = int(value.strip())
    if not isinstance(value, int):
        return 0
    return value if 0 <= value < 10**9 else 0


def _bounded_int(text: str) -> int:
    """A JSON integer; one too long to be a count becomes -1 (Python refuses very long ones)."""
    return int(text) if len(text) <= 18 else -1


def _loads(body: bytes) -> Any:
    """JSON with Infinity and NaN as floats and absurd integers as -1: counts reject both."""
    return json.loads(body, parse_int=_bounded_int)


async def query_studies(
    session: HttpSession,
    exposure: DicomWebExposure,
    auth: dict[str, str],
    max_matches: int,
    root: str | None = None,
) -> None:
    """Page `{root}/studies` with limit/offset until a short page or `max_matches` studies.

    Counts go into `exposure` as each page is read, so a later page that fails cannot take
    back what earlier pages proved (see `failed`).
    """
    root = root or exposure.root  # the URL's root; exposure.root is how the facts show it
    phi: set[str] = set()
    offset = 0
    while True:
        limit = min(PAGE, max_matches - exposure.studies)
        headers = {**QIDO_HEADERS, **auth, "Origin": "http://phiwatch.invalid"}
        response = await session.request(f"{root}/studies?limit={limit}&offset={offset}", headers=headers)
        exposure.status_code = response.status
        if offset == 0:
            exposure.cors_wildcard = response.header("access-control-allow-origin") in (
                "*", "http://phiwatch.invalid") and response.header(
                "access-control-allow-credentials").lower() == "true"
        if response.status in (401, 403):
            exposure.result = "auth-required" if response.status == 401 else "refused"
            return
        if response.status == 204:
            break
        if response.status != 200:
            exposure.result = "refused"
            return
        try:
            studies = _loads(response.body)
        except (ValueError, RecursionError):
            error = "answer is not JSON" + (" (truncated)" if response.truncated else "")
            _stop(exposure, phi, error)
            return
        if not isinstance(studies, list):
            _stop(exposure, phi, "answer is not a list of studies")
            return
        page = [s for s in studies[:limit] if isinstance(s, dict)]
        for study in page:
            exposure.studies += 1
            exposure.instances += _instances(study)
            _phi_names(study, phi)
            exposure.phi_attributes = sorted(phi)
        if exposure.studies >= max_matches:
            exposure.truncated = len(studies) >= limit
            break
        if len(studies) < limit or not page:
            break
        offset += len(page)
    exposure.result = "exposed" if exposure.studies else "empty"
    exposure.phi_attributes = sorted(phi)


def _stop(exposure: DicomWebExposure, phi: set[str], error: str) -> None:
    exposure.error = error
    exposure.phi_attributes = sorted(phi)
    exposure.result = "exposed" if exposure.studies else "error"


def failed(exposure: DicomWebExposure, detail: str) -> None:
    """A paging step that raised: studies counted before it still prove the exposure."""
    exposure.error = detail
    exposure.result = "exposed" if exposure.studies else "error"


async def orthanc_statistics(
    session: HttpSession, path: str, auth: dict[str, str], into: DicomWebExposure
) -> None:
    """Exact counts from Orthanc's /statistics, which names no patient."""
    try:
        response = await session.request(path, headers={"Accept": "application/json", **auth})
    except ProbeFailure:
        return
    if response.status != 200:
        return
    try:
        document = _loads(response.body)
        studies, instances = int(document["CountStudies"]), int(document["CountInstances"])
    except (ValueError, KeyError, TypeError, OverflowError):
        return
    if 0 <= studies < 10**9 and 0 <= instances < 10**12:
        into.studies, into.instances, into.exact, into.truncated = studies, instances, True, False
        into.result = "exposed" if studies else "empty"
