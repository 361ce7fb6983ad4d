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
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from ..engine import Engine
from ..models import HttpFacts, ProbeStatus, RepositoryFacts
from ..text import sanitize
from . import webrepo
from .blocking import run_session, session_wall
from .http_client import USER_AGENT
from .walk import (
    BoundedWalk,
    Budget,
    Entry,
    FileOptions,
    Outcome,
    Stop,
    Unreadable,
    WalkLimits,
    entry,
    has_medical_files,
)

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

_TITLE = re.compile(rb"<title>\s*(?:index of|directory listing for|directory listing|directory:)\s*\[?/", re.I)
_IIS_LINE = re.compile(
    rb"\d{1,2}/\d{1,2}/\d{4}\s+\d{1,2}:\d{2}\s*(?:[AP]M)?\s+(?:&lt;dir&gt;|\d+)\s+<a\s+href=", re.I
)
_GO_PRE = re.compile(rb"^\s*(?:<!doctype html>\s*)?(?:<meta[^<>]{0,200}>\s*)?<pre>\s*<a\s+href=", re.I)
_A_TAG = re.compile(r"<a\s[^<>]{0,1024}>", re.I)  # longer tags are not links
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>]+))""", re.I)
_A_END = re.compile(r"</a\s*>", re.I)
_BREAK = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(r"<[^<>]{0,1024}>")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)i?B?$", re.I)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def style(page: bytes) -> str | None:
    """The index style of a page's start (apache, nginx, iis, lighttpd, python, generic), or None."""
    head = page[:DETECT_BYTES]
    lower = head.lower()
    if b"<title>directory listing for /" in lower and b"<h1>directory listing for" in lower:
        return "python"
    if b"[to parent directory]</a>" in lower or (b"<pre>" in lower and _IIS_LINE.search(head)):
        return "iis"
    titled = _TITLE.search(head) is not None
    if titled and b'<div class="list">' in lower and b"index of" in lower:
        return "lighttpd"
    if titled and (b"?c=n;o=d" in lower or b"<address>apache" in lower):
        return "apache"
    if titled and b"<h1>index of" in lower and b"<hr><pre>" in lower:
        return "nginx"
    if titled or _GO_PRE.search(head):
        return "generic"
    return None


def parse(page: bytes, folder: str, kind: str, max_entries: int) -> tuple[list[tuple[Entry, str]], bool]:
    """The folder's children as (entry, url path) pairs; True when cut at max_entries.

    `folder` is the listing's URL path (ending in /); a link counts when it resolves, without
    scheme, host or query, to one path segment below it.
    """
    text = page.decode("utf-8", "replace")
    found: list[tuple[Entry, str]] = []
    seen: set[str] = set()
    previous = 0
    for tag in _A_TAG.finditer(text):
        start, end = tag.span()
        href = _HREF.search(tag.group(0))
        before, previous = text[max(previous, start - SIZE_WINDOW) : start], end
        if href is None:
            continue
        child = _child(html.unescape(next(g for g in href.groups() if g is not None)), folder)
        if child is None or child[1] in seen:  # one entry per name (icon and name links repeat it)
            continue
        url, name, is_folder = child
        size = None if is_folder else _size(text, end, before, kind)
        item = entry("d" if is_folder else "f", name, size)
        if item is None:
            continue
        if len(found) >= max_entries:
            return found, True
        seen.add(name)
        found.append((item, url))
    return found, False


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


def _size(text: str, end: int, before: str, kind: str) -> int | None:
    """The size shown next to a link: after it for most styles, before it for IIS; None when not shown."""
    if kind == "iis":
        segment = _BREAK.split(before)[-1]
        tokens = html.unescape(_TAG.sub(" ", segment)).split()
        return _size_token(tokens[-1]) if tokens else None
    close = _A_END.search(text, end, end + MAX_TAG)
    if close is None:
        return None
    segment = text[close.end() : close.end() + SIZE_WINDOW].split("\n", 1)[0]
    segment = re.split(r"<a\s", segment, maxsplit=1, flags=re.I)[0]
    for token in html.unescape(_TAG.sub(" ", segment)).split():
        if token == "-":
            return None
        size = _size_token(token)
        if size is not None:
            return size
    return None


def _size_token(token: str) -> int | None:
    match = _SIZE.match(token)
    if match is None:
        return None
    return int(float(match[1]) * _UNITS[match[2].upper()])


# --- the tree ---------------------------------------------------------------------------------------


class NotIndex(Exception):
    """The page is not a directory index."""


@dataclass
class IndexTree:
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
                        self.server = sanitize(response.headers.get("server", ""), 80) or None
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
        found = style(bytes(data[:DETECT_BYTES]))
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
            page, ended = self._read(response, min(MAX_LISTING, self.budget.bytes_left()), page=True)
        folder = urlsplit(path).path
        self.folders["/"] = folder if folder.endswith("/") else posixpath.dirname(folder) + "/"
        self.root_listing = self._entries("/", page, not ended, max_entries)

    def _entries(self, path: str, page: bytes, cut: bool, max_entries: int) -> tuple[list[Entry], bool]:
        pairs, more = parse(page, self.folders[path], style(page) or self.kind or "generic", max_entries)
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
            try:
                page, ended = self._read(response, min(MAX_LISTING, self.budget.bytes_left()), page=True)
            except NotIndex:
                raise Unreadable("not an index") from None
        folder = urlsplit(final).path
        self.folders[path] = folder if folder.endswith("/") else folder + "/"
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


class _Session:
    def __init__(
        self, host: str, port: int, tls: bool, limits: WalkLimits, timeout: float, wall: float,
        context: ssl.SSLContext,
    ) -> None:
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
        client = httpx.Client(
            verify=self.context,  # certificates are observed by the HTTP probe, never trusted here
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*"},
        )
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
        detail = None
        try:
            walk.run()
        except Exception as exc:  # the session broke mid-walk: keep what was seen
            _, detail = _failure(exc)
            if tree.expired:
                detail = "session wall time spent"
            walk.share.limited = True
            walk.share.error = detail
        share = walk.facts()
        facts.shares = [share]
        status = ProbeStatus.EXPOSED if has_medical_files([share]) else ProbeStatus.OPEN
        return Outcome(status, facts, detail)


@webrepo.register
async def probe(
    engine: Engine, host: str, port: int, tls: bool, facts: HttpFacts, options: FileOptions
) -> webrepo.WebRepository | None:
    """The web root as a directory index, or None when it is not one; never raises."""
    wall = session_wall(engine, options.limits.walk_time)
    session = _Session(host, port, tls, options.limits, engine.limits.timeout, wall, engine.tls_context)
    outcome = await run_session(engine, host, session.run, session.kill, wall)
    if outcome is None:
        return None
    return webrepo.WebRepository(protocol="https" if tls else "http", outcome=outcome)
