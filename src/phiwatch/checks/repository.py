"""Helpers shared by the file-repository checks (FTP, SMB, rsync, NFS, S3, HTTP indexes). Pure."""

from __future__ import annotations

from ..models import Exposure, FileCounts, FileKindCount, RepositoryFacts, Service, ShareFacts
from .base import Observation

MEDICAL = ("dicom", "dicomdir", "hl7", "x12")
LABELS = {"dicom": "DICOM", "dicomdir": "DICOMDIR", "hl7": "HL7 v2", "x12": "X12"}


def files(shares: list[ShareFacts]) -> dict[str, FileKindCount]:
    """Counts per medical kind over the given shares."""
    totals: dict[str, FileKindCount] = {}
    for share in shares:
        for kind, count in share.files.items():
            if kind in MEDICAL and (count.verified or count.estimated):
                total = totals.setdefault(kind, FileKindCount())
                total.verified += count.verified
                total.estimated += count.estimated
    return totals


def phi(shares: list[ShareFacts]) -> list[str]:
    return sorted({name for share in shares for names in share.phi_attributes.values() for name in names})


def walk_note(shares: list[ShareFacts]) -> str:
    limited = any(share.limited for share in shares)
    loops = sum(share.loops for share in shares)
    sniffed = sum(share.files_sniffed for share in shares)
    notes = [f"{sniffed} file head(s) read"]
    if loops:
        notes.append(f"{loops} folder loop(s) not followed")
    if limited:
        notes.append("the bounded walk stopped early, so counts are lower bounds")
    return "; ".join(notes)


def exposure(shares: list[ShareFacts]) -> Exposure:
    counts = files(shares)

    def total(*kinds: str) -> int:
        return sum(counts[k].verified + counts[k].estimated for k in kinds if k in counts)

    return Exposure(
        files=FileCounts(dicom=total("dicom", "dicomdir"), hl7=total("hl7"), x12=total("x12")),
        phi_attributes=phi(shares),
    )


def medical_evidence(how: str, shares: list[ShareFacts]) -> str:
    """'<how> gave read access to medical files (...). Non-empty PHI attributes: ... . <walk note>.'"""
    parts = [
        f"{LABELS[kind]}: {count.verified} verified from their first bytes, {count.estimated} estimated by name"
        for kind, count in files(shares).items()
    ]
    return (
        f"{how} gave read access to medical files (" + "; ".join(parts) + ")."
        f" Non-empty PHI attributes: {', '.join(phi(shares)) or 'none seen'}. {walk_note(shares)}."
    )


def share_names(shares: list[ShareFacts], limit: int) -> str:
    """The first `limit` share names, quoted, then how many more there are."""
    shown = ", ".join(repr(share.name) for share in shares[:limit])
    return shown + (f" and {len(shares) - limit} more" if len(shares) > limit else "")


def medical_shares(facts: RepositoryFacts) -> list[ShareFacts]:
    """The shares that hold medical files."""
    return [share for share in facts.shares if files([share])]


def web_listing(service: Service, listing: str) -> RepositoryFacts | None:
    """The facts of a web port (http, https) walked as `listing` (html, webdav) without credentials."""
    facts = service.repository
    if service.protocol not in ("http", "https") or facts is None or facts.listing != listing:
        return None
    return facts if facts.access == "anonymous" else None


def medical_observation(facts: RepositoryFacts | None, how: str) -> Observation | None:
    """The walk read medical files: '<how> gave read access to medical files (...)', with the counts."""
    if facts is None or not files(facts.shares):
        return None
    return Observation(evidence=medical_evidence(how, facts.shares), exposure=exposure(facts.shares))


def listing_observation(facts: RepositoryFacts | None, opening: str) -> Observation | None:
    """The walk listed folders but read no medical file: '<opening>: N entries in M folder(s) listed, ...'."""
    if facts is None or files(facts.shares):
        return None
    entries = sum(share.entries for share in facts.shares)
    folders = sum(share.directories for share in facts.shares)
    return Observation(evidence=f"{opening}: {entries} entries in {folders} folder(s) listed, "
                                f"no medical file seen ({walk_note(facts.shares)}).")
