"""rsync daemon checks over RepositoryFacts. Pure: no sockets."""

from __future__ import annotations

from ..models import RepositoryFacts, Service, ShareFacts
from .base import Observation, check
from .repository import exposure, files, medical_evidence, medical_shares, share_names, walk_note


def _facts(service: Service) -> RepositoryFacts | None:
    return service.repository if service.protocol == "rsync" else None


def _open(facts: RepositoryFacts) -> list[ShareFacts]:
    """Modules that opened without a password."""
    return [share for share in facts.shares if share.readable and not share.auth_required]


@check
def rsync_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access != "anonymous":
        return None
    exposed = [share for share in medical_shares(facts) if share in _open(facts)]
    if not exposed:
        return None
    return Observation(
        evidence=medical_evidence(
            f"The rsync daemon's module(s) {share_names(exposed, 8)}, without a password,", exposed
        ),
        exposure=exposure(exposed),
    )


@check
def rsync_module_without_auth(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None:
        return None
    quiet = [share for share in _open(facts) if not files([share])]
    if not quiet:
        return None
    entries = sum(share.entries for share in quiet)
    return Observation(
        evidence=(
            f"{len(quiet)} rsync module(s) ({share_names(quiet, 8)}) opened without a password: {entries} entries "
            f"listed, no medical file seen ({walk_note(quiet)})."
        )
    )


@check
def rsync_module_list_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not facts.shares:
        return None
    locked = sum(share.auth_required for share in facts.shares)
    return Observation(
        evidence=(
            f"The rsync daemon listed {len(facts.shares)} module(s) to an anonymous client "
            f"({share_names(facts.shares, 8)}; {locked} of them ask for a password)."
        )
    )
