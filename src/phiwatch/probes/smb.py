"""SMB probe: null and guest sessions, share enumeration, then a bounded walk of each disk share.

impacket runs in the engine's thread pool (probes.blocking). Facts: the dialect spoken,
whether an SMB1-only negotiate is accepted (on its own connection), whether the server
requires signing, which of a null session ('' / '') or a guest session (user guest, blank
password) lists the shares (srvsvc NetrShareEnum), and per disk share whether it is readable
and what the walk of probes.walk counted in it. Folders are listed in bounded batches
(SMB2 QUERY_DIRECTORY); file heads are read from offset 0 up to the per-file budget.

Every connection impacket opens goes through its connection hook
(`NetBIOSTCPSession._setup_connection`) to the engine's session of this thread (phiwatch.sessions):
host slots, rate, byte budget, and a watchdog that reaches the sockets even while impacket is
inside a constructor. Bytes received are also counted per packet;
past the walk's byte budget (plus room for the protocol's own exchanges) the session ends.

Facts carry counts, share names (sanitised) and PHI attribute names only: never a file or
folder name and never server text that may quote one (only NT status codes).
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from impacket import nmb, nt_errors, smb, smb3
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.smb3structs import (
    FILE_DIRECTORY_FILE,
    FILE_FULL_DIRECTORY_INFORMATION,
    FILE_READ_ATTRIBUTES,
    SMB2_DIALECT_30,
    SMB2_NEGOTIATE_SIGNING_REQUIRED,
    SMB2Negotiate_Response,
    SMB2Packet,
)
from impacket.smbconnection import (
    FILE_NON_DIRECTORY_FILE,
    FILE_READ_DATA,
    FILE_SHARE_DELETE,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    SMB_DIALECT,
    SessionError,
    SMBConnection,
)

from ..engine import Engine
from ..models import ProbeStatus, RepositoryFacts, ShareFacts
from ..peertext import place_name
from ..sessions import BlockingSession, current
from ..text import sanitize
from .blocking import failed, walk_session
from .outcome import Peer
from .walk import (
    BoundedWalk,
    Budget,
    Entry,
    Outcome,
    Stop,
    Unreadable,
    WalkLimits,
    entry,
    has_medical_files,
)

if TYPE_CHECKING:
    from .options import ProbeOptions

NETBIOS_PORT = 139
GUEST = "guest"
DIALECTS = {
    SMB_DIALECT: "NT LM 0.12",
    0x0202: "SMB 2.0.2",
    0x0210: "SMB 2.1",
    0x0300: "SMB 3.0",
    0x0302: "SMB 3.0.2",
    0x0311: "SMB 3.1.1",
}
NOT_DISK = {1, 2, 3}  # share types: print queue, device, IPC
LIST_BUFFER = 65_536  # bytes asked for per directory query
PROTOCOL_ROOM = 1024 * 1024  # bytes beyond the walk's budget for negotiation, RPC and headers
SHARE_NAME = 80  # characters of a share name kept
STATUS_NO_MORE_FILES = 0x80000006
SHARE_ALL = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
REPARSE_POINT = 0x400
DIRECTORY = 0x10
# What impacket raises when it cannot parse an answer.
PARSE_ERRORS = (struct.error, RecursionError, UnicodeError, ValueError, KeyError, IndexError, TypeError)

logging.getLogger("impacket").setLevel(logging.CRITICAL)  # its messages may quote paths


class _TooMuch(Exception):
    """The peer sent more than the session's byte budget."""


# --- every connection through the engine's session -------------------------------------------

_impacket_setup_connection = nmb.NetBIOSTCPSession._setup_connection


def _setup_connection(transport: nmb.NetBIOSTCPSession, peer: tuple[str, int], timeout: float | None = None
                      ) -> socket.socket:  # fmt: skip
    """impacket's connection hook: in a probe session's thread, the session dials (limits, budget,
    watchdog, this host only); anywhere else, impacket's own connect."""
    session = current()
    if session is None:
        sock: socket.socket = _impacket_setup_connection(transport, peer, timeout)
        return sock
    try:
        sock = session.connect(int(peer[1]), timeout, str(peer[0]))
    except OSError as exc:
        raise OSError("connection error", exc) from exc  # as impacket wraps it (see _cause)
    sock.settimeout(None)  # impacket sets a timeout for each read itself
    return sock


nmb.NetBIOSTCPSession._setup_connection = _setup_connection


class _Connection(SMBConnection):
    """impacket's connection, keeping whether the server's first negotiate answer requires signing."""

    signing: bool | None = None

    def negotiateSessionWildcard(self, *args: Any, **kwargs: Any) -> bytes:  # noqa: N802 (impacket's name)
        packet: bytes = super().negotiateSessionWildcard(*args, **kwargs)
        if packet[:1] == b"\xfe":
            try:
                answer = SMB2Negotiate_Response(SMB2Packet(packet)["Data"])
                self.signing = bool(answer["SecurityMode"] & SMB2_NEGOTIATE_SIGNING_REQUIRED)
            except Exception:  # impacket parses it again and fails in its own way
                self.signing = None
        return packet


def _status(exc: BaseException) -> str:
    """The NT status of an impacket error (impacket's name for it, else hex), never the server's text."""
    getter = getattr(exc, "getErrorCode", None) or getattr(exc, "get_error_code", None)
    try:
        code = int(getter()) & 0xFFFFFFFF if getter is not None else None
    except (TypeError, ValueError):
        return "?"
    if code is None:
        return "?"
    known = nt_errors.ERROR_MESSAGES.get(code)
    return str(known[0]) if known else f"0x{code:08X}"


def _smb_path(path: str) -> str:
    return path.strip("/").replace("/", "\\")


# --- one share as a walk.Tree ---------------------------------------------------------------------


def _entries(buffer: bytes) -> Iterator[Entry]:
    """FILE_FULL_DIRECTORY_INFORMATION records of one QUERY_DIRECTORY answer."""
    offset = 0
    while offset + 68 <= len(buffer):
        record = smb.SMBFindFileFullDirectoryInfo(smb.SMB.FLAGS2_UNICODE)
        try:
            record.fromString(buffer[offset:])
            name = record["FileName"].decode("utf-16le", "replace")
            attributes, size, step = record["ExtFileAttributes"], record["EndOfFile"], record["NextEntryOffset"]
        except Exception:  # a malformed record ends the batch
            return
        kind = "l" if attributes & REPARSE_POINT else "d" if attributes & DIRECTORY else "f"
        item = entry(kind, name, None if kind == "d" else int(size))
        if item is not None:
            yield item
        if step <= 0:
            return
        offset += step


@dataclass
class SmbTree:
    """A connected share: bounded QUERY_DIRECTORY batches (SMB2+) or a capped listing (SMB1)."""

    conn: SMBConnection
    tree: int
    share: str
    budget: Budget

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        if self.conn.getDialect() == SMB_DIALECT:
            return self._list_smb1(path, max_entries)
        try:
            handle = self.conn.openFile(
                self.tree, _smb_path(path), desiredAccess=FILE_READ_DATA | FILE_READ_ATTRIBUTES,
                shareMode=SHARE_ALL, creationOption=FILE_DIRECTORY_FILE,
            )  # fmt: skip
        except SessionError as exc:
            raise Unreadable(_status(exc)) from None
        entries: list[Entry] = []
        cut = False
        server = self.conn.getSMBServer()
        try:
            for _ in range(max_entries + 2):  # each batch holds at least one entry
                self.budget.remaining_time()
                if self.budget.bytes_left() <= 0:
                    cut = True
                    break
                try:
                    buffer = server.queryDirectory(
                        self.tree, handle, "*", informationClass=FILE_FULL_DIRECTORY_INFORMATION,
                        maxBufferSize=LIST_BUFFER,
                    )  # fmt: skip
                except smb3.SessionError as exc:
                    if exc.get_error_code() == STATUS_NO_MORE_FILES:
                        break
                    if not entries:
                        raise Unreadable(_status(exc)) from None
                    raise
                self.budget.charge(len(buffer or b""))
                if not buffer:
                    break
                for item in _entries(buffer):
                    entries.append(item)
                    if len(entries) >= max_entries:
                        cut = True
                        break
                if cut:
                    break
            else:
                cut = True
        finally:
            self._close(handle)
        return entries, cut

    def _list_smb1(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        """SMB1 has no bounded query in impacket: the listing is capped by the session's byte meter."""
        pattern = "\\".join(p for p in (_smb_path(path), "*") if p)
        try:
            found = self.conn.listPath(self.share, pattern)
        except SessionError as exc:
            raise Unreadable(_status(exc)) from None
        self.budget.charge(sum(len(record.get_longname()) + 64 for record in found))
        entries: list[Entry] = []
        for record in found:
            attributes = record.get_attributes()
            kind = "l" if attributes & REPARSE_POINT else "d" if record.is_directory() else "f"
            item = entry(kind, record.get_longname(), None if kind == "d" else record.get_filesize())
            if item is None:
                continue
            if len(entries) >= max_entries:
                return entries, True
            entries.append(item)
        return entries, False

    def head(self, path: str, entry: Entry, limit: int) -> tuple[bytes, bool]:
        try:
            handle = self.conn.openFile(
                self.tree, _smb_path(path), desiredAccess=FILE_READ_DATA, shareMode=SHARE_ALL,
                creationOption=FILE_NON_DIRECTORY_FILE,
            )  # fmt: skip
        except SessionError as exc:
            raise Unreadable(_status(exc)) from None
        try:
            data = self.conn.readFile(self.tree, handle, 0, limit, singleCall=False)[:limit]
        except SessionError as exc:
            raise Unreadable(_status(exc)) from None
        finally:
            self._close(handle)
        self.budget.charge(len(data))
        complete = len(data) < limit or (entry.size is not None and entry.size <= len(data))
        return data, complete

    def _close(self, handle: Any) -> None:
        try:
            self.conn.closeFile(self.tree, handle)
        except SessionError:
            pass


# --- the session -----------------------------------------------------------------------------------


def _cause(exc: BaseException) -> BaseException:
    """impacket wraps connect errors as socket.error(message, original); a RecursionError (a
    peer's endless keep-alives) can surface as whatever impacket's handler then raised."""
    if isinstance(exc, OSError) and len(exc.args) == 2 and isinstance(exc.args[1], OSError):
        return exc.args[1]
    if isinstance(exc.__context__, RecursionError):
        return exc.__context__
    return exc


def _failure(exc: BaseException) -> tuple[ProbeStatus, str]:
    exc = _cause(exc)
    if isinstance(exc, _TooMuch):
        return ProbeStatus.BUDGET_EXCEEDED, "the server sent more than the byte budget"
    if isinstance(exc, ConnectionRefusedError):
        return ProbeStatus.REFUSED, "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout | nmb.NetBIOSTimeout):
        return ProbeStatus.TIMEOUT, "no answer in time"
    if isinstance(exc, nmb.NetBIOSError):
        if exc.error_code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ProbeStatus.UNREACHABLE, "host or network unreachable"
        if exc.error_class == nmb.ERRCLASS_OS or exc.error_code is None:
            return ProbeStatus.RESET, "peer closed the connection"
        return ProbeStatus.REJECTED, "NetBIOS session refused"
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ProbeStatus.UNREACHABLE, "host or network unreachable"
        return ProbeStatus.RESET, "connection reset"
    if isinstance(exc, SessionError | smb.SessionError | smb3.SessionError | DCERPCException):
        return ProbeStatus.PROTOCOL_ERROR, f"server answered {_status(exc)}"
    if isinstance(exc, PARSE_ERRORS):
        return ProbeStatus.PROTOCOL_ERROR, "reply is not SMB"
    if type(exc).__module__.startswith("impacket") or type(exc) is Exception:  # impacket raises bare Exception
        return ProbeStatus.PROTOCOL_ERROR, "reply is not SMB"
    return ProbeStatus.ERROR, f"probe failed ({type(exc).__name__})"


class _Session:
    def __init__(self, conn: BlockingSession, port: int, limits: WalkLimits, timeout: float, wall: float) -> None:
        self.conn, self.host, self.port, self.timeout, self.limits = conn, conn.host, port, timeout, limits
        self.budget = Budget.start(limits, wall)
        self.facts = RepositoryFacts(access="not-attempted")
        self.expired = False
        self.received = 0

    def kill(self) -> None:
        """Watchdog: the wall time is spent (the engine's session shuts the sockets down)."""
        self.expired = True

    # connections

    def _connection(self, dialect: int | None = None, nego: str | None = None) -> _Connection:
        name = "*SMBSERVER" if self.port == NETBIOS_PORT else self.host
        conn = _Connection(name, self.host, sess_port=self.port, timeout=self.timeout, manualNegotiate=True)
        if nego is not None and self.port != NETBIOS_PORT:
            conn.negotiateSession(negoData=nego)
        else:
            conn.negotiateSession(preferredDialect=dialect)
        self._meter(conn)
        return conn

    def _meter(self, conn: SMBConnection) -> None:
        """Count every packet received on this connection; past the budget the session ends."""
        transport = conn.getNMBServer()
        if not transport:  # a dialect chosen up front: the SMB object made its own transport
            server = conn.getSMBServer()
            transport = getattr(server, "_NetBIOSSession", None) or getattr(server, "_sess", None)
        if transport is None:
            return
        receive = transport.recv_packet
        cap = self.limits.total_bytes + PROTOCOL_ROOM

        def recv_packet(timeout: float | None = None) -> Any:
            packet = receive(timeout)
            self.received += len(packet.get_trailer()) + 4
            if self.received > cap:
                raise _TooMuch()
            return packet

        transport.recv_packet = recv_packet

    @staticmethod
    def _close(conn: SMBConnection | None) -> None:
        if conn is None:
            return
        try:
            conn.close()
        except Exception:  # logoff on a broken connection: the socket is closed all the same
            pass

    def run(self) -> Outcome:
        """In the session's thread (its connections are closed by the engine's session after)."""
        try:
            return self._run()
        except Exception as exc:  # every failure ends in a status, never a traceback
            return failed(exc, _failure, self.facts, self.expired)

    def _run(self) -> Outcome:
        smb1 = self._smb1()  # first, on its own connection: one connection to the host at a time
        conn = self._connection()
        dialect = conn.getDialect()
        if dialect not in DIALECTS:
            self._close(conn)
            return Outcome(ProbeStatus.PROTOCOL_ERROR, self.facts, "negotiate answer names a dialect not offered")
        self.facts.dialect = DIALECTS[dialect]
        self.facts.signing_required = conn.signing if conn.signing is not None else bool(conn.isSigningRequired())
        self.facts.listing = "smb"
        self.facts.smb1 = True if dialect == SMB_DIALECT else smb1
        shares, session, refusal = self._login(conn, dialect)
        if shares is None or session is None:
            self.facts.access = "denied"
            return Outcome(ProbeStatus.REJECTED, self.facts, f"null and guest sessions refused ({refusal})")
        try:
            detail = self._walk(session, shares)
        finally:
            self._close(session)
        if has_medical_files(self.facts.shares):
            return Outcome(ProbeStatus.EXPOSED, self.facts, detail)
        return Outcome(ProbeStatus.OPEN, self.facts, detail)

    def _smb1(self) -> bool | None:
        """Does the server accept a negotiate that offers NT LM 0.12 only? None when it never answered.

        A failed connect (refused, unreachable, no answer) ends the probe here.
        """
        conn = None
        try:
            conn = self._connection(SMB_DIALECT, nego="\x02NT LM 0.12\x00")
            return bool(conn.getDialect() == SMB_DIALECT)
        except Exception as exc:
            if self.expired or _cause(exc) is not exc:  # impacket wraps connect errors only
                raise
            status, _ = _failure(exc)
            if status in (ProbeStatus.TIMEOUT, ProbeStatus.BUDGET_EXCEEDED, ProbeStatus.ERROR):
                return None
            return False  # closed, reset, or an answer that is not an SMB1 negotiate
        finally:
            self._close(conn)

    def _login(
        self, conn: _Connection, dialect: int
    ) -> tuple[list[tuple[str, str]] | None, _Connection | None, str]:
        """Null session, then guest on a new connection; the shares the first that lists them sees."""
        shares, refusal = self._attempt(conn, "")
        if shares is not None:
            self.facts.access = "anonymous"
            return shares, conn, refusal
        self._close(conn)
        # impacket signs guest sessions on SMB 3.1.1, which servers reject: ask for 3.0 at most.
        preferred = None if dialect == SMB_DIALECT else min(dialect, SMB2_DIALECT_30)
        try:
            conn = self._connection(preferred)
        except (SessionError, smb.SessionError, smb3.SessionError, nmb.NetBIOSError):
            return None, None, refusal
        shares, guest_refusal = self._attempt(conn, GUEST)
        if shares is None:
            self._close(conn)
            return None, None, f"{refusal}, {guest_refusal}"
        self.facts.access = "guest"
        self.facts.login = GUEST
        return shares, conn, guest_refusal

    def _attempt(self, conn: SMBConnection, user: str) -> tuple[list[tuple[str, str]] | None, str]:
        """Log in as user with a blank password and list the disk shares: (raw, sanitised) names."""
        try:
            conn.login(user, "")
        except SessionError as exc:
            return None, f"login {_status(exc)}"
        try:
            listed = conn.listShares()
        except (SessionError, smb.SessionError, smb3.SessionError, DCERPCException) as exc:
            return None, f"share list {_status(exc)}"
        shares: list[tuple[str, str]] = []
        for share in listed:
            try:
                kind = int(share["shi1_type"]) & 0x0FFFFFFF
                raw = str(share["shi1_netname"]).rstrip("\x00")
            except (KeyError, TypeError, ValueError):
                continue
            if kind in NOT_DISK or not raw:
                continue
            shares.append((raw, place_name(sanitize(raw, SHARE_NAME))))
        return shares, ""

    def _walk(self, conn: SMBConnection, shares: list[tuple[str, str]]) -> str | None:
        detail = None
        for raw, name in shares[: self.limits.max_shares]:
            try:
                self.budget.remaining_time()
                if self.budget.bytes_left() <= 0:
                    raise Stop("bytes")
            except Stop:
                self.facts.shares.append(ShareFacts(name=name, limited=True))
                continue
            try:
                tree = conn.connectTree(raw)
            except SessionError as exc:
                self.facts.shares.append(ShareFacts(name=name, auth_required=True, error=f"tree {_status(exc)}"))
                continue
            except Exception as exc:  # a malformed answer costs this share, not the ones after it
                status, why = _failure(exc)
                if self.expired or status is not ProbeStatus.PROTOCOL_ERROR:
                    raise  # a broken connection, a timeout, the byte budget: the session ends
                self.facts.shares.append(ShareFacts(name=name, error=f"tree: {why}"))
                continue
            walk = BoundedWalk(SmbTree(conn, tree, raw, self.budget), self.budget, name)
            broken = walk.run_keeping(lambda exc: "session wall time spent" if self.expired else _failure(exc)[1])
            if broken is not None:  # the session broke mid-walk: what was seen is kept, the rest not tried
                detail = broken
                self.facts.shares.append(walk.facts())
                break
            share = walk.facts()
            share.auth_required = not share.readable and not share.limited
            self.facts.shares.append(share)
            try:
                conn.disconnectTree(tree)
            except SessionError:
                pass
        if len(shares) > self.limits.max_shares:
            detail = detail or f"{len(shares)} disk shares, {self.limits.max_shares} walked"
        return detail


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> Outcome:
    """Probe one SMB service; never raises."""
    return await walk_session(engine, peer.host, probe_options.files.limits, lambda conn, limits, wall:
                              _Session(conn, peer.port, limits, engine.limits.timeout, wall))
