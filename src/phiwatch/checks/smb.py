"""SMB file-sharing checks over RepositoryFacts. Pure: no sockets."""

from __future__ import annotations

from ..models import RepositoryFacts, Service
from .base import Observation, check
from .repository import exposure, files, medical_evidence, medical_shares, share_names, walk_note

SESSIONS = {
    "anonymous": "A null session (empty user name and password)",
    "guest": "A guest session (blank password)",
}


def _facts(service: Service) -> RepositoryFacts | None:
    return service.repository if service.protocol == "smb" else None


@check
def smb_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access not in SESSIONS:
        return None
    exposed = medical_shares(facts)
    if not exposed:
        return None
    return Observation(
        evidence=medical_evidence(f"{SESSIONS[facts.access]} on share(s) {share_names(exposed, 8)}", exposed),
        exposure=exposure(exposed),
    )


@check
def smb_anonymous_share_access(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access not in SESSIONS:
        return None
    readable = [share for share in facts.shares if share.readable and not files([share])]
    if files(facts.shares) and not readable:
        return None  # reported as smb_medical_files_exposed
    locked = sum(share.auth_required for share in facts.shares)
    seen = (
        f"{len(readable)} share(s) readable without medical files seen ({share_names(readable, 8)}: "
        f"{sum(share.entries for share in readable)} entries; {walk_note(readable)})"
        if readable
        else "no share was readable"
    )
    return Observation(
        evidence=(
            f"{SESSIONS[facts.access]} listed {len(facts.shares)} disk share(s) "
            f"({share_names(facts.shares, 8)}; {locked} need a user): {seen}."
        )
    )


@check
def smb1_enabled(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.smb1 is not True:
        return None
    return Observation(
        evidence=(
            "The server accepted a negotiate offering only the SMB1 dialect NT LM 0.12"
            f" (its preferred dialect: {facts.dialect or 'unknown'})."
        )
    )


@check
def smb_signing_not_required(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.signing_required is not False:
        return None
    return Observation(
        evidence=f"The server's negotiate answer ({facts.dialect or 'unknown dialect'}) does not require signing."
    )
