"""S3-compatible object stores (AWS S3, MinIO, Ceph RGW ...): anonymous ListBuckets and ListObjectsV2,
then the bounded walk of each bucket, reading only the first bytes of objects (ranged GetObject).

botocore builds every request (unsigned, path-style) and parses every answer; the bytes do not
travel through botocore's HTTP stack, which would read a whole listing into memory (a hostile
endpoint may answer with a 1 GB XML document). A `before-send` hook hands each prepared request
to `_Sender`, which speaks HTTP with http.client over one connection to the probed address only
(never the URL's host: a redirect cannot lead elsewhere), reads each body within a cap and the
session's deadline, refuses DTDs (S3 never sends one), and returns the bytes to botocore as an
in-memory response. A listing over its cap ends the probe as budget-exceeded; an object body
is cut at the per-file budget and the connection dropped. The session runs in the engine's
thread pool (probes.blocking); its watchdog shuts the socket down when the wall time is spent.

When path-style addressing is refused for a bucket, virtual-hosted style is tried
(`Host: BUCKET.<endpoint host>`); facts record which worked (`dialect`). The endpoint's bucket
list is reported as the share "/" (readable when anonymous ListBuckets answered, its entries
the number of buckets); every other share is one bucket.

Facts carry counts, bucket names (sanitised) and S3 error codes only: never an object key
(keys carry patient names in medical exports) and never an error message (S3 quotes keys).
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import botocore.session
from botocore import UNSIGNED
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from botocore.parsers import ResponseParserError

from ..engine import Engine, ProbeFailure
from ..models import ProbeStatus, RepositoryFacts, ShareFacts
from ..peertext import peer_text, place_name
from ..sessions import BlockingSession
from ..text import sanitize
from .blocking import os_failure, walk_session
from .bucket_names import bucket_name_problem
from .http_client import USER_AGENT, HttpLimits, HttpSession
from .outcome import Peer
from .walk import (
    BoundedWalk,
    Budget,
    Entry,
    FileOptions,
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

ROOT = "/"  # the share standing for the endpoint's bucket list
MAX_BUCKET_LIST = 1024 * 1024  # bytes of one ListBuckets answer
MAX_PAGE = 4 * 1024 * 1024  # bytes of one ListObjectsV2 page
MAX_ERROR = 64 * 1024  # bytes of an error answer (or any other answer)
MAX_KEYS = 1000
MAX_BUCKET_NAMES = 1000
# Answers of an endpoint that wants credentials or a signature (rclone's serve s3 with --auth-key answers
# an unsigned request with UnsupportedAlgorithm, and no S3 header).
DENIED = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidAccessKeyId", "SignatureDoesNotMatch",
          "UnsupportedAlgorithm", "MissingSecurityHeader", "AuthorizationHeaderMalformed", "InvalidSecurity",
          "CredentialsNotSupported", "RequestTimeTooSkewed", "MissingAuthenticationToken"}  # fmt: skip
S3_CODES = DENIED | {
    "NoSuchBucket", "NoSuchKey", "PermanentRedirect", "TemporaryRedirect", "InvalidBucketName",
    "MissingSecurityHeader", "AuthorizationHeaderMalformed", "InvalidRequest", "InvalidArgument",
    "NotImplemented", "MethodNotAllowed", "XMinioServerNotInitialized", "InvalidToken", "ExpiredToken",
}
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9.]{0,63}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ERROR_CODE = re.compile(rb"<Error>\s*<Code>([A-Za-z0-9.]{1,64})</Code>")


# --- bucket names given by the user -----------------------------------------------------------------


def bucket_names(names: list[str] | tuple[str, ...], path: Path | None = None) -> tuple[str, ...]:
    """The names given with --s3-bucket and in --s3-buckets-file (one per line, # comments), checked.

    Raises ValueError naming the option or the file's line.
    """
    found: list[str] = []
    for name in names:
        problem = bucket_name_problem(name)
        if problem:
            raise ValueError(f"--s3-bucket {sanitize(name, 70)!r}: {problem}")
        found.append(name)
    if path is not None:
        found += _bucket_file(path)
    unique = tuple(dict.fromkeys(found))
    if len(unique) > MAX_BUCKET_NAMES:
        raise ValueError(f"at most {MAX_BUCKET_NAMES} S3 bucket names may be given")
    return unique


def _bucket_file(path: Path) -> list[str]:
    names: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number in range(1, 100_000):
                line = handle.readline(256)
                if not line:
                    return names
                if len(line) >= 255 and not line.endswith("\n"):
                    raise ValueError(f"{path}: line {number}: line too long for a bucket name")
                name = line.strip()
                if not name or name.startswith("#"):
                    continue
                problem = bucket_name_problem(name)
                if problem:
                    raise ValueError(f"{path}: line {number}: {sanitize(name, 70)!r}: {problem}")
                names.append(name)
                if len(names) > MAX_BUCKET_NAMES:
                    raise ValueError(f"{path}: line {number}: more than {MAX_BUCKET_NAMES} bucket names")
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    raise ValueError(f"{path}: too many lines")


# --- recognising an S3 endpoint ---------------------------------------------------------------------


def looks_like_s3(headers: dict[str, str], body: bytes) -> bool:
    """An S3 endpoint's answer to GET /: its headers or its XML (bucket list or S3 error)."""
    server = headers.get("server", "").lower()
    if "amazons3" in server or "minio" in server:
        return True
    if any(name in headers for name in ("x-amz-request-id", "x-amz-id-2", "x-amz-bucket-region")):
        return True
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<?xml"):
        head = head.partition(b"?>")[2].lstrip()
    if head.startswith(b"<ListAllMyBucketsResult"):
        return True
    match = _ERROR_CODE.match(head)  # the document is an S3 error, not a page that quotes one
    return bool(match and match.group(1).decode() in S3_CODES)


# --- HTTP under botocore ----------------------------------------------------------------------------


class _TooLarge(Exception):
    """An answer was larger than its cap."""


class _NotS3(Exception):
    """An answer that no S3 endpoint sends (a DTD, a foreign XML document)."""


class _Raw:
    """The body as botocore reads it (stream() for parsed answers, read() for object bodies)."""

    def __init__(self, data: bytes) -> None:
        self._data = BytesIO(data)

    def read(self, amt: int | None = None, **_: Any) -> bytes:
        return self._data.read(amt)

    def stream(self, **_: Any) -> Any:
        yield self._data.read()

    def close(self) -> None:
        pass


@dataclass
class _Sender:
    conn_session: BlockingSession  # opens every connection (the engine's limits, this host only)
    host: str
    port: int
    tls_context: ssl.SSLContext | None
    timeout: float
    budget: Budget
    cap: int = MAX_ERROR
    truncate: bool = False  # object bodies are cut at the cap; other answers over it are refused
    virtual: str | None = None  # the bucket, when it is addressed virtual-hosted style
    cut: bool = False  # the last body was cut at the cap
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    conn: http.client.HTTPConnection | None = None
    sock: socket.socket | None = None
    killed: bool = False

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls_context is not None else 80
        return host if self.port == default else f"{host}:{self.port}"

    def expect(self, cap: int, truncate: bool = False) -> None:
        self.cap, self.truncate = cap, truncate

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        """botocore's before-send hook: send the prepared request ourselves, answer in memory."""
        url = urlsplit(request.url)
        path, host = url.path or "/", self.authority
        if self.virtual is not None:
            prefix = f"/{self.virtual}"
            if path == prefix or path.startswith(prefix + "/"):
                path = path[len(prefix):] or "/"
            host = f"{self.virtual}.{host}"
        target = path + (f"?{url.query}" if url.query else "")
        headers = {k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        headers.update({"Host": host, "User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        left = self.budget.bytes_left()
        cap, by_budget = min(self.cap, max(1, left)), left < self.cap
        self.cut, self.body, self.headers = False, b"", {}
        self.cap, self.truncate, truncate = MAX_ERROR, False, self.truncate  # each cap holds for one request
        reused = self.conn is not None and self.conn.sock is not None
        try:
            response = self._exchange(request.method, target, request.body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            self._drop()  # the peer had closed the kept-alive connection: once more on a new one
            response = self._exchange(request.method, target, request.body, headers)
        self.status = response.status
        for name, value in response.getheaders()[:100]:
            key = name.lower()
            self.headers[key] = sanitize(value, 512) if key not in self.headers else self.headers[key]
        data = self._read(response, cap)
        if len(data) > cap:
            self._drop()
            if not truncate:
                raise Stop("bytes") if by_budget else _TooLarge()
            data, self.cut = data[:cap], True
        elif response.will_close or not response.isclosed():
            self._drop()
        parsed = not truncate or response.status >= 300  # object bodies are sniffed, not parsed
        if parsed and (b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data[:4096]):
            raise _NotS3()
        self.body = bytes(data)
        answer = dict(self.headers)
        answer["content-length"] = str(len(data))
        answer.pop("transfer-encoding", None)
        return AWSResponse(request.url, response.status, answer, _Raw(bytes(data)))

    def _exchange(self, method: str, target: str, body: Any, headers: dict[str, str]) -> http.client.HTTPResponse:
        conn = self._connection()
        conn.request(method, target, body=body, headers=headers)
        return conn.getresponse()

    def _connection(self) -> http.client.HTTPConnection:
        if self.killed:
            raise Stop("time")
        if self.conn is not None and self.conn.sock is not None:
            return self.conn
        self._drop()
        timeout = min(self.timeout, self.budget.remaining_time())
        if self.tls_context is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self.tls_context
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn._create_connection = self.conn_session.create_connection  # type: ignore[attr-defined]
        conn.connect()
        self.conn, self.sock = conn, conn.sock
        return conn

    def _read(self, response: http.client.HTTPResponse, cap: int) -> bytearray:
        """At most cap + 1 bytes of the body (one more tells that it was longer), within the deadline."""
        data = bytearray()
        while len(data) <= cap:
            left = self.budget.remaining_time()
            if self.sock is not None:
                self.sock.settimeout(min(self.timeout, left))
            chunk = response.read1(min(65_536, cap + 1 - len(data)))
            if not chunk:
                break
            self.budget.charge(len(chunk))
            data += chunk
        return data

    def _drop(self) -> None:
        conn, sock, self.conn, self.sock = self.conn, self.sock, None, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if conn is not None:
            conn.close()

    def kill(self) -> None:
        self.killed = True
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_BOTO_LOCK = threading.Lock()
_BOTO: list[Any] = []
_CONFIG_KEYS = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}


def _isolated_session() -> Any:
    """A botocore session that reads no AWS profile, config or credentials file of the user's:
    requests are unsigned, and a stray AWS_PROFILE must not break (or steer) the probe."""
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    for name, value in (("config_file", os.devnull), ("credentials_file", os.devnull),
                        ("use_fips_endpoint", False), ("use_dualstack_endpoint", False),
                        ("ignore_configured_endpoint_urls", True)):  # fmt: skip
        session.set_config_variable(name, value)
    return session


def _client(host: str, port: int, tls: bool, timeout: float, sender: _Sender) -> Any:
    """An unsigned path-style botocore S3 client whose requests all go through `sender`."""
    with _BOTO_LOCK:  # botocore sessions are not thread-safe; clients are
        if not _BOTO:
            _BOTO.append(_isolated_session())
        config = Config(
            signature_version=UNSIGNED,
            retries={"total_max_attempts": 1},
            connect_timeout=timeout,
            read_timeout=timeout,
            s3={"addressing_style": "path"},
            user_agent=USER_AGENT,
            **_CONFIG_KEYS,
        )
        authority = f"[{host}]" if ":" in host else host
        client = _BOTO[0].create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=f"{'https' if tls else 'http'}://{authority}:{port}",
            config=config,
        )
    client.meta.events.register_first("before-send.s3", sender)
    return client


# --- one bucket as a walk.Tree -----------------------------------------------------------------------


def _code(exc: ClientError) -> str:
    """The S3 error code when it looks like one (never the message: it may quote a key)."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code if _CODE.match(code) else "?"


@dataclass
class BucketTree:
    """One bucket: folders are ListObjectsV2 prefixes (Delimiter "/"), heads are ranged GetObjects."""

    client: Any
    sender: _Sender
    bucket: str
    virtual: bool = False
    first: tuple[list[Entry], bool] | None = None  # the root listing, read when the bucket was opened

    def _call(self, operation: str, cap: int, truncate: bool = False, **params: Any) -> dict[str, Any]:
        self.sender.virtual = self.bucket if self.virtual else None
        self.sender.expect(cap, truncate)
        try:
            result: dict[str, Any] = getattr(self.client, operation)(Bucket=self.bucket, **params)
            return result
        finally:
            self.sender.virtual = None

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        if path == "/" and self.first is not None:
            first, self.first = self.first, None
            return first
        prefix = path.strip("/")
        prefix = f"{prefix}/" if prefix else ""
        entries: list[Entry] = []
        token: str | None = None
        for _page in range(max_entries // MAX_KEYS + 2):
            params: dict[str, Any] = {"Prefix": prefix, "Delimiter": "/",
                                      "MaxKeys": max(1, min(MAX_KEYS, max_entries - len(entries)))}
            if token:
                params["ContinuationToken"] = token
            try:
                page = self._call("list_objects_v2", MAX_PAGE, **params)
            except ClientError:
                if 200 <= self.sender.status < 300:  # a success botocore could not read
                    raise _NotS3() from None
                raise Unreadable("listing refused") from None
            if b"ListBucketResult" not in self.sender.body[:4096]:
                raise _NotS3()
            entries += _entries(page, prefix)
            if len(entries) >= max_entries:
                return entries[:max_entries], True
            next_token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not isinstance(next_token, str) or next_token in ("", token):
                return entries, bool(page.get("IsTruncated"))
            token = next_token
        return entries, True

    def head(self, path: str, entry: Entry, limit: int) -> tuple[bytes, bool]:
        try:
            answer = self._call("get_object", limit, True, Key=path.lstrip("/"), Range=f"bytes=0-{limit - 1}")
        except ClientError:
            raise Unreadable("object refused") from None
        except ParamValidationError:
            raise Inexpressible("name") from None
        data = answer["Body"].read()[:limit]
        total = _total(answer.get("ContentRange"))
        if total is not None:
            return data, total <= len(data)
        return data, not self.sender.cut and (self.sender.status != 206 or len(data) < limit)


def _total(content_range: Any) -> int | None:
    if not isinstance(content_range, str) or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() and len(total) < 20 else None


def _entries(page: dict[str, Any], prefix: str) -> list[Entry]:
    found: list[Entry] = []
    for item in page.get("CommonPrefixes") or []:
        name = str(item.get("Prefix") or "")
        if name.startswith(prefix) and name.endswith("/"):
            checked = entry("d", name[len(prefix):-1])
            if checked is not None:
                found.append(checked)
    for item in page.get("Contents") or []:
        key = str(item.get("Key") or "")
        size = item.get("Size")
        if key.startswith(prefix) and key != prefix:
            checked = entry("f", key[len(prefix):], size if isinstance(size, int) and size >= 0 else None)
            if checked is not None:
                found.append(checked)
    return found


# --- the session ------------------------------------------------------------------------------------


def _failure(exc: BaseException) -> tuple[ProbeStatus, str]:
    if isinstance(exc, Stop):
        if str(exc) == "time":
            return ProbeStatus.TIMEOUT, "session wall time spent"
        return ProbeStatus.BUDGET_EXCEEDED, "byte budget spent"
    if isinstance(exc, _TooLarge):
        return ProbeStatus.BUDGET_EXCEEDED, "answer larger than its bound"
    if isinstance(exc, ssl.SSLError):
        return ProbeStatus.TLS_ERROR, "TLS failed"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return ProbeStatus.RESET, "peer closed the connection"
    if isinstance(exc, _NotS3 | ResponseParserError | http.client.HTTPException | ParamValidationError):
        return ProbeStatus.PROTOCOL_ERROR, "answer is not S3"
    if isinstance(exc, ClientError):
        return ProbeStatus.REJECTED, f"refused ({_code(exc)})"
    if isinstance(exc, BotoCoreError):  # not an OSError
        return ProbeStatus.PROTOCOL_ERROR, "answer is not S3"
    return os_failure(exc)


class _Session:
    def __init__(self, conn: BlockingSession, port: int, tls: bool, options: FileOptions,
                 timeout: float, wall: float) -> None:  # fmt: skip
        host, tls_context = conn.host, conn.tls_context() if tls else None
        self.options = options
        self.budget = Budget.start(options.limits, wall)
        self.sender = _Sender(conn, host, port, tls_context, timeout, self.budget)
        self.host, self.port, self.tls, self.timeout = host, port, tls_context is not None, timeout
        self.facts = RepositoryFacts(access="not-attempted", listing="s3")
        self.styles: set[str] = set()

    @property
    def limits(self) -> WalkLimits:
        return self.options.limits

    def kill(self) -> None:
        self.sender.kill()

    def run(self) -> Outcome:
        try:
            return self._run()
        except Exception as exc:  # every failure ends in a status, never a traceback
            status, detail = self._detail(exc)
            return Outcome(status, self.facts, detail)
        finally:
            self.sender._drop()

    def _run(self) -> Outcome:
        client = _client(self.host, self.port, self.tls, self.timeout, self.sender)
        listed = self._list_buckets(client)
        if not listed:
            self.facts.random_bucket = self._random_bucket(client)
        names = list(dict.fromkeys([*listed, *self.options.s3_buckets]))
        root = self.facts.shares[0]
        if len(names) > self.limits.max_shares:
            root.limited = True
        detail = None
        for name in names[: self.limits.max_shares]:
            try:
                self.facts.shares.append(self._bucket(client, name))
            except Exception as exc:  # the session broke: keep what was seen
                status, detail = self._detail(exc)
                shown = place_name(sanitize(name, 63))
                self.facts.shares.append(ShareFacts(name=shown, limited=True, error=detail))
                if not any(share.readable for share in self.facts.shares):
                    return Outcome(status, self.facts, detail)
                break
        self.facts.dialect = ", ".join(sorted(self.styles)) or None
        readable = any(share.readable for share in self.facts.shares)
        self.facts.access = "anonymous" if readable else "denied"
        buckets = self.facts.shares[1:]
        if has_medical_files(buckets):
            return Outcome(ProbeStatus.EXPOSED, self.facts, detail)
        if readable:
            return Outcome(ProbeStatus.OPEN, self.facts, detail)
        if not buckets and self.facts.random_bucket == "NoSuchBucket":
            self.facts.access = "anonymous"
            return Outcome(ProbeStatus.OPEN, self.facts, "anonymous requests served; no bucket name known")
        if not buckets:
            return Outcome(ProbeStatus.REJECTED, self.facts, "anonymous ListBuckets refused; no bucket name given")
        return Outcome(ProbeStatus.REJECTED, self.facts, "anonymous listing refused")

    def _list_buckets(self, client: Any) -> list[str]:
        """Anonymous ListBuckets; raises for an answer that is not S3's."""
        root = ShareFacts(name=ROOT)
        self.sender.expect(MAX_BUCKET_LIST)
        try:
            answer = client.list_buckets()
        except ClientError:
            if 200 <= self.sender.status < 300 or not looks_like_s3(self.sender.headers, self.sender.body):
                raise _NotS3() from None
            self.facts.server = self._server()
            root.error = self._last_code()
            root.auth_required = root.error in DENIED or self.sender.status in (401, 403)
            self.facts.shares = [root]
            return []
        except _TooLarge:
            self.facts.server = self._server()
            root.readable, root.limited, root.error = True, True, "bucket list larger than its bound"
            self.facts.shares = [root]
            return []
        if b"ListAllMyBucketsResult" not in self.sender.body[:4096]:
            raise _NotS3()
        self.facts.server = self._server()
        buckets = answer.get("Buckets") or []
        names = [str(b.get("Name") or "") for b in buckets if isinstance(b, dict)]
        root.readable, root.directories, root.entries = True, 1, len(names)
        self.facts.shares = [root]
        return [name for name in names if 0 < len(name) <= 255]

    def _random_bucket(self, client: Any) -> str | None:
        """The error code for a bucket name nobody uses: it tells whether anonymous requests are served.

        NoSuchBucket means the endpoint looked the bucket up for an unsigned request (anonymous
        access is on: any bucket whose name is known or guessed can be read); AccessDenied means
        unsigned requests are refused before any lookup.
        """
        name = f"phiwatch-{secrets.token_hex(8)}"
        self.sender.expect(MAX_ERROR)
        try:
            client.list_objects_v2(Bucket=name, MaxKeys=1)
        except ClientError:
            return self._last_code()
        except (_NotS3, _TooLarge, ResponseParserError, ParamValidationError):
            return None
        return "listed"  # a bucket that cannot exist was listed: the endpoint answers anything

    def _server(self) -> str | None:
        server = self.sender.headers.get("server")
        return peer_text(server) if server else None

    def _bucket(self, client: Any, name: str) -> ShareFacts:
        """Open one bucket path-style, else virtual-hosted style; walk it when it lists."""
        codes, denied = [], False
        for virtual in (False, True):
            if virtual and (":" in self.host or not _BUCKET.match(name)):
                break
            tree = BucketTree(client, self.sender, name, virtual)
            try:
                tree.first = tree.listdir("/", self.limits.max_entries)
            except Unreadable:
                codes.append(self._last_code())
                denied |= codes[-1] in DENIED or self.sender.status in (401, 403)
                continue
            except (_NotS3, ResponseParserError, ParamValidationError):
                codes.append("not-s3")
                continue
            self.styles.add("virtual-hosted" if virtual else "path-style")
            return self._walk(tree, name)
        share = ShareFacts(name=place_name(sanitize(name, 63)))
        share.auth_required = denied
        share.error = next((code for code in codes if code in DENIED), codes[0] if codes else None)
        return share

    def _last_code(self) -> str:
        match = _ERROR_CODE.search(self.sender.body[:4096])
        if match is None:
            return f"HTTP {self.sender.status}"
        code = match.group(1).decode()
        return code if _CODE.match(code) else "?"

    def _detail(self, exc: BaseException) -> tuple[ProbeStatus, str]:
        status, detail = _failure(exc)
        if self.sender.killed or (status is ProbeStatus.TIMEOUT and self.budget.deadline <= time.monotonic()):
            return ProbeStatus.TIMEOUT, "session wall time spent"
        return status, detail

    def _walk(self, tree: BucketTree, name: str) -> ShareFacts:
        walk = BoundedWalk(tree, self.budget, place_name(sanitize(name, 63)))
        walk.run_keeping(lambda exc: self._detail(exc)[1])
        return walk.facts()


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> Outcome:
    """Probe one S3-compatible endpoint; never raises."""
    options = probe_options.files
    return await walk_session(engine, peer.host, options.limits, lambda conn, limits, wall: _Session(
        conn, peer.port, peer.tls, dataclasses.replace(options, limits=limits), engine.limits.timeout, wall))


async def on_web(engine: Engine, peer: Peer, options: ProbeOptions) -> Outcome | None:
    """An S3 endpoint behind a web port: one bounded GET / decides; None for any other web service."""
    host, port, tls = peer.host, peer.port, peer.tls
    limits = HttpLimits(max_body=MAX_ERROR, max_redirects=0, request_time=max(1.0, engine.limits.timeout))
    try:
        async with HttpSession(engine, host, port, tls, limits) as session:
            answer = await session.request("/", follow=False)
    except ProbeFailure:
        return None
    if not looks_like_s3(answer.headers, answer.body):
        return None
    outcome = await probe(engine, peer, options)
    if outcome.status is ProbeStatus.PROTOCOL_ERROR:  # it did not speak S3 after all
        return None
    return outcome


def configure(options: ProbeOptions, given: Mapping[str, Any]) -> ProbeOptions:
    """--s3-bucket and --s3-buckets-file: the names every S3 endpoint is asked for, checked."""
    path = given.get("s3_buckets_file")
    names = bucket_names(list(given.get("s3_bucket") or []), Path(path) if path else None)
    return dataclasses.replace(options, files=dataclasses.replace(options.files, s3_buckets=names))
