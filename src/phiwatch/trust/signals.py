"""Honeypot and implausibility signals, from facts that hold no PHI.

Per service: what the A-ASSOCIATE-AC and the C-FIND answers looked like (DicomFacts,
AnswerFacts). Per scan: what several hosts share (the same set of Study Instance UIDs)
and what the same host serves on its web ports. Each signal is one TrustReason with a
weight; the score is the product of (1 - weight) over the reasons, so one weak signal
never makes a honeypot and several together do.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from ..models import DicomFacts, Service, TrustReason
from ..vendors import identify

WEIGHTS: dict[TrustReason, float] = {
    TrustReason.NO_IMPLEMENTATION_CLASS_UID: 0.4,  # PS3.8 makes item 0x52 mandatory in the AC
    TrustReason.ACCEPTS_NONSENSE_SYNTAX: 0.5,
    TrustReason.ACCEPTS_EVERY_CONTEXT: 0.1,  # a permissive real SCP does this too
    TrustReason.VERSION_CONTRADICTS_CLASS_UID: 0.4,
    TrustReason.KNOWN_HONEYPOT_FINGERPRINT: 0.5,
    TrustReason.UNREQUESTED_ELEMENTS: 0.3,
    TrustReason.PIXEL_DATA_IN_ANSWERS: 0.5,
    TrustReason.OVERSIZED_ANSWERS: 0.2,
    TrustReason.DUPLICATE_STUDY_UIDS: 0.25,  # some real servers answer per series
    TrustReason.ALL_STUDIES_ONE_YEAR: 0.1,
    TrustReason.ALL_STUDIES_TODAY: 0.4,
    TrustReason.UNIVERSAL_MATCH_ONLY: 0.2,  # some real servers only answer '*' too
    TrustReason.IGNORES_QUERY_KEYS: 0.5,
    TrustReason.STUDY_UIDS_SHARED_ACROSS_HOSTS: 0.4,
    TrustReason.PERSONA_CONTRADICTED_BY_WEB: 0.3,
}
HONEYPOT_BELOW = 0.5
OVERSIZED_BYTES = 64 * 1024  # a STUDY-level identifier of a few dozen keys is far smaller
MIN_STUDIES_FOR_DATES = 5  # "every study in one year" means little with fewer
# Products built on another's toolkit answer with that toolkit's class UID (Debian's
# Orthanc announces DCMTK's): version-name vendor -> UID vendors that do not contradict it.
BUILT_ON: dict[str, set[str]] = {
    "Orthanc": {"OFFIS"},
    "OsiriX/Horos": {"OFFIS"},
    "Conquest": {"OFFIS"},
    "ClearCanvas": {"OFFIS"},
}
# DICOM vendor (from the version name) -> web product names that would confirm it.
WEB_PERSONAS: dict[str, tuple[str, ...]] = {
    "Orthanc": ("Orthanc",),
    "dcm4che": ("dcm4chee",),
    "OsiriX/Horos": ("Horos", "OsiriX"),
    "Conquest": ("Conquest",),
    "Dicoogle": ("Dicoogle",),
}


@dataclass(frozen=True)
class Fingerprint:
    id: str
    project: str
    implementation_class_uid: str | None = None
    implementation_version_name: str | None = None
    no_implementation_class_uid: bool = False
    accepts_unknown_sop_class: bool = False
    ae_titles: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    answers: str = ""

    def matches(self, facts: DicomFacts) -> bool:
        if self.accepts_unknown_sop_class and not _accepts_unknown(facts):
            return False
        if self.no_implementation_class_uid:
            return facts.implementation_class_uid is None
        if self.implementation_class_uid is None and self.implementation_version_name is None:
            return False
        uid_ok = self.implementation_class_uid is None or facts.implementation_class_uid == (
            self.implementation_class_uid)
        name_ok = self.implementation_version_name is None or (
            (facts.implementation_version_name or "").strip() == self.implementation_version_name)
        return uid_ok and name_ok


@cache
def fingerprints() -> tuple[Fingerprint, ...]:
    text = resources.files("phiwatch.trust").joinpath("honeypots.yaml").read_text(encoding="utf-8")
    rows = yaml.safe_load(text) or []
    return tuple(
        Fingerprint(
            id=str(row["id"]),
            project=str(row.get("project", "")),
            implementation_class_uid=row.get("implementation_class_uid"),
            implementation_version_name=row.get("implementation_version_name"),
            no_implementation_class_uid=bool(row.get("no_implementation_class_uid", False)),
            accepts_unknown_sop_class=bool(row.get("accepts_unknown_sop_class", False)),
            ae_titles=tuple(str(t) for t in row.get("ae_titles", [])),
            ports=tuple(int(p) for p in row.get("ports", [])),
            answers=str(row.get("answers", "")),
        )
        for row in rows
    )


def _accepts_unknown(facts: DicomFacts) -> bool:
    return any(c.name == "unknown-sop-class" and c.accepted for c in facts.contexts)


def _version_vendor(facts: DicomFacts) -> str | None:
    vendor, _ = identify(None, facts.implementation_version_name)
    return vendor


def _uid_vendor(facts: DicomFacts) -> str | None:
    vendor, _ = identify(facts.implementation_class_uid, None)
    return vendor


def association_signals(facts: DicomFacts) -> list[TrustReason]:
    if facts.association != "accepted":
        return []
    reasons = []
    if not facts.implementation_class_uid:
        reasons.append(TrustReason.NO_IMPLEMENTATION_CLASS_UID)
    proposed = [c for c in facts.contexts if c.name != "unknown-sop-class"]
    if _accepts_unknown(facts):
        reasons.append(TrustReason.ACCEPTS_NONSENSE_SYNTAX)
    if len(proposed) > 4 and all(c.accepted for c in proposed):
        reasons.append(TrustReason.ACCEPTS_EVERY_CONTEXT)
    named, built = _version_vendor(facts), _uid_vendor(facts)
    if named and built and named != built and built not in BUILT_ON.get(named, set()):
        reasons.append(TrustReason.VERSION_CONTRADICTS_CLASS_UID)
    if any(row.matches(facts) for row in fingerprints()):
        reasons.append(TrustReason.KNOWN_HONEYPOT_FINGERPRINT)
    return reasons


# Identifiers of the series and instance levels: a server that answers a STUDY-level query
# once per series or instance (its Study Instance UIDs repeat) sends them with good reason.
LOWER_LEVEL = frozenset({
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "SOPInstanceUID", "SOPClassUID",
    "InstanceNumber",
})


def _standard(name: str) -> bool:
    """A keyword or a tag of an even group: private elements (odd groups) are vendors' own."""
    if not name.startswith("("):
        return True
    try:
        return int(name[1:5], 16) % 2 == 0
    except ValueError:
        return False


def answer_signals(facts: DicomFacts) -> list[TrustReason]:
    query = facts.query
    if query is None or query.status != "exposed":
        return []
    reasons = []
    explained = LOWER_LEVEL if query.duplicate_uid_responses else frozenset()
    if any(_standard(name) and name not in explained for name in query.unrequested_attributes):
        reasons.append(TrustReason.UNREQUESTED_ELEMENTS)
    if query.duplicate_uid_responses:
        reasons.append(TrustReason.DUPLICATE_STUDY_UIDS)
    if query.matched_by == "universal":
        reasons.append(TrustReason.UNIVERSAL_MATCH_ONLY)
    many = query.responses >= MIN_STUDIES_FOR_DATES
    if many and query.study_year_min is not None and query.study_year_min == query.study_year_max:
        reasons.append(TrustReason.ALL_STUDIES_ONE_YEAR)
    answers = query.answers
    if answers is None:
        return reasons
    if answers.pixel_data:
        reasons.append(TrustReason.PIXEL_DATA_IN_ANSWERS)
    if answers.largest_identifier_bytes > OVERSIZED_BYTES:
        reasons.append(TrustReason.OVERSIZED_ANSWERS)
    if query.responses >= 2 and answers.dated_today == query.responses:
        reasons.append(TrustReason.ALL_STUDIES_TODAY)
    if answers.ignores_keys:
        reasons.append(TrustReason.IGNORES_QUERY_KEYS)
    return reasons


def service_signals(service: Service) -> list[TrustReason]:
    if service.dicom is None:
        return []
    return association_signals(service.dicom) + answer_signals(service.dicom)


def scan_signals(services: list[Service]) -> dict[tuple[str, int], list[TrustReason]]:
    """Signals only several services together show: shared study sets, contradicted personas."""
    found: dict[tuple[str, int], list[TrustReason]] = defaultdict(list)
    hosts_by_digest: dict[str, set[str]] = defaultdict(set)
    for service in services:
        digest = _digest(service)
        if digest is not None:
            hosts_by_digest[digest].add(service.host)
    web_products: dict[str, list[str]] = defaultdict(list)
    for service in services:
        if service.http is not None:
            web_products[service.host].extend(m.product for m in service.http.products)
    for service in services:
        key = (service.host, service.port)
        digest = _digest(service)
        if digest is not None and len(hosts_by_digest[digest]) > 1:
            found[key].append(TrustReason.STUDY_UIDS_SHARED_ACROSS_HOSTS)
        if service.dicom is not None and service.dicom.association == "accepted":
            persona = WEB_PERSONAS.get(_version_vendor(service.dicom) or "")
            seen = web_products.get(service.host, [])
            if persona and seen and not any(p.lower() in s.lower() for p in persona for s in seen):
                found[key].append(TrustReason.PERSONA_CONTRADICTED_BY_WEB)
    return found


def _digest(service: Service) -> str | None:
    facts = service.dicom
    if facts is None or facts.query is None or facts.query.answers is None:
        return None
    return facts.query.answers.study_uids_digest


def score(reasons: list[TrustReason]) -> float:
    value = 1.0
    for reason in reasons:
        value *= 1.0 - WEIGHTS[reason]
    return round(value, 3)
