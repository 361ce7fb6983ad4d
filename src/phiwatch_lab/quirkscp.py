"""pynetdicom SCPs with the query semantics real archives and honeypots differ on.

Run: ``python -m phiwatch_lab.quirkscp --port N [--per-series K] [--no-instance-counts]
[--universal-only]``. Listens on 127.0.0.1 only, serves the lab's five synthetic studies
(the canary among them) through Study and Patient Root FIND, nothing else.

- ``--per-series K``: a STUDY-level C-FIND gets one response per series, K per study, each
  with the study's attributes and a SeriesInstanceUID nobody asked for (some archives
  answer like this); a scanner counting responses sees K times the studies.
- ``--no-instance-counts``: NumberOfStudyRelatedInstances is returned empty.
- ``--universal-only``: empty matching keys match nothing; only a query with a ``*`` or
  ``?`` wildcard gets the studies (DICOMHawk and some archives answer like this).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

from .anyscp import _response, matches
from .datasets import synthetic_studies

LOG = logging.getLogger("phiwatch_lab.quirkscp")
AE_TITLE = "QUIRKSCP"
Verification = UID("1.2.840.10008.1.1")
FIND_MODELS = (UID("1.2.840.10008.5.1.4.1.2.2.1"), UID("1.2.840.10008.5.1.4.1.2.1.1"))


def has_wildcard(query: Dataset) -> bool:
    for element in query:
        if element.VR in ("SQ", "UI") or element.value is None:
            continue
        text = str(element.value)
        if "*" in text or "?" in text:
            return True
    return False


def study_answers(
    query: Dataset, per_series: int, no_instance_counts: bool, universal_only: bool
) -> list[Dataset]:
    """The responses to one C-FIND, in order (empty when the level is not STUDY)."""
    level = str(getattr(query, "QueryRetrieveLevel", "") or "").upper()
    if level != "STUDY" or (universal_only and not has_wildcard(query)):
        return []
    answers = []
    for study in synthetic_studies():
        if not matches(query, study):
            continue
        for series in range(1, per_series + 1):
            answer = _response(query, study, "STUDY")
            if no_instance_counts and "NumberOfStudyRelatedInstances" in answer:
                answer.NumberOfStudyRelatedInstances = None
            if per_series > 1:
                answer.SeriesInstanceUID = f"{study['StudyInstanceUID']}.{series}"
            answers.append(answer)
    return answers


def find_handler(per_series: int, no_instance_counts: bool, universal_only: bool) -> Callable[..., Any]:
    def handle_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        answers = study_answers(event.identifier, per_series, no_instance_counts, universal_only)
        LOG.info("C-FIND: %d responses", len(answers))
        for answer in answers:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, answer

    return handle_find


def build_ae() -> AE:
    ae = AE(ae_title=AE_TITLE)
    ae.require_called_aet = False
    ae.maximum_associations = 16
    ae.acse_timeout = ae.dimse_timeout = 15
    ae.network_timeout = 30
    for uid in (Verification, *FIND_MODELS):
        ae.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
    return ae


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--per-series", type=int, default=1)
    parser.add_argument("--no-instance-counts", action="store_true")
    parser.add_argument("--universal-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    handler = find_handler(max(1, args.per_series), args.no_instance_counts, args.universal_only)
    handlers: list[Any] = [(evt.EVT_C_ECHO, lambda event: 0x0000), (evt.EVT_C_FIND, handler)]
    build_ae().start_server(("127.0.0.1", args.port), block=True, evt_handlers=handlers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
