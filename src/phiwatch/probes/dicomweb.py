"""DICOMweb exposure: bounded QIDO-RS study paging, or Orthanc's exact /statistics.

Only study-level QIDO-RS (search) is ever sent: never WADO-RS/WADO-URI retrieve. Answers
are inspected for counts and for which PHI attributes are non-empty; values are dropped.
"""

from __future__ import annotations

import json
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


def _phi_names(study: dict[str, Any], into: set[str]) -> None:
    for tag, element in list(study.items())[:512]:
        if not isinstance(element, dict) or not element.get("Value"):
            continue
        try:
            keyword = keyword_for_tag(int(tag, 16))
        except (ValueError, TypeError):
            continue
        if keyword in DICOM_PHI_KEYWORDS and any(_non_empty(v) for v in element["Value"][:8]):
            into.add(keyword)


def _non_empty(value: object) -> bool:
    if isinstance(value, dict):  # PN: {"Alphabetic": ...}
        return any(_non_empty(v) for v in list(value.values())[:4])
    return value not in (None, "", [])


def _instances(study: dict[str, Any]) -> int:
    element = study.get(INSTANCES_TAG)
    try:
        value = element["Value"][0] if isinstance(element, dict) else 0
        count = int(value)
    except (KeyError, IndexError, TypeError, ValueError):
        return 0
    return count if 0 <= count < 10**9 else 0


async def query_studies(
    session: HttpSession,
    root: str,
    auth: dict[str, str],
    access: str,
    max_matches: int,
) -> DicomWebExposure:
    """Page `{root}/studies` with limit/offset until a short page or `max_matches` studies."""
    exposure = DicomWebExposure(root=root, result="empty", access=access)  # type: ignore[arg-type]
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
            return exposure
        if response.status == 204:
            break
        if response.status != 200:
            exposure.result = "refused"
            return exposure
        try:
            studies = json.loads(response.body)
        except ValueError:
            exposure.result = "error"
            exposure.error = "answer is not JSON" + (" (truncated)" if response.truncated else "")
            return exposure
        if not isinstance(studies, list):
            exposure.result = "error"
            exposure.error = "answer is not a list of studies"
            return exposure
        page = [s for s in studies[:limit] if isinstance(s, dict)]
        for study in page:
            exposure.studies += 1
            exposure.instances += _instances(study)
            _phi_names(study, phi)
        if exposure.studies >= max_matches:
            exposure.truncated = len(studies) >= limit
            break
        if len(studies) < limit or not page:
            break
        offset += len(page)
    exposure.result = "exposed" if exposure.studies else "empty"
    exposure.phi_attributes = sorted(phi)
    return exposure


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
        document = json.loads(response.body)
        studies, instances = int(document["CountStudies"]), int(document["CountInstances"])
    except (ValueError, KeyError, TypeError):
        return
    if 0 <= studies < 10**9 and 0 <= instances < 10**12:
        into.studies, into.instances, into.exact, into.truncated = studies, instances, True, False
        into.result = "exposed" if studies else "empty"
