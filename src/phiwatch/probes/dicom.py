"""DICOM probe: association, C-ECHO, one bounded STUDY-level C-FIND, release.

Facts only; checks decide what they mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine import Channel, Engine, ProbeFailure
from ..models import DicomFacts, ProbeStatus, RejectReason, StudyExposure
from ..vendors import identify
from . import dicom_query as dq
from . import dicom_ul as dul
from .steps import failure_of

NAME = "dicom"
DEFAULT_PORTS = (104, 2761, 2762, 4242, 11112)
TLS_PORTS = (2762,)
DEFAULT_AE_TITLES = (
    "ANY-SCP",
    "ORTHANC",
    "DCM4CHEE",
    "CONQUESTSRV1",
    "STORESCP",
    "PACS",
    "DICOM",
    "OSIRIX",
    "HOROS",
    "CLEARCANVAS",
    "DICOOGLE",
    "QRSCP",
    "DCMQRSCP",
    "ECHOSCP",
    "SERVER",
    "ARCHIVE",
)
MAX_AE_GUESSES = 32


@dataclass(frozen=True)
class DicomOptions:
    called_ae: str = "ANY-SCP"
    calling_ae: str = "PHIWATCH"
    guess_aet: bool = False
    extra_ae_titles: tuple[str, ...] = ()
    max_matches: int = 1000

    def candidates(self) -> list[str]:
        """Called AE titles to try after a called-AE reject; empty unless asked for."""
        titles: list[str] = list(self.extra_ae_titles)
        if self.guess_aet:
            titles.extend(DEFAULT_AE_TITLES)
        unique = [t for t in dict.fromkeys(titles) if t != self.called_ae]
        return unique[:MAX_AE_GUESSES]


@dataclass
class DicomOutcome:
    status: ProbeStatus
    facts: DicomFacts
    detail: str | None = None


class _Attempt:
    """One association: request, answer, and (if accepted) echo, query, release."""

    def __init__(self, channel: Channel, facts: DicomFacts, options: DicomOptions) -> None:
        self.channel = channel
        self.facts = facts
        self.options = options

    async def run(self) -> ProbeStatus:
        facts = self.facts
        await self.channel.write(dul.association_request(facts.called_ae, facts.calling_ae))
        pdu_type, raw = await dul.read_pdu(self.channel)
        if pdu_type == 0x03:
            facts.association = "rejected"
            facts.reject = dul.parse_reject(raw)
            return ProbeStatus.REJECTED
        if pdu_type == 0x07:
            aborted = dul.abort_of(raw)
            facts.association = "aborted"
            facts.abort_source, facts.abort_reason = aborted.source, aborted.reason
            return ProbeStatus.ABORTED
        if pdu_type != 0x02:
            raise ProbeFailure(
                ProbeStatus.PROTOCOL_ERROR,
                f"{dul.PDU_TYPES[pdu_type]} in answer to A-ASSOCIATE-RQ",
            )
        accepted = dul.parse_accept(raw)
        facts.association = "accepted"
        facts.contexts = accepted.contexts
        facts.max_pdu_length = accepted.max_pdu_length
        facts.implementation_class_uid = accepted.implementation_class_uid
        facts.implementation_version_name = accepted.implementation_version_name
        facts.vendor, facts.product = identify(
            accepted.implementation_class_uid, accepted.implementation_version_name
        )
        try:
            status = await self._after_accept(accepted)
        except dul.PeerAborted as exc:
            facts.abort_source, facts.abort_reason = exc.source, exc.reason
            return self._proven() or ProbeStatus.ACCEPTED
        except Exception as exc:  # a step after the accept failed: the association and query facts stay
            status, facts.error = failure_of(exc)
            return self._proven() or status
        await self._release()
        return status

    def _proven(self) -> ProbeStatus | None:
        """The status the query facts prove, if any."""
        query = self.facts.query
        if query is None:
            return None
        return {"exposed": ProbeStatus.EXPOSED, "empty": ProbeStatus.EMPTY}.get(
            query.status, ProbeStatus.QUERY_REFUSED)

    async def _after_accept(self, accepted: dul.Accepted) -> ProbeStatus:
        facts = self.facts
        verification = accepted.context_ids.get("verification")
        if verification is not None:
            facts.echo_status = await dq.echo(self.channel, verification, facts.max_pdu_length)
        for model in ("study-root-find", "patient-root-find"):
            context_id = accepted.context_ids.get(model)
            if context_id is None:
                continue
            try:
                facts.query = await dq.find_studies(
                    self.channel,
                    context_id,
                    model,
                    accepted.transfer_syntax[context_id],
                    facts.max_pdu_length,
                    self.options.max_matches,
                )
            except dq.QueryRefused as refused:
                facts.query = StudyExposure(
                    status="refused",
                    refusal=refused.how,
                    failure_status=refused.status,
                    information_model=model,
                )
                if refused.how == "abort":
                    return ProbeStatus.QUERY_REFUSED  # the association is gone
                continue  # a refusal status: the other model may still answer
            return ProbeStatus.EXPOSED if facts.query.status == "exposed" else ProbeStatus.EMPTY
        if facts.query is not None:
            return ProbeStatus.QUERY_REFUSED
        return ProbeStatus.ACCEPTED

    async def _release(self) -> None:
        try:
            await self.channel.write(dul.RELEASE_RQ)
            for _ in range(4):  # a few stray PDUs may precede the A-RELEASE-RP
                pdu_type, _raw = await dul.read_pdu(self.channel)
                if pdu_type in (0x06, 0x07):
                    self.facts.released = pdu_type == 0x06
                    return
        except ProbeFailure:
            return  # the facts already gathered stand; a sloppy release is not an error


async def probe(
    engine: Engine,
    host: str,
    port: int,
    options: DicomOptions,
    tls: bool = False,
    channel: Channel | None = None,
) -> DicomOutcome:
    """Associate as `options.called_ae`; on a called-AE reject, try the allowed candidates."""
    facts = DicomFacts(called_ae=options.called_ae, calling_ae=options.calling_ae, tls=tls)
    status, detail = await _associate(engine, host, port, facts, options, tls, channel)
    rejected_called = (
        status is ProbeStatus.REJECTED
        and facts.reject is not None
        and facts.reject.reason_name is RejectReason.CALLED_AE_NOT_RECOGNIZED
    )
    if not rejected_called:
        return DicomOutcome(status, facts, detail)
    attempts = 1
    for title in options.candidates():
        attempts += 1
        guess = DicomFacts(called_ae=title, calling_ae=options.calling_ae, tls=tls)
        guess_status, guess_detail = await _associate(engine, host, port, guess, options, tls)
        if guess.association == "accepted":
            guess.called_ae_guessed = True
            guess.aet_attempts = attempts
            return DicomOutcome(guess_status, guess, guess_detail)
        if guess_status not in (ProbeStatus.REJECTED, ProbeStatus.ABORTED):
            break  # the peer stopped talking: stop guessing
    facts.aet_attempts = attempts
    return DicomOutcome(status, facts, detail)


async def _associate(
    engine: Engine,
    host: str,
    port: int,
    facts: DicomFacts,
    options: DicomOptions,
    tls: bool,
    channel: Channel | None = None,
) -> tuple[ProbeStatus, str | None]:
    try:
        if channel is None:
            channel = await engine.connect(host, port, tls=tls)
        async with channel:
            return await _Attempt(channel, facts, options).run(), None
    except Exception as exc:  # every failure is a status; the facts gathered so far stay
        status, facts.error = failure_of(exc)
        return status, facts.error
