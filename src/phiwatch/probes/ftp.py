"""FTP probe: anonymous login, then a bounded walk that proves medical files without keeping them.

stdlib ftplib runs in the engine's thread pool. The walk is bounded in depth, entries per
directory, files sniffed (overall and per directory), bytes read per file (the data
connection is closed and the transfer aborted once the budget is read), total bytes and
wall time; a watchdog shuts the sockets down when the wall time is spent, so a dripping
peer cannot hold a thread. Symbolic links are never followed; directory loops are
detected by normalised path and by a listing identical to an ancestor's.

Facts carry counts and PHI attribute names only: never a file or folder name (they carry
patient names in medical shares) and never server text that may quote one.
"""

from __future__ import annotations

import errno
import ftplib
import hashlib
import posixpath
import re
import socket
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

from ..content import kind_from_name, sniff
from ..engine import Engine
from ..models import FileKindCount, ProbeStatus, RepositoryFacts, ShareFacts
from ..text import sanitize

NAME = "ftp"
DEFAULT_PORTS = (21,)
MEDICAL_KINDS = ("dicom", "dicomdir", "hl7", "x12")
LOGINS = (("anonymous", "phiwatch@"), ("ftp", "phiwatch@"))
MAX_LINE = 4096  # listing lines longer than this are skipped, never buffered whole
MAX_REPLY = 65_536  # bytes of one (multi-line) control reply


@dataclass(frozen=True)
class FtpOptions:
    max_depth: int = 6
    max_entries: int = 2_000  # per directory
    max_files: int = 200  # files sniffed in all
    per_directory: int = 25  # files sniffed in one directory; the rest are counted by name
    file_budget: int = 16_384  # bytes read from the start of each file
    total_bytes: int = 8 * 1024 * 1024  # listings and file heads, per host
    walk_time: float = 45.0  # wall time of the whole session


@dataclass
class FtpOutcome:
    status: ProbeStatus
    facts: RepositoryFacts
    detail: str | None = None


class _Stop(Exception):
    """A bound of the walk was reached: stop walking, keep what was seen."""


class _BoundedFTP(ftplib.FTP):
    """ftplib with a cap on multi-line replies (a hostile server could send them forever)."""

    def getmultiline(self) -> str:
        line = self.getline()
        if line[3:4] != "-":
            return line
        code, total, lines = line[:3], len(line), [line]
        while True:
            nextline = self.getline()
            total += len(nextline)
            if total > MAX_REPLY:
                raise ftplib.error_proto("reply too long")
            lines.append(nextline)
            if nextline[:3] == code and nextline[3:4] != "-":
                return "\n".join(lines)


@dataclass
class _Entry:
    kind: str  # "d", "f", "l" or "?"
    name: str
    size: int | None = None
    target: str | None = None


@dataclass
class _Walk:
    ftp: _BoundedFTP
    options: FtpOptions
    deadline: float
    timeout: float
    share: ShareFacts = field(default_factory=lambda: ShareFacts(name="/", readable=False))
    total: int = 0
    sniffed: int = 0
    visited: set[str] = field(default_factory=set)
    counts: dict[str, FileKindCount] = field(default_factory=dict)
    phi: dict[str, set[str]] = field(default_factory=dict)

    # --- data transfers -----------------------------------------------------------------

    def _remaining_time(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Stop("time")
        return left

    def _chunks(self, conn: socket.socket, limit: int) -> Generator[bytes, None, bool]:
        """Bytes from a data connection, at most `limit`, within the deadline.

        Returns True when the peer ended the transfer (the whole file or listing came).
        """
        got = 0
        while got < limit:
            conn.settimeout(min(self.timeout, self._remaining_time()))
            chunk = conn.recv(min(65_536, limit - got))
            if not chunk:
                return True
            got += len(chunk)
            self.total += len(chunk)
            yield chunk
        conn.settimeout(0.2)
        try:  # at the budget: is there more? (a file exactly the budget long is complete)
            extra = conn.recv(1)
        except OSError:
            return False
        self.total += len(extra)
        return not extra

    def _transfer(self, command: str, limit: int) -> Generator[bytes, None, None]:
        """RETR, LIST or MLSD; the data connection is closed and the transfer ended or aborted."""
        conn = self.ftp.transfercmd(command)
        complete = False
        try:
            complete = yield from self._chunks(conn, limit)
        finally:
            _close(conn)
            self._finish(complete)

    def _finish(self, complete: bool) -> None:
        """After the data connection is closed: read the transfer's end, abort it if cut short."""
        if complete:
            try:
                self.ftp.voidresp()
            except (ftplib.error_temp, ftplib.error_perm, ftplib.error_reply):
                pass  # 426/451 after a complete read: the data is what it is
            return
        try:
            self.ftp.abort()
        except (ftplib.error_proto, ftplib.error_temp, ftplib.error_perm, ftplib.error_reply):
            pass  # servers answer ABOR with 225, 226, 426, 500 ... or with two replies
        self._sync()

    def _sync(self) -> None:
        """Read stale replies (a second answer to ABOR) up to the answer to a NOOP."""
        self.ftp.putcmd("NOOP")
        for _ in range(4):
            if self.ftp.getmultiline().startswith("200"):
                return
        raise ftplib.error_proto("control connection out of step")

    # --- listings ----------------------------------------------------------------------

    def _list(self, path: str, mlsd: bool) -> tuple[list[_Entry], bool]:
        """Entries of one directory (at most max_entries); True when the listing was cut."""
        entries: list[_Entry] = []
        budget = self.options.total_bytes - self.total
        if budget <= 0:
            raise _Stop("bytes")
        limit = min(budget, self.options.max_entries * 512 + 65_536)
        cut = False
        pending = b""
        command = f"MLSD {path}" if mlsd else f"LIST {path}"
        transfer = self._transfer(command, limit)
        try:
            for chunk in transfer:
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                if len(pending) > MAX_LINE:
                    pending = b""  # an absurd line: dropped (its tail becomes one bad line)
                for raw in lines:
                    entry = _parse_mlsd(raw) if mlsd else _parse_list(raw)
                    if entry is not None:
                        entries.append(entry)
                    if len(entries) >= self.options.max_entries:
                        cut = True
                        break
                if cut:
                    break
        finally:
            transfer.close()  # the generator's finally closes the socket and aborts
        if not cut:
            entry = _parse_mlsd(pending) if mlsd else _parse_list(pending)
            if entry is not None:
                entries.append(entry)
            cut = self.total >= self.options.total_bytes
        return entries, cut

    # --- the walk ------------------------------------------------------------------------

    def run(self, mlsd: bool) -> None:
        share = self.share
        stack: list[tuple[str, int, tuple[str, ...]]] = [("/", 0, ())]
        try:
            while stack:
                path, depth, ancestors = stack.pop()
                self._remaining_time()
                try:
                    entries, cut = self._list(path, mlsd)
                except ftplib.error_perm:  # 550: this folder is not listable; the others may be
                    continue
                share.readable = True
                share.directories += 1
                share.entries += len(entries)
                share.limited |= cut
                signature = _signature(entries)
                if signature in ancestors:  # a server that follows links shows the same folder again
                    share.loops += 1
                    continue
                subdirs = self._files(path, entries)
                for entry in subdirs:
                    if entry.kind == "l":  # never followed; a link to this folder or above is a loop
                        if _is_ancestor(_target(path, entry.target), path):
                            share.loops += 1
                        continue
                    child = posixpath.normpath(posixpath.join(path, entry.name))
                    if child in self.visited:
                        share.loops += 1
                        continue
                    if depth + 1 > self.options.max_depth:
                        share.limited = True
                        continue
                    self.visited.add(child)
                    stack.append((child, depth + 1, (*ancestors, signature)))
        except _Stop:
            share.limited = True

    def _files(self, path: str, entries: list[_Entry]) -> list[_Entry]:
        """Sniff or count this directory's files; return its subdirectories and links."""
        self.visited.add(posixpath.normpath(path))
        folders = [e for e in entries if e.kind in ("d", "l")]
        files = [e for e in entries if e.kind == "f"]
        rel = path.strip("/")
        hinted = [(e, kind_from_name(f"{rel}/{e.name}" if rel else e.name)) for e in files]
        hinted.sort(key=lambda pair: pair[1] is None)  # files whose names suggest a kind first
        here = 0
        for entry, hint in hinted:
            can_sniff = (
                here < self.options.per_directory
                and self.sniffed < self.options.max_files
                and self.total < self.options.total_bytes
                and entry.size != 0
            )
            if can_sniff:
                here += 1
                self._sniff(path, entry)
            elif hint in MEDICAL_KINDS:
                self.counts.setdefault(hint, FileKindCount()).estimated += 1
                if entry.size != 0:
                    self.share.limited = True
        return folders

    def _sniff(self, path: str, entry: _Entry) -> None:
        budget = self.options.file_budget
        limit = min(budget, max(0, self.options.total_bytes - self.total))
        data = bytearray()
        try:
            transfer = self._transfer(f"RETR {posixpath.join(path, entry.name)}", limit)
            try:
                for chunk in transfer:
                    data += chunk
            finally:
                transfer.close()
        except ftplib.error_perm:
            return  # 550: unreadable for anonymous; nothing was read
        except ValueError:
            return  # a name with a line break cannot be sent
        self.sniffed += 1
        self.share.files_sniffed += 1
        self.share.bytes_read += len(data)
        found = sniff(bytes(data), entry.name, budget=budget, complete=len(data) < limit)
        if found.kind in MEDICAL_KINDS:
            self.counts.setdefault(found.kind, FileKindCount()).verified += 1
            self.phi.setdefault(found.kind, set()).update(found.phi_attributes)

    def facts(self) -> ShareFacts:
        share = self.share
        share.files = {kind: self.counts[kind] for kind in MEDICAL_KINDS if kind in self.counts}
        share.phi_attributes = {kind: sorted(names) for kind, names in sorted(self.phi.items()) if names}
        return share


_UNIX = re.compile(
    r"^(?P<type>[-dlbcpsD])[-rwxsStTlL]{9}[.+@]?\s+\d+\s+(?:\S+\s+){1,2}?(?P<size>\d+)\s+"
    r"(?P<date>[A-Za-z]{3}\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4}))\s(?P<name>.+)$"
)
_DOS = re.compile(
    r"^\d{1,2}-\d{1,2}-\d{2,4}\s+\d{1,2}:\d{2}\s*(?:[AaPp][Mm])?\s+(?P<size><DIR>|\d+)\s+(?P<name>.+)$"
)


def _parse_list(raw: bytes) -> _Entry | None:
    """One line of a LIST answer: unix `ls -l` style or Windows/IIS DOS style; None if neither."""
    if len(raw) > MAX_LINE:
        return None
    line = raw.decode("latin-1").rstrip("\r")
    match = _UNIX.match(line)
    if match:
        kind = {"d": "d", "D": "d", "-": "f", "l": "l"}.get(match["type"], "?")
        name, target = match["name"], None
        if kind == "l" and " -> " in name:
            name, target = name.split(" -> ", 1)
        return _entry(kind, name, int(match["size"]), target)
    match = _DOS.match(line)
    if match:
        size = match["size"]
        return _entry("d" if size == "<DIR>" else "f", match["name"], None if size == "<DIR>" else int(size))
    return None


def _parse_mlsd(raw: bytes) -> _Entry | None:
    if len(raw) > MAX_LINE:
        return None
    line = raw.decode("latin-1").rstrip("\r")
    facts_text, sep, name = line.partition(" ")
    if not sep:
        return None
    facts = {}
    for item in facts_text.split(";"):
        key, _, value = item.partition("=")
        facts[key.strip().lower()] = value.strip()
    kind_text = facts.get("type", "").lower()
    if kind_text in ("cdir", "pdir"):
        return None
    kind = {"dir": "d", "file": "f"}.get(kind_text, "l" if "symlink" in kind_text else "?")
    size = facts.get("size", "")
    return _entry(kind, name, int(size) if size.isdigit() else None, None)


def _entry(kind: str, name: str, size: int | None, target: str | None = None) -> _Entry | None:
    if kind == "?" or name in ("", ".", "..") or "/" in name or "\n" in name or "\r" in name:
        return None
    return _Entry(kind=kind, name=name, size=size, target=target)


def _target(path: str, target: str | None) -> str | None:
    if not target:
        return None
    return posixpath.normpath(posixpath.join(path, target))


def _is_ancestor(target: str | None, path: str) -> bool:
    if target is None:
        return False
    return target == "/" or path == target or path.startswith(target.rstrip("/") + "/")


def _signature(entries: list[_Entry]) -> str:
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: (e.kind, e.name)):
        digest.update(f"{entry.kind}\0{entry.name}\0{entry.size}\n".encode("latin-1", "replace"))
    return digest.hexdigest()


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


# --- the session -------------------------------------------------------------------------


def _code(exc: BaseException) -> str:
    """The reply code of an ftplib error, never its text (it may quote a file name)."""
    text = str(exc)[:3]
    return text if text.isdigit() else "?"


def _failure(exc: BaseException) -> tuple[ProbeStatus, str]:
    if isinstance(exc, ConnectionRefusedError):
        return ProbeStatus.REFUSED, "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return ProbeStatus.TIMEOUT, "no answer in time"
    if isinstance(exc, EOFError):
        return ProbeStatus.RESET, "peer closed the connection"
    if isinstance(exc, ftplib.error_temp):
        return ProbeStatus.REJECTED, f"server refused the session ({_code(exc)})"
    if isinstance(exc, ftplib.error_perm):
        return ProbeStatus.REJECTED, f"server refused ({_code(exc)})"
    if isinstance(exc, ftplib.Error | UnicodeError | ValueError):
        return ProbeStatus.PROTOCOL_ERROR, "reply is not FTP"
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ProbeStatus.UNREACHABLE, "host or network unreachable"
        return ProbeStatus.RESET, "connection reset"
    return ProbeStatus.ERROR, f"probe failed ({type(exc).__name__})"


class _Session:
    def __init__(self, host: str, port: int, options: FtpOptions, timeout: float, wall: float) -> None:
        self.host, self.port, self.options, self.timeout = host, port, options, timeout
        self.deadline = time.monotonic() + wall
        self.facts = RepositoryFacts(access="not-attempted")
        self.ftp: _BoundedFTP | None = None
        self.expired = False

    def kill(self) -> None:
        """Watchdog: the wall time is spent; wake any blocked read by shutting sockets down."""
        self.expired = True
        ftp = self.ftp
        if ftp is not None and ftp.sock is not None:
            try:
                ftp.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _connect(self) -> _BoundedFTP:
        ftp = _BoundedFTP(timeout=self.timeout, encoding="latin-1")
        self.ftp = ftp
        ftp.connect(self.host, self.port, timeout=self.timeout)
        if self.facts.server is None:
            self.facts.server = sanitize(ftp.getwelcome() or "", 120)
        return ftp

    def run(self) -> FtpOutcome:
        try:
            return self._run()
        except Exception as exc:  # every failure ends in a status, never a traceback
            status, detail = _failure(exc)
            if self.expired:
                status, detail = ProbeStatus.TIMEOUT, "session wall time spent"
            return FtpOutcome(status, self.facts, detail)
        finally:
            if self.ftp is not None:
                self.ftp.close()

    def _run(self) -> FtpOutcome:
        ftp = self._connect()
        features = self._features(ftp)
        user = self._login(ftp)
        ftp = self.ftp or ftp  # a new session when the server hung up after a refusal
        if user is None:
            self.facts.access = "denied"
            self.facts.shares = [ShareFacts(name="/", auth_required=True)]
            return FtpOutcome(ProbeStatus.REJECTED, self.facts, "anonymous login refused")
        self.facts.access = "anonymous"
        self.facts.login = user
        mlsd = "MLSD" in features
        self.facts.listing = "mlsd" if mlsd else "list"
        walk = _Walk(ftp, self.options, self.deadline, self.timeout)
        detail = None
        try:
            walk.run(mlsd)
        except Exception as exc:  # the session broke mid-walk: keep what was seen
            status, detail = _failure(exc)
            if self.expired:
                detail = "session wall time spent"
            walk.share.limited = True
            walk.share.error = detail
        share = walk.facts()
        self.facts.shares = [share]
        if any(c.verified or c.estimated for c in share.files.values()):
            return FtpOutcome(ProbeStatus.EXPOSED, self.facts, detail)
        if not share.readable and detail is not None:
            self.facts.error = detail
        return FtpOutcome(ProbeStatus.OPEN, self.facts, detail)

    def _features(self, ftp: _BoundedFTP) -> set[str]:
        try:
            reply = ftp.sendcmd("FEAT")
        except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply):
            self.facts.tls_offered = False
            return set()
        features = {line.strip().upper() for line in reply.splitlines()[1:-1]}
        self.facts.tls_offered = any(f.startswith("AUTH") and "TLS" in f for f in features)
        return {f.split(" ", 1)[0] for f in features}

    def _login(self, ftp: _BoundedFTP) -> str | None:
        for user, password in LOGINS:
            try:
                ftp.login(user, password)
            except ftplib.error_perm:
                continue
            except EOFError:  # some servers hang up after a refusal: try again on a new session
                ftp.close()
                ftp = self._connect()
                continue
            return user
        return None


async def probe(engine: Engine, host: str, port: int, options: FtpOptions) -> FtpOutcome:
    """Probe one FTP service; never raises."""
    timeout = engine.limits.timeout
    wall = max(1.0, min(options.walk_time, engine.limits.probe_time - timeout))
    session = _Session(host, port, options, timeout, wall)
    await engine.hosts.acquire(host)
    watchdog = threading.Timer(wall + timeout, session.kill)
    watchdog.daemon = True
    try:
        await engine.rate.wait()
        engine.connections_opened += 1
        watchdog.start()
        return await engine.run_blocking(session.run)
    finally:
        watchdog.cancel()
        engine.hosts.release(host)
