"""HTTP directory index checks over RepositoryFacts (listing "html"). Pure: no sockets."""

from __future__ import annotations

from ..models import RepositoryFacts, Service
from .base import Observation, check
from .repository import listing_observation, medical_observation, web_listing

STYLES = {
    "apache": "Apache mod_autoindex",
    "nginx": "nginx autoindex",
    "iis": "IIS directory browsing",
    "lighttpd": "lighttpd dir-listing",
    "python": "Python http.server",
}


def _index(facts: RepositoryFacts) -> str:
    return STYLES.get(facts.dialect or "", "a generated directory index")


@check
def http_index_medical_files_exposed(service: Service) -> Observation | None:
    facts = web_listing(service, "html")
    if facts is None:
        return None
    return medical_observation(facts, f"An open directory index ({_index(facts)}) without credentials")


@check
def http_directory_listing(service: Service) -> Observation | None:
    facts = web_listing(service, "html")
    if facts is None:
        return None
    return listing_observation(
        facts, f"The web root is a directory index ({_index(facts)}) readable without credentials")
