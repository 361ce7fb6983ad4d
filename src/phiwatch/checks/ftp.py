"""FTP repository checks over RepositoryFacts. Pure: no sockets."""

from __future__ import annotations

from ..models import Exposure, FileCounts, FileKindCount, RepositoryFacts, Service
from . import Observation, check

_MEDICAL = ("dicom", "dicomdir", "hl7", "x12")
_LABELS = {"dicom": "DICOM", "dicomdir": "DICOMDIR", "hl7": "HL7 v2", "x12": "X12"}


def _facts(service: Service) -> RepositoryFacts | None:
    return service.repository if service.protocol == "ftp" else None


def _files(facts: RepositoryFacts) -> dict[str, FileKindCount]:
    """Counts per medical kind over every share."""
    totals: dict[str, FileKindCount] = {}
    for share in facts.shares:
        for kind, count in share.files.items():
            if kind in _MEDICAL and (count.verified or count.estimated):
                total = totals.setdefault(kind, FileKindCount())
                total.verified += count.verified
                total.estimated += count.estimated
    return totals


def _phi(facts: RepositoryFacts) -> list[str]:
    return sorted({name for share in facts.shares for names in share.phi_attributes.values() for name in names})


def _walk_note(facts: RepositoryFacts) -> str:
    limited = any(share.limited for share in facts.shares)
    loops = sum(share.loops for share in facts.shares)
    sniffed = sum(share.files_sniffed for share in facts.shares)
    notes = [f"{sniffed} file head(s) read"]
    if loops:
        notes.append(f"{loops} folder loop(s) not followed")
    if limited:
        notes.append("the bounded walk stopped early, so counts are lower bounds")
    return "; ".join(notes)


@check
def ftp_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access != "anonymous":
        return None
    files = _files(facts)
    if not files:
        return None
    parts = [
        f"{_LABELS[kind]}: {count.verified} verified from their first bytes, {count.estimated} estimated by name"
        for kind, count in files.items()
    ]
    phi = _phi(facts)

    def total(*kinds: str) -> int:
        return sum(files[k].verified + files[k].estimated for k in kinds if k in files)

    return Observation(
        evidence=(
            f"Anonymous FTP login as {facts.login!r} gave read access to medical files ("
            + "; ".join(parts)
            + f"). Non-empty PHI attributes: {', '.join(phi) or 'none seen'}. {_walk_note(facts)}."
        ),
        exposure=Exposure(
            files=FileCounts(dicom=total("dicom", "dicomdir"), hl7=total("hl7"), x12=total("x12")),
            phi_attributes=phi,
        ),
    )


@check
def ftp_anonymous_access(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access != "anonymous" or _files(facts):
        return None
    readable = any(share.readable for share in facts.shares)
    entries = sum(share.entries for share in facts.shares)
    seen = f"{entries} entries listed, no medical file seen" if readable else "the root could not be listed"
    return Observation(
        evidence=f"Anonymous FTP login as {facts.login!r} was accepted ({seen}; {_walk_note(facts)})."
    )


@check
def ftp_no_tls(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.tls_offered is not False or facts.access not in ("anonymous", "denied"):
        return None
    how = "accepted an anonymous login" if facts.access == "anonymous" else "takes user names and passwords"
    return Observation(
        evidence=(
            f"The FTP server {how} but does not offer AUTH TLS (FEAT): credentials and files "
            "cross the network in clear text."
        )
    )
