"""Checks of server-first clinical feeds (HL7 v2, ASTM) over FeedFacts. Pure: no sockets."""

from __future__ import annotations

from ..models import Exposure, FeedFacts, Service
from .base import Observation, check

KINDS = {"hl7-mllp": "HL7 v2 over MLLP", "hl7": "HL7 v2 (no MLLP framing)", "astm": "ASTM"}


def _facts(service: Service) -> FeedFacts | None:
    return service.feed if service.protocol in ("hl7", "astm") else None


def _counts(facts: FeedFacts) -> str:
    shown = ", ".join(f"{name} x{count}" for name, count in list(facts.segments.items())[:12])
    return shown or "none"


@check
def clinical_feed_exposed(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or not (facts.messages or facts.phi_attributes):
        return None
    types = f" (message types {', '.join(facts.message_types)})" if facts.message_types else ""
    fields = ", ".join(facts.phi_attributes) or "none recognised"
    unit = "record(s)" if facts.kind == "astm" else "segment(s)"
    return Observation(
        evidence=(
            f"A new, silent connection was sent {facts.bytes_read} bytes of {KINDS[facts.kind]} unasked: "
            f"{facts.messages} message(s){types}; {unit}: {_counts(facts)}; filled PHI fields: {fields}. "
            "phiwatch sent nothing back (no acknowledgement) and kept no value."
        ),
        exposure=Exposure(phi_attributes=facts.phi_attributes),
    )


@check
def clinical_feed_offered(service: Service) -> Observation | None:
    facts = _facts(service)
    if facts is None or facts.messages or facts.phi_attributes:
        return None
    what = "an ASTM ENQ (an instrument ready to send results)" if facts.handshake_only else (
        f"{facts.bytes_read} bytes of {KINDS[facts.kind]} without a complete message")
    return Observation(
        evidence=f"A new connection was sent {what} unasked; phiwatch did not acknowledge it, "
        "so nothing more came."
    )
