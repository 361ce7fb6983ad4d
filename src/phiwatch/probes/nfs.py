"""NFS probe: the export list, then an unprivileged AUTH_SYS mount of each export and a bounded walk.

pyNfsClient (pure Python: portmapper, MOUNT v3, NFSv3) packs the calls and unpacks the
replies. Its transport trusts the peer (record lengths taken as given, an endless loop on
a closed socket, errors logged and swallowed), so `_Transport` replaces it: one record at
a time, capped in size, every read within the session's deadline, every failure raised.
Lists that pyNfsClient unpacks by recursion (exports, READDIRPLUS entries) are read in a
loop with its primitives. The watchdog of probes.blocking shuts the sockets down when the
wall time is spent.

The caller is uid/gid 65534 (nobody) over AUTH_SYS from an unprivileged source port: it
never claims root, so exports with root_squash or `secure` treat it like any unprivileged
client. File heads are READ from offset 0, at most the walk's per-file budget.

Ports: on an NFS port (2049) the probe asks the portmapper (111) of the same host for
mountd, falling back to mountd's usual fixed ports when 111 is closed; then lists, mounts
and walks. On 111 it records what the portmapper registers and walks only when NFS listens
on a port other than 2049 (which a scan of the default ports would not probe); otherwise
the 2049 service does, so one host's exports are walked once.

Facts carry export names (sanitised), counts and PHI attribute names: never a file or
folder name, never server text.
"""

from __future__ import annotations

import posixpath
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pyNfsClient import NFSv3, Portmap
from pyNfsClient.pack import XDRError, nfs_pro_v3Packer, nfs_pro_v3Unpacker
from pyNfsClient.rpc import RPC
from pyNfsClient.rtypes import diropargs3, nfs_fh3, readdirplus3args

from ..engine import Engine
from ..models import ProbeStatus, RepositoryFacts, ShareFacts
from ..peertext import place_name
from ..sessions import BlockingSession
from ..text import sanitize
from .blocking import failed, os_failure, walk_session
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

NFS_PORT = 2049
PORTMAP_PORT = 111
MOUNTD_PORTS = (20048, 892, 635)  # mountd's usual fixed ports, tried when the portmapper is closed
PORTMAP, NFS, MOUNT = 100000, 100003, 100005
TCP = 6
NOBODY = 65534
AUTH_NONE, AUTH_SYS = 0, 1
KERBEROS = {390003: "krb5", 390004: "krb5i", 390005: "krb5p"}
SMALL_REPLY = 64 * 1024  # bytes of one RPC reply, unless the call says otherwise
EXPORTS_REPLY = 1024 * 1024  # the export list
DIR_REPLY = 32 * 1024  # READDIRPLUS maxcount
MAX_FRAGMENTS = 64  # record-marking fragments of one reply
MAX_EXPORTS = 4096  # exports read from one list
MAX_GROUPS = 64  # client names kept per export
MAX_PAGES = 256  # READDIRPLUS calls per folder
MAX_LINKS = 64  # symbolic links read per folder (to see loops)
MAX_HANDLES = 50_000  # file handles kept from listings; beyond, LOOKUP
MAX_PORTMAP = 256  # portmapper entries read
# Client names that mean "every host" in a MOUNTPROC3_EXPORT answer; no name at all means the same.
WORLD = frozenset({"*", "*.*", "0.0.0.0/0", "0.0.0.0/0.0.0.0", "::/0", "(everyone)", "everyone", "(anonymous)"})
MOUNT_ERRORS = {1: "MNT3ERR_PERM", 2: "MNT3ERR_NOENT", 5: "MNT3ERR_IO", 13: "MNT3ERR_ACCES",
                20: "MNT3ERR_NOTDIR", 22: "MNT3ERR_INVAL", 63: "MNT3ERR_NAMETOOLONG",
                10004: "MNT3ERR_NOTSUPP", 10006: "MNT3ERR_SERVERFAULT"}  # fmt: skip
PROGRAMS = {NFS: "nfs", MOUNT: "mountd"}
T = TypeVar("T")


class RpcFailure(Exception):
    """The peer broke ONC RPC, or refused the call. The message is fixed text, never the peer's."""

    status = ProbeStatus.PROTOCOL_ERROR


class NotRpc(RpcFailure):
    pass


class TooLarge(RpcFailure):
    status = ProbeStatus.BUDGET_EXCEEDED


class Denied(RpcFailure):
    status = ProbeStatus.REJECTED


class Unavailable(RpcFailure):
    """PROG_UNAVAIL, PROG_MISMATCH (with the versions offered), PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR."""

    def __init__(self, reason: str, versions: tuple[int, int] | None = None) -> None:
        super().__init__(reason)
        self.versions = versions


def is_world(groups: list[bytes]) -> bool:
    """An export listed without client names, or with a wildcard for every host."""
    return not groups or any(g.decode("latin-1").strip().lower() in WORLD for g in groups)


# --- the bounded transport ------------------------------------------------------------------------


class _Transport(RPC):
    """pyNfsClient's RPC client with a bounded, raising transport and no privileged source port."""

    def __init__(self, session: _Session, port: int) -> None:
        RPC.__init__(self, session.host, port, session.timeout)
        self.session = session
        self.auth = session.auth
        self.limit = SMALL_REPLY

    def connect(self) -> None:
        sock = self.session.conn.connect(self.port, self.session.step())
        self.client = sock
        self.session.sockets.append(sock)

    def close(self) -> None:
        """Done with this program: its connection (and host slot) is given back at once."""
        sock = getattr(self, "client", None)
        if isinstance(sock, socket.socket):
            if sock in self.session.sockets:
                self.session.sockets.remove(sock)
            sock.close()

    def call(self, program: int, version: int, procedure: int, data: bytes = b"", limit: int = SMALL_REPLY,
             auth: dict[str, Any] | None = None) -> bytes:  # fmt: skip
        self.limit = limit
        return self.request(program, version, procedure, data=data, auth=auth)

    def request(self, program: int, program_version: int, procedure: int, data: bytes | None = None,
                message_type: int = 0, version: int = 2, auth: dict[str, Any] | None = None) -> bytes:  # fmt: skip
        """One call, one reply: the reply's results, or an RpcFailure."""
        xid = random.getrandbits(32)
        message = struct.pack("!6L", xid, 0, 2, program, program_version, procedure)
        message += _credential(auth) + struct.pack("!LL", AUTH_NONE, 0) + (data or b"")
        limit, self.limit = self.limit, SMALL_REPLY
        self.client.settimeout(self.session.step())
        self.client.sendall(struct.pack("!L", 0x80000000 | len(message)) + message)
        reply = nfs_pro_v3Unpacker(self._record(limit))
        if reply.unpack_uint() != xid or reply.unpack_uint() != 1:
            raise NotRpc("reply is not ONC RPC")
        if reply.unpack_uint() != 0:  # MSG_DENIED
            raise Denied("RPC version refused" if reply.unpack_uint() == 0 else "RPC credentials refused")
        reply.unpack_uint()  # verifier flavour
        if len(reply.unpack_opaque()) > 400:
            raise NotRpc("reply is not ONC RPC")
        accept = reply.unpack_uint()
        self.session.rpc_seen = True
        if accept == 2:
            low, high = reply.unpack_uint(), reply.unpack_uint()
            raise Unavailable("RPC program version not offered", (low, high))
        if accept != 0:
            raise Unavailable("RPC program or procedure not offered")
        return reply.get_buffer()[reply.get_position():]

    def _record(self, limit: int) -> bytes:
        data = bytearray()
        for _ in range(MAX_FRAGMENTS):
            (word,) = struct.unpack("!L", self._exact(4))
            size = word & 0x7FFFFFFF
            if len(data) + size > limit:
                if not self.session.rpc_seen:
                    raise NotRpc("reply is not ONC RPC")
                raise TooLarge(f"RPC reply larger than {limit} bytes")
            data += self._exact(size)
            if word & 0x80000000:
                return bytes(data)
        raise NotRpc("too many record fragments")

    def _exact(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            self.client.settimeout(self.session.step())
            chunk = self.client.recv(min(65_536, size - len(chunks)))
            if not chunk:
                raise ConnectionResetError("peer closed the connection")
            self.session.budget.charge(len(chunk))
            chunks += chunk
        return bytes(chunks)


def _credential(auth: dict[str, Any] | None) -> bytes:
    if auth is None:
        return struct.pack("!LL", AUTH_NONE, 0)
    packer = nfs_pro_v3Packer()
    packer.pack_uint(int(time.time()) & 0xFFFF)
    packer.pack_string(auth["machine_name"].encode())
    packer.pack_uint(auth["uid"])
    packer.pack_uint(auth["gid"])
    packer.pack_array(auth["aux_gid"], packer.pack_uint)
    body = packer.get_buffer()
    return struct.pack("!LL", AUTH_SYS, len(body)) + body


class _Portmap(Portmap, _Transport):
    __init__ = _Transport.__init__

    def entries(self) -> list[tuple[int, int, int, int]]:
        """PMAPPROC_DUMP: (program, version, protocol, port), read in a loop."""
        reply = nfs_pro_v3Unpacker(self.call(PORTMAP, 2, 4))
        found: list[tuple[int, int, int, int]] = []
        while reply.unpack_bool() and len(found) < MAX_PORTMAP:
            found.append((reply.unpack_uint(), reply.unpack_uint(), reply.unpack_uint(), reply.unpack_uint()))
        return found


class _Mount(_Transport):
    def exports(self) -> list[tuple[bytes, list[bytes]]]:
        """MOUNTPROC3_EXPORT: (directory, client names), read in a loop (pyNfsClient recurses)."""
        reply = nfs_pro_v3Unpacker(self.call(MOUNT, 3, 5, limit=EXPORTS_REPLY))
        found: list[tuple[bytes, list[bytes]]] = []
        while reply.unpack_bool() and len(found) < MAX_EXPORTS:
            path = reply.unpack_dirpath()
            groups: list[bytes] = []
            while reply.unpack_bool():
                name = reply.unpack_name()
                if len(groups) < MAX_GROUPS:
                    groups.append(name)
            found.append((path, groups))
        return found

    def mnt(self, path: bytes) -> dict[str, Any]:
        packer = nfs_pro_v3Packer()
        packer.pack_string(path)
        reply = nfs_pro_v3Unpacker(self.call(MOUNT, 3, 1, packer.get_buffer(), auth=self.auth))
        result: dict[str, Any] = reply.unpack_mountres3()
        return result

    def umnt(self, path: bytes) -> None:
        packer = nfs_pro_v3Packer()
        packer.pack_string(path)
        self.call(MOUNT, 3, 3, packer.get_buffer(), auth=self.auth)


class _Nfs(NFSv3, _Transport):
    __init__ = _Transport.__init__
    denied = 0  # calls refused for our credentials (counted per export by the session)

    def reconnect(self) -> None:
        """After a refused (oversized) reply the stream is out of step: NFS is stateless, start afresh."""
        self.client.close()
        self.connect()

    def guarded(self, call: Callable[..., T], *args: Any) -> T:
        """A call whose refusal or oversized reply makes its file or folder unreadable, not the session broken."""
        try:
            return call(*args)
        except Denied:  # AUTH_TOOWEAK and the like: e.g. `secure` exports refuse unprivileged source ports
            self.denied += 1
            raise Unreadable("credentials refused") from None
        except TooLarge:
            self.reconnect()
            raise Unreadable("reply too large") from None

    def lookup_name(self, directory: bytes, name: bytes) -> bytes:
        return self.guarded(self._lookup_name, directory, name)

    def _lookup_name(self, directory: bytes, name: bytes) -> bytes:
        packer = nfs_pro_v3Packer()
        packer.pack_diropargs3(diropargs3(dir=nfs_fh3(directory), name=name))
        reply = nfs_pro_v3Unpacker(self.call(NFS, 3, 3, packer.get_buffer(), auth=self.auth)).unpack_lookup3res()
        if reply["status"] != 0:
            raise Unreadable(f"NFS status {reply['status']}")
        return bytes(reply["resok"]["object"]["data"])

    def page(self, handle: bytes, cookie: int, verifier: bytes, maxcount: int) -> tuple[list[dict], bytes, bool]:
        return self.guarded(self._page, handle, cookie, verifier, maxcount)

    def _page(self, handle: bytes, cookie: int, verifier: bytes, maxcount: int) -> tuple[list[dict], bytes, bool]:
        """One READDIRPLUS reply: entries, cookie verifier, eof; its entry list read in a loop."""
        packer = nfs_pro_v3Packer()
        packer.pack_readdirplus3args(readdirplus3args(
            dir=nfs_fh3(handle), cookie=cookie, cookieverf=verifier, dircount=maxcount, maxcount=maxcount
        ))  # fmt: skip
        reply = nfs_pro_v3Unpacker(self.call(NFS, 3, 17, packer.get_buffer(), maxcount + 4096, self.auth))
        status = reply.unpack_nfsstat3()
        if status != 0:
            raise Unreadable(f"NFS status {status}")
        reply.unpack_post_op_attr()
        verifier = reply.unpack_cookieverf3()
        items = []
        while reply.unpack_bool():
            reply.unpack_uint64()  # fileid
            item = {"name": reply.unpack_filename3(), "cookie": reply.unpack_uint64()}
            item["attributes"] = reply.unpack_post_op_attr()
            item["handle"] = reply.unpack_post_op_fh3()
            items.append(item)
        return items, verifier, bool(reply.unpack_bool())

    def head(self, handle: bytes, limit: int) -> tuple[bytes, bool]:
        return self.guarded(self._head, handle, limit)

    def _head(self, handle: bytes, limit: int) -> tuple[bytes, bool]:
        self.limit = limit + 4096
        reply = self.read(handle, offset=0, chunk_count=limit)
        if reply["status"] != 0:
            raise Unreadable(f"NFS status {reply['status']}")
        return bytes(reply["resok"]["data"])[:limit], bool(reply["resok"]["eof"])

    def link_target(self, handle: bytes) -> str | None:
        try:
            reply = self.guarded(self.readlink, handle)
        except Unreadable:
            return None
        if reply["status"] != 0:
            return None
        return bytes(reply["resok"]["data"])[:4096].decode("latin-1")


# --- the walk ---------------------------------------------------------------------------------------

_KINDS = {1: "f", 2: "d", 5: "l"}  # NF3REG, NF3DIR, NF3LNK; devices, sockets and pipes are skipped


@dataclass
class NfsTree:
    """One mounted export as a walk.Tree: READDIRPLUS listings, READ from offset 0 for heads."""

    nfs: _Nfs
    root: bytes
    budget: Budget
    handles: dict[str, bytes] = field(default_factory=dict)

    def _handle(self, path: str) -> bytes:
        if path in ("/", ""):
            return self.root
        known = self.handles.get(path)
        if known is not None:
            return known
        parent, name = posixpath.split(path)
        return self.nfs.lookup_name(self._handle(parent), name.encode("latin-1"))

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        directory = self._handle(path)
        entries: list[Entry] = []
        links: list[tuple[Entry, bytes]] = []
        cookie, verifier, cut = 0, bytes(8), True
        for _ in range(MAX_PAGES):
            maxcount = max(4096, min(DIR_REPLY, self.budget.bytes_left()))
            try:
                items, verifier, eof = self.nfs.page(directory, cookie, verifier, maxcount)
            except Unreadable:
                if not entries:
                    raise
                break  # a later page refused (a stale cookie ...): keep what was listed, as cut
            room = max_entries - len(entries)
            for item in items[:room]:
                cookie = item["cookie"]
                found = self._entry(path, item)
                if found is None:
                    continue
                entries.append(found)
                if found.kind == "l" and item["handle"]["present"] and len(links) < MAX_LINKS:
                    links.append((found, bytes(item["handle"]["handle"]["data"])))
            if len(entries) >= max_entries or len(items) > room:
                break
            if eof:
                cut = False
                break
            if not items or self.budget.bytes_left() <= 0:  # no progress, or no bytes left: a cut listing
                break
        for link, handle in links:
            link.target = self.nfs.link_target(handle)
        return entries, cut

    def _entry(self, path: str, item: dict) -> Entry | None:
        attributes = item["attributes"].get("attributes") if item["attributes"]["present"] else None
        if attributes is None:
            return None
        name = bytes(item["name"]).decode("latin-1")
        found = entry(_KINDS.get(attributes["type"], "?"), name, attributes["size"])
        if found is not None and item["handle"]["present"] and len(self.handles) < MAX_HANDLES:
            self.handles[posixpath.join(path, name)] = bytes(item["handle"]["handle"]["data"])
        return found

    def head(self, path: str, entry: Entry, limit: int) -> tuple[bytes, bool]:
        return self.nfs.head(self._handle(path), limit)


# --- the session ------------------------------------------------------------------------------------


def _failure(exc: BaseException) -> tuple[ProbeStatus, str]:
    if isinstance(exc, RpcFailure):
        return exc.status, str(exc)
    if isinstance(exc, Stop):
        return ProbeStatus.TIMEOUT, "session wall time spent"
    if isinstance(exc, EOFError | XDRError | struct.error | ValueError | TypeError | KeyError | RecursionError):
        return ProbeStatus.PROTOCOL_ERROR, "malformed RPC reply"
    return os_failure(exc)


class _Session:
    def __init__(self, conn: BlockingSession, port: int, limits: WalkLimits, timeout: float, wall: float,
                 portmap_port: int = PORTMAP_PORT, mountd_ports: tuple[int, ...] = MOUNTD_PORTS) -> None:
        self.conn, self.host, self.port, self.timeout = conn, conn.host, port, timeout
        self.portmap_port, self.mountd_ports = portmap_port, mountd_ports
        self.limits = limits
        self.budget = Budget.start(limits, wall)
        self.facts = RepositoryFacts(access="not-attempted")
        self.auth = {"flavor": AUTH_SYS, "machine_name": "phiwatch", "uid": NOBODY, "gid": NOBODY, "aux_gid": []}
        self.sockets: list[socket.socket] = []
        self.expired = False
        self.rpc_seen = False

    def step(self) -> float:
        """Seconds for one network step: the timeout, within the session's deadline (Stop when spent)."""
        return max(0.05, min(self.timeout, self.budget.remaining_time()))

    def kill(self) -> None:
        """Watchdog: the wall time is spent; wake any blocked read by shutting sockets down."""
        self.expired = True
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def open(self, kind: type[_Transport], port: int) -> Any:
        client = kind(self, port)
        client.connect()
        return client

    def run(self) -> Outcome:
        try:
            if self.port == self.portmap_port:
                return self._portmapper()
            return self._nfs(self.port, None)
        except Exception as exc:  # every failure ends in a status, never a traceback
            return failed(exc, _failure, self.facts, self.expired)
        finally:
            for sock in self.sockets:
                sock.close()

    def _portmapper(self) -> Outcome:
        portmap = self.open(_Portmap, self.port)
        try:
            entries = portmap.entries()
        finally:
            portmap.close()
        ports: dict[int, dict[int, set[int]]] = {}
        for program, version, protocol, port in entries:
            if program in PROGRAMS and protocol == TCP and 0 < port < 65536:
                ports.setdefault(program, {}).setdefault(port, set()).add(version)
        self.facts.registered = sanitize(_registered(ports), 200)
        nfs = ports.get(NFS, {})
        if not nfs:
            return Outcome(ProbeStatus.OPEN, self.facts, "portmapper without NFS over TCP")
        nfs_port = next((p for p, versions in nfs.items() if 3 in versions), min(nfs))
        if nfs_port == NFS_PORT:
            return Outcome(ProbeStatus.OPEN, self.facts, f"NFS on port {NFS_PORT}: its exports are probed there")
        mountd = next((p for p, versions in ports.get(MOUNT, {}).items() if 3 in versions), None)
        return self._nfs(nfs_port, mountd)

    def _nfs(self, port: int, mountd: int | None) -> Outcome:
        nfs = self.open(_Nfs, port)
        try:
            nfs.call(NFS, 3, 0)
        except Unavailable as exc:
            if exc.versions is None:
                raise
            low, high = exc.versions
            self.facts.dialect = f"NFSv{low}" if low == high else f"NFSv{low}-v{high}"
            return Outcome(ProbeStatus.OPEN, self.facts, "NFSv3 not offered; other versions are not walked")
        self.facts.dialect = "NFSv3"
        if mountd is None:
            mountd = self._find_mountd(port)
        if mountd is None:
            self.facts.error = "mountd not found"
            return Outcome(ProbeStatus.OPEN, self.facts, "NFSv3 server; mountd not found")
        mount = self.open(_Mount, mountd)
        exports = mount.exports()
        self.facts.listing = "nfs"
        return self._exports(mount, nfs, exports)

    def _find_mountd(self, nfs_port: int) -> int | None:
        portmap: _Portmap | None = None
        try:
            portmap = self.open(_Portmap, self.portmap_port)
            found = int(portmap.getport(MOUNT, 3, TCP))
            if 0 < found < 65536:
                return found
        except TimeoutError:
            return None  # a filtered portmapper: mountd's ports are most likely filtered too
        except (OSError, RpcFailure, struct.error, EOFError, XDRError):
            pass  # a closed or odd portmapper: try mountd's usual ports
        finally:
            if portmap is not None:
                portmap.close()
        for port in (*self.mountd_ports, nfs_port):
            trial: _Mount | None = None
            try:
                trial = self.open(_Mount, port)
                trial.call(MOUNT, 3, 0)
                return port
            except (OSError, RpcFailure, struct.error, EOFError, XDRError):
                continue
            finally:
                if trial is not None:
                    trial.close()
        return None

    def _exports(self, mount: _Mount, nfs: _Nfs, exports: list[tuple[bytes, list[bytes]]]) -> Outcome:
        shares: list[ShareFacts] = []
        detail = None
        for path, groups in exports[: self.limits.max_shares]:
            share, failure = self._share(mount, nfs, path)
            share.world_readable = is_world(groups)
            shares.append(share)
            if failure is not None:  # the session broke: what was seen is kept
                detail = failure
                break
        if len(exports) > len(shares):
            self.facts.error = f"{len(exports) - len(shares)} export(s) not walked"
        self.facts.shares = shares
        readable = any(share.readable for share in shares)
        self.facts.access = "anonymous" if readable else "denied" if shares else "not-attempted"
        if readable:
            self.facts.login = "nobody (AUTH_SYS uid 65534)"
        if has_medical_files(shares):
            return Outcome(ProbeStatus.EXPOSED, self.facts, detail)
        if readable or detail is not None:
            return Outcome(ProbeStatus.OPEN, self.facts, detail)
        if shares:
            return Outcome(ProbeStatus.REJECTED, self.facts, "no export could be mounted and read")
        return Outcome(ProbeStatus.OPEN, self.facts, "no export listed")

    def mount_share(self, mount: _Mount, nfs: _Nfs, path: bytes) -> ShareFacts:
        """Mount one export as nobody and walk it (also for exports the list does not show)."""
        return self._share(mount, nfs, path)[0]

    def _share(self, mount: _Mount, nfs: _Nfs, path: bytes) -> tuple[ShareFacts, str | None]:
        """The export's facts, and the failure that broke the session (None when it did not)."""
        name = _share_name(path)
        try:
            result = mount.mnt(path)
        except Exception as exc:
            broken = self._broken(exc)
            return ShareFacts(name=name, error=broken), broken
        if result["status"] != 0:
            code = MOUNT_ERRORS.get(result["status"], str(result["status"]))
            refused = result["status"] in (1, 13)
            return ShareFacts(name=name, auth_required=refused, error=f"mount refused ({code})"), None
        info = result["mountinfo"]
        flavors = [int(f) for f in info["auth_flavors"][:16]]
        if flavors and AUTH_SYS not in flavors and AUTH_NONE not in flavors:
            kerberos = sorted({KERBEROS[f] for f in flavors if f in KERBEROS})
            need = f"Kerberos ({', '.join(kerberos)})" if kerberos else "another security flavour"
            self._unmount(mount, path)
            return ShareFacts(name=name, auth_required=True, error=f"mount requires {need}"), None
        nfs.denied = 0
        walk = BoundedWalk(NfsTree(nfs, bytes(info["fhandle"]), self.budget), self.budget, name)
        failure = walk.run_keeping(self._broken)
        if failure is None:
            self._unmount(mount, path)
        share = walk.facts()
        if not share.readable and share.error is None:
            share.auth_required = nfs.denied > 0
            denied = "NFS calls refused for AUTH_SYS uid 65534 from an unprivileged port"
            share.error = denied if nfs.denied else "root folder not readable for uid 65534"
        return share, failure

    def _broken(self, exc: BaseException) -> str:
        return "session wall time spent" if self.expired else _failure(exc)[1]

    def _unmount(self, mount: _Mount, path: bytes) -> None:
        try:
            mount.umnt(path)
        except (OSError, RpcFailure, Stop, EOFError, XDRError):
            pass  # UMNT is a courtesy: servers keep no state that matters for it


def _share_name(path: bytes) -> str:
    return place_name(sanitize(path, 64) or "/")


def _registered(ports: dict[int, dict[int, set[int]]]) -> str:
    parts = []
    for program in (NFS, MOUNT):
        for port, versions in sorted(ports.get(program, {}).items())[:4]:
            listed = ",".join(f"v{v}" for v in sorted(versions)[:6])
            parts.append(f"{PROGRAMS[program]} {listed} on tcp/{port}")
    return "portmapper: " + ("; ".join(parts) or "no NFS registered")


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> Outcome:
    """Probe one NFS or portmapper service; never raises."""
    return await walk_session(engine, peer.host, probe_options.files.limits, lambda conn, limits, wall:
                              _Session(conn, peer.port, limits, engine.limits.timeout, wall))
