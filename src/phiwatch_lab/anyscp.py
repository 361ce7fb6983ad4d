"""A DICOM SCP that accepts any association and answers C-FIND with synthetic studies.

Run: ``python -m phiwatch_lab.anyscp --port N [--tls-cert C --tls-key K]``.
Listens on 127.0.0.1 only. No called/calling AE checks. C-STORE answers 0xA700
(out of resources) and keeps nothing; C-GET and C-MOVE fail. C-FIND honours
C-CANCEL. Nothing it logs contains an attribute value.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import ssl
import time
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    QueryRetrievePresentationContexts,
    StoragePresentationContexts,
    evt,
)

from .datasets import ANY_SCP_AE_TITLE, Study, synthetic_studies

LOG = logging.getLogger("phiwatch_lab.anyscp")

# pynetdicom.sop_class builds its names at run time, out of a type checker's sight.
Verification = UID("1.2.840.10008.1.1")
ModalityWorklistInformationFind = UID("1.2.840.10008.5.1.4.31")

DEFAULT_AE_TITLE = ANY_SCP_AE_TITLE
# Pause between C-FIND matches: keeps C-CANCEL observable, like a real archive.
MATCH_DELAY = 0.05

_PATIENT_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
_SKIP_MATCHING = {"QueryRetrieveLevel", "SpecificCharacterSet"}


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple | MultiValue):
        return [str(v) for v in value]
    return [str(value)]


def _match_one(pattern: str, actual: str, vr: str) -> bool:
    if vr == "DA" and "-" in pattern:
        low, _, high = pattern.partition("-")
        return (not low or actual >= low) and (not high or actual <= high)
    if vr == "UI":
        return actual == pattern
    if vr == "PN":
        return fnmatch.fnmatchcase(actual.upper(), pattern.upper())
    return fnmatch.fnmatchcase(actual, pattern)


def matches(query: Dataset, record: Study) -> bool:
    """DICOM-style matching: empty keys are universal, '*'/'?' wildcards, date ranges."""
    for element in query:
        keyword = element.keyword
        if not keyword or keyword in _SKIP_MATCHING or element.VR == "SQ":
            continue
        wanted = [v for v in _values(element.value) if v != ""]
        if not wanted or keyword not in record:
            continue
        actual = _values(record[keyword])
        if not any(_match_one(w, a, element.VR) for w in wanted for a in actual):
            return False
    return True


def _response(query: Dataset, record: Study, level: str | None) -> Dataset:
    ds = Dataset()
    if level is not None:
        ds.QueryRetrieveLevel = level
    for element in query:
        keyword = element.keyword
        if not keyword or keyword in _SKIP_MATCHING:
            continue
        if keyword in record:
            setattr(ds, keyword, record[keyword])
        elif keyword == "ScheduledProcedureStepSequence":
            ds.ScheduledProcedureStepSequence = [_scheduled_step(record)]
        else:
            setattr(ds, keyword, None)
    return ds


def _scheduled_step(record: Study) -> Dataset:
    step = Dataset()
    modalities = _values(record.get("ModalitiesInStudy"))
    step.Modality = modalities[0] if modalities else "OT"
    step.ScheduledStationAETitle = DEFAULT_AE_TITLE
    step.ScheduledProcedureStepStartDate = record.get("StudyDate", "")
    step.ScheduledProcedureStepDescription = record.get("StudyDescription", "")
    return step


def find_records(query: Dataset, worklist: bool) -> tuple[list[Study], str | None]:
    """The records a C-FIND identifier selects, and the level to answer with."""
    studies = synthetic_studies()
    if worklist:
        return [s for s in studies if matches(query, s)], None
    level = str(getattr(query, "QueryRetrieveLevel", "") or "").upper()
    if level == "PATIENT":
        seen: set[str] = set()
        patients: list[Study] = []
        for study in studies:
            if matches(query, study) and study["PatientID"] not in seen:
                seen.add(str(study["PatientID"]))
                patients.append({k: study[k] for k in _PATIENT_KEYS})
        return patients, level
    if level == "STUDY":
        return [s for s in studies if matches(query, s)], level
    return [], level or None  # SERIES / IMAGE: nothing at those levels


def handle_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
    query = event.identifier
    worklist = event.request.AffectedSOPClassUID == ModalityWorklistInformationFind
    if not worklist and "QueryRetrieveLevel" not in query:
        yield 0xC000, None  # Unable to process: level missing
        return
    records, level = find_records(query, worklist)
    LOG.info("C-FIND: %d matches", len(records))
    for index, record in enumerate(records):
        if event.is_cancelled:
            yield 0xFE00, None
            return
        if index:
            time.sleep(MATCH_DELAY)
            if event.is_cancelled:
                yield 0xFE00, None
                return
        yield 0xFF00, _response(query, record, level)


def handle_store(event: Any) -> int:
    return 0xA700  # Out of resources; nothing is kept


def handle_get(event: Any) -> Iterator[Any]:
    yield 1
    yield 0xA702, None  # Refused: out of resources, unable to perform sub-operations


def handle_move(event: Any) -> Iterator[Any]:
    yield None, None  # Move destination unknown (0xA801)


def handle_echo(event: Any) -> int:
    return 0x0000


def build_ae(ae_title: str = DEFAULT_AE_TITLE) -> AE:
    ae = AE(ae_title=ae_title)
    ae.require_called_aet = False
    ae.require_calling_aet = []
    ae.maximum_associations = 64
    ae.acse_timeout = 15
    ae.dimse_timeout = 30
    ae.network_timeout = 60
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    for context in (*StoragePresentationContexts, *QueryRetrievePresentationContexts):
        if context.abstract_syntax:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(ModalityWorklistInformationFind, ALL_TRANSFER_SYNTAXES)
    return ae


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile=cert, keyfile=key)
    context.verify_mode = ssl.CERT_NONE
    return context


HANDLERS: list[Any] = [
    (evt.EVT_C_ECHO, handle_echo),
    (evt.EVT_C_FIND, handle_find),
    (evt.EVT_C_STORE, handle_store),
    (evt.EVT_C_GET, handle_get),
    (evt.EVT_C_MOVE, handle_move),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ae-title", default=DEFAULT_AE_TITLE)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    context = server_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    ae = build_ae(args.ae_title)
    LOG.info("listening on %s:%d tls=%s", args.host, args.port, context is not None)
    ae.start_server((args.host, args.port), block=True, evt_handlers=HANDLERS, ssl_context=context)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
