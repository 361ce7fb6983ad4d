"""Compare two scans: new, fixed and changed findings. Keys and counts only."""

from __future__ import annotations

from pydantic import BaseModel

from .models import Finding, ScanResult

Key = tuple[str, str, int, str]


class Change(BaseModel):
    key: Key
    before: Finding
    after: Finding
    what: list[str]


class ScanDiff(BaseModel):
    old_scan: str
    new_scan: str
    new: list[Finding]
    fixed: list[Finding]
    changed: list[Change]
    unchanged: int


def finding_key(finding: Finding) -> Key:
    return (finding.check_id, finding.host, finding.port, finding.protocol)


def _differences(before: Finding, after: Finding) -> list[str]:
    what = []
    if before.severity != after.severity:
        what.append(f"severity {before.severity.value} -> {after.severity.value}")
    old, new = before.exposure, after.exposure
    if old is not None and new is not None:
        for field in ("studies", "instances"):
            if getattr(old, field) != getattr(new, field):
                what.append(f"{field} {getattr(old, field)} -> {getattr(new, field)}")
        if old.files != new.files:
            what.append("file counts changed")
        added = sorted(set(new.phi_attributes) - set(old.phi_attributes))
        if added:
            what.append("new PHI attributes: " + ", ".join(added))
    return what


def diff_scans(old: ScanResult, new: ScanResult) -> ScanDiff:
    before = {finding_key(f): f for f in old.findings}
    after = {finding_key(f): f for f in new.findings}
    changed = []
    unchanged = 0
    for key in before.keys() & after.keys():
        what = _differences(before[key], after[key])
        if what:
            changed.append(Change(key=key, before=before[key], after=after[key], what=what))
        else:
            unchanged += 1
    return ScanDiff(
        old_scan=old.scan.id,
        new_scan=new.scan.id,
        new=[after[k] for k in sorted(after.keys() - before.keys())],
        fixed=[before[k] for k in sorted(before.keys() - after.keys())],
        changed=sorted(changed, key=lambda c: c.key),
        unchanged=unchanged,
    )
