"""HTTP directory indexes (Apache, nginx, IIS, lighttpd, Python http.server ...) walked as file repositories.

After the HTTP probe identified a web service, one GET / tells whether its root is a
generated directory index; if not, the probe answers None at once. Otherwise the index
is walked with probes.walk: a folder is listed by fetching its URL and keeping the links
to its own children (parent, sort, absolute, off-site and script links are ignored; a
trailing slash marks a folder), a file's head is fetched with a Range request and read
no further than the byte budget even when the server ignores Range.

httpx's sync client runs in the engine's thread pool (probes.blocking); its sockets are
recorded as they open so the watchdog can shut them down. Facts carry counts and PHI
attribute names only, never a file or folder name.
"""

from __future__ import annotations

import errno
import html
import logging
import posixpath
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

import httpcore
import httpx
from httpcore._backends.sync import SyncStream

from ..engine import Engine
from ..models import ProbeStatus, RepositoryFacts
from ..peertext import peer_text
from ..sessions import BlockingSession
from .blocking import walk_session
from .http_client import USER_AGENT
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

MAX_LISTING = 2 * 1024 * 1024  # bytes of one listing page
DETECT_BYTES = 64 * 1024  # the start of a page that must show it is an index
MAX_REDIRECTS = 3
MAX_TAG = 1024  # longer <a ...> tags are not links
SIZE_WINDOW = 400  # characters around a link searched for its size
REDIRECTS = (301, 302, 303, 307, 308)
# httpx logs every request's URL at INFO, and URLs here carry file and folder names.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

# --- recognising and parsing index pages -------------------------------------------------------

_IIS_LINE = re.compile(
    rb"\d{1,2}/\d{1,2}/\d{4}\s+\d{1,2}:\d{2}\s*(?:[AP]M)?\s+(?:&lt;dir&gt;|\d+)\s+<a\s+href=", re.I
)
_A_TAG = re.compile(r"<a\s[^<>]{0,1024}>", re.I)  # longer tags are not links
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>]+))""", re.I)
_A_END = re.compile(r"</a\s*>", re.I)
_BREAK = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(r"<[^<>]{0,1024}>")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)i?B?$", re.I)
_UNIT = re.compile(r"^([KMGT]?)i?B$|^([KMGT])$", re.I)  # a unit written apart from its number ("1.2 kB")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# A date or time shown beside an entry: 2021-03-14, 14-Mar-2021, 2021-Mar-14, 3/14/2021, March 14, 2021, <time>
_DATE = re.compile(
    r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}-[A-Za-z]{3}-\d{4}|\d{4}-[A-Za-z]{3}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4}"
    r"|[A-Z][a-z]{2,8} \d{1,2}, \d{4})\b"  # IIS's long date: Sunday, March 14, 2021
    r"|<time\b",
    re.I,
)
ROW_WINDOW = 2_000  # characters after a link searched for its row's date and size
MIN_STRUCTURE = 0.6  # share of a page's links that must stay in the listed tree (children, parent, sort)


@dataclass
class _Link:
    href: str
    text: str  # the link's text, tags removed
    start: int
    end: int  # just after the closing </a>, or after the tag when it has none


@dataclass
class Shape:
    """What a page's links show about it: the evidence a listing is recognised by."""

    children: int = 0  # distinct names one path segment below the folder
    echoed: int = 0  # children whose link text is their own name (possibly cut short)
    described: int = 0  # children whose row shows a date or a size
    parents: int = 0  # links to the folder above
    controls: int = 0  # links into the folder with a query: sort controls (?C=N;O=D, ?sort=name), downloads
    other: int = 0  # links leaving the listed tree: off-site, absolute elsewhere, scripts

    def is_index(self) -> bool:
        """Links into the same tree dominate, and they look like a listing: sizes and dates,
        sort controls, or names shown as they are."""
        inside = self.children + self.parents + self.controls
        if inside == 0 or inside < MIN_STRUCTURE * (inside + self.other):
            return False
        if self.children == 0:
            return bool(self.controls and self.parents)  # an empty folder of a server with sort controls
        return (
            self.controls > 0
            or self.described * 2 >= self.children
            or self.echoed * 5 >= self.children * 4
        )


def _links(text: str) -> list[_Link]:
    links = []
    for tag in _A_TAG.finditer(text):
        href = _HREF.search(tag.group(0))
        if href is None:
            continue
        value = html.unescape(next(g for g in href.groups() if g is not None))
        close = _A_END.search(text, tag.end(), tag.end() + ROW_WINDOW)
        end = close.end() if close else tag.end()
        inner = text[tag.end() : close.start()] if close else ""
        label = " ".join(html.unescape(_TAG.sub(" ", inner)).split())
        links.append(_Link(value, label, tag.start(), end))
    return links


def _echoes(label: str, name: str) -> bool:
    """The link text is the entry's name: whole, marked as a folder or link ("/", "@"), or cut short ("..>")."""
    label = label.strip()
    label = label[:-1] if label.endswith(("/", "@")) else label
    if label == name:
        return True
    for cut in ("..>", "...", "\u2026"):
        if label.endswith(cut) and len(label) > len(cut) + 2:
            return name.startswith(label[: -len(cut)])
    return False


def shape(page: bytes, folder: str = "/") -> Shape:
    """The structure of a page's start, as a listing of `folder` (a URL path ending in /)."""
    text = page[:DETECT_BYTES].decode("utf-8", "replace")
    links = _links(text)
    found = Shape()
    names: dict[str, int] = {}  # child name -> index of its first link
    echoed: set[str] = set()
    parent = posixpath.dirname(folder.rstrip("/")).rstrip("/") + "/"
    for index, link in enumerate(links):
        child = _child(link.href, folder)
        if child is not None:
            name = child[1]
            names.setdefault(name, index)
            if _echoes(link.text, name):
                echoed.add(name)
            continue
        try:
            parts = urlsplit(link.href)
            target = urljoin(folder, parts.path) if not parts.scheme and not parts.netloc else None
        except ValueError:
            found.other += 1
            continue
        if target is None or not target.startswith("/"):
            found.other += 1
        elif parts.query and target.startswith(folder):
            found.controls += 1  # sort controls (?C=N;O=D, ?sort=name), downloads (DICOM/?download=zip)
        elif target == folder and not parts.query:
            continue  # the folder itself (a breadcrumb)
        elif folder != "/" and target.rstrip("/") + "/" == parent and not parts.query:
            found.parents += 1
        else:
            found.other += 1
    found.children, found.echoed = len(names), len(echoed)
    starts = sorted(names.values())
    for position, index in enumerate(starts):
        link = links[index]
        stop = links[starts[position + 1]].start if position + 1 < len(starts) else len(text)
        row = text[link.end : min(stop, link.end + ROW_WINDOW)]
        before = text[max(0, link.start - 80) : link.start]  # IIS shows date and size before the name
        if _DATE.search(row) or _DATE.search(before) or _size(row, "", "generic") is not None:
            found.described += 1
    return found


def style(page: bytes, folder: str = "/") -> str | None:
    """The index style of a page's start, or None when its structure is not a listing's.

    Recognition is by structure (Shape.is_index); the style only names the server family
    (apache, nginx, iis, lighttpd, python, caddy, rclone, or generic) and tells where sizes are.
    """
    head = page[:DETECT_BYTES]
    if not shape(head, folder).is_index():
        return None
    lower = head.lower()
    if b"[to parent directory]</a>" in lower or _IIS_LINE.search(head):
        return "iis"
    if b'<div class="list">' in lower and b'summary="directory listing"' in lower:
        return "lighttpd"
    if b"?c=n;o=d" in lower or b"?c=m;o=a" in lower or b"<address>apache" in lower:
        return "apache"
    if b"<h1>directory listing for" in lower:
        return "python"
    if b"caddyserver.com" in lower:
        return "caddy"
    if b"?download=zip" in lower:
        return "rclone"
    if b"<h1>index of" in lower and b"<hr><pre>" in lower:
        return "nginx"
    return "generic"


def parse(page: bytes, folder: str, kind: str, max_entries: int) -> tuple[list[tuple[Entry, str]], bool]:
    """The folder's children as (entry, url path) pairs; True when cut at max_entries.

    `folder` is the listing's URL path (ending in /); a link counts when it resolves, without
    scheme, host or query, to one path segment below it. A child's size is read from its row:
    the text between its link and the next child's (before the link for IIS).
    """
    text = page.decode("utf-8", "replace")
    found: list[tuple[Entry, str]] = []
    seen: set[str] = set()
    pending: tuple[str, str, bool, int] | None = None  # the last child, waiting for its row's end
    previous = 0

    def add(url: str, name: str, is_folder: bool, end: int, stop: int, before: str) -> bool:
        size = None if is_folder else _size(text[end : min(stop, end + ROW_WINDOW)], before, kind)
        item = entry("d" if is_folder else "f", name, size)
        if item is None:
            return True
        if len(found) >= max_entries:
            return False
        found.append((item, url))
        return True

    befores: dict[str, str] = {}
    for tag in _A_TAG.finditer(text):
        start, end = tag.span()
        href = _HREF.search(tag.group(0))
        before, previous = text[max(previous, start - SIZE_WINDOW) : start], end
        if href is None:
            continue
        child = _child(html.unescape(next(g for g in href.groups() if g is not None)), folder)
        if child is None or child[1] in seen:  # one entry per name (icon and name links repeat it)
            continue
        if pending is not None and not add(*pending[:3], pending[3], start, befores[pending[1]]):
            return found, True
        close = _A_END.search(text, end, end + MAX_TAG)
        seen.add(child[1])
        befores[child[1]] = before
        pending = (*child, close.end() if close else end)
    if pending is not None:
        last = pending[3]
        stop = _ROW_END.search(text, last, last + ROW_WINDOW)
        if not add(*pending[:3], last, stop.start() if stop else len(text), befores[pending[1]]):
            return found, True
    return found, False


_ROW_END = re.compile(r"</(?:table|pre|ul|tbody)\s*>|<hr\b|<address\b", re.I)


def _child(href: str, folder: str) -> tuple[str, str, bool] | None:
    """(url path, name, is folder) when href names a direct child of folder."""
    if not href or len(href) > MAX_TAG or any(c in href for c in "\\\r\n\t\0"):
        return None
    try:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or parts.query or not parts.path:
            return None
        url = urljoin(folder, parts.path)
    except ValueError:
        return None
    if not url.startswith(folder) or len(url) <= len(folder):
        return None
    rest = url[len(folder) :]
    is_folder = rest.endswith("/")
    segment = rest[:-1] if is_folder else rest
    if not segment or "/" in segment:
        return None
    return url, unquote(segment, errors="replace"), is_folder


def _size(row: str, before: str, kind: str) -> int | None:
    """The size shown in a child's row: after its link for most styles, before it for IIS; None when not shown."""
    if kind == "iis":
        segment = _BREAK.split(before)[-1]
        tokens = html.unescape(_TAG.sub(" ", segment)).split()
        return _size_token(tokens[-1]) if tokens else None
    tokens = html.unescape(_TAG.sub(" ", row)).split()
    for index, token in enumerate(tokens[:16]):
        if token in ("-", "\u2014"):  # the size column of a folder or an unknown size
            return None
        size = _size_pair(token, tokens[index + 1] if index + 1 < len(tokens) else "")
        if size is not None:
            return size
    return None


def _size_pair(token: str, following: str) -> int | None:
    """A size written as one token ("39K", "409600") or as a number and its unit ("38 B", "1.2 kB")."""
    unit = _UNIT.match(following)
    if unit and re.fullmatch(r"\d+(?:\.\d+)?", token):
        letter = (unit[1] or unit[2] or "").upper()
        return int(float(token) * _UNITS[letter])
    return _size_token(token)


def _size_token(token: str) -> int | None:
    match = _SIZE.match(token)
    if match is None:
        return None
    return int(float(match[1]) * _UNITS[match[2].upper()])


# --- the tree ---------------------------------------------------------------------------------------


class NotIndex(Exception):
    """The page is not a directory index."""


class TracedSockets:
    """The last sockets httpx opened for a tree (from its trace hook), shut down by `kill` when the
    watchdog ends the session; the tree's dataclass holds `sockets` and `expired`."""

    sockets: list[socket.socket]
    expired: bool

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                self.sockets = [*self.sockets[-3:], sock]

    def kill(self) -> None:
        self.expired = True
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class IndexTree(TracedSockets):
    """A web server's generated indexes as a walk.Tree; "/" is the root page's folder."""

    client: httpx.Client
    origin: str
    budget: Budget
    sockets: list[socket.socket] = field(default_factory=list)
    folders: dict[str, str] = field(default_factory=dict)  # walk path -> URL path
    root_listing: tuple[list[Entry], bool] | None = None
    expired: bool = False
    server: str | None = None
    kind: str | None = None
    reserve: float = 0.0  # seconds a listing page leaves to the rest of the walk
    current: str = "/"  # URL path of the folder whose page is being read

    @contextmanager
    def _get(self, path: str, headers: dict[str, str] | None = None) -> Iterator[tuple[httpx.Response, str]]:
        """GET path, following same-origin redirects (at most 3); yields (response, final URL path)."""
        for _ in range(MAX_REDIRECTS + 1):
            if self.expired:
                raise Stop("time")
            self.budget.remaining_time()
            try:
                request = self.client.build_request(
                    "GET", self.origin + path, headers=headers, extensions={"trace": self._trace}
                )
            except (httpx.InvalidURL, ValueError):  # a link no client can request
                raise Unreadable("address") from None
            response = self.client.send(request, stream=True)
            try:
                location = response.headers.get("location", "")
                if response.status_code not in REDIRECTS or not location:
                    if self.server is None:
                        self.server = peer_text(response.headers.get("server") or None)
                    yield response, path
                    return
            finally:
                response.close()
            path = self._same_origin(path, location)
        raise Unreadable("too many redirects")

    def _same_origin(self, path: str, location: str) -> str:
        """The path (and query) a redirect points to; Unreadable when it leaves the origin."""
        try:
            here, there = urlsplit(self.origin), urlsplit(urljoin(self.origin + path, location))
            default = 443 if there.scheme == "https" else 80
            same = (there.scheme, there.hostname, there.port or default) == (here.scheme, here.hostname, here.port)
        except ValueError:
            same = False
        if not same or not there.path.startswith("/"):
            raise Unreadable("redirect off the origin")
        return there.path + (f"?{there.query}" if there.query else "")

    def _read(self, response: httpx.Response, limit: int, page: bool) -> tuple[bytes, bool]:
        """At most `limit` bytes of the body; True when it ended (all of it came).

        For a page, its start must show an index (else NotIndex, read no further than
        DETECT_BYTES); a page cut short by time or the peer is kept as far as it came.
        """
        data = bytearray()
        known = not page  # the page showed it is an index
        check_at = 512
        ended = True
        try:
            for chunk in response.iter_raw():
                self.budget.charge(len(chunk))
                data += chunk[: limit - len(data)]
                if not known and len(data) >= check_at:
                    known = self._recognise(data, final=len(data) >= DETECT_BYTES)
                    check_at *= 2
                if len(data) >= limit:
                    ended = False
                    break
                if self.expired:
                    raise Stop("time")
                if self.budget.remaining_time() < self.reserve and page:
                    if known or self._recognise(data, final=True):  # a page that drips: keep time to
                        return bytes(data), False  # count what it showed
        except (Stop, httpx.TimeoutException, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            if not data or (page and not (known or self._recognise(data, final=False))):
                raise
            if isinstance(exc, Stop) and not page:
                raise
            return bytes(data), False  # kept as far as it came (a listing: the walk stops at its next step)
        if not known:
            self._recognise(data, final=True)
        return bytes(data), ended

    def _recognise(self, data: bytearray, final: bool) -> bool:
        """True when the page's start shows an index; NotIndex when it cannot any more (final)."""
        found = style(bytes(data[:DETECT_BYTES]), self.current)
        if found is None and final:
            raise NotIndex()
        self.kind = self.kind or found
        return found is not None

    def root(self, max_entries: int) -> None:
        """Fetch / and keep its listing; NotIndex when it is not a directory index."""
        with self._get("/") as (response, path):
            content = response.headers.get("content-type", "text/html").lower()
            if response.status_code != 200 or "html" not in content:
                raise NotIndex()
            folder = urlsplit(path).path
            self.current = folder if folder.endswith("/") else posixpath.dirname(folder) + "/"
            page, ended = self._read(response, min(MAX_LISTING, self.budget.bytes_left()), page=True)
        self.folders["/"] = self.current
        self.root_listing = self._entries("/", page, not ended, max_entries)

    def _entries(self, path: str, page: bytes, cut: bool, max_entries: int) -> tuple[list[Entry], bool]:
        folder = self.folders[path]
        pairs, more = parse(page, folder, style(page, folder) or self.kind or "generic", max_entries)
        entries = []
        for item, url in pairs:
            if item.kind == "d":
                self.folders[posixpath.normpath(posixpath.join(path, item.name))] = url
            else:
                item.target = url  # where to fetch it; never reported
            entries.append(item)
        return entries, cut or more or self.budget.bytes_left() <= 0

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        if path == "/" and self.root_listing is not None:
            listing, self.root_listing = self.root_listing, None
            return listing
        url = self.folders.get(path)
        if url is None:
            raise Unreadable("unknown folder")
        with self._get(url) as (response, final):
            if response.status_code != 200:
                raise Unreadable(str(response.status_code))
            folder = urlsplit(final).path
            self.current = self.folders[path] = folder if folder.endswith("/") else folder + "/"
            try:
                page, ended = self._read(response, min(MAX_LISTING, self.budget.bytes_left()), page=True)
            except NotIndex:
                raise Unreadable("not an index") from None
        return self._entries(path, page, not ended, max_entries)

    def head(self, path: str, entry: Entry, limit: int) -> tuple[bytes, bool]:
        if not entry.target or limit <= 0:
            raise Unreadable("no address")
        with self._get(entry.target, {"Range": f"bytes=0-{limit - 1}"}) as (response, _):
            if response.status_code == 416:
                return b"", True  # an empty file
            if response.status_code not in (200, 206):
                raise Unreadable(str(response.status_code))
            data, ended = self._read(response, limit, page=False)
            total = _range_total(response.headers.get("content-range", ""))
        if response.status_code == 206:
            return data, total is not None and len(data) >= total
        return data, ended


def _range_total(value: str) -> int | None:
    match = re.match(r"\s*bytes\s+\d+-\d+/(\d+)\s*$", value)
    return int(match[1]) if match else None


# --- the session -------------------------------------------------------------------------------------


def _failure(exc: BaseException) -> tuple[ProbeStatus, str]:
    if isinstance(exc, httpx.ConnectError):
        cause = exc.__context__
        if isinstance(cause, ConnectionRefusedError):
            return ProbeStatus.REFUSED, "connection refused"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ProbeStatus.UNREACHABLE, "host or network unreachable"
        return ProbeStatus.RESET, "connection failed"
    if isinstance(exc, httpx.TimeoutException | Stop):
        return ProbeStatus.TIMEOUT, "no answer in time"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return ProbeStatus.PROTOCOL_ERROR, "reply is not HTTP"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return ProbeStatus.RESET, "connection reset"
    return ProbeStatus.ERROR, f"probe failed ({type(exc).__name__})"


class _EngineBackend(httpcore.SyncBackend):
    """httpcore's network backend over the engine's session: every connection under its limits."""

    def __init__(self, session: BlockingSession) -> None:
        self.session = session

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:  # fmt: skip
        try:
            sock = self.session.connect(port, timeout, host)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("no answer to connect") from exc
        except OSError as exc:
            raise httpcore.ConnectError("connect failed") from exc
        return SyncStream(sock)


def _client(session: BlockingSession, context: ssl.SSLContext, timeout: float) -> httpx.Client:
    """httpx's client whose one connection pool dials through the session."""
    transport = httpx.HTTPTransport(verify=context, trust_env=False, retries=0,
                                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
    transport._pool._network_backend = _EngineBackend(session)  # httpcore's only seam for it
    return httpx.Client(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*"},
    )


class _Session:
    def __init__(
        self, conn: BlockingSession, port: int, tls: bool, limits: WalkLimits, timeout: float, wall: float,
    ) -> None:
        host, context = conn.host, conn.tls_context()
        self.conn = conn
        name = f"[{host}]" if ":" in host else host
        self.origin = f"{'https' if tls else 'http'}://{name}:{port}"
        self.limits, self.timeout, self.wall, self.tls, self.context = limits, timeout, wall, tls, context
        self.budget = Budget.start(limits, wall)
        self.tree: IndexTree | None = None
        self.expired = False

    def kill(self) -> None:
        """Watchdog: the wall time is spent; wake any blocked read by shutting the sockets down."""
        self.expired = True
        if self.tree is not None:
            self.tree.kill()

    def run(self) -> Outcome | None:
        # certificates are observed by the HTTP probe, never trusted here
        client = _client(self.conn, self.context, self.timeout)
        self.tree = IndexTree(client, self.origin, self.budget, reserve=self.wall / 10, expired=self.expired)
        try:
            return self._run(self.tree)
        except Exception:  # the root could not be fetched or read: not an index as far as seen
            return None
        finally:
            client.close()

    def _run(self, tree: IndexTree) -> Outcome | None:
        try:
            tree.root(self.limits.max_entries)
        except (NotIndex, Unreadable):
            return None
        facts = RepositoryFacts(
            access="anonymous", listing="html", dialect=tree.kind, server=tree.server, tls_offered=self.tls
        )
        walk = BoundedWalk(tree, self.budget)
        detail = walk.run_keeping(lambda exc: "session wall time spent" if tree.expired else _failure(exc)[1])
        share = walk.facts()
        facts.shares = [share]
        status = ProbeStatus.EXPOSED if has_medical_files([share]) else ProbeStatus.OPEN
        return Outcome(status, facts, detail)


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> Outcome | None:
    """The web root as a directory index, or None when it is not one; never raises."""
    return await walk_session(engine, peer.host, probe_options.files.limits, lambda conn, limits, wall:
                              _Session(conn, peer.port, peer.tls, limits, engine.limits.timeout, wall))
