"""Which product answered: implementation class UID roots and version names (A-ASSOCIATE-AC).

The UID alone can mislead (Debian's Orthanc answers with DCMTK's UID, because it is
built on DCMTK), so the version name is consulted first and the result says what it
is based on.
"""

from __future__ import annotations

import re

# (UID root, vendor, product); the longest matching root wins.
UID_ROOTS: list[tuple[str, str, str]] = [
    ("1.2.826.0.1.3680043.8.641", "Orthanc", "Orthanc"),
    ("1.2.826.0.1.3680043.9.3811", "pynetdicom", "pynetdicom"),
    ("1.2.826.0.1.3680043.8.1057", "OsiriX/Horos", "OsiriX or Horos"),
    ("1.2.826.0.1.3680043.2.135.1066", "Conquest", "Conquest DICOM server"),
    ("1.2.826.0.1.3680043.2.60", "dcm4che", "dcm4che (legacy)"),
    ("1.2.40.0.13.1", "dcm4che", "dcm4che / dcm4chee"),
    ("1.2.276.0.7230010.3", "OFFIS", "DCMTK"),
    ("1.3.6.1.4.1.25403", "ClearCanvas", "ClearCanvas"),
    ("1.3.6.1.4.1.30071.8", "fo-dicom", "fo-dicom"),
    ("1.2.840.113619", "GE Healthcare", "GE"),
    ("1.3.12.2.1107", "Siemens Healthineers", "Siemens"),
    ("1.2.840.113704", "Philips", "Philips"),
    ("1.3.46.670589", "Philips", "Philips"),
    ("1.2.840.114257", "Agfa", "Agfa"),
    ("1.2.840.113564", "Carestream", "Carestream"),
    ("1.2.392.200036", "Fujifilm", "Fujifilm"),
    ("1.2.840.113669", "Merge", "Merge"),
    ("1.2.840.113681", "Hologic", "Hologic"),
    ("1.2.392.200193", "Canon", "Canon"),
    ("1.2.410.200010", "Infinitt", "Infinitt"),
    ("1.2.826.0.1.3680043.2.1143", "GDCM", "GDCM"),
    ("2.25.", "unknown (UUID-derived UID)", "unknown"),
]

# (pattern on the version name, vendor, product, version group index or 0)
VERSION_NAMES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"^ORTHANC", re.I), "Orthanc", "Orthanc"),
    (re.compile(r"^PYNETDICOM", re.I), "pynetdicom", "pynetdicom"),
    (re.compile(r"^OFFIS_DCMTK", re.I), "OFFIS", "DCMTK"),
    (re.compile(r"^DCM4CHE", re.I), "dcm4che", "dcm4che / dcm4chee"),
    (re.compile(r"^(OSIRIX|HOROS)", re.I), "OsiriX/Horos", "OsiriX or Horos"),
    (re.compile(r"^CLEARCANVAS", re.I), "ClearCanvas", "ClearCanvas"),
    (re.compile(r"^CONQUEST|^DICOMSERVER", re.I), "Conquest", "Conquest DICOM server"),
    (re.compile(r"^FO-DICOM", re.I), "fo-dicom", "fo-dicom"),
    (re.compile(r"^DICOOGLE", re.I), "Dicoogle", "Dicoogle"),
    (re.compile(r"^GDCM", re.I), "GDCM", "GDCM"),
]

_VERSION_DIGITS = re.compile(r"(\d+(?:[._]\d+)*)\s*$")


def identify(uid: str | None, version_name: str | None) -> tuple[str | None, str | None]:
    """(vendor, product with version where the version name shows one)."""
    vendor = product = None
    if version_name:
        for pattern, vendor_name, product_name in VERSION_NAMES:
            if pattern.search(version_name):
                vendor, product = vendor_name, product_name
                break
    if vendor is None and uid:
        roots = [r for r in UID_ROOTS if uid == r[0] or uid.startswith(r[0].rstrip(".") + ".")]
        if roots:
            _, vendor, product = max(roots, key=lambda r: len(r[0]))
    if product and version_name:
        digits = _VERSION_DIGITS.search(version_name)
        if digits:
            product = f"{product} {_dotted(digits.group(1))}"
    return vendor, product


def _dotted(digits: str) -> str:
    if "." in digits or "_" in digits:
        return digits.replace("_", ".")
    return ".".join(digits) if len(digits) <= 4 else digits
