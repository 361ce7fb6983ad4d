"""Compare two scans within what both covered: new, fixed and changed findings. Keys and counts only.

A finding of the older scan is "fixed" only when the newer scan looked at its service (its
address among the newer scan's targets, its port among its ports, and the scan complete, or
the address in one of a partial scan's complete shards, or the service probed to the end)
and did not find it again. Anything else is "not rescanned".
A finding of the newer scan outside the older one's scope is "first scanned", not "new".
Host names in targets are compared as names, never resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

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

    def __init__(self, result: ScanResult, done: list[Block] | None = None) -> None:
        """`done`: the addresses of a partial scan's complete shards, when the store knows them."""
        info = result.scan
        self.done = done or []
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
        if (host, port) in self.cut_short or self.listed or not self.known:
            return False  # a list of services: only what it recorded finished
        if not self.info.complete:  # a partial scan: the addresses of its complete shards
            return port in self.ports and _in_blocks(host, self.done) and self._in_targets(host)
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
        notes.append("the newer scan is partial: only its complete shards and the services it probed "
                     "to the end are compared")
    missing_ports = sorted(old.ports - new.ports)
    if missing_ports and not new.listed:
        shown = ",".join(map(str, missing_ports[:12])) + ("..." if len(missing_ports) > 12 else "")
        notes.append(f"the newer scan left out {len(missing_ports)} of the older scan's ports ({shown})")
    if sorted(old.info.targets.specs) != sorted(new.info.targets.specs) or new.listed != old.listed:
        notes.append("the scans' targets differ")
    if outside:
        notes.append(f"{outside} older findings are outside the newer scan's scope: not rescanned, not fixed")
    return notes


def diff_scans(old: ScanResult, new: ScanResult, new_done: list[Block] | None = None) -> ScanDiff:
    """`new_done`: addresses of the newer scan's complete shards, when it is partial."""
    before = {finding_key(f): f for f in old.findings}
    after = {finding_key(f): f for f in new.findings}
    old_scope, new_scope = Scope(old), Scope(new, new_done)
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


def complete_shards(store: Any, scan_id: str) -> list[Block] | None:
    """The addresses of a stored sweep's complete shards, cut again from its stored request; None
    when they cannot be known without reading files or resolving names (lists, host names)."""
    from .cluster import sweep_shards
    from .targets import build_targets

    planned = store.plan(scan_id)
    if planned is None:
        return None
    _, request, shard_size = planned
    specs, excludes = request.get("targets", []), request.get("excludes", [])
    if request.get("input_lists") or request.get("exclude_files") or request.get("from_file"):
        return None
    try:
        if any(numeric_blocks(spec) is None for spec in [*specs, *excludes]):
            return None  # a host name: never resolved for a diff
        targets = build_targets(specs, [], excludes, [])
    except TargetError:
        return None
    finished = store.shards(scan_id)
    return [block for shard in sweep_shards(targets.blocks, shard_size)
            if finished.get(shard.index, ("", 0))[0] == shard.digest for block in shard.blocks]
