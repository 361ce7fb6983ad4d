"""NFS repository checks over RepositoryFacts. Pure: no sockets.

Which exports are listed for every client (`*`) is ShareFacts.world_readable.
"""

from __future__ import annotations

from ..models import RepositoryFacts, Service
from .base import Observation, check
from .repository import exposure, files, medical_evidence, medical_shares, share_names, walk_note

CALLER = "An unprivileged NFSv3 mount (AUTH_SYS uid/gid 65534, unprivileged source port)"


def _facts(service: Service) -> RepositoryFacts | None:
    return service.repository if service.protocol == "nfs" else None


@check
def nfs_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access != "anonymous" or not files(facts.shares):
        return None
    shares = medical_shares(facts)
    how = f"{CALLER} of export(s) {share_names(shares, 5)}"
    return Observation(evidence=medical_evidence(how, shares), exposure=exposure(shares))


@check
def nfs_world_readable_export(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None:
        return None
    shares = [share for share in facts.shares if share.world_readable and share.readable and not files([share])]
    if not shares:
        return None
    entries = sum(share.entries for share in shares)
    return Observation(
        evidence=(
            f"Export(s) {share_names(shares, 5)} are exported to every client (*). "
            f"{CALLER} could list them ({entries} entries, no medical file seen; {walk_note(shares)})."
        )
    )


@check
def nfs_export_list_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.listing != "nfs" or not facts.shares:
        return None
    to_all = [share.name for share in facts.shares if share.world_readable]
    return Observation(
        evidence=(
            f"mountd answered MOUNTPROC3_EXPORT to an unauthenticated caller with {len(facts.shares)} export(s) "
            f"({share_names(facts.shares, 5)}); {len(to_all)} of them exported to every client."
        )
    )
