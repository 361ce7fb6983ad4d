"""What every configuration parser shares: bounded reading, includes kept inside the given paths."""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..content.walk import sniff_path
from ..models import Finding
from .model import AuditBounds, FileStatus
from .source import Source, decode

SYSTEM_TREES = ("/proc", "/sys", "/dev", "/run")


class ConfigError(Exception):
    """A file could not be audited: its status and one clear line (never the file's content)."""

    def __init__(self, status: FileStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Parsed:
    """One file's audit: its findings, the files it included, and what parsed it."""

    findings: list[Finding] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    parser: str = "phiwatch"
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    roots: list[Path]
    bounds: AuditBounds
    _sniffed: dict[str, int] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)  # every file read, for their secrets
    included_by: dict[str, str] = field(default_factory=dict)  # real path of an included file -> includer
    include_budget: int = 256  # included files read for one file; the walker resets it per file

    def inside(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return any(real == root or root in real.parents for root in self.roots)

    def read(self, path: Path) -> Source:
        """A regular file's text within the byte bound, or ConfigError with a status."""
        try:
            info = os.stat(path)
        except PermissionError as exc:
            raise ConfigError(FileStatus.UNREADABLE, "permission denied") from exc
        except OSError as exc:
            raise ConfigError(FileStatus.UNREADABLE, f"cannot stat ({exc.__class__.__name__})") from exc
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(FileStatus.SKIPPED, "not a regular file")
        if info.st_size > self.bounds.max_bytes:
            raise ConfigError(
                FileStatus.TOO_LARGE, f"{info.st_size} bytes, more than the {self.bounds.max_bytes}-byte bound"
            )
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
            try:
                data = os.read(fd, self.bounds.max_bytes + 1)
            finally:
                os.close(fd)
        except PermissionError as exc:
            raise ConfigError(FileStatus.UNREADABLE, "permission denied") from exc
        except OSError as exc:
            raise ConfigError(FileStatus.UNREADABLE, f"cannot read ({exc.__class__.__name__})") from exc
        if len(data) > self.bounds.max_bytes:
            raise ConfigError(FileStatus.TOO_LARGE, f"more than the {self.bounds.max_bytes}-byte bound")
        text = decode(data)
        if text is None:
            raise ConfigError(FileStatus.BINARY, "binary data (NUL bytes), not a configuration file")
        source = Source(path=path, text=text)
        self.sources.append(source)
        return source

    def include(self, parent: Source, pattern: str, chain: tuple[str, ...], notes: list[str]) -> list[Source]:
        """Files an include names (globs allowed), read only inside the given paths, within the bounds.

        `chain` holds the real paths already being read (the include stack); a file in it is a
        loop and is skipped with a note, as is anything outside the given paths or beyond the
        include depth.
        """
        if self.include_budget <= 0:
            notes.append("include bound reached: no more included files are read for this file")
            return []
        if len(chain) > self.bounds.max_include_depth:
            notes.append(f"include depth bound ({self.bounds.max_include_depth}) reached")
            return []
        target = Path(pattern) if os.path.isabs(pattern) else parent.path.parent / pattern
        names = sorted(glob.glob(str(target))) if glob.has_magic(str(target)) else [str(target)]
        sources: list[Source] = []
        for name in names[:64]:
            path = Path(name)
            real = os.path.realpath(path)
            if real in chain:
                notes.append(f"include loop: {path} is already being read; not followed")
                continue
            if not self.inside(path):
                notes.append(f"include outside the given paths not followed: {path}")
                continue
            try:
                source = self.read(path)
            except ConfigError as exc:
                notes.append(f"include {path}: {exc.message}")
                continue
            sources.append(source)
            self.include_budget -= 1
            self.included_by.setdefault(real, str(parent.path))
        return sources

    def medical_files(self, folder: str | None) -> int | None:
        """DICOM/HL7/X12 files verified in a folder a configuration serves (--sniff-served only).

        Headers only (16 KiB of at most 20 files, 4 folders deep); None when not inspected.
        """
        if not self.bounds.sniff_served or not folder or not os.path.isabs(folder):
            return None
        real = os.path.realpath(folder)
        if real == "/" or real.startswith(SYSTEM_TREES):
            return None  # a whole file system or a kernel tree: never walked
        if folder not in self._sniffed:
            if not os.path.isdir(folder):
                return None
            summary = sniff_path(folder, byte_budget=16_384, max_files=20, max_depth=4, max_listed=2_000)
            kinds = ("dicom", "dicomdir", "hl7", "x12")
            self._sniffed[folder] = sum(summary.kinds[k].verified for k in kinds if k in summary.kinds)
        return self._sniffed[folder]
