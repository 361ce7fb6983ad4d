"""rsync daemon probe: the module list, which modules open without a password, and a bounded walk
of the open ones that proves medical files without keeping them.

The daemon protocol and the file list are spoken by probes.rsync_proto (protocol 30; no
Python library speaks it). Per module, one connection asks for a recursive sender's file
list (deeper folders are excluded by a filter rule, the list is cut at a bound); the walk
(probes.walk) then lists folders from it, and reads file heads through the transfer phase:
one connection per file asks for that file alone and is dropped once the per-file budget
is read, so counts are verified from the first bytes, and estimated from names beyond the
sniff budget.

Only modules the daemon lists (`list = yes`) are seen: a module with `list = no` is
invisible to a visitor who does not know its name. Modules that answer AUTHREQD are
reported as needing a password; no password is ever tried.

Facts carry counts, PHI attribute names and (sanitised) module names only: never a file or
folder name, and never server text (MOTD, @ERROR lines, log messages) that may quote one.
"""

from __future__ import annotations

import posixpath
import re
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..engine import Engine
from ..models import ProbeStatus, RepositoryFacts, ShareFacts
from ..peertext import peer_text, place_name
from ..sessions import BlockingSession
from ..text import sanitize
from .blocking import failed, os_failure, walk_session
from .outcome import Peer
from .rsync_proto import (
    GLOB,
    PROTOCOL,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    FileEntry,
    Mux,
    NotSent,
    ProtocolError,
    Wire,
    file_head,
    file_list,
    filter_rules,
    handshake,
    module_list,
    open_module,
    send_args,
    setup,
    write_ndx_request,
)
from .walk import (
    MAX_NAME,
    BoundedWalk,
    Budget,
    Entry,
    Inexpressible,
    Outcome,
    Stop,
    Unreadable,
    WalkLimits,
    entry,
    has_medical_files,
)

if TYPE_CHECKING:
    from .options import ProbeOptions

MAX_FAILURES = 3  # file connections that may break before the walk of a module stops
LIST_FACTOR = 8  # the file list of one module is cut at this many times the walk's entries per folder
_KINDS = {S_IFDIR: "d", S_IFREG: "f", S_IFLNK: "l"}


class _Connections:
    """Opens daemon connections for one session; the watchdog shuts the current one down."""

    def __init__(self, conn: BlockingSession, port: int, budget: Budget, timeout: float) -> None:
        self.conn, self.port, self.budget, self.timeout = conn, port, budget, timeout
        self.current: socket.socket | None = None
        self.expired = False
        self.opened = 0

    def open(self) -> tuple[Wire, int, str]:
        """A new connection past the handshake: (wire, greeting major, greeting version)."""
        self.close()
        if self.expired:
            raise TimeoutError("session wall time spent")
        wait = min(self.timeout, self.budget.remaining_time())
        sock = self.conn.connect(self.port, wait)
        self.current = sock
        self.opened += 1
        wire = Wire(sock, self.budget, self.timeout)
        major, version = handshake(wire)
        return wire, major, version

    def close(self) -> None:
        sock, self.current = self.current, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def kill(self) -> None:
        self.expired = True
        sock = self.current
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _split(name: bytes) -> list[bytes] | None:
    """Path components of a file-list name; None for names that are not plain relative paths."""
    if name == b".":
        return []
    parts = name.split(b"/")
    if any(part in (b"", b".", b"..") for part in parts):
        return None
    return parts


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass
class RsyncTree:
    """One open module as a walk.Tree: folders served from its bounded file list, heads read per file."""

    connections: _Connections
    module: bytes
    limits: WalkLimits
    folders: dict[str, list[Entry]] = field(default_factory=dict)
    full: dict[str, bool] = field(default_factory=dict)  # folder -> its entries exceeded max_entries
    cut: bool = False
    failures: int = 0  # file connections that broke

    def load(self, wire: Wire) -> None:
        """Ask the (already opened) module for its recursive file list; keep it bounded, by folder."""
        send_args(wire, [b"--server", b"--sender", b"-lr", b".", self.module + b"/"])
        setup(wire)
        mux = Mux(wire)
        mux.send(filter_rules(self.limits.max_depth))
        listed, self.cut = file_list(mux, self.limits.max_entries * LIST_FACTOR, self.connections.budget)
        self.folders["/"] = []
        for item in listed:
            self._add(item)

    def _add(self, item: FileEntry) -> None:
        parts = _split(item.name)
        kind = _KINDS.get(item.mode & S_IFMT)
        if not parts or kind is None:
            return
        parent = "/" + "/".join(_decode(p) for p in parts[:-1])
        name = _decode(parts[-1])
        found = entry(kind, name, item.size if kind == "f" else None,
                      None if item.target is None else _decode(item.target))
        if found is None and kind == "f" and len(name) <= MAX_NAME:
            # A line break in a file name: no walk path can carry it. As "?" it is a name the daemon
            # would expand, so the walk counts the file from its name instead of dropping it.
            found = entry(kind, re.sub(r"[\r\n]", "?", name), item.size)
        if found is None:
            return
        siblings = self.folders.setdefault(parent, [])
        if len(siblings) >= self.limits.max_entries:
            self.full[parent] = True
            return
        siblings.append(found)
        if kind == "d":
            self.folders.setdefault(posixpath.join(parent, found.name), [])

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        entries = self.folders.get(posixpath.normpath(path))
        if entries is None:  # below the depth rule, or beyond where the list was cut
            return [], True
        cut = self.cut or self.full.get(posixpath.normpath(path), False) or len(entries) > max_entries
        return entries[:max_entries], cut

    def head(self, path: str, item: Entry, limit: int) -> tuple[bytes, bool]:
        relative = path.lstrip("/")
        if GLOB.search(relative) or f" {_decode(self.module)}/" in f" {relative}":
            raise Inexpressible("name the daemon would expand")  # the daemon globs its arguments
        wire, major, _ = self.connections.open()
        try:
            if major < PROTOCOL or open_module(wire, self.module) != "ok":
                raise Unreadable("module")
            send_args(wire, [b"--server", b"--sender", b"-l", b".", self.module + b"/" + _encode(relative)])
            setup(wire)
            mux = Mux(wire)
            mux.send(b"\0\0\0\0")  # no filter rules
            listed, _ = file_list(mux, 2, self.connections.budget)
            if len(listed) != 1 or listed[0].mode & S_IFMT != S_IFREG or _decode(listed[0].name) != item.name:
                raise Unreadable("not the file listed")
            mux.send(write_ndx_request())
            return file_head(mux, limit)
        except NotSent:
            raise Unreadable("not sent") from None
        except (EOFError, ProtocolError, ConnectionResetError):
            self.failures += 1  # one file's connection broke: go on, unless the daemon keeps breaking
            if self.failures >= MAX_FAILURES:
                raise
            raise Unreadable("broken") from None
        finally:
            self.connections.close()  # the only way to stop a transfer midway


# --- the session -------------------------------------------------------------------------


def _failure(exc: BaseException) -> tuple[ProbeStatus, str]:
    if isinstance(exc, Stop):
        return ProbeStatus.TIMEOUT, "no answer in time"
    if isinstance(exc, EOFError):
        return ProbeStatus.RESET, "peer closed the connection"
    if isinstance(exc, ProtocolError | IndexError | ValueError):
        return ProbeStatus.PROTOCOL_ERROR, "reply is not the rsync daemon protocol"
    if isinstance(exc, NotSent):
        return ProbeStatus.REJECTED, "the daemon refused the request"
    return os_failure(exc)


class _Session:
    def __init__(self, conn: BlockingSession, port: int, limits: WalkLimits, timeout: float, wall: float) -> None:
        self.limits = limits
        self.budget = Budget.start(limits, wall)
        self.connections = _Connections(conn, port, self.budget, timeout)
        self.facts = RepositoryFacts(access="not-attempted", listing="rsync")

    def kill(self) -> None:
        """Watchdog: the wall time is spent; wake any blocked read by shutting the socket down."""
        self.connections.kill()

    def run(self) -> Outcome:
        try:
            return self._run()
        except Exception as exc:  # every failure ends in a status, never a traceback
            return failed(exc, _failure, self.facts, self.connections.expired)
        finally:
            self.connections.close()

    def _run(self) -> Outcome:
        wire, major, version = self.connections.open()
        self.facts.server = peer_text(f"@RSYNCD: {sanitize(version, 16)}")
        self.facts.dialect = str(min(major, PROTOCOL))
        modules, cut = module_list(wire, self.limits.max_shares)
        self.connections.close()
        detail = f"module list cut at {len(modules)}" if cut else None
        for module in modules:
            share = ShareFacts(name=place_name(sanitize(module, 64)))
            self.facts.shares.append(share)
            try:
                self._module(module, share, major)
            except (Stop, TimeoutError):
                share.limited = True
                share.error = "session wall time spent"
                break
            except Exception as exc:  # this module broke: keep what was seen, try the next
                share.limited = True
                share.error = _failure(exc)[1]
            finally:
                self.connections.close()
        opened = [s for s in self.facts.shares if s.readable]
        self.facts.access = "anonymous" if opened else "denied"
        if has_medical_files(opened):
            return Outcome(ProbeStatus.EXPOSED, self.facts, detail)
        if opened:
            return Outcome(ProbeStatus.OPEN, self.facts, detail)
        if self.facts.shares:
            refused = "no listed module opens without a password"
            return Outcome(ProbeStatus.REJECTED, self.facts, f"{refused}; {detail}" if detail else refused)
        return Outcome(ProbeStatus.OPEN, self.facts, "the daemon lists no module")

    def _module(self, module: bytes, share: ShareFacts, major: int) -> None:
        wire, _, _ = self.connections.open()
        answer = open_module(wire, module)
        if answer != "ok":
            share.auth_required = answer == "auth"
            share.error = None if answer == "auth" else "module refused"
            return
        share.readable = True
        if major < PROTOCOL:
            share.error = f"protocol {major} is older than {PROTOCOL}: files not listed"
            return
        tree = RsyncTree(self.connections, module, self.limits)
        tree.load(wire)
        self.connections.close()
        walk = BoundedWalk(tree, self.budget, share.name)
        walk.share = share
        walk.run_keeping(lambda exc: _failure(exc)[1])  # a head read broke mid-walk: what was seen is kept
        walk.facts()


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> Outcome:
    """Probe one rsync daemon; never raises."""
    return await walk_session(engine, peer.host, probe_options.files.limits, lambda conn, limits, wall:
                              _Session(conn, peer.port, limits, engine.limits.timeout, wall))
