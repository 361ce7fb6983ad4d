"""WebDAV shares on web ports: anonymous PROPFIND listings walked with the shared bounded walk.

A web service is a WebDAV share when `PROPFIND` with `Depth: 1` on its root (or on Orthanc's
`/webdav/by-patients/`, where a carelessly configured Orthanc serves its studies as folders named
after patients) answers 207 Multi-Status with a DAV multistatus. Each folder is listed with one more
`PROPFIND` (Depth 1, never infinity); file heads are read with a ranged `GET`. A share that asks
for a login, or refuses `PROPFIND`, is not walked (and not reported as WebDAV).

The multistatus is parsed as it arrives, with defusedxml's parser (DTDs, entity declarations and
external references refused), into a handful of fields per entry, so a listing never costs more
than the bytes and entries the walk allows: an endless multistatus is cut, a huge one counted as
far as the budget goes. Folder and file names only steer the walk; none is ever reported.
"""

from __future__ import annotations

import posixpath
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ..engine import Engine
from ..models import ProbeStatus, RepositoryFacts
from ..peertext import peer_text, place_name
from ..sessions import BlockingSession
from .blocking import walk_session
from .dirindex import TracedSockets
from .dirindex import _client as session_client  # httpx over the engine's blocking session
from .outcome import Peer
from .walk import BoundedWalk, Budget, Entry, Outcome, Stop, Unreadable, WalkLimits, entry, has_medical_files

if TYPE_CHECKING:
    from .options import ProbeOptions

# The web root, then Orthanc's WebDAV tree by patient (its by-studies, by-dates and by-uids views hold
# the same instances again: walking one view counts each file once).
ROOTS = ("/", "/webdav/by-patients/")
MAX_LISTING = 4 * 1024 * 1024  # bytes of one multistatus
MAX_HREF = 4096  # characters of one href kept while parsing
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<propfind xmlns="DAV:"><prop><resourcetype/><getcontentlength/></prop></propfind>\n'
)
DAV = "{DAV:}"


class NotDav(Exception):
    """The answer is not a DAV multistatus."""


@dataclass
class _Response:
    href: str = ""
    collection: bool = False
    size: int | None = None
    statuses: int = 0  # <status> elements seen
    granted: bool = False  # one of them was 2xx

    @property
    def ok(self) -> bool:
        return self.granted or not self.statuses


class _Multistatus:
    """A parser target that keeps, per <response>, only its href, whether it is a collection and
    its length; stops counting beyond `max_entries`."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.responses: list[_Response] = []
        self.current: _Response | None = None
        self.text: list[str] = []
        self.text_size = 0
        self.root: str | None = None
        self.cut = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if self.root is None:
            self.root = tag
            if tag != DAV + "multistatus":
                raise NotDav()
        if tag == DAV + "response":
            self.current = _Response()
        elif tag == DAV + "collection" and self.current is not None:
            self.current.collection = True
        self.text, self.text_size = [], 0

    def data(self, text: str) -> None:
        if self.text_size < MAX_HREF:
            self.text.append(text[: MAX_HREF - self.text_size])
            self.text_size += len(text)

    def end(self, tag: str) -> None:
        current = self.current
        if current is not None:
            value = "".join(self.text).strip()
            if tag == DAV + "href" and not current.href:
                current.href = value
            elif tag == DAV + "getcontentlength" and value.isdigit() and len(value) < 20:
                current.size = int(value)
            elif tag == DAV + "status":
                current.statuses += 1
                code = value.split(" ")[1:2]
                current.granted = current.granted or (bool(code) and code[0].startswith("2"))
            elif tag == DAV + "response":
                if len(self.responses) < self.max_entries + 1:
                    self.responses.append(current)
                else:
                    self.cut = True
                self.current = None
        self.text, self.text_size = [], 0

    def close(self) -> None:
        return None


@dataclass
class DavTree(TracedSockets):
    """One WebDAV share as a walk.Tree; "/" is the share's root (`base`, a URL path ending in /)."""

    client: httpx.Client
    origin: str
    base: str
    budget: Budget
    sockets: list[socket.socket] = field(default_factory=list)
    expired: bool = False
    server: str | None = None
    root_listing: tuple[list[Entry], bool] | None = None

    def _url(self, path: str) -> str:
        """The URL path of a walk path (each segment quoted again: names never travel raw)."""
        parts = [quote(part, safe="") for part in path.strip("/").split("/") if part]
        return self.base + "/".join(parts) + ("/" if parts else "")

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> httpx.Response:
        if self.expired:
            raise Stop("time")
        self.budget.remaining_time()
        request = self.client.build_request(method, self.origin + url, headers=headers, content=body,
                                            extensions={"trace": self._trace})
        response = self.client.send(request, stream=True)
        if self.server is None:
            self.server = peer_text(response.headers.get("server") or None)
        return response

    def propfind(self, url: str, max_entries: int) -> tuple[list[Entry], bool]:
        """One folder's entries (Depth 1). NotDav when the answer is no multistatus; Unreadable when
        the folder is refused."""
        headers = {"Depth": "1", "Content-Type": 'application/xml; charset="utf-8"'}
        response = self._send("PROPFIND", url, headers, PROPFIND_BODY)
        try:
            if response.status_code in (401, 403):
                raise Unreadable(str(response.status_code))
            content = response.headers.get("content-type", "").lower()
            if response.status_code != 207 or "xml" not in content:
                raise NotDav()
            target = _Multistatus(max_entries)
            parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
            # One listing may take half of what the budget has left: the walk keeps bytes to count it.
            cut = self._feed(response, parser, target, min(MAX_LISTING, self.budget.bytes_left() // 2))
        finally:
            response.close()
        return self._entries(url, target), cut or target.cut

    def _feed(self, response: httpx.Response, parser: DefusedXMLParser, target: _Multistatus, limit: int) -> bool:
        """Feed the body to the parser as it arrives; True when a bound cut it."""
        received = 0
        try:
            for chunk in response.iter_raw():
                self.budget.charge(len(chunk))
                parser.feed(chunk[: max(0, limit - received)])
                received += len(chunk)
                if received >= limit or target.cut:
                    return True
                if self.expired:
                    raise Stop("time")
                self.budget.remaining_time()
            parser.close()
        except DefusedXmlException:  # a DTD, an entity declaration (a bomb), an external reference
            raise NotDav() from None
        except SyntaxError:  # broken XML: kept as far as it parsed
            if target.root is None:
                raise NotDav() from None
            return True
        except (Stop, httpx.TimeoutException, httpx.ReadError, httpx.RemoteProtocolError):
            if not target.responses:
                raise
            return True
        return False

    def _entries(self, url: str, target: _Multistatus) -> list[Entry]:
        entries: list[Entry] = []
        seen: set[str] = set()
        for item in target.responses:
            try:
                path = unquote(urlsplit(item.href).path)
            except ValueError:
                continue
            parent, name = posixpath.split(path.rstrip("/"))
            if not name or parent.rstrip("/") + "/" != unquote(url) or name in seen or not item.ok:
                continue  # the folder itself, or not a child of it
            seen.add(name)
            found = entry("d" if item.collection else "f", name, item.size)
            if found is not None:
                entries.append(found)
        return entries

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        if path == "/" and self.root_listing is not None:
            listing, self.root_listing = self.root_listing, None
            return listing
        try:
            return self.propfind(self._url(path), max_entries)
        except NotDav:
            raise Unreadable("not a listing") from None

    def head(self, path: str, item: Entry, limit: int) -> tuple[bytes, bool]:
        if limit <= 0:
            raise Unreadable("no budget")
        url = self._url(posixpath.dirname(path)) + quote(item.name, safe="")
        response = self._send("GET", url, {"Range": f"bytes=0-{limit - 1}"})
        try:
            if response.status_code == 416:
                return b"", True
            if response.status_code not in (200, 206):
                raise Unreadable(str(response.status_code))
            data = bytearray()
            ended = True
            for chunk in response.iter_raw():
                self.budget.charge(len(chunk))
                data += chunk[: limit - len(data)]
                if len(data) >= limit:
                    ended = False
                    break
        finally:
            response.close()
        if item.size is not None:
            return bytes(data), len(data) >= item.size
        return bytes(data), ended


class _Session:
    def __init__(self, conn: BlockingSession, port: int, tls: bool, limits: WalkLimits, timeout: float,
                 wall: float) -> None:  # fmt: skip
        host = conn.host
        name = f"[{host}]" if ":" in host else host
        self.conn, self.context = conn, conn.tls_context()  # certificates are the HTTP probe's to judge
        self.origin = f"{'https' if tls else 'http'}://{name}:{port}"
        self.limits, self.timeout, self.tls = limits, timeout, tls
        self.budget = Budget.start(limits, wall)
        self.tree: DavTree | None = None

    def kill(self) -> None:
        if self.tree is not None:
            self.tree.kill()

    def run(self) -> Outcome | None:
        client = session_client(self.conn, self.context, self.timeout)
        try:
            for base in ROOTS:
                self.tree = DavTree(client, self.origin, base, self.budget)
                try:
                    self.tree.root_listing = self.tree.propfind(base, self.limits.max_entries)
                except (NotDav, Unreadable):
                    continue
                return self._walk(self.tree)
            return None
        except Exception:  # the root could not be asked or read: not WebDAV as far as seen
            return None
        finally:
            client.close()

    def _walk(self, tree: DavTree) -> Outcome:
        dialect = "orthanc" if tree.base != "/" else None
        facts = RepositoryFacts(access="anonymous", listing="webdav", dialect=dialect, server=tree.server,
                                tls_offered=self.tls)
        walk = BoundedWalk(tree, self.budget, place_name(tree.base))
        detail = walk.run_keeping(
            lambda exc: "session wall time spent" if tree.expired else f"walk stopped ({type(exc).__name__})")
        share = walk.facts()
        facts.shares = [share]
        status = ProbeStatus.EXPOSED if has_medical_files([share]) else ProbeStatus.OPEN
        return Outcome(status, facts, detail)


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> Outcome | None:
    """The web service as an anonymous WebDAV share, or None when it is not one; never raises."""
    return await walk_session(engine, peer.host, probe_options.files.limits, lambda conn, limits, wall:
                              _Session(conn, peer.port, peer.tls, limits, engine.limits.timeout, wall))
