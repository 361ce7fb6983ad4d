"""DICOM checks over DicomFacts. Pure: no sockets, no formatting beyond evidence text."""

from __future__ import annotations

from ..models import Exposure, Service
from .base import Observation, check


def _accepted(service: Service) -> bool:
    return service.dicom is not None and service.dicom.association == "accepted"


def _who(service: Service) -> str:
    facts = service.dicom
    assert facts is not None
    return f"called AE {facts.called_ae!r}, calling AE {facts.calling_ae!r}"


@check
def dicom_study_data_exposed(service: Service) -> Observation | None:
    facts = service.dicom
    if facts is None or facts.query is None or facts.query.status != "exposed":
        return None
    query = facts.query
    counted = f"at least {query.studies}" if query.truncated else f"{query.studies}"
    if query.instances is None:
        instances = "an unknown number of instances (the server left NumberOfStudyRelatedInstances empty)"
    elif query.studies_without_instance_count:
        instances = (
            f"at least {query.instances} instances ({query.studies_without_instance_count} "
            "studies without an instance count)"
        )
    else:
        instances = f"{query.instances} instances"
    how = " with a universal '*' match (empty matching keys returned nothing)" if (
        query.matched_by == "universal"
    ) else ""
    per_study = ""
    if query.duplicate_uid_responses:
        per_study = f" in {query.responses} responses (counted by distinct Study Instance UID)"
    years = ""
    if query.study_year_min is not None:
        years = f", study years {query.study_year_min}-{query.study_year_max}"
    modalities = f", modalities {', '.join(query.modalities)}" if query.modalities else ""
    phi = ", ".join(query.phi_attributes) or "none"
    return Observation(
        evidence=(
            f"A STUDY-level C-FIND ({query.information_model}) as an unknown caller "
            f"({_who(service)}){how} returned {counted} studies{per_study} linking "
            f"{instances}{modalities}{years}; non-empty PHI attributes: {phi}."
        ),
        exposure=Exposure(
            studies=query.studies, instances=query.instances, phi_attributes=query.phi_attributes
        ),
    )


@check
def dicom_query_allowed_empty(service: Service) -> Observation | None:
    facts = service.dicom
    if facts is None or facts.query is None or facts.query.status != "empty":
        return None
    retry = " (and so was a universal '*' query)" if facts.query.universal_retry else ""
    return Observation(
        evidence=(
            f"A STUDY-level C-FIND ({facts.query.information_model}) from an unknown caller "
            f"({_who(service)}) was answered with success and no matches{retry}."
        )
    )


@check
def dicom_worklist_exposed(service: Service) -> Observation | None:
    facts = service.dicom
    if facts is None or facts.worklist is None or facts.worklist.status != "exposed":
        return None
    worklist = facts.worklist
    counted = f"at least {worklist.items}" if worklist.truncated else f"{worklist.items}"
    how = " with a universal '*' match" if worklist.matched_by == "universal" else ""
    modalities = f", modalities {', '.join(worklist.modalities)}" if worklist.modalities else ""
    phi = ", ".join(worklist.phi_attributes) or "none"
    return Observation(
        evidence=(
            f"A Modality Worklist C-FIND as an unknown caller ({_who(service)}){how} returned "
            f"{counted} worklist items with {worklist.procedure_steps} scheduled procedure "
            f"steps{modalities}; non-empty PHI attributes: {phi}."
        ),
        exposure=Exposure(worklist_items=worklist.items, instances=None,
                          phi_attributes=worklist.phi_attributes),
    )


@check
def dicom_any_called_ae_accepted(service: Service) -> Observation | None:
    facts = service.dicom
    if not _accepted(service) or facts is None or facts.called_ae_guessed or facts.called_ae_supplied:
        return None  # a title the user gave or a guess that worked is not an arbitrary one
    return Observation(
        evidence=f"Association accepted for the arbitrary called AE title {facts.called_ae!r}."
    )


@check
def dicom_default_ae_title_accepted(service: Service) -> Observation | None:
    facts = service.dicom
    if not _accepted(service) or facts is None or not facts.called_ae_guessed:
        return None
    return Observation(
        evidence=(
            f"Association accepted for the common called AE title {facts.called_ae!r} "
            f"after {facts.aet_attempts} attempts."
        )
    )


@check
def dicom_no_tls(service: Service) -> Observation | None:
    facts = service.dicom
    if not _accepted(service) or facts is None or facts.tls:
        return None
    return Observation(evidence="Association accepted over plain TCP; the service did not use TLS.")


@check
def dicom_storage_accepted(service: Service) -> Observation | None:
    facts = service.dicom
    if not _accepted(service) or facts is None:
        return None
    storage = [c.name for c in facts.contexts if c.accepted and c.name.endswith("-storage")]
    if not storage:
        return None
    return Observation(
        evidence=(
            f"Storage presentation contexts accepted from an unknown caller ({_who(service)}): "
            f"{', '.join(storage)}. Nothing was stored."
        )
    )


@check
def dicom_retrieve_accepted(service: Service) -> Observation | None:
    facts = service.dicom
    if not _accepted(service) or facts is None:
        return None
    retrieve = [
        c.name for c in facts.contexts if c.accepted and c.name.endswith(("-move", "-get"))
    ]
    if not retrieve:
        return None
    return Observation(
        evidence=(
            f"Retrieve contexts accepted from an unknown caller: {', '.join(retrieve)}. "
            "No image was retrieved."
        )
    )


@check
def dicom_query_refused(service: Service) -> Observation | None:
    facts = service.dicom
    if not _accepted(service) or facts is None:
        return None
    if facts.query is not None and facts.query.status == "refused":
        how = facts.query.refusal or "refused"
        if facts.query.failure_status is not None:
            how = f"failure status 0x{facts.query.failure_status:04X}"
        elif how == "abort":
            how = "the association was aborted"
        return Observation(evidence=f"Association accepted; the C-FIND was refused ({how}).")
    finds = [c for c in facts.contexts if c.name.endswith("-find") and c.name != "modality-worklist-find"]
    if facts.query is None and finds and not any(c.accepted for c in finds):
        return Observation(
            evidence="Association accepted; every query/retrieve FIND context was rejected."
        )
    return None


@check
def dicom_tls_certificate_untrusted(service: Service) -> Observation | None:
    tls = service.tls
    if service.dicom is None or not service.dicom.tls or tls is None:
        return None
    problems = []
    if tls.self_signed:
        problems.append("self-signed")
    if tls.expired:
        problems.append("expired or not yet valid")
    if not problems:
        return None
    return Observation(
        evidence=f"DICOM TLS certificate is {' and '.join(problems)} (subject {tls.subject})."
    )
