"""The bounded walk of a remote file tree, shared by every file-repository probe.

A protocol module supplies a `Tree` (list one folder, read the head of one file); this
module decides what to list, what to read and when to stop. Bounds: depth, entries per
folder, files sniffed (per folder and per host), bytes read per file, bytes and wall
time per host (a `Budget` that several shares of one host share). Symbolic links are
never followed; folder loops are detected by normalised path and by a listing identical
to an ancestor's. Beyond the sniff budget, files are counted from their names and
reported as estimated.

Each folder listing and each file head is one step (probes/steps.py): an exception in it
ends that step, not the walk. A folder whose listing raised is skipped; a file whose head
or sniff raised is counted from its name, as an estimate. What was seen before and after
stays, and the share's `error` says how many steps failed and the first one's status
(never the exception's text). A few failures in a row mean the connection is gone: the
walk then stops, keeping what it saw; refusals and odd answers do not count toward that.

Facts carry counts and PHI attribute names only: never a file or folder name (they carry
patient names in medical shares).
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..content.kinds import DEFAULT_BUDGET, Sniffed, kind_from_name
from ..models import FileKindCount, ProbeStatus, RepositoryFacts, ShareFacts
from ..sessions import BudgetSpent
from .options import FileOptions as FileOptions  # re-exported: every repository probe names it
from .options import WalkLimits
from .outcome import Outcome as ProbeOutcome
from .steps import StepFailure, failure_of


def sniff(data: bytes, name: str = "", *, budget: int = DEFAULT_BUDGET, complete: bool | None = None) -> Sniffed:
    """content's sniff, imported when the first file is read (it loads pydicom)."""
    from ..content.sniffer import sniff as sniff_content

    return sniff_content(data, name, budget=budget, complete=complete)


MEDICAL_KINDS = ("dicom", "dicomdir", "hl7", "x12")
MAX_NAME = 1024  # longer entry names are dropped
MAX_FAILED_IN_A_ROW = 3  # steps in a row that lost the connection: the walk ends (it is likely gone)
CONNECTION_LOST = (ProbeStatus.RESET, ProbeStatus.TIMEOUT, ProbeStatus.REFUSED, ProbeStatus.UNREACHABLE)


Outcome = ProbeOutcome[RepositoryFacts]  # what a file-repository probe ends with


@dataclass
class Entry:
    kind: str  # "d" folder, "f" file, "l" symbolic link
    name: str
    size: int | None = None
    target: str | None = None  # a link's target, as the server gave it


class Stop(Exception):
    """A bound of the walk was reached: stop walking, keep what was seen."""


class Unreadable(Exception):
    """This folder or file is not readable for the visitor; the walk goes on elsewhere."""


class Inexpressible(Unreadable):
    """The protocol cannot name this file (a glob character for rsync's daemon, a line break in an
    FTP command, a key botocore refuses): it is counted from its name, as an estimate, never dropped."""


@dataclass
class Budget:
    """What one host may still cost: bytes, files sniffed and wall time, over all its shares."""

    limits: WalkLimits
    deadline: float
    total: int = 0
    sniffed: int = 0

    @classmethod
    def start(cls, limits: WalkLimits, wall: float | None = None) -> Budget:
        return cls(limits, time.monotonic() + (limits.walk_time if wall is None else wall))

    def remaining_time(self) -> float:
        """Seconds left; raises Stop when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Stop("time")
        return left

    def bytes_left(self) -> int:
        return max(0, self.limits.total_bytes - self.total)

    def charge(self, count: int) -> None:
        """Count bytes received (listings and heads alike)."""
        self.total += count


class Tree(Protocol):
    """One share, module, export, bucket or root, as the protocol module reads it.

    Paths are POSIX style, "/" is the share's root. Both methods charge what they receive
    to the budget, keep to the limits they are given, and raise Unreadable for a folder or
    file the visitor may not read (any other exception ends the walk of this share).
    """

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        """At most max_entries entries of one folder; True when the listing was cut."""
        ...

    def head(self, path: str, entry: Entry, limit: int) -> tuple[bytes, bool]:
        """At most `limit` bytes from the start of a file; True when that is the whole file."""
        ...


def entry(kind: str, name: str, size: int | None = None, target: str | None = None) -> Entry | None:
    """A checked entry, or None for names that cannot be walked safely."""
    if kind not in ("d", "f", "l") or name in ("", ".", "..") or len(name) > MAX_NAME:
        return None
    if "/" in name or "\n" in name or "\r" in name or "\0" in name:
        return None
    return Entry(kind=kind, name=name, size=size, target=target)


@dataclass
class BoundedWalk:
    tree: Tree
    budget: Budget
    name: str = "/"
    share: ShareFacts = field(init=False)
    visited: set[str] = field(default_factory=set)
    counts: dict[str, FileKindCount] = field(default_factory=dict)
    phi: dict[str, set[str]] = field(default_factory=dict)
    failures: list[StepFailure] = field(default_factory=list)
    in_a_row: int = 0

    def __post_init__(self) -> None:
        self.share = ShareFacts(name=self.name)

    @property
    def limits(self) -> WalkLimits:
        return self.budget.limits

    def run(self, root: str = "/") -> ShareFacts:
        """Walk from root; never raises for bounds or for one failed step. A root that cannot be
        listed, a spent byte budget or failures in a row propagate (the caller keeps facts())."""
        share = self.share
        stack: list[tuple[str, int, tuple[str, ...]]] = [(root, 0, ())]
        try:
            while stack:
                path, depth, ancestors = stack.pop()
                self.budget.remaining_time()
                if self.budget.bytes_left() <= 0:
                    raise Stop("bytes")
                try:
                    entries, cut = self.tree.listdir(path, self.limits.max_entries)
                except Unreadable:
                    continue
                except Stop:
                    raise
                except Exception as exc:  # noqa: BLE001 - this folder's step failed; the walk goes on
                    self._failed("listing", exc, first=path == root and not share.readable)
                    continue
                self.in_a_row = 0
                share.readable = True
                share.directories += 1
                share.entries += len(entries)
                share.limited |= cut
                signature = _signature(entries)
                if signature in ancestors:  # a server that follows links shows the same folder again
                    share.loops += 1
                    continue
                for sub in self._files(path, entries):
                    if sub.kind == "l":  # never followed; a link to this folder or above is a loop
                        if _is_ancestor(_target(path, sub.target), path):
                            share.loops += 1
                        continue
                    child = posixpath.normpath(posixpath.join(path, sub.name))
                    if child in self.visited:
                        share.loops += 1
                        continue
                    if depth + 1 > self.limits.max_depth:
                        share.limited = True
                        continue
                    self.visited.add(child)
                    stack.append((child, depth + 1, (*ancestors, signature)))
        except Stop:
            share.limited = True
        return self.facts()

    def _files(self, path: str, entries: list[Entry]) -> list[Entry]:
        """Sniff or count this folder's files; return its subfolders and links."""
        self.visited.add(posixpath.normpath(path))
        folders = [e for e in entries if e.kind in ("d", "l")]
        files = [e for e in entries if e.kind == "f"]
        rel = path.strip("/")
        hinted = [(e, kind_from_name(f"{rel}/{e.name}" if rel else e.name)) for e in files]
        hinted.sort(key=lambda pair: pair[1] is None)  # files whose names suggest a kind first
        here = 0
        for item, hint in hinted:
            if item.size == 0:  # an empty file holds nothing, whatever its name says
                continue
            can_sniff = (
                here < self.limits.per_directory
                and self.budget.sniffed < self.limits.max_files
                and self.budget.bytes_left() > 0
            )
            if can_sniff and self._sniff(path, item):
                here += 1
            elif hint in MEDICAL_KINDS:
                self.counts.setdefault(hint, FileKindCount()).estimated += 1
                self.share.limited = True
        return folders

    def _sniff(self, path: str, item: Entry) -> bool:
        """Read and sniff one file's head; False when the protocol cannot name it (then it is estimated)."""
        budget = self.limits.file_budget
        limit = min(budget, self.budget.bytes_left())
        try:
            data, complete = self.tree.head(posixpath.join(path, item.name), item, limit)
        except Inexpressible:
            return False
        except Unreadable:
            return True
        except Stop:
            raise
        except Exception as exc:  # noqa: BLE001 - this file's step failed: counted from its name
            self._failed("file head", exc)
            return False
        data = data[:limit]
        self.budget.sniffed += 1
        self.share.files_sniffed += 1
        self.share.bytes_read += len(data)
        try:
            found = sniff(bytes(data), item.name, budget=budget, complete=complete and len(data) < budget)
        except Exception as exc:  # noqa: BLE001 - a sniffer bug on hostile bytes: counted from its name
            self._failed("file sniff", exc)
            return False
        self.in_a_row = 0
        if found.kind in MEDICAL_KINDS:  # a magic number the content did not confirm is an estimate
            count = self.counts.setdefault(found.kind, FileKindCount())
            if found.verified:
                count.verified += 1
            else:
                count.estimated += 1
            self.phi.setdefault(found.kind, set()).update(found.phi_attributes)
        return True

    def _failed(self, step: str, exc: Exception, first: bool = False) -> None:
        """One listing or head failed: keep its status and go on.

        The exception propagates (the session's own handler gives the status, the facts
        stay) when the root itself could not be listed, when the byte budget is spent, or
        after a few failures in a row: the connection is then likely gone.
        """
        status, detail = failure_of(exc)
        self.failures.append(StepFailure(step, status, detail))
        self.share.limited = True
        if status in CONNECTION_LOST:  # a refusal or an odd answer leaves the connection usable
            self.in_a_row += 1
        if first or self.in_a_row >= MAX_FAILED_IN_A_ROW or isinstance(exc, BudgetSpent):
            raise exc

    def run_keeping(self, describe: Callable[[BaseException], str]) -> str | None:
        """run(), keeping what was seen when the session breaks mid-walk: the share is marked
        limited, with describe(the failure) as its error, which is returned; None when the walk ended."""
        try:
            self.run()
        except Exception as exc:
            detail = describe(exc)
            self.share.limited = True
            self.share.error = detail
            return detail
        return None

    def facts(self) -> ShareFacts:
        share = self.share
        if self.failures and share.error is None:
            first = self.failures[0]
            share.error = f"{len(self.failures)} step(s) failed; first: {first.step}: {first.detail}"[:200]
        share.files = {kind: self.counts[kind] for kind in MEDICAL_KINDS if kind in self.counts}
        share.phi_attributes = {kind: sorted(names) for kind, names in sorted(self.phi.items()) if names}
        return share


def has_medical_files(shares: list[ShareFacts]) -> bool:
    return any(c.verified or c.estimated for share in shares for c in share.files.values())


def _target(path: str, target: str | None) -> str | None:
    if not target:
        return None
    return posixpath.normpath(posixpath.join(path, target))


def _is_ancestor(target: str | None, path: str) -> bool:
    if target is None:
        return False
    return target == "/" or path == target or path.startswith(target.rstrip("/") + "/")


def _signature(entries: list[Entry]) -> str:
    digest = hashlib.sha256()
    for item in sorted(entries, key=lambda e: (e.kind, e.name)):
        digest.update(f"{item.kind}\0{item.name}\0{item.size}\n".encode("utf-8", "replace"))
    return digest.hexdigest()
