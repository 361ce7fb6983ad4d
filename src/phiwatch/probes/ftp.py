"""FTP probe: anonymous login, then a bounded walk that proves medical files without keeping them.

stdlib ftplib runs in the engine's thread pool (probes.blocking: a watchdog shuts the
sockets down when the wall time is spent, so a dripping peer cannot hold a thread). The
walk and its bounds are probes.walk's; this module lists folders (LIST, or MLSD where
offered) and reads file heads (the data connection is closed and the transfer aborted
once the per-file budget is read).

Facts carry counts and PHI attribute names only: never a file or folder name (they carry
patient names in medical shares) and never server text that may quote one.
"""

from __future__ import annotations

import ftplib
import re
import select
import socket
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine import Engine
from ..models import ProbeStatus, RepositoryFacts, ShareFacts
from ..peertext import peer_text
from ..sessions import BlockingSession
from .blocking import failed, os_failure, walk_session
from .outcome import Peer
from .walk import (
    BoundedWalk,
    Budget,
    Entry,
    Inexpressible,
    Outcome,
    Unreadable,
    WalkLimits,
    entry,
    has_medical_files,
)

if TYPE_CHECKING:
    from .options import ProbeOptions

LOGINS = (("anonymous", "phiwatch@"), ("ftp", "phiwatch@"))
MAX_LINE = 4096  # listing lines longer than this are skipped, never buffered whole
MAX_REPLY = 65_536  # bytes of one (multi-line) control reply
ABORT_WAIT = 1.0  # seconds a server may take to end a transfer whose data connection was closed
MAX_REOPEN = 20  # new sessions per walk, for servers that cannot be brought back in step


class _BoundedFTP(ftplib.FTP):
    """ftplib reading its control connection itself: bounded replies, and waits that end in time.

    ftplib's own reader (a file over the socket) cannot tell "no reply yet" from a broken
    connection once a read timed out; this one keeps its own buffer over the raw socket, so a
    bounded wait for a reply that never comes (a server without ABOR) leaves it usable. Its
    control and (passive) data connections are opened by the engine's session.
    """

    pending = b""

    def getline(self) -> str:
        while b"\n" not in self.pending:
            if len(self.pending) > self.maxline:
                raise ftplib.Error("control line too long")
            if self.sock is None:
                raise EOFError
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError
            self.pending += chunk
        raw, _, self.pending = self.pending.partition(b"\n")
        if len(raw) > self.maxline:
            raise ftplib.Error("control line too long")
        return raw.rstrip(b"\r").decode(self.encoding)

    def __init__(self, session: BlockingSession, timeout: float) -> None:
        super().__init__(timeout=timeout, encoding="latin-1")
        self.session = session

    def connect(self, host: str = "", port: int = 0, timeout: float = -999, source_address: object = None) -> str:
        self.host, self.port = host or self.host, port or self.port
        self.sock = self.session.connect(self.port, self.timeout)
        self.af = self.sock.family
        self.file = None  # replies are read from the socket itself (getline)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        """Passive transfers only; the data connection goes to the control connection's host."""
        _, port = self.makepasv()  # ftplib keeps the control peer's address (never the one announced)
        conn = self.session.connect(port, self.timeout)
        try:
            if rest is not None:
                self.sendcmd(f"REST {rest}")
            resp = self.sendcmd(cmd)
            if resp[0] == "2":  # some servers answer 200 before their 150
                resp = self.getresp()
            if resp[0] != "1":
                raise ftplib.error_reply(resp)
        except BaseException:
            conn.close()
            raise
        return conn, ftplib.parse150(resp) if resp[:3] == "150" else None

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

    def reply_within(self, seconds: float) -> str | None:
        """The next reply, or None when none began within `seconds` (the connection stays usable)."""
        if b"\n" not in self.pending and self.sock is not None:
            if not select.select([self.sock], [], [], max(0.0, seconds))[0]:
                return None
        return self.getmultiline()


@dataclass
class FtpTree:
    """The anonymous root as a walk.Tree: LIST or MLSD listings, RETR cut at the byte budget."""

    ftp: _BoundedFTP
    budget: Budget
    timeout: float
    mlsd: bool
    connect: Callable[[], _BoundedFTP] | None = None  # a new logged-in session in binary mode
    reopened: int = 0

    def _chunks(self, conn: socket.socket, limit: int) -> Generator[bytes, None, bool]:
        """Bytes from a data connection, at most `limit`, within the deadline.

        Returns True when the peer ended the transfer (the whole file or listing came).
        """
        got = 0
        while got < limit:
            conn.settimeout(min(self.timeout, self.budget.remaining_time()))
            chunk = conn.recv(min(65_536, limit - got))
            if not chunk:
                return True
            got += len(chunk)
            self.budget.charge(len(chunk))
            yield chunk
        conn.settimeout(0.2)
        try:  # at the budget: is there more? (a file exactly the budget long is complete)
            extra = conn.recv(1)
        except OSError:
            return False
        self.budget.charge(len(extra))
        return not extra

    def _transfer(self, command: str, limit: int) -> Generator[bytes, None, bool]:
        """RETR, LIST or MLSD; the data connection is closed and the transfer ended or aborted."""
        try:
            conn = self.ftp.transfercmd(command)
        except ftplib.error_perm as exc:  # 550: not readable for anonymous; nothing was read
            raise Unreadable(_code(exc)) from None
        complete = False
        try:
            complete = yield from self._chunks(conn, limit)
        finally:
            _close(conn)
            self._finish(complete)
        return complete

    def _finish(self, complete: bool) -> None:
        """After the data connection is closed: read the transfer's end, abort it in band if cut short.

        Closing the data connection is the abort most servers understand: they answer 426 (or
        226 when the file was already sent). A server still silent after a short wait gets a plain
        `ABOR` on the control connection (no TCP urgent data, no Telnet IP: servers lose part of
        those and then wait on a garbled command). A NOOP then proves the control connection is
        back in step; when it is not (a server without ABOR), the session is opened again.
        """
        ftp = self.ftp
        if complete:
            try:
                ftp.voidresp()
            except (ftplib.error_temp, ftplib.error_perm, ftplib.error_reply):
                pass  # 426/451 after a complete read: the data is what it is
            return
        try:
            reply = ftp.reply_within(min(ABORT_WAIT, self.timeout, self.budget.remaining_time()))
            if reply is None:
                ftp.putcmd("ABOR")
            self._sync()
        except (ftplib.Error, OSError, EOFError):
            self.reopen()

    def _sync(self) -> None:
        """Read stale replies (the transfer's end, ABOR's answers) up to the answer to a NOOP."""
        ftp = self.ftp
        ftp.putcmd("NOOP")
        for _ in range(6):
            reply = ftp.reply_within(min(self.timeout, self.budget.remaining_time()))
            if reply is None:
                break
            if reply.startswith("200"):
                return
        raise ftplib.error_proto("control connection out of step")

    def reopen(self) -> None:
        """A new session (login, binary mode) when the old one is out of step; bounded per walk."""
        self.reopened += 1
        if self.reopened > MAX_REOPEN or self.connect is None:
            raise ftplib.error_proto("control connection out of step")
        self.ftp.close()
        self.ftp = self.connect()

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        entries: list[Entry] = []
        limit = min(self.budget.bytes_left(), max_entries * 512 + 65_536)
        cut = False
        pending = b""
        received = 0
        parse = _parse_mlsd if self.mlsd else _parse_list
        transfer = self._transfer(f"MLSD {path}" if self.mlsd else f"LIST {path}", limit)
        try:
            for chunk in transfer:
                received += len(chunk)
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                if len(pending) > MAX_LINE:
                    pending = b""  # an absurd line: dropped (its tail becomes one bad line)
                for raw in lines:
                    item = parse(raw)
                    if item is not None:
                        entries.append(item)
                    if len(entries) >= max_entries:
                        cut = True
                        break
                if cut:
                    break
        finally:
            transfer.close()  # the generator's finally closes the socket and aborts
        if not cut:
            item = parse(pending)
            if item is not None:
                entries.append(item)
            cut = received >= limit or self.budget.bytes_left() <= 0  # the listing's byte bound ended it
        return entries, cut

    def head(self, path: str, entry: Entry, limit: int) -> tuple[bytes, bool]:
        data = bytearray()
        transfer = self._transfer(f"RETR {path}", limit)
        try:
            for chunk in transfer:
                data += chunk
        except ValueError:  # a name with a line break cannot be sent
            raise Inexpressible("name") from None
        finally:
            transfer.close()
        return bytes(data), len(data) < limit


_UNIX = re.compile(
    r"^(?P<type>[-dlbcpsD])[-rwxsStTlL]{9}[.+@]?\s+\d+\s+(?:\S+\s+){1,2}?(?P<size>\d+)\s+"
    r"(?P<date>[A-Za-z]{3}\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4}))\s(?P<name>.+)$"
)
_DOS = re.compile(
    r"^\d{1,2}-\d{1,2}-\d{2,4}\s+\d{1,2}:\d{2}\s*(?:[AaPp][Mm])?\s+(?P<size><DIR>|\d+)\s+(?P<name>.+)$"
)


def _parse_list(raw: bytes) -> Entry | None:
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
        return entry(kind, name, int(match["size"]), target)
    match = _DOS.match(line)
    if match:
        size = match["size"]
        return entry("d" if size == "<DIR>" else "f", match["name"], None if size == "<DIR>" else int(size))
    return None


def _parse_mlsd(raw: bytes) -> Entry | None:
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
    return entry(kind, name, int(size) if size.isdigit() else None, None)


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
    if isinstance(exc, EOFError):
        return ProbeStatus.RESET, "peer closed the connection"
    if isinstance(exc, ftplib.error_temp):
        return ProbeStatus.REJECTED, f"server refused the session ({_code(exc)})"
    if isinstance(exc, ftplib.error_perm):
        return ProbeStatus.REJECTED, f"server refused ({_code(exc)})"
    if isinstance(exc, ftplib.Error | UnicodeError | ValueError):
        return ProbeStatus.PROTOCOL_ERROR, "reply is not FTP"
    return os_failure(exc)


class _Session:
    def __init__(self, conn: BlockingSession, port: int, limits: WalkLimits, timeout: float, wall: float) -> None:
        self.conn, self.host, self.port, self.timeout = conn, conn.host, port, timeout
        self.budget = Budget.start(limits, wall)
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
        ftp = _BoundedFTP(self.conn, self.timeout)
        self.ftp = ftp
        ftp.connect(self.host, self.port, timeout=self.timeout)
        if self.facts.server is None:
            self.facts.server = peer_text(ftp.getwelcome() or None)
        return ftp

    def run(self) -> Outcome:
        try:
            return self._run()
        except Exception as exc:  # every failure ends in a status, never a traceback
            return failed(exc, _failure, self.facts, self.expired)
        finally:
            if self.ftp is not None:
                self.ftp.close()

    def _run(self) -> Outcome:
        features = self._features(self._connect())
        user = self._login(self.ftp or self._connect())  # a new connection when FEAT broke the first
        ftp = self.ftp  # the one _login ended on (a new one when the server hung up after a refusal)
        assert ftp is not None
        if user is None:
            self.facts.access = "denied"
            self.facts.shares = [ShareFacts(name="/", auth_required=True)]
            return Outcome(ProbeStatus.REJECTED, self.facts, "anonymous login refused")
        self.facts.access = "anonymous"
        self.facts.login = user
        self._binary(ftp)
        mlsd = bool(features & {"MLST", "MLSD"})  # RFC 3659 announces MLST; MLSD comes with it
        self.facts.listing = "mlsd" if mlsd else "list"
        tree = FtpTree(ftp, self.budget, self.timeout, mlsd, lambda: self._again(user))
        walk = BoundedWalk(tree, self.budget)
        detail = walk.run_keeping(lambda exc: "session wall time spent" if self.expired else _failure(exc)[1])
        share = walk.facts()
        self.facts.shares = [share]
        if has_medical_files([share]):
            return Outcome(ProbeStatus.EXPOSED, self.facts, detail)
        if not share.readable and detail is not None:
            self.facts.error = detail
        return Outcome(ProbeStatus.OPEN, self.facts, detail)

    def _features(self, ftp: _BoundedFTP) -> set[str]:
        """What FEAT announces. A hostile answer (a line too long, a list that never ends, a hang-up)
        is not the end of the session: the login goes on a new connection, features unknown."""
        try:
            reply = ftp.sendcmd("FEAT")
        except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply):
            self.facts.tls_offered = False
            return set()
        except (ftplib.Error, EOFError, OSError, UnicodeError):
            if self.expired:
                raise
            ftp.close()
            self.ftp = None
            return set()
        features = {line.strip().upper() for line in reply.splitlines()[1:-1]}
        self.facts.tls_offered = any(f.startswith("AUTH") and "TLS" in f for f in features)
        return {f.split(" ", 1)[0] for f in features}

    def _binary(self, ftp: _BoundedFTP) -> bool:
        """TYPE I before any transfer: in ASCII mode servers rewrite line ends inside files."""
        try:
            ftp.voidcmd("TYPE I")
        except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply):
            return False
        return True

    def _again(self, user: str) -> _BoundedFTP:
        """A new session for the walk, as the first was opened: same login, binary mode."""
        ftp = self._connect()
        ftp.login(user, dict(LOGINS)[user])
        self._binary(ftp)
        return ftp

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


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> Outcome:
    """Probe one FTP service; never raises."""
    return await walk_session(engine, peer.host, probe_options.files.limits, lambda conn, limits, wall:
                              _Session(conn, peer.port, limits, engine.limits.timeout, wall))
