"""HTTP directory index checks over RepositoryFacts (listing "html"). Pure: no sockets."""

from __future__ import annotations

from ..models import RepositoryFacts, Service
from .base import Observation, check
from .repository import exposure, files, medical_evidence, walk_note

STYLES = {
    "apache": "Apache mod_autoindex",
    "nginx": "nginx autoindex",
    "iis": "IIS directory browsing",
    "lighttpd": "lighttpd dir-listing",
    "python": "Python http.server",
}


def _facts(service: Service) -> RepositoryFacts | None:
    facts = service.repository
    if service.protocol not in ("http", "https") or facts is None or facts.listing != "html":
        return None
    return facts if facts.access == "anonymous" else None


def _index(facts: RepositoryFacts) -> str:
    return STYLES.get(facts.dialect or "", "a generated directory index")


@check
def http_index_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not files(facts.shares):
        return None
    return Observation(
        evidence=medical_evidence(f"An open directory index ({_index(facts)}) without credentials", facts.shares),
        exposure=exposure(facts.shares),
    )


@check
def http_directory_listing(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or files(facts.shares):
        return None
    entries = sum(share.entries for share in facts.shares)
    folders = sum(share.directories for share in facts.shares)
    return Observation(
        evidence=(
            f"The web root is a directory index ({_index(facts)}) readable without credentials: "
            f"{entries} entries in {folders} folder(s) listed, no medical file seen ({walk_note(facts.shares)})."
        )
    )
