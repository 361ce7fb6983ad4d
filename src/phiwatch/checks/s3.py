"""S3-compatible object store checks over RepositoryFacts. Pure: no sockets.

The probe reports the endpoint's bucket list as the share "/" and every bucket as its own share.
"""

from __future__ import annotations

from ..models import RepositoryFacts, Service, ShareFacts
from .base import Observation, check
from .repository import exposure, files, medical_evidence, share_names, walk_note

ROOT = "/"  # probes.s3.ROOT


def _facts(service: Service) -> RepositoryFacts | None:
    return service.repository if service.protocol == "s3" else None


def _buckets(facts: RepositoryFacts) -> list[ShareFacts]:
    return [share for share in facts.shares if share.name != ROOT]


def _how(facts: RepositoryFacts) -> str:
    style = f" ({facts.dialect} addressing)" if facts.dialect else ""
    return f"Unsigned S3 requests{style}"


@check
def s3_bucket_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None:
        return None
    exposed = [share for share in _buckets(facts) if share.readable and files([share])]
    if not exposed:
        return None
    how = f"{_how(facts)} to bucket(s) {share_names(exposed, 5)}"
    return Observation(evidence=medical_evidence(how, exposed), exposure=exposure(exposed))


@check
def s3_bucket_public_listing(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None:
        return None
    public = [share for share in _buckets(facts) if share.readable and not files([share])]
    if not public:
        return None
    entries = sum(share.entries for share in public)
    return Observation(
        evidence=(
            f"{_how(facts)} listed bucket(s) {share_names(public, 5)} without credentials: {entries} entries "
            f"listed, no medical file seen ({walk_note(public)})."
        )
    )


@check
def s3_anonymous_list_buckets(service: Service) -> Observation | None:
    facts = _facts(service)
    root = next((share for share in facts.shares if share.name == ROOT), None) if facts else None
    if root is None or not root.readable or root.entries == 0:  # an empty list enumerates nothing
        return None
    cut = " (the list was cut at its bound)" if root.limited else ""
    return Observation(
        evidence=(
            f"The endpoint answered an unsigned ListBuckets (GET /) with {root.entries} bucket name(s){cut}: "
            "anyone can enumerate its buckets and try each one."
        )
    )


@check
def s3_anonymous_requests_served(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.random_bucket != "NoSuchBucket":
        return None
    named = [share for share in _buckets(facts) if share.readable]
    tried = f" Bucket(s) read this way: {share_names(named, 5)}." if named else ""
    return Observation(
        evidence=(
            "An unsigned request for a random bucket name was answered NoSuchBucket, not AccessDenied: the "
            f"endpoint serves anonymous requests, so any bucket whose name is known or guessed can be read, "
            f"even though its bucket list shows none.{tried}"
        )
    )
