"""The expected counts of a served folder, from the folder itself: not from phiwatch's probes.

`local_truth` walks the folder a lab server serves, on this machine's disk (os.scandir, links
never followed), and applies the same limits a probe's walk has (WalkLimits: files sniffed
per folder and per host, bytes per file, depth): in each folder the files whose names suggest
a medical kind come first, up to `per_directory` of them are read (the first `file_budget`
bytes) and sniffed with phiwatch's content sniffers, the rest are counted from their names as
estimates. No protocol, server or probe code takes part, so a scan that lists, reads or aborts
wrongly differs from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from phiwatch.content import kind_from_name, sniff
from phiwatch.probes.walk import MEDICAL_KINDS, WalkLimits


@dataclass
class Truth:
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> {"verified": n, "estimated": n}
    phi: dict[str, list[str]] = field(default_factory=dict)  # kind -> PHI attribute names
    sniffed: int = 0

    def total(self, *kinds: str) -> int:
        return sum(sum(self.files.get(kind, {}).values()) for kind in kinds)


def local_truth(root: Path, limits: WalkLimits | None = None) -> Truth:
    limits = limits or WalkLimits()
    counts: dict[str, dict[str, int]] = {}
    phi: dict[str, set[str]] = {}
    sniffed = 0
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        rel = folder.relative_to(root).as_posix()
        files = [e for e in entries if e.is_file(follow_symlinks=False)]
        hints = {e.name: kind_from_name(e.name if rel == "." else f"{rel}/{e.name}") for e in files}
        files.sort(key=lambda e: hints[e.name] is None)  # names that suggest a kind first
        here = 0
        for item in files:
            size = item.stat(follow_symlinks=False).st_size
            if size == 0:
                continue
            if here < limits.per_directory and sniffed < limits.max_files:
                here += 1
                sniffed += 1
                with open(item.path, "rb") as handle:
                    data = handle.read(limits.file_budget)
                complete = len(data) == size and len(data) < limits.file_budget
                found = sniff(data, item.name, budget=limits.file_budget, complete=complete)
                if found.kind in MEDICAL_KINDS:
                    count = counts.setdefault(found.kind, {"verified": 0, "estimated": 0})
                    count["verified" if found.verified else "estimated"] += 1
                    phi.setdefault(found.kind, set()).update(found.phi_attributes)
            elif hints[item.name] in MEDICAL_KINDS:
                counts.setdefault(str(hints[item.name]), {"verified": 0, "estimated": 0})["estimated"] += 1
        if depth + 1 <= limits.max_depth:
            stack += [(Path(e.path), depth + 1) for e in reversed(entries) if e.is_dir(follow_symlinks=False)]
    return Truth(
        files={kind: counts[kind] for kind in MEDICAL_KINDS if kind in counts},
        phi={kind: sorted(names) for kind, names in sorted(phi.items()) if names},
        sniffed=sniffed,
    )


def scanned(share: object) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """A scanned share's counts and PHI attribute names, in the truth's shape."""
    files = {kind: {"verified": c.verified, "estimated": c.estimated}  # type: ignore[attr-defined]
             for kind, c in share.files.items()}  # type: ignore[attr-defined]  # fmt: skip
    return files, dict(share.phi_attributes)  # type: ignore[attr-defined]
