"""The control query: does a DICOM server honour a query's keys?

One more STUDY-level C-FIND on the association that already answered, for a date range
before DICOM existed, asking only for the Study Instance UID. A real archive answers it
with no match; a server that ignores the query's keys answers with its canned studies.
It is stopped with C-CANCEL at its first match, nothing of the answer is kept, and it is
skipped when the first answers already carried Pixel Data (no more bulk data is invited).
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from ..engine import Channel
from . import dicom_query as dq

CONTROL_ID = 9
CONTROL_DATES = "19000101-19000102"


def control_identifier() -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyDate = CONTROL_DATES
    ds.StudyInstanceUID = ""
    return ds


async def control_query(
    channel: Channel, context_id: int, sop_class: str, transfer_syntax: str, peer_max: int | None
) -> bool | None:
    """True when a query for a date range nobody has data in still matched. A refusal raises
    dq.QueryRefused, as for any C-FIND."""
    end = await dq.run_find(channel, context_id, sop_class, control_identifier(), transfer_syntax,
                            peer_max, CONTROL_ID, lambda _ds: True)  # cancel at the first match
    return end.matches > 0
