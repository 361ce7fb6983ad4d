"""SMB file-sharing checks over RepositoryFacts. Pure: no sockets."""

from __future__ import annotations

from ..models import RepositoryFacts, Service, ShareFacts
from . import Observation, check
from .repository import exposure, files, medical_evidence, medical_shares, walk_note

SESSIONS = {
    "anonymous": "A null session (empty user name and password)",
    "guest": "A guest session (blank password)",
}


def _facts(service: Service) -> RepositoryFacts | None:
    return service.repository if service.protocol == "smb" else None


def _names(shares: list[ShareFacts]) -> str:
    shown = ", ".join(repr(share.name) for share in shares[:8])
    return shown + (f" and {len(shares) - 8} more" if len(shares) > 8 else "")


@check
def smb_medical_files_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.access not in SESSIONS:
        return None
    exposed = medical_shares(facts)
    if not exposed:
        return None
    return Observation(
        evidence=medical_evidence(f"{SESSIONS[facts.access]} on share(s) {_names(exposed)}", exposed),
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
        f"{len(readable)} share(s) readable without medical files seen ({_names(readable)}: "
        f"{sum(share.entries for share in readable)} entries; {walk_note(readable)})"
        if readable
        else "no share was readable"
    )
    return Observation(
        evidence=(
            f"{SESSIONS[facts.access]} listed {len(facts.shares)} disk share(s) "
            f"({_names(facts.shares)}; {locked} need a user): {seen}."
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
