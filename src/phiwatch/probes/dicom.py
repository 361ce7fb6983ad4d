"""DICOM probe: association, C-ECHO, a bounded STUDY-level C-FIND, a bounded Modality
Worklist C-FIND where that context is accepted, release.

Facts only; checks decide what they mean.
"""

from __future__ import annotations

from ..engine import Channel, Engine, ProbeFailure
from ..models import DicomFacts, ProbeStatus, RejectReason, StudyExposure, WorklistExposure
from ..vendors import identify
from . import dicom_control
from . import dicom_query as dq
from . import dicom_ul as dul
from . import dicom_worklist as dw
from .options import DicomOptions, ProbeOptions
from .outcome import Outcome, Peer
from .steps import failure_of

DicomOutcome = Outcome[DicomFacts]


class _Attempt:
    """One association: request, answer, and (if accepted) echo, query, release."""

    def __init__(
        self, channel: Channel, facts: DicomFacts, options: DicomOptions, worklist_only: bool = False
    ) -> None:
        self.channel = channel
        self.facts = facts
        self.options = options
        self.worklist_only = worklist_only
        self.gone = False  # the peer aborted mid-query: no release to send

    async def run(self) -> ProbeStatus:
        facts = self.facts
        await self.channel.write(
            dul.association_request(facts.called_ae, facts.calling_ae, self.options.trust_signals)
        )
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
        if not self.gone:
            await self._release()
        return status

    def _proven(self) -> ProbeStatus | None:
        """The status the study and worklist facts prove, if any."""
        found = [q.status for q in (self.facts.query, self.facts.worklist) if q is not None]
        if not found:
            return None
        for status, proven in (("exposed", ProbeStatus.EXPOSED), ("empty", ProbeStatus.EMPTY)):
            if status in found:
                return proven
        return ProbeStatus.QUERY_REFUSED

    async def _after_accept(self, accepted: dul.Accepted) -> ProbeStatus:
        facts = self.facts
        verification = accepted.context_ids.get("verification")
        if verification is not None and not self.worklist_only:
            facts.echo_status = await dq.echo(self.channel, verification, facts.max_pdu_length)
        study = None if self.worklist_only else await self._study_query(accepted)
        if self.gone:
            return ProbeStatus.QUERY_REFUSED  # probe() may ask the worklist on a new association
        query = self.facts.query
        bulk = query is not None and query.answers is not None and query.answers.pixel_data
        # A server that pushed Pixel Data into C-FIND answers is asked nothing more (no more bulk data).
        worklist = None if bulk else await self._worklist_query(accepted)
        statuses = [s for s in (study, worklist) if s is not None]
        for status in (ProbeStatus.EXPOSED, ProbeStatus.EMPTY, ProbeStatus.QUERY_REFUSED):
            if status in statuses:
                return status
        return ProbeStatus.ACCEPTED

    async def _study_query(self, accepted: dul.Accepted) -> ProbeStatus | None:
        facts = self.facts
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
                    self.options.digest_key if self.options.trust_signals else None,
                )
                await self._control(context_id, model, accepted.transfer_syntax[context_id])
            except dq.QueryRefused as refused:
                facts.query = StudyExposure(
                    status="refused",
                    refusal=refused.how,
                    failure_status=refused.status,
                    information_model=model,
                )
                if refused.how == "abort":
                    self._aborted(refused)
                    return ProbeStatus.QUERY_REFUSED
                continue  # a refusal status: the other model may still answer
            return ProbeStatus.EXPOSED if facts.query.status == "exposed" else ProbeStatus.EMPTY
        return ProbeStatus.QUERY_REFUSED if facts.query is not None else None

    async def _worklist_query(self, accepted: dul.Accepted) -> ProbeStatus | None:
        context_id = accepted.context_ids.get("modality-worklist-find")
        if context_id is None:
            return None
        try:
            self.facts.worklist = await dw.find_worklist(
                self.channel,
                context_id,
                accepted.transfer_syntax[context_id],
                self.facts.max_pdu_length,
                self.options.max_matches,
            )
        except dq.QueryRefused as refused:
            self.facts.worklist = WorklistExposure(
                status="refused", refusal=refused.how, failure_status=refused.status
            )
            if refused.how == "abort":
                self._aborted(refused)
            return ProbeStatus.QUERY_REFUSED
        return ProbeStatus.EXPOSED if self.facts.worklist.status == "exposed" else ProbeStatus.EMPTY

    def _aborted(self, refused: dq.QueryRefused) -> None:
        self.gone = True
        cause = refused.__cause__
        if isinstance(cause, dul.PeerAborted):
            self.facts.abort_source, self.facts.abort_reason = cause.source, cause.reason

    async def _control(self, context_id: int, model: str, transfer_syntax: str) -> None:
        """The control query (does the server honour keys?), after data came back only."""
        query = self.facts.query
        if (query is None or query.answers is None or query.status != "exposed" or query.interrupted
                or query.answers.pixel_data):
            return
        try:
            query.answers.ignores_keys = await dicom_control.control_query(
                self.channel, context_id, dq.FIND_MODELS[model], transfer_syntax, self.facts.max_pdu_length
            )
        except dq.QueryRefused as refused:  # no conclusion; what the first query proved stands
            if refused.how == "abort":
                self._aborted(refused)
        except ProbeFailure:
            return

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


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> DicomOutcome:
    """Associate as the called AE title; on a called-AE reject, try the allowed candidates."""
    host, port, tls, channel, options = peer.host, peer.port, peer.tls, peer.channel, probe_options.dicom
    facts = DicomFacts(
        called_ae=options.called_ae,
        calling_ae=options.calling_ae,
        tls=tls,
        called_ae_supplied=options.called_ae_supplied,
    )
    status, detail = await _associate(engine, host, port, facts, options, tls, channel)
    rejected_called = (
        status is ProbeStatus.REJECTED
        and facts.reject is not None
        and facts.reject.reason_name is RejectReason.CALLED_AE_NOT_RECOGNIZED
    )
    if not rejected_called:
        status = await _worklist_after_abort(engine, host, port, facts, options, tls, status)
        return DicomOutcome(status, facts, detail)
    attempts = 1
    for title in options.candidates():
        attempts += 1
        guess = DicomFacts(called_ae=title, calling_ae=options.calling_ae, tls=tls)
        guess_status, guess_detail = await _associate(engine, host, port, guess, options, tls)
        if guess.association == "accepted":
            guess.called_ae_guessed = True
            guess.aet_attempts = attempts
            guess_status = await _worklist_after_abort(engine, host, port, guess, options, tls, guess_status)
            return DicomOutcome(guess_status, guess, guess_detail)
        if guess_status not in (ProbeStatus.REJECTED, ProbeStatus.ABORTED):
            break  # the peer stopped talking: stop guessing
    facts.aet_attempts = attempts
    return DicomOutcome(status, facts, detail)


async def _worklist_after_abort(
    engine: Engine,
    host: str,
    port: int,
    facts: DicomFacts,
    options: DicomOptions,
    tls: bool,
    status: ProbeStatus,
) -> ProbeStatus:
    """A peer that aborted the study query may still answer its worklist: ask once more, alone."""
    worklist_accepted = any(c.accepted and c.name == "modality-worklist-find" for c in facts.contexts)
    aborted = facts.query is not None and facts.query.refusal == "abort"
    if not (aborted and worklist_accepted and facts.worklist is None):
        return status
    second = facts.model_copy(deep=True)
    await _associate(engine, host, port, second, options, tls, worklist_only=True)
    facts.worklist = second.worklist
    if facts.worklist is not None and facts.worklist.status == "exposed":
        return ProbeStatus.EXPOSED
    return status


async def _associate(
    engine: Engine,
    host: str,
    port: int,
    facts: DicomFacts,
    options: DicomOptions,
    tls: bool,
    channel: Channel | None = None,
    worklist_only: bool = False,
) -> tuple[ProbeStatus, str | None]:
    try:
        if channel is None:
            channel = await engine.connect(host, port, tls=tls)
        async with channel:
            return await _Attempt(channel, facts, options, worklist_only).run(), None
    except Exception as exc:  # every failure is a status; the facts gathered so far stay
        status, facts.error = failure_of(exc)
        return status, facts.error
