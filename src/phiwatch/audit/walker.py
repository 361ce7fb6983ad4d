"""`phiwatch audit PATH...`: walk files and folders within bounds, recognise each configuration, audit it.

Bounds: files (max_files), bytes per file (max_bytes), folder depth (max_depth), include
depth (max_include_depth). Links are not followed below the given paths; includes are read
only inside them. Every file ends with a status and at most one clear line; an
unexpected error in a parser is a status too (`malformed`, with the error's class name),
never a traceback. S3 documents in one folder are judged together as one bucket's set.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from .. import __version__
from ..models import Finding
from . import apache, dcmqrscp, exports, ganesha, nginx, orthanc, proftpd, rsyncd, s3docs, samba, vsftpd
from .context import ConfigError, Context, Parsed
from .model import AuditBounds, AuditedFile, AuditInfo, AuditResult, FileStatus
from .source import Source

KINDS: tuple[ModuleType, ...] = (orthanc, s3docs, dcmqrscp, ganesha, exports, vsftpd, proftpd, samba, rsyncd,
                                 nginx, apache)
MAX_INCLUDED_FILES = 256  # per audited file: a glob in an include of an include ... stays bounded
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules"}
# Files and folders whose names are shown in a status line. Any other name is only counted: folders
# of medical data are named after patients, and the walk may pass through them.
CONFIG_SUFFIXES = (".conf", ".cfg", ".cf", ".json", ".ini", ".config", ".cnf", ".rules", ".exports", ".htaccess")
CONFIG_NAMES = {"exports", "smb.conf", "httpd.conf", "apache2.conf", "nginx.conf"}


def shown(path: str, given: set[str]) -> bool:
    """Whether a path may appear in a status line: given by the user, or named like a configuration."""
    name = os.path.basename(path)
    return path in given or name in CONFIG_NAMES or name.lower().endswith(CONFIG_SUFFIXES)


def counted(records: list[AuditedFile], given: set[str], roots: list[Path]) -> list[AuditedFile]:
    """Records with names that may be shown, plus one line per given path and status for the rest."""
    kept: list[AuditedFile] = []
    hidden: dict[tuple[str, FileStatus], int] = {}
    reasons: dict[tuple[str, FileStatus], set[str]] = {}
    for record in records:
        if record.status == FileStatus.AUDITED or record.kind is not None or shown(record.path, given):
            kept.append(record)
            continue
        root = next((str(r) for r in roots if record.path == str(r) or record.path.startswith(str(r) + os.sep)),
                    "")
        hidden[(root, record.status)] = hidden.get((root, record.status), 0) + 1
        reasons.setdefault((root, record.status), set()).add(record.message or "")  # messages name no path
    for (root, status), count in sorted(hidden.items()):
        why = "; ".join(sorted(m for m in reasons[(root, status)] if m))[:300]
        kept.append(AuditedFile(path=root, status=status, message=f"{count} files or folders under this path: "
                                f"{why or status.value} (names not shown: folders of medical data are often "
                                "named after patients)"))
    return kept


# a folder's name says what its fragments are (Debian's /etc/apache2/mods-available/*.conf, /etc/nginx/snippets)
FOLDER_HINTS: dict[str, tuple[ModuleType, tuple[str, ...]]] = {
    "apache2": (apache, (".conf", ".load")), "httpd": (apache, (".conf",)), "nginx": (nginx, (".conf",)),
}


def recognise(name: str, text: str, folders: tuple[str, ...] = ()) -> ModuleType | None:
    for folder in folders:
        hint = FOLDER_HINTS.get(folder)
        if hint and name.endswith(hint[1]) and not orthanc.recognise(name, text):
            return hint[0]
    for module in KINDS:  # a well-known file name first, then the content
        if module.recognise(name, ""):
            return module
    for module in KINDS:
        if module.recognise(name, text):
            return module
    return None


def files_under(paths: list[Path], bounds: AuditBounds, skipped: list[AuditedFile]) -> Iterator[Path]:
    """Regular files under the given paths, depth-first in name order, within the file and depth bounds."""
    count = 0
    for root in paths:
        if not root.exists():
            skipped.append(AuditedFile(path=str(root), status=FileStatus.UNREADABLE,
                                       message="no such file or folder"))
            continue
        if root.is_file():
            count += 1
            yield root
            continue
        stack: list[tuple[Path, int]] = [(root, 0)]
        while stack:
            folder, depth = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError as exc:
                skipped.append(AuditedFile(path=str(folder), status=FileStatus.UNREADABLE,
                                           message=f"folder cannot be listed ({exc.__class__.__name__})"))
                continue
            for entry in entries:
                path = Path(entry.path)
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    continue
                if stat.S_ISLNK(mode):
                    skipped.append(AuditedFile(path=str(path), status=FileStatus.SKIPPED,
                                               message="a symbolic link: not followed below the given paths"))
                elif stat.S_ISDIR(mode):
                    if entry.name in SKIP_DIRS:
                        continue
                    if depth + 1 > bounds.max_depth:
                        skipped.append(AuditedFile(path=str(path), status=FileStatus.SKIPPED,
                                                   message=f"beyond the depth bound ({bounds.max_depth})"))
                    else:
                        stack.append((path, depth + 1))
                elif stat.S_ISREG(mode):
                    if count >= bounds.max_files:
                        skipped.append(AuditedFile(path=str(folder), status=FileStatus.SKIPPED,
                                                   message=f"file bound ({bounds.max_files}) reached; the rest of "
                                                   "this folder was not audited"))
                        return
                    count += 1
                    yield path
                else:
                    skipped.append(AuditedFile(path=str(path), status=FileStatus.SKIPPED,
                                               message="not a regular file (FIFO, socket, device): never opened"))


def _run(module: ModuleType, source: Source, ctx: Context) -> Parsed:
    try:
        return module.audit(source, ctx)  # type: ignore[no-any-return]
    except ConfigError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise ConfigError(FileStatus.MALFORMED, f"too deeply nested to parse ({exc.__class__.__name__})") from exc
    except Exception as exc:  # noqa: BLE001 - a parser's surprise is one file's status, never a traceback
        raise ConfigError(FileStatus.MALFORMED, f"could not be parsed ({exc.__class__.__name__})") from exc


def audit_paths(paths: list[Path], bounds: AuditBounds | None = None) -> AuditResult:
    bounds = bounds or AuditBounds()
    started = datetime.now(UTC)
    roots = [Path(os.path.realpath(p)) for p in paths]
    ctx = Context(roots=roots, bounds=bounds)
    files: list[AuditedFile] = []
    skipped: list[AuditedFile] = []
    findings: dict[str, list[Finding]] = {}
    included: set[str] = set()
    s3_sets: dict[str, list[s3docs.Doc]] = {}
    orthanc_sets: dict[str, list[tuple[AuditedFile, Source]]] = {}
    fragments: dict[str, list[tuple[AuditedFile, Source]]] = {}
    for path in files_under(paths, bounds, skipped):
        record = AuditedFile(path=str(path), status=FileStatus.AUDITED)
        files.append(record)
        ctx.include_budget = MAX_INCLUDED_FILES
        try:
            source = ctx.read(path)
            module = recognise(path.name, source.text, tuple(p.name for p in path.parents))
            if module is None and orthanc.fragment(source.text):
                fragments.setdefault(str(path.parent), []).append((record, source))
                continue
            if module is None:
                raise ConfigError(FileStatus.UNKNOWN, "not a configuration phiwatch recognises")
            record.kind = module.KIND
            if module is orthanc:
                orthanc_sets.setdefault(str(path.parent), []).append((record, source))
                continue
            if module is s3docs:
                doc = s3docs.read_doc(source)
                s3_sets.setdefault(str(path.parent), []).append(doc)
                record.parser = "phiwatch (S3 policy evaluator)"
                continue
            parsed = _run(module, source, ctx)
        except ConfigError as exc:
            record.status, record.message = exc.status, exc.message
            continue
        record.parser = parsed.parser
        record.includes = parsed.includes
        if parsed.notes:
            record.message = summarise(parsed.notes)
        for finding in parsed.findings:
            where = finding.location.path if finding.location else str(path)
            if where != str(path):
                included.add(where)
        findings[str(path)] = parsed.findings
    for folder, members in orthanc_sets.items():
        _orthanc_folder(ctx, members, fragments.pop(folder, []), findings)
    for pending in fragments.values():
        for record, _ in pending:
            record.status, record.message = FileStatus.UNKNOWN, "JSON like an Orthanc fragment, but no Orthanc " \
                "configuration beside it"
    for folder, docs in s3_sets.items():
        try:
            found = s3docs.audit_set(Path(folder).name, docs)
        except Exception as exc:  # noqa: BLE001
            for record in files:
                if record.kind == s3docs.KIND and str(Path(record.path).parent) == folder:
                    record.status = FileStatus.MALFORMED
                    record.message = f"S3 documents could not be judged ({exc.__class__.__name__})"
            continue
        findings[folder] = found
    kinds = {record.path: record.kind for record in files}
    for record in files + skipped:
        parent = ctx.included_by.get(os.path.realpath(record.path))
        if parent is not None and parent != record.path:
            included.add(record.path)
            record.status, record.message = FileStatus.AUDITED, f"read as an include of {parent}"
            record.kind = record.kind or kinds.get(parent)
    result: list[Finding] = []
    for key, found in findings.items():
        if key in included:
            continue  # read as part of the file that includes it; its findings are there
        result.extend(found)
    per_path = Counter(f.location.path for f in result if f.location)
    for record in files:
        record.findings = per_path.get(record.path, 0)
    result = _unique(result)
    audit = AuditResult(
        audit=AuditInfo(id=f"audit-{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}", start=started,
                        end=datetime.now(UTC), version=__version__, paths=[str(p) for p in paths], bounds=bounds),
        files=counted(files + skipped, {str(p) for p in paths}, [Path(str(p)) for p in paths]),
        findings=result,
    )
    for source in ctx.sources:
        if source.secrets or source.secret_lines:
            audit._secrets[str(source.path)] = (frozenset(source.secrets), frozenset(source.secret_lines))
    return audit


def summarise(notes: list[str], shown: int = 4) -> str:
    """Distinct notes, bounds first, at most `shown` of them and a count of the rest."""
    bounds = ("include bound", "include depth")
    distinct = sorted(dict.fromkeys(notes), key=lambda note: not note.startswith(bounds))
    text = "; ".join(distinct[:shown])
    return (text + (f"; and {len(distinct) - shown} more notes" if len(distinct) > shown else ""))[:600]


def _orthanc_folder(ctx: Context, members: list[tuple[AuditedFile, Source]],
                    extra: list[tuple[AuditedFile, Source]], findings: dict[str, list[Finding]]) -> None:
    """Orthanc reads every JSON file of its configuration folder as one configuration."""
    group = members + extra
    for record, _ in extra:
        record.kind, record.message = orthanc.KIND, "merged with the folder's Orthanc configuration"
    try:
        parsed = _run(orthanc, group[0][1], ctx) if len(group) == 1 else orthanc.audit_group(
            [source for _, source in group], ctx)
    except ConfigError as exc:
        for record, _ in group:
            record.status, record.message = exc.status, exc.message
        return
    except Exception as exc:  # noqa: BLE001 - one folder's status, never a traceback
        for record, _ in group:
            record.status, record.message = FileStatus.MALFORMED, f"could not be parsed ({exc.__class__.__name__})"
        return
    for record, _ in group:
        record.parser = parsed.parser
    findings[group[0][0].path] = parsed.findings


def _unique(found: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, int | None, str, str, int]] = set()
    out: list[Finding] = []
    for f in found:
        key = (f.check_id, f.location.path if f.location else "", f.location.line if f.location else None,
               f.evidence, f.host, f.port)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
