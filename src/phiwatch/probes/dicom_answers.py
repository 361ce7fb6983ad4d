"""More of what C-FIND answers look like, for the honeypot signals (trust/signals.py).

dicom_query's inspection counts responses, repeated Study Instance UIDs and attributes
nobody asked for; this adds: whether Pixel Data came back, the largest answer's size,
how many answers are dated the scan's day, and one digest of the set of Study Instance
UIDs keyed with a secret made per scan and never stored (comparable between the hosts of
one scan, useless after it). No value is kept, logged or decoded into text.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from ..models import AnswerFacts

PIXEL_TAGS = frozenset(Tag(k) for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
_STUDY_UID = Tag("StudyInstanceUID")
_STUDY_DATE = Tag("StudyDate")
MAX_UIDS = 100_000


def _days_around_today() -> frozenset[bytes]:
    today = datetime.now(UTC).date()
    return frozenset((today + timedelta(days=d)).strftime("%Y%m%d").encode() for d in (-1, 0, 1))


def _raw(ds: Dataset, tag: int) -> bytes:
    if tag not in ds:
        return b""
    value = getattr(ds.get_item(tag), "value", None)
    if isinstance(value, bytes):
        return value
    return str(value).encode("ascii", "replace") if value not in (None, "") else b""


def encoded_size(ds: Dataset) -> int:
    """About the identifier's encoded size: each element's value length plus its header,
    read from the raw elements without converting a value."""
    size = 0
    for tag in ds.keys():
        length = getattr(ds.get_item(tag), "length", None)
        if not isinstance(length, int) or length == 0xFFFFFFFF:
            length = len(_raw(ds, tag))
        size += 8 + length
    return size


class AnswerInspector:
    """Fed every decoded C-FIND identifier; gives AnswerFacts."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.largest = 0
        self.pixel_data = False
        self.dated_today = 0
        self.uids: set[bytes] = set()
        self.today = _days_around_today()

    def add(self, ds: Dataset) -> None:
        self.largest = max(self.largest, encoded_size(ds))
        if not self.pixel_data and any(tag in ds for tag in PIXEL_TAGS):
            self.pixel_data = True
        uid = _raw(ds, _STUDY_UID).strip(b" \x00")
        if uid and len(self.uids) < MAX_UIDS:
            self.uids.add(hmac.new(self.key, uid[:64], hashlib.sha256).digest())
        if _raw(ds, _STUDY_DATE).strip(b" \x00")[:8] in self.today:
            self.dated_today += 1

    def facts(self) -> AnswerFacts:
        digest = hashlib.sha256(b"".join(sorted(self.uids))).hexdigest()[:32] if self.uids else None
        return AnswerFacts(largest_identifier_bytes=self.largest, pixel_data=self.pixel_data,
                           dated_today=self.dated_today, study_uids_digest=digest)
