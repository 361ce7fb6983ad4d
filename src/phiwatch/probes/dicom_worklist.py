"""One bounded Modality Worklist C-FIND (PS3.4 K.6) wherever its context is accepted.

A worklist answers with Scheduled Procedure Steps: who is to be examined, when, for what.
Items and steps are counted and PHI attribute names recorded; no value is decoded or kept.
Like the study query, an empty answer to empty matching keys is followed by one universal
``*`` query with the same keys, and the walk stops with C-CANCEL at --max-matches.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from ..engine import Channel
from ..models import WorklistExposure
from ..phi import WORKLIST_PHI, WORKLIST_STEP_PHI
from . import dicom_query as dq

WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
WORKLIST_FIND_IDS = (5, 6)  # empty matching keys, then the universal '*' retry
MAX_STEPS_PER_ITEM = 64
_TOP_KEYS = (*WORKLIST_PHI, "StudyInstanceUID", "RequestedProcedureID")
_STEP_KEYS = (
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepID",
    *WORKLIST_STEP_PHI,
)
_TAG_STEPS = Tag("ScheduledProcedureStepSequence")
_TAG_MODALITY = Tag("Modality")
_TOP_PHI = [(keyword, Tag(keyword)) for keyword in WORKLIST_PHI]
_STEP_PHI = [(keyword, Tag(keyword)) for keyword in WORKLIST_STEP_PHI]


def worklist_query(universal: bool = False) -> Dataset:
    ds = Dataset()
    for keyword in _TOP_KEYS:
        setattr(ds, keyword, "")
    step = Dataset()
    for keyword in _STEP_KEYS:
        setattr(step, keyword, "")
    ds.ScheduledProcedureStepSequence = [step]
    if universal:
        ds.PatientName = "*"
    return ds


class _Items:
    def __init__(self, max_matches: int) -> None:
        self.max_matches = max_matches
        self.items = 0
        self.steps = 0
        self.modalities: set[str] = set()
        self.phi: set[str] = set()

    def take(self, ds: Dataset) -> bool:
        self.items += 1
        for keyword, tag in _TOP_PHI:
            if dq.filled(ds, tag):
                self.phi.add(keyword)
        steps = ds[_TAG_STEPS].value if _TAG_STEPS in ds else None
        if not steps:
            self.steps += 1  # an item is one scheduled step even when the sequence is left out
            return self.items >= self.max_matches
        for step in list(steps)[:MAX_STEPS_PER_ITEM]:
            if not isinstance(step, Dataset):
                continue
            self.steps += 1
            for keyword, tag in _STEP_PHI:
                if dq.filled(step, tag):
                    self.phi.add(keyword)
            for code in dq.modality_codes(dq.raw_value(step, _TAG_MODALITY)):
                if len(self.modalities) < 64:
                    self.modalities.add(code)
        return self.items >= self.max_matches


async def find_worklist(
    channel: Channel,
    context_id: int,
    transfer_syntax: str,
    peer_max: int | None,
    max_matches: int,
) -> WorklistExposure:
    """Worklist items with empty matching keys; when none, the same with PatientName '*'."""
    exposure = WorklistExposure(status="empty")
    for attempt, universal in enumerate((False, True)):
        query = worklist_query(universal)
        inspection = dq.Inspection(query)
        items = _Items(max_matches)

        def take(ds: Dataset, items: _Items = items, inspection: dq.Inspection = inspection) -> bool:
            inspection.see(ds)
            return items.take(ds)

        try:
            end = await dq.run_find(
                channel, context_id, WORKLIST_FIND, query, transfer_syntax, peer_max,
                WORKLIST_FIND_IDS[attempt], take,
            )  # fmt: skip
        except dq.QueryRefused:
            if not universal:
                raise
            return exposure
        if universal:
            exposure.universal_retry = True
        if end.matches == 0:
            continue
        return WorklistExposure(
            status="exposed",
            items=items.items,
            procedure_steps=items.steps,
            truncated=end.cancelled,
            modalities=sorted(items.modalities),
            phi_attributes=sorted(items.phi),
            responses=inspection.responses,
            unrequested_attributes=sorted(inspection.unrequested),
            matched_by="universal" if universal else "empty-keys",
            universal_retry=universal,
            interrupted=end.interrupted,
        )
    return exposure
