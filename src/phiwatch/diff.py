"""Compare two scans within what both covered: new, fixed and changed findings. Keys and counts only.

A finding of the older scan is "fixed" only when the newer scan looked at its service (its
address among the newer scan's targets, its port among its ports, and the service probed to
the end, or the scan complete) and did not find it again. Anything else is "not rescanned".
A finding of the newer scan outside the older one's scope is "first scanned", not "new".
Host names in targets are compared as names, never resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import BaseModel

from .models import UNFINISHED, Finding, ScanInfo, ScanResult
from .targets import Block, TargetError, numeric_blocks

Key = tuple[str, str, int, str]


class Change(BaseModel):
    key: Key
    before: Finding
    after: Finding
    what: list[str]


class ScanDiff(BaseModel):
    old_scan: str
    new_scan: str
    scope: list[str]  # how the scans' scopes differ; empty when the newer one covered the older one
    new: list[Finding]
    fixed: list[Finding]
    changed: list[Change]
    unchanged: int
    not_rescanned: list[Finding]  # older findings the newer scan did not look at: neither fixed nor not
    first_scanned: list[Finding]  # newer findings where the older scan did not look


def finding_key(finding: Finding) -> Key:
    return (finding.check_id, finding.host, finding.port, finding.protocol)


def _order(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, finding_key(f)))


def _differences(before: Finding, after: Finding) -> list[str]:
    what = []
    if before.severity != after.severity:
        what.append(f"severity {before.severity.value} -> {after.severity.value}")
    old, new = before.exposure, after.exposure
    if old is not None and new is not None:
        for field in ("studies", "instances", "worklist_items"):
            before_count, after_count = getattr(old, field), getattr(new, field)
            if before_count != after_count:
                shown = ["unknown" if n is None else str(n) for n in (before_count, after_count)]
                what.append(f"{field.replace('_', ' ')} {shown[0]} -> {shown[1]}")
        if old.files != new.files:
            what.append("file counts changed")
        added = sorted(set(new.phi_attributes) - set(old.phi_attributes))
        if added:
            what.append("new PHI attributes: " + ", ".join(added))
    return what


class Scope:
    """Which (host, port) services one scan looked at."""

    def __init__(self, result: ScanResult) -> None:
        info = result.scan
        self.info = info
        self.ports = set(info.targets.ports)
        self.finished = {(s.host, s.port) for s in result.services if s.status not in UNFINISHED}
        self.cut_short = {(s.host, s.port) for s in result.services if s.status in UNFINISHED}
        self.listed = info.targets.services_file is not None
        self.blocks, self.names, self.known = _target_space(info.targets.specs, info)
        self.excluded, self.excluded_names, _ = _target_space(info.targets.excludes, info)

    def _in_targets(self, host: str) -> bool:
        if host.lower() in self.excluded_names or _in_blocks(host, self.excluded):
            return False
        return host.lower() in self.names or _in_blocks(host, self.blocks)

    def covers(self, host: str, port: int) -> bool:
        """Did this scan look at host:port to the end? Unknown counts as no."""
        if (host, port) in self.finished:
            return True
        if (host, port) in self.cut_short or self.listed or not self.info.complete or not self.known:
            return False  # a partial scan, or a list of services: only what it recorded finished
        return port in self.ports and self._in_targets(host)


def _target_space(specs: list[str], info: ScanInfo) -> tuple[list[Block], set[str], bool]:
    """Address blocks and host names of target specs, without resolving anything; `known` is
    False when the stored specs were cut (a scan of more than 1000 specs)."""
    blocks: list[Block] = []
    names: set[str] = set()
    for spec in specs:
        try:
            parsed = numeric_blocks(spec)
        except TargetError:
            continue
        if parsed is None:
            names.add(spec.strip().lower().rstrip("."))
        else:
            blocks.extend(parsed)
    return blocks, names, len(specs) < 1000


def _in_blocks(host: str, blocks: list[Block]) -> bool:
    try:
        parsed = numeric_blocks(host)
    except TargetError:
        return False
    if not parsed:
        return False
    value = parsed[0]
    return any(b.version == value.version and b.first <= value.first <= b.last for b in blocks)


def _scope_notes(old: Scope, new: Scope, outside: int) -> list[str]:
    notes = []
    if not new.info.complete:
        notes.append("the newer scan is partial: only services it probed to the end are compared")
    missing_ports = sorted(old.ports - new.ports)
    if missing_ports and not new.listed:
        shown = ",".join(map(str, missing_ports[:12])) + ("..." if len(missing_ports) > 12 else "")
        notes.append(f"the newer scan left out {len(missing_ports)} of the older scan's ports ({shown})")
    if sorted(old.info.targets.specs) != sorted(new.info.targets.specs) or new.listed != old.listed:
        notes.append("the scans' targets differ")
    if outside:
        notes.append(f"{outside} older findings are outside the newer scan's scope: not rescanned, not fixed")
    return notes


def diff_scans(old: ScanResult, new: ScanResult) -> ScanDiff:
    before = {finding_key(f): f for f in old.findings}
    after = {finding_key(f): f for f in new.findings}
    old_scope, new_scope = Scope(old), Scope(new)
    changed = []
    unchanged = 0
    for key in before.keys() & after.keys():
        what = _differences(before[key], after[key])
        if what:
            changed.append(Change(key=key, before=before[key], after=after[key], what=what))
        else:
            unchanged += 1
    gone = [before[k] for k in before.keys() - after.keys()]
    fixed, not_rescanned = _split(gone, lambda f: new_scope.covers(f.host, f.port))
    appeared = [after[k] for k in after.keys() - before.keys()]
    really_new, first_scanned = _split(appeared, lambda f: old_scope.covers(f.host, f.port))
    return ScanDiff(
        old_scan=old.scan.id,
        new_scan=new.scan.id,
        scope=_scope_notes(old_scope, new_scope, len(not_rescanned)),
        new=_order(really_new),
        fixed=_order(fixed),
        changed=sorted(changed, key=lambda c: (-c.after.severity.rank, c.key)),
        unchanged=unchanged,
        not_rescanned=_order(not_rescanned),
        first_scanned=_order(first_scanned),
    )


def _split(findings: list[Finding], test: Callable[[Finding], bool]) -> tuple[list[Finding], list[Finding]]:
    yes = [f for f in findings if test(f)]
    return yes, [f for f in findings if not test(f)]


def diff_text(result: ScanDiff) -> list[str]:
    """The difference for a terminal: scope first, then the counts, then each finding, worst first."""
    lines = [f"scope: {note}" for note in result.scope]
    lines.append(f"{result.old_scan} -> {result.new_scan}: {len(result.new)} new, {len(result.fixed)} fixed, "
                 f"{len(result.changed)} changed, {result.unchanged} unchanged, "
                 f"{len(result.not_rescanned)} not rescanned, {len(result.first_scanned)} first scanned")

    def line(label: str, f: Finding, tail: str = "") -> str:
        where = f"[{f.host}]:{f.port}" if ":" in f.host else f"{f.host}:{f.port}"
        return f"  {label:<13} {f.severity.value:<8} {where}/{f.protocol} {f.check_id}{tail}"

    lines += [line("new", f) for f in result.new]
    lines += [line("changed", c.after, ": " + "; ".join(c.what)) for c in result.changed]
    lines += [line("fixed", f) for f in result.fixed]
    lines += [line("first scanned", f) for f in result.first_scanned]
    lines += [line("not rescanned", f) for f in result.not_rescanned]
    return lines
