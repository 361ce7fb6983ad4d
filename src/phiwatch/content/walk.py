"""`phiwatch sniff PATH`: sniff a LOCAL file or folder tree, headers only, and sum it up.

The walk never follows a symbolic link (it counts skipped links and the loops among them),
never opens anything but a regular file (FIFOs would block, devices never end), stops at
`max_depth` folders down and `max_files` files sniffed, and reads at most `byte_budget`
bytes of each file. Beyond `max_files` it keeps listing names, without opening them, to
estimate counts by name (up to `max_listed` entries).

The summary holds counts, kinds, PHI attribute names and statuses. It holds no path and no
file name: in medical shares those carry patient names and record numbers.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .kinds import DEFAULT_BUDGET, Sniffed, kind_from_name
from .sniffer import sniff

MAX_ERROR_SAMPLES = 50
FIRST_READ = 16_384
_OPEN_FLAGS = os.O_RDONLY
for _flag in ("O_NOFOLLOW", "O_NONBLOCK", "O_CLOEXEC"):  # POSIX; absent on Windows
    _OPEN_FLAGS |= getattr(os, _flag, 0)
_SAFE_EXTENSIONS = frozenset(
    {".dcm", ".dicom", ".dic", ".ima", ".hl7", ".edi", ".x12", ".837", ".835", ".zip", ".gz", ".tgz", ".tar",
     ".bz2", ".xz", ".txt", ".xml", ".json", ".pdf", ".jpg", ".png", ".dat", ".bin", ".log"}
)


class KindCount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verified: int = 0  # the content confirmed the kind
    unverified: int = 0  # the content looks like the kind (a magic number, a broken header) but did not confirm it
    estimated: int = 0  # from the name only: beyond max_files, unreadable, or content not recognised


class FileError(BaseModel):
    """One file the walk could not sniff. No path: names in medical shares carry PHI."""

    model_config = ConfigDict(extra="forbid")

    status: str  # permission-denied, vanished, not-regular, io-error, sniff-error, directory-*
    detail: str | None = None  # an errno name or an exception class name; never a message
    extension: str | None = None  # a well-known extension of the file, when it has one
    depth: int = 0


class SniffSummary(BaseModel):
    """What `sniff_path` found under one local path. Counts and names of attributes only."""

    model_config = ConfigDict(extra="forbid", title="phiwatch sniff")

    target: Literal["file", "directory", "missing", "unsupported"]
    status: Literal["ok", "limited", "error"] = "ok"  # limited: a depth, file or listing bound was reached
    detail: str | None = None
    byte_budget: int
    max_files: int
    max_depth: int
    files_seen: int = 0  # regular files met (sniffed or estimated by name)
    files_sniffed: int = 0
    bytes_read: int = 0
    directories: int = 0
    kinds: dict[str, KindCount] = Field(default_factory=dict)
    phi_attributes: dict[str, list[str]] = Field(default_factory=dict)  # kind -> PHI attribute names seen
    records: dict[str, int] = Field(default_factory=dict)  # DICOMDIR records, HL7 messages, X12 sets
    hl7_message_types: list[str] = Field(default_factory=list)
    transaction_sets: list[str] = Field(default_factory=list)
    content_statuses: dict[str, int] = Field(default_factory=dict)  # ok, truncated, malformed, unrecognised
    truncated_files: int = 0  # the byte budget ended before the file's header did
    errors: dict[str, int] = Field(default_factory=dict)  # per-file error status -> count
    error_samples: list[FileError] = Field(default_factory=list)
    symlinks_skipped: int = 0
    symlink_loops: int = 0  # links back to a folder being walked, or chains that never end (ELOOP)
    special_files: int = 0  # FIFOs, sockets, devices: never opened
    directories_beyond_depth: int = 0
    file_limit_reached: bool = False
    files_estimated_by_name: int = 0  # listed beyond max_files, never opened
    listing_limit_reached: bool = False
    elapsed_seconds: float = 0.0


class _NotRegular(Exception):
    pass


def _read(fd: int, size: int, chunks: list[bytes]) -> int:
    got = 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return got


def _sniff_head(path: str | Path, name: str, budget: int) -> tuple[Sniffed, int]:
    """Sniff at most `budget` bytes from the start of a regular file; (result, bytes read).

    The first read is `FIRST_READ` bytes: most headers end there (a DICOM header is a few
    KB before its pixels). Only a header that the first read cuts gets the rest of the budget.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegular
        chunks: list[bytes] = []
        first = min(budget, FIRST_READ)
        got = _read(fd, first, chunks)
        complete = got < first or info.st_size <= got
        found = sniff(b"".join(chunks), name, budget=budget, complete=complete)
        if found.truncated and not complete and got < budget:
            got += _read(fd, budget - got, chunks)
            complete = got < budget or info.st_size <= got
            found = sniff(b"".join(chunks), name, budget=budget, complete=complete)
        return found, got
    finally:
        os.close(fd)


def _error_status(exc: BaseException) -> tuple[str, str | None]:
    if isinstance(exc, _NotRegular):
        return "not-regular", None
    if isinstance(exc, PermissionError):
        return "permission-denied", None
    if isinstance(exc, FileNotFoundError):
        return "vanished", None
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP:
            return "symlink", "ELOOP"
        return "io-error", errno.errorcode.get(exc.errno or 0)
    return "sniff-error", type(exc).__name__


def _extension(name: str) -> str | None:
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    return ext if ext in _SAFE_EXTENSIONS else None


class _Tally:
    def __init__(self, summary: SniffSummary) -> None:
        self.summary = summary
        self.kinds: dict[str, KindCount] = {}
        self.phi: dict[str, set[str]] = {}
        self.records: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.types: set[str] = set()
        self.sets: set[str] = set()

    def kind(self, kind: str) -> KindCount:
        if kind not in self.kinds:
            self.kinds[kind] = KindCount()
        return self.kinds[kind]

    def error(self, status: str, detail: str | None, name: str, depth: int) -> None:
        self.errors[status] += 1
        if len(self.summary.error_samples) < MAX_ERROR_SAMPLES:
            self.summary.error_samples.append(
                FileError(status=status, detail=detail, extension=_extension(name), depth=depth)
            )

    def estimate(self, hint_path: str) -> None:
        hint = kind_from_name(hint_path)
        if hint:
            self.kind(hint).estimated += 1

    def sniffed(self, found: Sniffed, hint_path: str) -> None:
        s = self.summary
        s.files_sniffed += 1
        self.statuses[found.status] += 1
        if found.truncated:
            s.truncated_files += 1
        if found.kind == "unknown":
            self.estimate(hint_path)
            return
        count = self.kind(found.kind)
        if found.verified:
            count.verified += 1
        else:
            count.unverified += 1
        if found.phi_attributes:
            self.phi.setdefault(found.kind, set()).update(found.phi_attributes)
        if found.records:
            self.records[found.kind] += found.records
        if len(self.types) < 64:
            self.types.update(found.hl7_message_types)
        if found.transaction_set and len(self.sets) < 64:
            self.sets.add(found.transaction_set)

    def close(self, started: float) -> SniffSummary:
        s = self.summary
        s.kinds = {kind: self.kinds[kind] for kind in sorted(self.kinds)}
        s.phi_attributes = {kind: sorted(names) for kind, names in sorted(self.phi.items())}
        s.records = dict(sorted(self.records.items()))
        s.content_statuses = dict(sorted(self.statuses.items()))
        s.errors = dict(sorted(self.errors.items()))
        s.hl7_message_types = sorted(self.types)
        s.transaction_sets = sorted(self.sets)
        if s.status == "ok" and (s.file_limit_reached or s.directories_beyond_depth or s.listing_limit_reached):
            s.status = "limited"
        s.elapsed_seconds = round(time.monotonic() - started, 3)
        return s


def sniff_path(
    path: Path | str,
    byte_budget: int = DEFAULT_BUDGET,
    max_files: int = 10_000,
    max_depth: int = 20,
    *,
    max_listed: int = 1_000_000,
) -> SniffSummary:
    """Sniff a local file, or every regular file under a local folder, within the bounds."""
    started = time.monotonic()
    byte_budget, max_files, max_depth = max(1, byte_budget), max(0, max_files), max(0, max_depth)
    root = Path(path)
    base = {"byte_budget": byte_budget, "max_files": max_files, "max_depth": max_depth}
    try:
        info = root.stat()  # the root is the caller's explicit choice: a link to it is followed
    except FileNotFoundError:
        return SniffSummary(target="missing", status="error", detail="no such file or folder", **base)
    except OSError as exc:
        status, detail = _error_status(exc)
        return SniffSummary(target="missing", status="error", detail=f"cannot stat: {status}", **base)
    if stat.S_ISREG(info.st_mode):
        summary = SniffSummary(target="file", **base)
        tally = _Tally(summary)
        summary.files_seen = 1
        if max_files:
            _sniff_file(tally, str(root), root.name, root.name, 0, byte_budget)
        else:
            summary.file_limit_reached = True
            summary.files_estimated_by_name = 1
            tally.estimate(root.name)
        return tally.close(started)
    if not stat.S_ISDIR(info.st_mode):
        return SniffSummary(target="unsupported", status="error", detail="not a regular file or folder", **base)
    summary = SniffSummary(target="directory", **base)
    tally = _Tally(summary)
    _walk(tally, root, info, byte_budget, max_files, max_depth, max_listed)
    return tally.close(started)


def _sniff_file(tally: _Tally, path: str, name: str, hint_path: str, depth: int, budget: int) -> None:
    try:
        found, got = _sniff_head(path, name, budget)
    except (OSError, _NotRegular) as exc:
        status, detail = _error_status(exc)
        if status == "not-regular":
            tally.summary.special_files += 1
        elif status == "symlink":
            tally.summary.symlinks_skipped += 1
        else:
            tally.error(status, detail, name, depth)
        tally.estimate(hint_path)
        return
    tally.summary.bytes_read += got
    if found.status == "error":
        tally.error("sniff-error", (found.detail or "")[:80] or None, name, depth)
    tally.sniffed(found, hint_path)


def _walk(
    tally: _Tally, root: Path, info: os.stat_result, budget: int, max_files: int, max_depth: int, max_listed: int
) -> None:
    s = tally.summary
    s.directories = 1
    try:
        top = os.scandir(root)
    except OSError as exc:
        status, detail = _error_status(exc)
        s.status, s.detail = "error", f"cannot list the folder: {status}"
        return
    # Each frame: (entries, depth of the entries' folder, folder names from the root, folder identity)
    stack: list[tuple[os._ScandirIterator[str], int, list[str], tuple[int, int]]] = [
        (top, 0, [], (info.st_dev, info.st_ino))
    ]
    ancestors = {(info.st_dev, info.st_ino)}
    listed = 0
    try:
        while stack:
            entries, depth, parents, identity = stack[-1]
            try:
                entry = next(entries, None)
            except OSError as exc:
                status, detail = _error_status(exc)
                tally.error("directory-" + status, detail, "", depth)
                entry = None
            if entry is None:
                entries.close()
                stack.pop()
                ancestors.discard(identity)
                continue
            listed += 1
            if listed > max_listed:
                s.listing_limit_reached = True
                return
            hint_path = "/".join([*parents[-4:], entry.name])
            label = ""
            try:
                if entry.is_symlink():
                    _link(s, entry, ancestors)
                elif entry.is_dir(follow_symlinks=False):
                    label = "directory-"
                    s.directories += 1
                    if depth + 1 > max_depth:
                        s.directories_beyond_depth += 1
                        continue
                    st = entry.stat(follow_symlinks=False)
                    key = (st.st_dev, st.st_ino)
                    if key in ancestors:  # a bind mount back up the tree
                        s.symlink_loops += 1
                        continue
                    child = os.scandir(entry.path)
                    stack.append((child, depth + 1, [*parents[-4:], entry.name], key))
                    ancestors.add(key)
                elif entry.is_file(follow_symlinks=False):
                    s.files_seen += 1
                    if s.files_sniffed < max_files:
                        _sniff_file(tally, entry.path, entry.name, hint_path, depth + 1, budget)
                    else:
                        s.file_limit_reached = True
                        s.files_estimated_by_name += 1
                        tally.estimate(hint_path)
                else:
                    s.special_files += 1
            except OSError as exc:
                status, detail = _error_status(exc)
                tally.error(label + status, detail, entry.name, depth + 1)
    finally:
        for entries, *_ in stack:
            entries.close()


def _link(s: SniffSummary, entry: os.DirEntry[str], ancestors: set[tuple[int, int]]) -> None:
    """A symbolic link is never followed; stat through it only to tell a loop from a link."""
    try:
        target = os.stat(entry.path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            s.symlink_loops += 1
            return
        s.symlinks_skipped += 1  # dangling or unreadable
        return
    if stat.S_ISDIR(target.st_mode) and (target.st_dev, target.st_ino) in ancestors:
        s.symlink_loops += 1
    else:
        s.symlinks_skipped += 1
